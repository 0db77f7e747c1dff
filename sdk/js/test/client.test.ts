// The SDK against a real `parley serve` on loopback: the scenarios of the Go
// SDK's tests (client/client_test.go).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, ParleyError, type Message } from "../src/index.js";
import { Server, nextEvent, waitFor } from "./harness.js";

let srv: Server;

before(async () => {
  srv = new Server();
  await srv.start();
});

after(async () => {
  await srv.destroy();
});

function collect(c: Client): Message[] {
  const got: Message[] = [];
  c.on("message", (m) => got.push(m));
  return got;
}

function assertInOrderOnce(got: Message[], conv: string, n: number): void {
  const seqs = got.filter((m) => m.conv === conv).map((m) => m.seq);
  assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i + 1));
}

test("an offline burst is caught up exactly once and in order", async () => {
  const alice = await srv.client(await srv.user("burst-alice"));
  const bobToken = await srv.user("burst-bob");
  const bob1 = await srv.client(bobToken);
  const first = collect(bob1);
  await alice.sendText("burst-bob", "before");
  await waitFor("the first message", () => first.length === 1);
  const positions = bob1.positions();
  const version = bob1.version;
  bob1.close();

  const n = 450; // more than two pull pages
  await Promise.all(Array.from({ length: n }, (_, i) => alice.sendText("burst-bob", `m${i}`)));

  // Resuming from stored positions delivers only what was missed.
  const bob2 = srv.track(new Client({ url: srv.wsURL, token: bobToken, WebSocket: (await import("ws")).default as any, positions, version }));
  const resumed = collect(bob2);
  await bob2.start();
  const conv = Client.directConversationId("burst-alice", "burst-bob");
  await waitFor("the burst", () => resumed.length >= n);
  assert.deepEqual(resumed.map((m) => m.seq), Array.from({ length: n }, (_, i) => i + 2));
  assert.deepEqual(resumed.map((m) => (m.content as { text: string }).text), Array.from({ length: n }, (_, i) => `m${i}`));
  assert.equal(bob2.conversation(conv)?.unread, n + 1);
  bob2.close();

  // A client without positions gets the whole history, once.
  const bob3 = await srv.client(bobToken, { ackTimeoutMs: 2000 });
  const all = collect(bob3);
  await waitFor("the history", () => all.length >= n + 1);
  await bob3.ping(); // anything still in flight arrives before the pong
  assertInOrderOnce(all, conv, n + 1);
  bob3.close();
  alice.close();
});

test("a resent cid is stored once; a reused cid for other content is refused", async () => {
  const alice = await srv.client(await srv.user("dedupe-alice"));
  const bob = await srv.client(await srv.user("dedupe-bob"));
  const got = collect(bob);
  const a1 = await alice.send({ to: "dedupe-bob" }, { text: "once" }, { cid: "fixed-1" });
  const a2 = await alice.send({ to: "dedupe-bob" }, { text: "once" }, { cid: "fixed-1" });
  assert.equal(a1.seq, 1);
  assert.equal(a2.seq, 1);
  assert.equal(a2.dup, true);
  await assert.rejects(alice.send({ to: "dedupe-bob" }, { text: "other" }, { cid: "fixed-1" }), (e: unknown) => e instanceof ParleyError && e.code === "client_id_conflict");
  await alice.sendText("dedupe-bob", "next");
  await waitFor("two messages", () => got.length === 2);
  await bob.ping();
  assert.deepEqual(got.map((m) => m.seq), [1, 2]);
  // The sender's own acknowledged sends are delivered too, once each.
  alice.close();
  bob.close();
});

test("server errors are typed errors with the server's code", async () => {
  const alice = await srv.client(await srv.user("err-alice"));
  await srv.user("err-bob");
  await assert.rejects(alice.sendText("no-such-user", "hi"), (e: unknown) => e instanceof ParleyError && e.code === "not_found");
  await assert.rejects(alice.sendText("err-bob", "x".repeat(40000)), (e: unknown) => e instanceof ParleyError && e.code === "content_too_large");
  await assert.rejects(alice.pull({ conv: "d:err-alice:nobody", from: 1 }), (e: unknown) => e instanceof ParleyError && e.code === "not_found");
  await assert.rejects(
    srv.client("not-a-token"),
    (e: unknown) => e instanceof ParleyError && e.code === "unauthenticated" && e.status === 401,
  );
  alice.close();
});

test("conversation list, unread counts and read receipts stay current", async () => {
  const alice = await srv.client(await srv.user("list-alice"));
  const bob = await srv.client(await srv.user("list-bob"));
  const conv = Client.directConversationId("list-alice", "list-bob");
  for (let i = 0; i < 3; i++) await alice.sendText("list-bob", `hi ${i}`);
  await waitFor("three unread", () => bob.conversation(conv)?.unread === 3);
  assert.equal(bob.conversations()[0].id, conv);
  assert.equal((bob.conversation(conv)?.last_message?.content as { text: string }).text, "hi 2");
  assert.equal(alice.conversation(conv)?.unread, 0);
  const receipt = nextEvent(alice, "receipt", (r) => r.reader === "list-bob");
  await bob.markRead(conv, 3);
  assert.equal(bob.conversation(conv)?.unread, 0);
  assert.equal((await receipt).seq, 3);
  assert.equal(alice.conversation(conv)?.peer_read_seq, 3);
  alice.close();
  bob.close();
});

test("presence is pushed and renewed", async () => {
  const alice = await srv.client(await srv.user("pres-alice"));
  const bobToken = await srv.user("pres-bob");
  const now = await alice.subscribe(["pres-bob"]);
  assert.equal(now[0].online, false);
  const online = nextEvent(alice, "presence", (p) => p.user === "pres-bob" && p.online);
  const bob = await srv.client(bobToken);
  await online;
  const offline = nextEvent(alice, "presence", (p) => p.user === "pres-bob" && !p.online);
  bob.close();
  await offline;
  alice.close();
});

// stopsOnKick has the admin call path and checks that c is kicked with
// code and stops with it.
async function stopsOnKick(c: Client, path: string, code: string): Promise<void> {
  const kicked = nextEvent(c, "kicked");
  const stopped = nextEvent(c, "state", (s) => s.state === "stopped");
  await srv.admin("POST", path);
  assert.equal((await kicked).code, code);
  const s = await stopped;
  assert.ok(s.error instanceof ParleyError && s.error.code === code);
}

test("a kick stops the client with the kick's code", async () => {
  const bob = await srv.client(await srv.user("kick-bob"));
  await stopsOnKick(bob, "/v1/users/kick-bob/kick", "forced_offline");
  await assert.rejects(bob.sendText("kick-bob", "x"), (e: unknown) => e instanceof ParleyError && e.code === "forced_offline");
});

test("a deactivated user's client stops for good, and so does one started later", async () => {
  const token = await srv.user("deact-bob");
  const spare = await srv.token("deact-bob", "d2");
  const bob = await srv.client(token);
  await stopsOnKick(bob, "/v1/users/deact-bob/deactivate", "user_deactivated");
  // start() retries a failed first connection, except for a token that
  // will never work again.
  const later = srv.track(new Client(srv.options(spare)));
  await assert.rejects(later.start(), (e: unknown) => e instanceof ParleyError && e.code === "user_deactivated");
  later.close();
});

test("an expired token is reported; a token source lets the client carry on", async () => {
  await srv.user("exp-alice");
  // Without a fresh token the client stops with token_expired.
  const short = await srv.client(await srv.token("exp-alice", "d1", 1));
  const expired = nextEvent(short, "tokenExpired", () => true, 15000);
  const stopped = nextEvent(short, "state", (s) => s.state === "stopped", 15000);
  assert.equal((await expired).code, "token_expired");
  const s = await stopped;
  assert.ok(s.error instanceof ParleyError && s.error.code === "token_expired");

  // With a token source the client reconnects with a fresh token.
  let calls = 0;
  const renewing = await srv.client(async () => srv.token("exp-alice", "d2", ++calls === 1 ? 1 : 0));
  await nextEvent(renewing, "tokenExpired", () => true, 15000);
  await nextEvent(renewing, "state", (st) => st.state === "connected", 15000);
  const bob = await srv.client(await srv.user("exp-bob"));
  const got = nextEvent(renewing, "message");
  await bob.sendText("exp-alice", "still here");
  assert.equal(((await got).content as { text: string }).text, "still here");
  assert.ok(calls >= 2);
  renewing.close();
  bob.close();
});

test("sends made while the server restarts are retransmitted and delivered once, in order", async () => {
  const own = new Server();
  await own.start();
  try {
    const alice = await own.client(await own.user("rs-alice"), { ackTimeoutMs: 500 });
    const bob = await own.client(await own.user("rs-bob"));
    const got = collect(bob);
    await alice.sendText("rs-bob", "m0");
    const down = nextEvent(alice, "state", (s) => s.state === "disconnected");
    await own.stop();
    await down;
    const acks = Array.from({ length: 20 }, (_, i) => alice.sendText("rs-bob", `m${i + 1}`));
    await own.start();
    await Promise.all(acks);
    await waitFor("21 messages", () => got.length >= 21, 15000);
    await bob.ping();
    assertInOrderOnce(got, Client.directConversationId("rs-alice", "rs-bob"), 21);
    assert.deepEqual(got.map((m) => (m.content as { text: string }).text), Array.from({ length: 21 }, (_, i) => `m${i}`));
    alice.close();
    bob.close();
  } finally {
    await own.destroy();
  }
});

test("heartbeats keep a connection open past the server's idle timeout", async () => {
  const own = new Server(["--heartbeat", "200ms", "--idle-timeout", "600ms"]);
  await own.start();
  try {
    const c = await own.client(await own.user("hb-alice"));
    assert.equal(c.hello?.heartbeat_ms, 200);
    const kicks: string[] = [];
    c.on("kicked", (k) => kicks.push(k.code));
    // Three idle timeouts pass with nothing but heartbeats on the wire.
    await new Promise((r) => setTimeout(r, 1800));
    assert.deepEqual(kicks, []);
    assert.equal(c.state, "connected");
    assert.equal(c.stats.connects, 1);
  } finally {
    await own.destroy();
  }
});

test("close while connecting ends the attempt", async () => {
  const token = await srv.user("close-early");
  const c = srv.track(new Client({ url: srv.wsURL, token, WebSocket: (await import("ws")).default as any }));
  const states: string[] = [];
  c.on("state", (s) => states.push(s.state));
  const ready = c.start();
  c.close();
  await assert.rejects(ready, (e: unknown) => e instanceof ParleyError && e.code === "closed");
  await new Promise((r) => setTimeout(r, 200)); // a late hello would show as "connected"
  assert.deepEqual(states, ["connecting", "stopped"]);
});
