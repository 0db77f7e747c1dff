// Protocol version 2 against a real `parley serve`: the conversation list is
// paged, and group conversations are sent to, joined and left.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, GroupEventType, ParleyError, describeGroupEvent, groupEventOf, type GroupEvent, type Message } from "../src/index.js";
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

// events returns the group events among ms, each checked to be a system
// message of content type group.event.
function events(ms: Message[]): GroupEvent[] {
  return ms
    .filter((m) => m.ctype === GroupEventType)
    .map((m) => {
      assert.equal(m.from, "system");
      return m.content as GroupEvent;
    });
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

  // Creating the group announces it to every member's devices, and its
  // first message records the creation.
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
    await waitFor("the event and four messages", () => got.get(c)!.length >= 5);
    await c.ping();
    const ms = got.get(c)!;
    assert.deepEqual(ms.map((m) => m.seq), [1, 2, 3, 4, 5]);
    assert.deepEqual(events(ms.slice(0, 1)), [{ event: "created", actor: "system" }]);
    assert.equal(ms[0].from, "system");
    assert.ok(ms.slice(1).every((m) => m.to === undefined && m.from.startsWith("grp-") && m.ctype === "text"));
    assert.deepEqual(texts(ms.slice(1)), texts(got.get(ann)!.slice(1)));
    const entry = c.conversation(conv)!;
    assert.equal(entry.kind, "group");
    assert.equal(entry.peer, undefined);
    assert.equal(entry.max_seq, 5);
  }
  assert.equal(texts(got.get(ann)!.slice(1))[0], "a1");
  assert.equal(cat.conversation(conv)!.unread, 5);
  assert.deepEqual(got.get(dan), []);

  // A member added later hears of it and sees from the next seq on: first
  // the event that records the addition, then what follows.
  const joined = nextEvent(dan, "conversation", (x) => x.id === conv);
  await srv.admin("POST", "/v1/groups/grp-team/members", { users: ["grp-dan"] });
  const j = await joined;
  assert.equal(j.kind, "group");
  assert.equal(j.min_seq, 6);
  assert.equal(j.unread, 0);
  await waitFor("dan's joined event", () => got.get(dan)!.length === 1);
  assert.equal(got.get(dan)![0].seq, 6);
  assert.deepEqual(events(got.get(dan)!), [{ event: "joined", actor: "system", users: ["grp-dan"] }]);
  await ben.sendText({ conv }, "b3");
  await waitFor("dan's first message", () => got.get(dan)!.length === 2);
  assert.equal(got.get(dan)![1].seq, 7);
  assert.equal(got.get(dan)![1].from, "grp-ben");
  assert.equal(dan.conversation(conv)!.unread, 2);

  // A removed member is told, with the event that records it as the last
  // thing they see, gets no more messages and may not send.
  const left = nextEvent(cat, "conversation", (x) => x.id === conv && x.left === true);
  await srv.admin("DELETE", "/v1/groups/grp-team/members/grp-cat");
  assert.equal((await left).max_seq, 8);
  assert.equal(cat.conversation(conv)!.left, true);
  await dan.sendText({ conv }, "d1");
  await waitFor("the message after cat left", () => got.get(ann)!.length === 9 && got.get(ben)!.length === 9);
  await waitFor("cat's kicked event", () => got.get(cat)!.length === 8);
  await cat.ping();
  assert.deepEqual(got.get(cat)!.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(events(got.get(cat)!.slice(-1)), [{ event: "kicked", actor: "system", users: ["grp-cat"] }]);
  await assert.rejects(cat.sendText({ conv }, "still here?"), (e: unknown) => e instanceof ParleyError && e.code === "forbidden");
  assert.equal(cat.conversation(conv)!.max_seq, 8);

  // A fresh device of a member catches the group up once, in order, events
  // included.
  const ann2 = await srv.client(await srv.token("grp-ann", "d2"));
  const all = collect(ann2, conv);
  await waitFor("the history", () => all.length >= 9);
  await ann2.ping();
  assert.deepEqual(all.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(events(all).map((e) => e.event), ["created", "joined", "kicked"]);
  const said = (ms: Message[]) => texts(ms.filter((m) => m.ctype === "text"));
  assert.equal(said(all).length, 6);
  assert.deepEqual(said(all), said(got.get(ann)!));
  assert.equal(ann2.conversation(conv)!.kind, "group");

  await assert.rejects(ann.send({ to: "grp-ben", conv } as any, { text: "x" }), (e: unknown) => e instanceof ParleyError && e.code === "invalid_argument");
  for (const c of [ann, ben, cat, dan, ann2]) c.close();
});

test("call makes REST requests over the connection: a user creates and runs a group", { timeout: 60000 }, async () => {
  const [ivy, jon, kim] = await Promise.all(["call-ivy", "call-jon", "call-kim"].map(async (u) => srv.client(await srv.user(u))));
  const conv = Client.groupConversationId("call-club");
  const seen = collect(jon, conv);

  // A user who creates a group owns it; the reply is the REST reply's body.
  const g = await ivy.call<{ id: string; conv: string; owner: string; role: string }>("POST", "/v1/groups", { id: "call-club", name: "Club", members: ["call-jon"] });
  assert.deepEqual([g.id, g.conv, g.owner, g.role], ["call-club", conv, "call-ivy", "owner"]);
  const added = await ivy.call<{ added: { user: string; role: string }[] }>("POST", "/v1/groups/call-club/members", { users: ["call-kim"] });
  assert.deepEqual(added.added.map((m) => [m.user, m.role]), [["call-kim", "member"]]);
  await ivy.call("PATCH", "/v1/groups/call-club", { name: "Book club" });

  // The member roster, in the incremental sync shape.
  const roster = await jon.call<{ version: number; items: { user: string; role: string }[] }>("GET", "/v1/groups/call-club/members?since=0");
  assert.ok(roster.version > 0);
  assert.deepEqual(roster.items.map((m) => [m.user, m.role]).sort(), [["call-ivy", "owner"], ["call-jon", "member"], ["call-kim", "member"]]);

  // Every change is a system message in the group, worded as the Go SDK words it.
  await waitFor("three events", () => seen.length >= 3);
  await jon.ping();
  const said = seen.map((m) => {
    const e = groupEventOf(m);
    assert.ok(e, `seq ${m.seq} is a group event`);
    return describeGroupEvent(e);
  });
  assert.deepEqual(said, ['call-ivy created the group "Club"', "call-ivy added call-kim", 'call-ivy renamed the group "Book club"']);

  // Refusals are ParleyErrors with the server's code, as over REST.
  await assert.rejects(kim.call("DELETE", "/v1/groups/call-club/members/call-ivy"), (e: unknown) => e instanceof ParleyError && e.code === "forbidden");
  await assert.rejects(kim.call("GET", "/v1/groups/no-such-club"), (e: unknown) => e instanceof ParleyError && e.code === "not_found");
  await assert.rejects(kim.call("POST", "/v1/users", { id: "x" }), (e: unknown) => e instanceof ParleyError && e.code === "forbidden");
  for (const c of [ivy, jon, kim]) c.close();
});

test("changed pushes reach the changed event", { timeout: 60000 }, async () => {
  const [lea, max] = await Promise.all(["chg-lea", "chg-max"].map(async (u) => srv.client(await srv.user(u))));
  // Joined a group: the user's groups changed.
  const groups = nextEvent(max, "changed", (x) => x.scope === "groups");
  await lea.call("POST", "/v1/groups", { id: "chg-room", members: ["chg-max"], join_policy: "approval" });
  assert.equal((await groups).scope, "groups");

  // A join request: the owner's view of the group's requests changed.
  const neo = await srv.client(await srv.user("chg-neo"));
  const requests = nextEvent(lea, "changed", (x) => x.scope === "group_requests");
  const j = await neo.call<{ joined: boolean; request: { state: string } }>("POST", "/v1/groups/chg-room/join", { message: "let me in" });
  assert.deepEqual([j.joined, j.request.state], [false, "pending"]);
  const r = await requests;
  assert.equal(r.id, "chg-room");
  assert.ok(r.version > 0);
  const listed = await lea.call<{ requests: { user: string; message: string }[] }>("GET", "/v1/groups/chg-room/requests");
  assert.deepEqual(listed.requests.map((x) => [x.user, x.message]), [["chg-neo", "let me in"]]);
  for (const c of [lea, max, neo]) c.close();
});
