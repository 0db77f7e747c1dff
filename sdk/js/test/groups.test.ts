// Protocol version 2 against a real `parley serve`: the conversation list is
// paged, and group conversations are sent to, joined and left.
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

function collect(c: Client, conv: string): Message[] {
  const got: Message[] = [];
  c.on("message", (m) => {
    if (m.conv === conv) got.push(m);
  });
  return got;
}

function texts(ms: Message[]): string[] {
  return ms.map((m) => (m.content as { text: string }).text);
}

test("the first sync reads every page of a long conversation list", { timeout: 60000 }, async () => {
  const n = 130; // the server returns at most 100 conversations a page
  await srv.user("paged-u");
  for (let start = 0; start < n; start += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, n - start) }, async (_, j) => {
        const from = `paged-s${start + j}`;
        await srv.user(from);
        await srv.admin("POST", "/v1/messages", { from, to: "paged-u", cid: "hello", ctype: "text", content: { text: "hi" } });
      }),
    );
  }
  const c = await srv.client(await srv.token("paged-u"));
  const direct = c.conversations().filter((x) => x.id.startsWith("d:paged-"));
  assert.equal(direct.length, n);
  assert.ok(direct.every((x) => x.kind === "direct" && x.peer?.startsWith("paged-s") && x.unread === 1));
  // syncConversations pages too, and finds nothing new.
  assert.equal((await c.syncConversations()).filter((x) => x.id.startsWith("d:paged-")).length, n);
  c.close();
});

test("members send to a group, join it and leave it", { timeout: 60000 }, async () => {
  const [ann, ben, cat, dan] = await Promise.all(["grp-ann", "grp-ben", "grp-cat", "grp-dan"].map(async (u) => srv.client(await srv.user(u))));
  const conv = Client.groupConversationId("grp-team");
  const got = new Map([ann, ben, cat, dan].map((c) => [c, collect(c, conv)]));

  // Creating the group announces it to every member's devices.
  const announced = [ann, ben, cat].map((c) => nextEvent(c, "conversation", (x) => x.id === conv));
  await srv.admin("POST", "/v1/groups", { id: "grp-team", members: ["grp-ann", "grp-ben", "grp-cat"] });
  for (const a of await Promise.all(announced)) {
    assert.equal(a.kind, "group");
    assert.equal(a.peer, undefined);
  }

  // Sends from two members, some at once: each member gets each message once, in seq order.
  await ann.sendText({ conv }, "a1");
  await Promise.all([ben.sendText({ conv }, "b1"), ann.sendText({ conv }, "a2"), ben.send({ conv }, { text: "b2" })]);
  for (const c of [ann, ben, cat]) {
    await waitFor("four messages", () => got.get(c)!.length >= 4);
    await c.ping();
    assert.deepEqual(got.get(c)!.map((m) => m.seq), [1, 2, 3, 4]);
    assert.ok(got.get(c)!.every((m) => m.to === undefined && m.from.startsWith("grp-")));
    assert.deepEqual(texts(got.get(c)!), texts(got.get(ann)!));
    const entry = c.conversation(conv)!;
    assert.equal(entry.kind, "group");
    assert.equal(entry.peer, undefined);
    assert.equal(entry.max_seq, 4);
  }
  assert.equal(texts(got.get(ann)!)[0], "a1");
  assert.equal(cat.conversation(conv)!.unread, 4);
  assert.deepEqual(got.get(dan), []);

  // A member added later hears of it and sees from the next seq on.
  const joined = nextEvent(dan, "conversation", (x) => x.id === conv);
  await srv.admin("POST", "/v1/groups/grp-team/members", { users: ["grp-dan"] });
  const j = await joined;
  assert.equal(j.kind, "group");
  assert.equal(j.min_seq, 5);
  assert.equal(j.unread, 0);
  await ben.sendText({ conv }, "b3");
  await waitFor("dan's first message", () => got.get(dan)!.length === 1);
  assert.equal(got.get(dan)![0].seq, 5);
  assert.equal(got.get(dan)![0].from, "grp-ben");
  assert.equal(dan.conversation(conv)!.unread, 1);

  // A removed member is told, gets no more messages and may not send.
  const left = nextEvent(cat, "conversation", (x) => x.id === conv && x.left === true);
  await srv.admin("DELETE", "/v1/groups/grp-team/members/grp-cat");
  assert.equal((await left).max_seq, 5);
  assert.equal(cat.conversation(conv)!.left, true);
  await dan.sendText({ conv }, "d1");
  await waitFor("the message after cat left", () => got.get(ann)!.length === 6 && got.get(ben)!.length === 6);
  await cat.ping();
  assert.deepEqual(got.get(cat)!.map((m) => m.seq), [1, 2, 3, 4, 5]);
  await assert.rejects(cat.sendText({ conv }, "still here?"), (e: unknown) => e instanceof ParleyError && e.code === "forbidden");
  assert.equal(cat.conversation(conv)!.max_seq, 5);

  // A fresh device of a member catches the group up once, in order.
  const ann2 = await srv.client(await srv.token("grp-ann", "d2"));
  const all = collect(ann2, conv);
  await waitFor("the history", () => all.length >= 6);
  await ann2.ping();
  assert.deepEqual(all.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(ann2.conversation(conv)!.kind, "group");

  await assert.rejects(ann.send({ to: "grp-ben", conv } as any, { text: "x" }), (e: unknown) => e instanceof ParleyError && e.code === "invalid_argument");
  for (const c of [ann, ben, cat, dan, ann2]) c.close();
});
