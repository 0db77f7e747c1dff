// Group events in English, as the Go SDK's protocol.GroupEvent.String words
// them, except that lists of users read as English lists ("b and c").
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeGroupEvent, groupEventOf, type GroupEvent, type Message } from "../src/index.js";

test("describeGroupEvent words every event", () => {
  const cases: [GroupEvent, string][] = [
    [{ event: "created", actor: "system" }, "system created the group"],
    [{ event: "created", actor: "alice", name: "Team" }, 'alice created the group "Team"'],
    [{ event: "joined", actor: "alice", users: ["alice"] }, "alice joined"],
    [{ event: "joined", actor: "alice", users: ["bob"] }, "alice added bob"],
    [{ event: "joined", actor: "alice", users: ["bob", "carol"] }, "alice added bob and carol"],
    [{ event: "joined", actor: "alice", users: ["bob", "carol", "dan"] }, "alice added bob, carol and dan"],
    [{ event: "joined", actor: "system", users: ["bob", "carol"], count: 5 }, "system added bob, carol and 3 more"],
    [{ event: "left", actor: "bob" }, "bob left"],
    [{ event: "kicked", actor: "alice", users: ["bob"] }, "alice removed bob"],
    [{ event: "role_changed", actor: "alice", users: ["bob"], role: "admin" }, "alice made bob admin"],
    [{ event: "muted", actor: "alice", users: ["bob"], muted_until: -1 }, "alice muted bob"],
    [{ event: "muted", actor: "alice", users: ["bob"], muted_until: Date.UTC(2026, 10, 27, 18, 30) }, "alice muted bob until 2026-11-27T18:30:00Z"],
    [{ event: "unmuted", actor: "alice", users: ["bob"] }, "alice unmuted bob"],
    [{ event: "mute_all", actor: "alice", mute_all: true }, "alice muted the group"],
    [{ event: "mute_all", actor: "alice" }, "alice unmuted the group"],
    [{ event: "info_changed", actor: "alice", fields: ["name"], name: "Crew" }, 'alice renamed the group "Crew"'],
    [{ event: "info_changed", actor: "alice", fields: ["announcement", "avatar_url"] }, "alice changed the group's announcement, avatar_url"],
    [{ event: "nickname", actor: "bob", users: ["bob"], nickname: "Bobby" }, 'bob set the nickname of bob to "Bobby"'],
    [{ event: "owner_changed", actor: "alice", users: ["bob"] }, "alice made bob the owner"],
    [{ event: "dismissed", actor: "alice" }, "alice dismissed the group"],
    [{ event: "pinned", actor: "alice" }, "alice: pinned"],
  ];
  for (const [e, want] of cases) assert.equal(describeGroupEvent(e), want, JSON.stringify(e));
  assert.equal(describeGroupEvent({ event: "joined", actor: "a", users: ["b", "c"] }, (u) => u.toUpperCase()), "A added B and C");
});

test("groupEventOf takes only system messages of type group.event", () => {
  const m = (from: string, ctype: string, content: unknown): Message => ({ conv: "g:x", seq: 1, sid: "s", cid: "c", from, ctype, content, ts: 1 });
  assert.deepEqual(groupEventOf(m("system", "group.event", { event: "left", actor: "bob" })), { event: "left", actor: "bob" });
  assert.equal(groupEventOf(m("bob", "group.event", { event: "left", actor: "bob" })), undefined);
  assert.equal(groupEventOf(m("system", "text", { text: "hi" })), undefined);
  assert.equal(groupEventOf(m("system", "group.event", "left")), undefined);
  assert.equal(groupEventOf(m("system", "group.event", null)), undefined);
});
