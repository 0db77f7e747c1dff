// The web client in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against a real `parley serve` on loopback.
// Screenshots go to web/test/artifacts/; UPDATE_SCREENSHOT=1 refreshes
// docs/screenshot.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const artifacts = join(here, "artifacts");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

let tmp, proc, base, browser;

async function startServer() {
  const bin = process.env.PARLEY_BIN || join(tmp, "parley");
  if (!process.env.PARLEY_BIN) execFileSync("go", ["build", "-o", bin, "./cmd/parley"], { cwd: repoRoot, stdio: "inherit" });
  // No allow_registration: sign-up works because this is a first run.
  proc = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(tmp, "data"), "--store-sync", "normal"], {
    env: { ...process.env, PARLEY_ADMIN_KEY: "browser-test-admin-key" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const addr = await new Promise((res, rej) => {
    let buf = "";
    const onData = (chunk) => {
      buf += chunk;
      const m = /"parley serving" addr=(\S+)/.exec(buf);
      if (m) {
        proc.stderr.off("data", onData);
        proc.stderr.resume();
        res(m[1]);
      }
    };
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => rej(new Error(`parley exited with ${code}: ${buf}`)));
  });
  base = "http://" + addr;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "parley-web-"));
  mkdirSync(artifacts, { recursive: true });
  await startServer();
  browser = await chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // playwright-core passes a fresh --user-data-dir of its own.
    ],
  });
});

after(async () => {
  await browser?.close();
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.on("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
  rmSync(tmp, { recursive: true, force: true });
});

// setOffline cuts p's WebSockets and refuses new ones, or lets them through again.
async function setOffline(p, offline) {
  p.offline = offline;
  if (!offline) return;
  for (const { ws, server } of p.sockets) {
    await server.close().catch(() => {});
    await ws.close({ code: 1001, reason: "offline" }).catch(() => {});
  }
}

// person opens the page in a fresh browser context and records what the
// console says. allowed lists console errors a step expects (the browser
// logs failed requests itself).
async function person(viewport) {
  const context = await browser.newContext({ viewport });
  const p = { context, errors: [], allowed: [], offline: false, sockets: new Set() };
  // Every WebSocket goes through the test, which can cut it to take the
  // person offline (the browser's offline emulation leaves open sockets be).
  await context.routeWebSocket(/\/v1\/ws/, (ws) => {
    if (p.offline) {
      ws.close({ code: 1001, reason: "offline" });
      return;
    }
    const server = ws.connectToServer();
    const pair = { ws, server };
    p.sockets.add(pair);
    ws.onClose(() => p.sockets.delete(pair));
  });
  const page = await context.newPage();
  p.page = page;
  page.on("console", (msg) => {
    if (msg.type() === "error" && !p.allowed.some((re) => re.test(msg.text()))) p.errors.push(msg.text());
  });
  page.on("pageerror", (err) => p.errors.push(String(err)));
  await page.goto(base + "/");
  return p;
}

async function signUp(p, id, nickname) {
  const { page } = p;
  await page.click("#tab-signup");
  await page.fill("#form-signup [name=id]", id);
  await page.fill("#form-signup [name=nickname]", nickname);
  await page.fill("#form-signup [name=password]", "correct horse battery");
  await page.press("#form-signup [name=password]", "Enter");
  await page.waitForSelector("#conn-state.online");
  assert.equal(await page.textContent("#me-name"), id);
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function bubbles(page, side) {
  return page.$$eval(`#messages .msg.${side} .bubble`, (els) => els.map((e) => e.textContent));
}

// systemLines returns the group event lines of the open chat, in order.
function systemLines(page) {
  return page.$$eval("#messages .system-line", (els) => els.map((e) => ({ seq: Number(e.dataset.seq), event: e.dataset.event, text: e.textContent })));
}

function shot(page, name) {
  return page.screenshot({ path: join(artifacts, name + ".png") });
}

let alice, bob;

test("two people sign up and chat, with unread badges and read receipts", async () => {
  alice = await person({ width: 1100, height: 700 });
  bob = await person({ width: 390, height: 800 }); // a phone
  await shot(alice.page, "signin");
  await signUp(alice, "alice", "Alice");
  await signUp(bob, "bob", "Bob");

  await alice.page.fill("#newchat-id", "bob");
  await alice.page.press("#newchat-id", "Enter");
  await alice.page.waitForSelector("#peer-name:text('Bob')");
  await send(alice.page, "Hi Bob 👋");
  await alice.page.waitForSelector("#messages .msg.own[data-state=sent]");

  // Bob, on his phone, sees the conversation with an unread badge.
  const badge = bob.page.locator("button.conv[data-peer=alice] .badge");
  await badge.waitFor();
  assert.equal(await badge.textContent(), "1");
  assert.match(await bob.page.textContent("button.conv[data-peer=alice] .conv-preview"), /Hi Bob/);
  await shot(bob.page, "phone-list");
  await bob.page.click("button.conv[data-peer=alice]");
  await bob.page.waitForSelector("#messages .msg.other .bubble:text('Hi Bob 👋')");
  await badge.waitFor({ state: "detached" });

  // Alice sees that Bob read it, and his answer.
  await alice.page.waitForSelector("#messages .msg.own[data-state=read]");
  await send(bob.page, "Hello Alice! 🎉");
  await alice.page.waitForSelector("#messages .msg.other .bubble:text('Hello Alice! 🎉')");
  await bob.page.waitForSelector("#messages .msg.own[data-state=read]");
  await send(alice.page, "Shall we meet at 5?");
  await bob.page.waitForSelector("#messages .msg.other .bubble:text('Shall we meet at 5?')");
  await shot(bob.page, "phone-chat");
  await alice.page.waitForSelector("#messages .msg.own[data-state=read] .bubble:text('Shall we meet at 5?')");
  await alice.page.locator(".dot.online").first().waitFor();
  await shot(alice.page, "chat");
  if (process.env.UPDATE_SCREENSHOT) copyFileSync(join(artifacts, "chat.png"), join(repoRoot, "docs", "screenshot.png"));
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("messages sent while one is offline arrive in order, once, when they come back", async () => {
  await setOffline(alice, true);
  await alice.page.waitForSelector("#conn-state:not(.online)");
  const burst = Array.from({ length: 8 }, (_, i) => `while you were away ${i + 1}`);
  for (const text of burst) await send(bob.page, text);
  await bob.page.waitForFunction((n) => document.querySelectorAll("#messages .msg.own[data-state=sent], #messages .msg.own[data-state=read]").length >= n, 1 + burst.length);
  await setOffline(alice, false);
  await alice.page.waitForSelector("#conn-state.online", { timeout: 30000 });
  await alice.page.waitForSelector(`#messages .msg.other .bubble:text('${burst.at(-1)}')`);
  await alice.page.evaluate(() => new Promise((r) => setTimeout(r, 300))); // let any duplicate show itself
  assert.deepEqual(await bubbles(alice.page, "other"), ["Hello Alice! 🎉", ...burst]);
  assert.deepEqual(alice.errors, []);
});

test("a reload keeps the session and the open chat", async () => {
  await alice.page.reload();
  await alice.page.waitForSelector("#conn-state.online");
  assert.equal(await alice.page.textContent("#me-name"), "alice");
  await alice.page.waitForSelector("#messages .msg.other .bubble:text('while you were away 8')");
  const seqs = await alice.page.$$eval("#messages .msg[data-seq]", (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "history in order, once");
  assert.deepEqual(alice.errors, []);
});

test("tabs of one browser share the connection and stay in sync", async () => {
  const second = await alice.context.newPage();
  const errors = [];
  second.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  second.on("pageerror", (e) => errors.push(String(e)));
  await second.goto(base + "/");
  await second.waitForSelector("#conn-state.online");
  await second.click("button.conv[data-peer=bob]");
  await second.waitForSelector("#messages .msg.other .bubble:text('while you were away 8')");
  await send(second, "from the second tab");
  await alice.page.waitForSelector("#messages .msg.own .bubble:text('from the second tab')");
  await bob.page.waitForSelector("#messages .msg.other .bubble:text('from the second tab')");
  await send(bob.page, "seen by both tabs");
  await second.waitForSelector("#messages .msg.other .bubble:text('seen by both tabs')");
  await alice.page.waitForSelector("#messages .msg.other .bubble:text('seen by both tabs')");
  assert.equal(await alice.page.locator("#banner").isHidden(), true, "no tab was pushed out");

  // The first tab closes; the second takes the connection over.
  await alice.page.close();
  await send(bob.page, "after the first tab closed");
  await second.waitForSelector("#messages .msg.other .bubble:text('after the first tab closed')");
  await send(second, "still here");
  await bob.page.waitForSelector("#messages .msg.other .bubble:text('still here')");
  const texts = await bubbles(second, "other");
  assert.equal(new Set(texts).size, texts.length, "no message shown twice");
  assert.deepEqual(errors, []);
  alice.page = second;
});

test("scrolling up loads older history, in order", async () => {
  const token = await bob.page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")).token);
  for (let i = 1; i <= 120; i++) {
    const res = await fetch(base + "/v1/messages", {
      method: "POST",
      headers: { Authorization: "Bearer " + token },
      body: JSON.stringify({ to: "alice", cid: "history-" + i, ctype: "text", content: { text: "history " + i } }),
    });
    assert.equal(res.status, 200);
  }
  await alice.page.reload();
  await alice.page.waitForSelector("#messages .msg.other .bubble:text('history 120')");
  const count = () => alice.page.$$eval("#messages .msg[data-seq]", (els) => els.length);
  assert.equal(await count(), 50, "the newest page first");
  const total = await alice.page.evaluate(() => Number(document.querySelector("#messages .msg[data-seq]:last-child")?.dataset.seq));
  while ((await count()) < total) {
    const before = await count();
    await alice.page.$eval("#messages", (el) => el.scrollTo(0, 0));
    await alice.page.waitForFunction((n) => document.querySelectorAll("#messages .msg[data-seq]").length > n, before);
  }
  const seqs = await alice.page.$$eval("#messages .msg[data-seq]", (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1));
  assert.equal(await alice.page.locator("#messages .day").count(), 1, "one day, one separator");
});

test("server errors show as readable messages next to the message or form", async () => {
  await send(alice.page, "x".repeat(33000));
  const failed = alice.page.locator("#messages .msg.failed .error");
  await failed.waitFor();
  assert.match(await failed.textContent(), /Too large to send/);
  await shot(alice.page, "too-large");
  await alice.page.click("#messages .msg.failed .error button"); // Remove
  await failed.waitFor({ state: "detached" });

  alice.allowed.push(/Failed to load resource: the server responded with a status of 404/);
  await alice.page.fill("#newchat-id", "nobody");
  await alice.page.press("#newchat-id", "Enter");
  await alice.page.waitForSelector("#form-newchat .form-error:text('There is no user with that id.')");
  alice.allowed.pop();
  assert.deepEqual(alice.errors, []);
});

test("the page says what to do when sign-up is off", async () => {
  // Creating a user with the admin key ends the first run.
  const res = await fetch(base + "/v1/users", { method: "POST", headers: { Authorization: "Bearer browser-test-admin-key" }, body: JSON.stringify({ id: "carol" }) });
  assert.equal(res.status, 201);
  const dave = await person({ width: 800, height: 600 });
  dave.allowed.push(/Failed to load resource: the server responded with a status of 403/);
  await dave.page.click("#tab-signup");
  await dave.page.fill("#form-signup [name=id]", "dave");
  await dave.page.fill("#form-signup [name=password]", "correct horse battery");
  await dave.page.press("#form-signup [name=password]", "Enter");
  const err = dave.page.locator("#form-signup .form-error");
  await err.filter({ hasText: "Sign-up is turned off" }).waitFor();
  assert.match(await err.textContent(), /--allow-registration/);
  await shot(dave.page, "signup-off");
  assert.deepEqual(dave.errors, []);
  await dave.context.close();
});

function admin(method, path, body) {
  return fetch(base + path, {
    method,
    headers: { Authorization: "Bearer browser-test-admin-key", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

test("a group made by the app server: members chat with names shown, events show as lines; a removed member reads only", async () => {
  // The app server makes a group of the two people who signed up and carol, made with the admin key.
  const aliceErrors = []; // alice's page is now the second tab, whose errors the earlier test watched
  alice.page.on("console", (m) => m.type() === "error" && aliceErrors.push(m.text()));
  alice.page.on("pageerror", (e) => aliceErrors.push(String(e)));
  const res = await admin("POST", "/v1/groups", { id: "team", members: ["alice", "bob", "carol"] });
  assert.equal(res.status, 201);
  const aliceGroup = alice.page.locator("button.conv[data-group=team]");
  await aliceGroup.waitFor();
  assert.equal(await aliceGroup.locator(".conv-name").textContent(), "team");
  assert.equal(await aliceGroup.locator(".group-mark").count(), 1, "marked as a group");
  // Its first message records the creation, and the list words it.
  await aliceGroup.locator(".conv-preview:text('system created the group')").waitFor();

  await aliceGroup.click();
  await alice.page.waitForSelector("#peer-name:text('team')");
  await alice.page.waitForSelector("#messages .system-line[data-event=created]");
  assert.deepEqual(await systemLines(alice.page), [{ seq: 1, event: "created", text: "system created the group" }]);
  assert.equal(await alice.page.locator("#messages .msg[data-from=system]").count(), 0, "no bubble from system");
  await send(alice.page, "Hello team");
  await alice.page.waitForSelector("#messages .msg.own[data-state=sent] .bubble:text('Hello team')");

  // Bob, on his phone, goes back to his list: the group has an unread badge.
  await bob.page.click("#back");
  const bobGroup = bob.page.locator("button.conv[data-group=team]");
  const badge = bobGroup.locator(".badge");
  await badge.waitFor();
  assert.equal(await badge.textContent(), "2", "the creation and alice's message");
  assert.match(await bobGroup.locator(".conv-preview").textContent(), /Alice: Hello team/);
  await bobGroup.click();
  const fromAlice = bob.page.locator("#messages .msg.other[data-from=alice]");
  await fromAlice.locator(".bubble:text('Hello team')").waitFor();
  await fromAlice.locator(".sender:text('Alice')").waitFor();
  await badge.waitFor({ state: "detached" });
  await shot(bob.page, "phone-group");

  await bob.page.waitForSelector("#messages .system-line[data-event=created]:text('system created the group')");

  await send(bob.page, "Hi all");
  await alice.page.locator("#messages .msg.other[data-from=bob] .sender:text('Bob')").waitFor();
  assert.deepEqual(await bubbles(alice.page, "other"), ["Hi all"]);

  // A member adds people (with her own token, as users now may): a line
  // that names them, and the list's preview says it too.
  for (const id of ["erin", "frank"]) assert.equal((await admin("POST", "/v1/users", { id })).status, 201);
  const aliceToken = await alice.page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")).token);
  const added = await fetch(base + "/v1/groups/team/members", {
    method: "POST",
    headers: { Authorization: "Bearer " + aliceToken, "Content-Type": "application/json" },
    body: JSON.stringify({ users: ["erin", "frank"] }),
  });
  assert.equal(added.status, 200);
  assert.deepEqual((await added.json()).added.map((m) => m.user), ["erin", "frank"]);
  await alice.page.waitForSelector("#messages .system-line[data-event=joined]:text('Alice added erin and frank')");
  await alice.page.locator("button.conv[data-group=team] .conv-preview:text('Alice added erin and frank')").waitFor();
  await shot(alice.page, "group");

  // Removed from the group, bob keeps its history but can no longer write.
  assert.equal((await admin("DELETE", "/v1/groups/team/members/bob")).status, 204);
  await bob.page.locator("#left-note").waitFor();
  assert.equal(await bob.page.isDisabled("#text"), true);
  assert.equal(await bob.page.isDisabled("#send"), true);
  assert.match(await bob.page.textContent("#peer-state"), /left/);
  await send(alice.page, "Bob has left");
  await alice.page.waitForSelector("#messages .msg.own[data-state=sent] .bubble:text('Bob has left')");
  await bob.page.evaluate(() => new Promise((r) => setTimeout(r, 300))); // a stray push would show by now
  assert.deepEqual(await bubbles(bob.page, "other"), ["Hello team"]);
  // Bob's history ends with his removal, which alice sees too.
  await bob.page.waitForSelector("#messages .system-line[data-event=kicked]:text('system removed Bob')");
  const bobLines = await systemLines(bob.page);
  assert.deepEqual(bobLines.map((l) => [l.event, l.text]), [["created", "system created the group"], ["joined", "Alice added erin and frank"], ["kicked", "system removed Bob"]]);
  assert.equal(await bob.page.$eval("#messages > :last-child", (e) => e.dataset.event), "kicked");
  await alice.page.waitForSelector("#messages .system-line[data-event=kicked]:text('system removed Bob')");
  await shot(bob.page, "phone-group-left");
  await bob.page.click("#back");
  assert.match(await bob.page.textContent("button.conv[data-group=team] .conv-preview"), /You left this group/);

  // The app server mutes the whole group: a line says so, and alice's next
  // message is refused with a readable reason.
  assert.equal((await admin("PATCH", "/v1/groups/team", { mute_all: true })).status, 200);
  await alice.page.waitForSelector("#messages .system-line[data-event=mute_all]:text('system muted the group')");
  await send(alice.page, "anyone?");
  const refused = alice.page.locator("#messages .msg.failed .error");
  await refused.waitFor();
  assert.match(await refused.textContent(), /you are muted in this group/);
  assert.deepEqual(aliceErrors, []);
  assert.deepEqual(bob.errors, []);
});
