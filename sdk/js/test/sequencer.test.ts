// The sequencer alone, with an injected clock: gaps are held, pulled and
// filled; duplicates are dropped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Sequencer, type Message } from "../src/index.js";

function msg(seq: number): Message {
  return { conv: "d:a:b", seq, sid: "s" + seq, cid: "c" + seq, from: "a", to: "b", ctype: "text", content: { n: seq }, ts: seq };
}

test("a gap is held, pulled after the gap wait, and filled once in order", () => {
  let now = 1000;
  const got: number[] = [];
  const wakes: number[] = [];
  const s = new Sequencer((m) => got.push(m.seq), (at) => wakes.push(at), 200, {}, () => now);
  s.offer(msg(1));
  s.offer(msg(3));
  s.offer(msg(3));
  assert.deepEqual(got, [1]);
  assert.deepEqual(wakes, [1200]);
  assert.equal(s.nextPull().pull, undefined, "no pull before the gap wait");
  now = 1200;
  const { pull } = s.nextPull();
  assert.deepEqual(pull, { conv: "d:a:b", from: 2, dir: "forward", limit: 200 });
  s.pulled("d:a:b", { conv: "d:a:b", messages: [msg(2), msg(3), msg(4)], min_seq: 1, max_seq: 4, more: false });
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(s.duplicates, 2);
  assert.equal(s.nextPull().pull, undefined);
});

test("a gap closed by a late push needs no pull", () => {
  const got: number[] = [];
  const s = new Sequencer((m) => got.push(m.seq), () => {}, 200, { "d:a:b": 4 });
  s.offer(msg(6));
  s.offer(msg(5));
  s.offer(msg(4));
  assert.deepEqual(got, [5, 6]);
  assert.deepEqual(s.nextPull(), { next: 0 });
});

test("a conversation sync schedules the catch-up and skips cleared history", () => {
  const got: number[] = [];
  const s = new Sequencer((m) => got.push(m.seq), () => {}, 200);
  s.applyConversation({ id: "d:a:b", kind: "direct", max_seq: 10, read_seq: 0, peer_read_seq: 0, min_seq: 8, unread: 3, version: 1 }, false);
  const { pull } = s.nextPull();
  assert.equal(pull?.from, 8);
  s.pulled("d:a:b", { conv: "d:a:b", messages: [msg(8), msg(9), msg(10)], min_seq: 8, max_seq: 10, more: false });
  assert.deepEqual(got, [8, 9, 10]);
  assert.deepEqual(s.positions(), { "d:a:b": 10 });
});
