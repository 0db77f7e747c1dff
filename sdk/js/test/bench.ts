// Measures the SDK against a real `parley serve` on loopback: the time from
// connect to the first message delivered (catch-up of an existing
// conversation), the time to deliver all of its 1,000 messages, and the heap
// a client takes for them. Run with `npm run bench` (node --expose-gc), on a
// quiet machine; docs/benchmarks.md records the numbers.
import { Client, type Message, type WebSocketConstructor } from "../src/index.js";
import { Server } from "./harness.js";
import WebSocket from "ws";
import { arch, cpus, totalmem } from "node:os";

const N = 1000;
const RUNS = 15;

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function main(): Promise<void> {
  if (!(globalThis as { gc?: unknown }).gc) throw new Error("run with node --expose-gc");
  const srv = new Server();
  await srv.start();
  try {
    const alice = await srv.client(await srv.user("bench-alice"));
    const bobToken = await srv.user("bench-bob");
    const body = "x".repeat(100);
    for (let i = 0; i < N; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => alice.sendText("bench-bob", `${i + j} ${body}`)));
    }
    alice.close();

    const first: number[] = [];
    const all: number[] = [];
    let heapSdk = 0;
    let heapKept = 0;
    for (let run = 0; run < RUNS; run++) {
      gc();
      const before = process.memoryUsage().heapUsed;
      const kept: Message[] = [];
      const keep = run % 2 === 1; // odd runs keep the messages, as an app showing them would
      let t1 = 0;
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const t0 = performance.now();
      const c = new Client({ url: srv.wsURL, token: bobToken, WebSocket: WebSocket as unknown as WebSocketConstructor });
      let n = 0;
      c.on("message", (m) => {
        if (n === 0) t1 = performance.now();
        if (keep) kept.push(m);
        if (++n === N) done();
      });
      await c.start();
      await finished;
      const t2 = performance.now();
      first.push(t1 - t0);
      all.push(t2 - t0);
      gc();
      const heap = process.memoryUsage().heapUsed - before;
      if (keep) heapKept = Math.max(heapKept, heap);
      else heapSdk = Math.max(heapSdk, heap);
      if (kept.length !== (keep ? N : 0)) throw new Error("lost messages");
      c.close();
      await new Promise((r) => setTimeout(r, 50));
    }
    const ms = (x: number) => x.toFixed(1) + " ms";
    const kib = (x: number) => (x / 1024).toFixed(0) + " KiB";
    console.log(`node ${process.version} ${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
    console.log(`connect → first message (catch-up of ${N}): median ${ms(quantile(first, 0.5))}, p90 ${ms(quantile(first, 0.9))} over ${RUNS} runs`);
    console.log(`connect → all ${N} messages delivered: median ${ms(quantile(all, 0.5))}, p90 ${ms(quantile(all, 0.9))}`);
    console.log(`heap after delivering ${N} messages, the client alone: ${kib(heapSdk)}; with the application keeping them: ${kib(heapKept)}`);
  } finally {
    await srv.destroy();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
