// Copies the compiled SDK (dist/*.js) into web/static/sdk/, where the web
// client that `parley serve` embeds imports it. With --check it changes
// nothing and fails if the committed copy differs from a fresh build, so CI
// catches an SDK change whose copy was not refreshed.
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const dest = join(here, "..", "..", "..", "web", "static", "sdk");
const check = process.argv.includes("--check");

const built = readdirSync(dist).filter((f) => f.endsWith(".js")).sort();
const stale = [];
if (!check) mkdirSync(dest, { recursive: true });
for (const f of built) {
  const want = readFileSync(join(dist, f), "utf8");
  const path = join(dest, f);
  const have = existsSync(path) ? readFileSync(path, "utf8") : undefined;
  if (have === want) continue;
  if (check) stale.push(f);
  else writeFileSync(path, want);
}
if (existsSync(dest)) {
  for (const f of readdirSync(dest)) if (!built.includes(f)) stale.push(f + " (not built)");
}
if (check && stale.length > 0) {
  console.error("web/static/sdk is stale; run `npm run build` in sdk/js:", stale.join(", "));
  process.exit(1);
}
