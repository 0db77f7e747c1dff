import type { Conversation, Message, Messages, Pull } from "./types.js";
import { Codes } from "./errors.js";

/** The page size of the pulls the sequencer issues; the server caps pulls at 200. */
export const pullLimit = 200;

/** Bounds the messages held above a gap in one conversation; the pull fetches the rest. */
const maxHeld = 1024;

interface ConvState {
  id: string;
  last: number; // seq of the last message delivered (or skipped)
  target: number; // highest seq known to exist; a pull is due while last < target
  held: Message[]; // received above last+1, ascending, no duplicates
  dueAt: number; // earliest start of the next pull (ms since epoch); 0 when none is scheduled
  fromZero: boolean; // the next pull starts at the lowest visible seq
  pulling: boolean; // a pull is in flight
  pullNext: number; // last+1 when the pull in flight started
}

/**
 * Sequencer delivers every message of every conversation exactly once and in
 * seq order: a seq at or below the last delivered one is a duplicate and is
 * dropped; the next seq is delivered with whatever it unblocks; a higher one
 * is held while the gap is pulled, after gapWait since the missing message
 * is usually still in flight. It mirrors the Go SDK's sequencer
 * (client/delivery.go). It never does I/O: the client asks it for the next
 * pull and hands it the pages.
 */
export class Sequencer {
  private convs = new Map<string, ConvState>();
  duplicates = 0;
  pulls = 0;

  constructor(
    private readonly deliver: (m: Message) => void,
    private readonly wake: (at: number) => void,
    private readonly gapWait: number,
    positions: Record<string, number> = {},
    private readonly now: () => number = Date.now,
  ) {
    for (const [id, seq] of Object.entries(positions)) {
      this.convs.set(id, this.fresh(id, seq));
    }
  }

  private fresh(id: string, seq = 0): ConvState {
    return { id, last: seq, target: seq, held: [], dueAt: 0, fromZero: false, pulling: false, pullNext: 0 };
  }

  private state(id: string): ConvState {
    let st = this.convs.get(id);
    if (!st) {
      st = this.fresh(id);
      this.convs.set(id, st);
    }
    return st;
  }

  /** offer passes a pushed, pulled or acknowledged message through the sequencer. */
  offer(m: Message): void {
    this.offerTo(this.state(m.conv), m);
  }

  private offerTo(st: ConvState, m: Message): void {
    if (m.seq <= st.last) {
      this.duplicates++;
      return;
    }
    st.target = Math.max(st.target, m.seq);
    if (m.seq === st.last + 1) {
      st.last = m.seq;
      this.deliver(m);
      this.drain(st);
      return;
    }
    this.hold(st, m);
    this.reschedule(st, this.gapWait);
  }

  private hold(st: ConvState, m: Message): void {
    let lo = 0;
    let hi = st.held.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (st.held[mid].seq < m.seq) lo = mid + 1;
      else hi = mid;
    }
    if (lo < st.held.length && st.held[lo].seq === m.seq) {
      this.duplicates++;
    } else if (st.held.length < maxHeld) {
      st.held.splice(lo, 0, m);
    }
  }

  /** drain delivers the held messages that follow st.last without a gap. */
  private drain(st: ConvState): void {
    let i = 0;
    for (; i < st.held.length; i++) {
      const m = st.held[i];
      if (m.seq <= st.last) {
        this.duplicates++;
        continue;
      }
      if (m.seq !== st.last + 1) break;
      st.last = m.seq;
      this.deliver(m);
    }
    if (i > 0) st.held.splice(0, i);
    this.reschedule(st, 0);
  }

  private reschedule(st: ConvState, delay: number): void {
    st.target = Math.max(st.target, st.last);
    if (st.last === st.target) {
      st.dueAt = 0;
      return;
    }
    const at = this.now() + delay;
    if (st.dueAt === 0 || at < st.dueAt) {
      st.dueAt = at;
      this.wake(at);
    }
  }

  private skipTo(st: ConvState, seq: number): void {
    if (seq > st.last) st.last = seq;
    this.drain(st);
  }

  /**
   * applyConversation brings a conversation in line with the server's view:
   * history below min_seq is skipped, anything up to max_seq not yet
   * delivered is scheduled for a pull; with atLatest everything up to
   * max_seq counts as delivered.
   */
  applyConversation(c: Conversation, atLatest: boolean): void {
    const st = this.state(c.id);
    st.target = Math.max(st.target, c.max_seq);
    let skip = c.min_seq - 1;
    if (atLatest) skip = Math.max(skip, c.max_seq);
    this.skipTo(st, skip);
  }

  /**
   * nextPull returns the pull due first and marks it in flight, or, if none
   * is due yet, the time the next one is (0 if none is scheduled).
   */
  nextPull(): { pull?: Pull; next: number } {
    let first: ConvState | undefined;
    for (const st of this.convs.values()) {
      if (st.dueAt !== 0 && !st.pulling && (!first || st.dueAt < first.dueAt)) first = st;
    }
    if (!first) return { next: 0 };
    if (first.dueAt > this.now()) return { next: first.dueAt };
    first.pulling = true;
    first.pullNext = first.last + 1;
    this.pulls++;
    return { pull: { conv: first.id, from: first.fromZero ? 0 : first.last + 1, dir: "forward", limit: pullLimit }, next: 0 };
  }

  /** pulled applies a page pulled for conv. */
  pulled(conv: string, r: Messages): void {
    const st = this.state(conv);
    // Pushes may have moved the conversation on while the pull was in
    // flight; only a page that starts where the conversation still stands
    // says anything about missing seqs.
    const current = st.last + 1 === st.pullNext;
    st.pulling = false;
    st.fromZero = false;
    st.target = Math.max(st.target, r.max_seq);
    this.skipTo(st, r.min_seq - 1);
    for (const m of r.messages) this.offerTo(st, m);
    if (current) this.skipInvisible(st, r);
    st.dueAt = 0;
    this.reschedule(st, 0);
  }

  // skipInvisible skips the seqs a current page lacks: they are not visible
  // to the user, and waiting for them would stall the conversation.
  private skipInvisible(st: ConvState, r: Messages): void {
    let covered = r.max_seq;
    if (r.more) {
      if (r.messages.length === 0) return;
      covered = r.messages[r.messages.length - 1].seq;
    }
    while (st.last < covered) {
      let next = covered;
      if (st.held.length > 0) next = Math.min(next, st.held[0].seq - 1);
      if (next <= st.last) break;
      this.skipTo(st, next);
    }
    if (!r.more && st.last >= r.max_seq && st.held.length === 0) st.target = st.last;
  }

  /**
   * pullFailed reschedules a pull the server refused (code) or that got no
   * answer (code undefined): out_of_range retries from the lowest visible
   * seq, not_found gives up, anything else retries after retryMs.
   */
  pullFailed(conv: string, code: string | undefined, retryMs: number): void {
    const st = this.state(conv);
    st.pulling = false;
    st.dueAt = 0;
    if (code === Codes.OutOfRange && !st.fromZero) {
      st.fromZero = true;
      retryMs = 0;
    } else if (code === Codes.NotFound || code === Codes.Forbidden) {
      st.fromZero = false;
      st.held = [];
      st.target = st.last;
    }
    this.reschedule(st, retryMs);
  }

  /** positions returns the last delivered seq of every known conversation. */
  positions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, st] of this.convs) out[id] = st.last;
    return out;
  }

  /** last returns the last delivered seq of conv, 0 if unknown. */
  last(conv: string): number {
    return this.convs.get(conv)?.last ?? 0;
  }
}
