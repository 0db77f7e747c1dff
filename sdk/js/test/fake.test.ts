// The client against a scripted server on a fake WebSocket: frame sequences
// a real server produces only by chance (a group message before its
// conversation, a push repeated) or only at scale (a paged list).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Client, type Changed, type ClientOptions, type Message, type WebSocketConstructor, type WebSocketLike } from "../src/index.js";
import { waitFor } from "./harness.js";

// FakeSocket is a WebSocketLike whose server side is a function of the
// client's frames; push sends an unsolicited frame.
class FakeSocket implements WebSocketLike {
  static last?: FakeSocket;
  readyState = 1;
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: any }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  readonly sent: any[] = [];

  constructor(_url: string, private readonly reply: (f: any) => any[]) {
    FakeSocket.last = this;
    setTimeout(() => this.push({ type: "hello", data: { protocol: 2, user: "me", platform: "web", device: "d1", heartbeat_ms: 60000, server_time: Date.now() } }));
  }
  send(data: string): void {
    const f = JSON.parse(data);
    this.sent.push(f);
    for (const r of this.reply(f)) setTimeout(() => this.push(r));
  }
  close(): void {
    this.readyState = 3;
  }
  push(f: unknown): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
}

// Every client a test connects is closed after it, passed or failed, so a
// failing test does not keep the process alive with its timers.
const open: Client[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function connect(WebSocket: WebSocketConstructor, options: Partial<ClientOptions> = {}): Promise<Client> {
  const c = await Client.connect({ url: "ws://fake/v1/ws", token: "t", WebSocket, ...options });
  open.push(c);
  return c;
}

function fakeServer(reply: (f: any) => any[]): WebSocketConstructor {
  return class extends FakeSocket {
    constructor(url: string) {
      super(url, reply);
    }
  } as unknown as WebSocketConstructor;
}

function conversation(id: string, version: number): any {
  return { id, kind: "direct", peer: id.split(":")[2], max_seq: 0, read_seq: 0, peer_read_seq: 0, min_seq: 1, unread: 0, version };
}

function groupMessage(seq: number): Message {
  return { conv: "g:crew", seq, sid: "s" + seq, cid: "c" + seq, from: "other", ctype: "text", content: { text: "m" + seq }, ts: seq };
}

test("the first sync asks again while the server says more", { timeout: 20000 }, async () => {
  const asked: number[] = [];
  const WebSocket = fakeServer((f) => {
    if (f.type !== "conversations") return [];
    asked.push(f.data.since);
    const page = asked.length; // three pages of two
    return [{ type: "conversations", id: f.id, data: { version: page * 2, conversations: [conversation(`d:me:u${page}a`, page * 2 - 1), conversation(`d:me:u${page}b`, page * 2)], more: page < 3 } }];
  });
  const c = await connect(WebSocket);
  assert.deepEqual(asked, [0, 2, 4]);
  assert.equal(c.conversations().length, 6);
  assert.equal(c.version, 6);
});

test("syncConversations asks again while the server says more", { timeout: 20000 }, async () => {
  const asked: number[] = [];
  const WebSocket = fakeServer((f) => {
    if (f.type !== "conversations") return [];
    asked.push(f.data.since);
    if (asked.length === 1) return [{ type: "conversations", id: f.id, data: { version: 1, conversations: [conversation("d:me:first", 1)] } }];
    const page = asked.length - 1; // then two pages of one
    return [{ type: "conversations", id: f.id, data: { version: 1 + page, conversations: [conversation(`d:me:later${page}`, 1 + page)], more: page < 2 } }];
  });
  const c = await connect(WebSocket);
  const list = await c.syncConversations();
  assert.deepEqual(asked, [0, 1, 2]);
  assert.deepEqual(list.map((x) => x.id).sort(), ["d:me:first", "d:me:later1", "d:me:later2"]);
  assert.equal(c.version, 3);
});

test("a group message makes a group entry without a peer; a repeated push is delivered once", { timeout: 20000 }, async () => {
  const WebSocket = fakeServer((f) => (f.type === "conversations" ? [{ type: "conversations", id: f.id, data: { version: 1, conversations: [] } }] : []));
  const c = await connect(WebSocket);
  const got: number[] = [];
  c.on("message", (m) => got.push(m.seq));
  const sock = FakeSocket.last!;
  sock.push({ type: "message", data: groupMessage(1) });
  sock.push({ type: "message", data: groupMessage(2) });
  sock.push({ type: "message", data: groupMessage(2) }); // shed pushes are repeated to show the newest
  sock.push({ type: "message", data: groupMessage(1) });
  await waitFor("two messages", () => got.length >= 2);
  const entry = c.conversation("g:crew")!;
  assert.equal(entry.kind, "group");
  assert.equal(entry.peer, undefined);
  assert.equal(entry.max_seq, 2);
  assert.equal(entry.unread, 2);
  assert.deepEqual(got, [1, 2]);
  assert.equal(c.stats.duplicates, 2);
});

test("a send by conversation id names conv in the frame", { timeout: 20000 }, async () => {
  const WebSocket = fakeServer((f) => {
    if (f.type === "conversations") return [{ type: "conversations", id: f.id, data: { version: 1, conversations: [] } }];
    if (f.type === "send") return [{ type: "ack", id: f.id, data: { cid: f.data.cid, conv: f.data.conv, seq: 1, sid: "s1", ts: 1 } }];
    return [];
  });
  const c = await connect(WebSocket);
  const delivered: Message[] = [];
  c.on("message", (m) => delivered.push(m));
  const ack = await c.sendText({ conv: "g:crew" }, "hi");
  const frame = FakeSocket.last!.sent.find((f) => f.type === "send");
  assert.equal(frame.data.conv, "g:crew");
  assert.equal("to" in frame.data, false);
  assert.equal(ack.conv, "g:crew");
  assert.equal(delivered.length, 1);
  assert.equal(delivered[0].to, undefined);
  assert.equal(c.conversation("g:crew")?.kind, "group");
  assert.equal(c.conversation("g:crew")?.unread, 0);
});

test("a slow ack is waited for while the server answers pings, never sent twice on one connection", { timeout: 20000 }, async () => {
  const WebSocket = fakeServer((f) => {
    if (f.type === "conversations") return [{ type: "conversations", id: f.id, data: { version: 1, conversations: [] } }];
    if (f.type === "ping") return [{ type: "pong", id: f.id, data: { server_time: 1 } }];
    if (f.type === "send") {
      const ws = FakeSocket.last!;
      setTimeout(() => ws.push({ type: "ack", id: f.id, data: { cid: f.data.cid, conv: "d:me:you", seq: 1, sid: "s1", ts: 1 } }), 600); // six ack timeouts
    }
    return [];
  });
  const c = await connect(WebSocket, { ackTimeoutMs: 100 });
  const ack = await c.sendText("you", "hi");
  assert.equal(ack.seq, 1);
  const sent = FakeSocket.last!.sent;
  assert.equal(sent.filter((f) => f.type === "send").length, 1);
  assert.ok(sent.some((f) => f.type === "ping"), "the client pinged the silent server");
  assert.deepEqual([c.stats.connects, c.stats.retransmits], [1, 0]);
});

test("a server silent after a send and a ping is left, and the send goes out on the next connection", { timeout: 20000 }, async () => {
  const sockets: FakeSocket[] = [];
  const WebSocket = fakeServer((f) => {
    const ws = FakeSocket.last!;
    if (!sockets.includes(ws)) sockets.push(ws);
    if (f.type === "conversations") return [{ type: "conversations", id: f.id, data: { version: 1, conversations: [] } }];
    if (sockets.length === 1) return []; // hung: no ack, no pong
    if (f.type === "send") return [{ type: "ack", id: f.id, data: { cid: f.data.cid, conv: "d:me:you", seq: 1, sid: "s1", ts: 1, dup: true } }];
    return [];
  });
  const c = await connect(WebSocket, { ackTimeoutMs: 100, backoffMinMs: 1, backoffMaxMs: 10 });
  const ack = await c.sendText("you", "hi");
  assert.equal(ack.dup, true);
  assert.equal(sockets.length, 2);
  const sends = sockets.map((ws) => ws.sent.filter((f) => f.type === "send"));
  assert.deepEqual(sends.map((x) => x.length), [1, 1]);
  assert.equal(sends[0][0].data.cid, sends[1][0].data.cid);
  assert.ok(sockets[0].sent.some((f) => f.type === "ping"), "the client pinged before it gave up");
  assert.deepEqual([c.stats.connects, c.stats.retransmits], [2, 1]);
});

test("changed pushes are emitted; malformed ones and unknown push types are ignored", { timeout: 20000 }, async () => {
  const WebSocket = fakeServer((f) => (f.type === "conversations" ? [{ type: "conversations", id: f.id, data: { version: 1, conversations: [] } }] : []));
  const c = await connect(WebSocket);
  const got: Changed[] = [];
  c.on("changed", (x) => got.push(x));
  const sock = FakeSocket.last!;
  sock.push({ type: "changed" });
  sock.push({ type: "changed", data: { version: 3 } });
  sock.push({ type: "something.new", data: { scope: "friends" } });
  sock.push({ type: "changed", data: { scope: "group_members", id: "crew", version: 7 } });
  await waitFor("the changed event", () => got.length >= 1);
  assert.deepEqual(got, [{ scope: "group_members", id: "crew", version: 7 }]);
  assert.equal(c.state, "connected");
});
