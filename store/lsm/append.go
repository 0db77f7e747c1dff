package lsm

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

var _ store.Pipeliner = (*Log)(nil)

// AppendMessages commits the batch in one Pebble batch with one sync.
func (l *Log) AppendMessages(ctx context.Context, batch []store.NewMessage) ([]store.AppendResult, error) {
	results, durable, err := l.AppendMessagesPipelined(ctx, batch)
	if err != nil {
		return nil, err
	}
	if err := durable(); err != nil {
		return nil, err
	}
	return results, nil
}

// noWait is the durable func of a batch that wrote nothing, or was synced.
func noWait() error { return nil }

// AppendMessagesPipelined applies the batch in one Pebble batch and returns
// once it is applied, in order; durable waits for its sync. Pebble
// coalesces the syncs of batches applied while an earlier sync is under way,
// so a committer that hands durable on and builds the next batch shares one
// fsync among several batches.
//
// Per message it reads the client-id key (unless the filter in front of it
// or the client ID's absence spare the read), and for a group the sender's
// member record; it writes the message and its client-id key. Per
// conversation it writes the head once, and per batch the version counter.
func (l *Log) AppendMessagesPipelined(ctx context.Context, batch []store.NewMessage) (results []store.AppendResult, durable func() error, err error) {
	if len(batch) == 0 {
		return nil, noWait, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("lsm: append messages: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, fmt.Errorf("lsm: append messages: %w", pebble.ErrClosed)
	}
	if f := l.filter; f.ready.Load() && f.full() {
		l.startFilterLocked(2 * int(f.keys.Load()))
	}
	a := l.appender.reset(l, len(batch))
	version := l.version + 1
	for i := range batch {
		r, err := a.append(i, &batch[i], version)
		if err != nil {
			a.b.Close()
			return nil, nil, fmt.Errorf("lsm: append messages: %w", err)
		}
		a.results[i] = r
	}
	if len(a.order) == 0 { // only duplicates and refusals: nothing changes
		a.b.Close()
		return a.results, noWait, nil
	}
	for _, conv := range a.order {
		h := a.heads[conv]
		h.version = version
		a.b.Set(headKey(conv), h.encode(), nil)
	}
	for k, m := range a.senders {
		m.version = version
		a.b.Set(memberKey(k.user, k.conv), m.encode(), nil)
	}
	a.b.Set(versionKey, enc(nil).int(version), nil)
	durable = noWait
	if l.write.Sync {
		// The batch is visible once applied; its sync follows.
		if err := l.db.ApplyNoSyncWait(a.b, l.write); err != nil {
			a.b.Close()
			return nil, nil, fmt.Errorf("lsm: append messages: %w", err)
		}
		b := a.b
		durable = func() error {
			defer b.Close()
			if err := b.SyncWait(); err != nil {
				return fmt.Errorf("lsm: append messages: sync: %w", err)
			}
			return nil
		}
	} else {
		err := a.b.Commit(l.write)
		a.b.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("lsm: append messages: %w", err)
		}
	}
	l.version = version
	for _, conv := range a.order {
		l.cacheHead(conv, a.heads[conv])
	}
	return a.results, durable, nil
}

type userConv struct{ user, conv string }

type clientRef struct{ sender, clientID string }

// appender is the state of one AppendMessages call. The Log keeps one for
// the next call, under its mutex, so that its maps and buffers are reused:
// building them anew was about half of what a commit allocated.
type appender struct {
	l         *Log
	b         *pebble.Batch
	results   []store.AppendResult // the call's own: returned to the caller
	heads     map[string]*head     // copies of the heads this batch changes
	order     []string             // conversations with a new message, in first-touched order
	senders   map[userConv]*member
	originals map[clientRef]int // client IDs stored by this batch: the index of their result
	key, val  []byte            // encodings on their way into b, which copies them
}

// reset readies a for a batch of n messages to l. The caller holds l.mu.
func (a *appender) reset(l *Log, n int) *appender {
	if a.heads == nil {
		a.heads, a.senders, a.originals = make(map[string]*head), make(map[userConv]*member), make(map[clientRef]int)
	}
	clear(a.heads)
	clear(a.senders)
	clear(a.originals)
	a.l, a.b, a.results, a.order = l, l.db.NewBatch(), make([]store.AppendResult, n), a.order[:0]
	return a
}

// append adds message i of the batch, whose earlier results are in
// a.results.
func (a *appender) append(i int, m *store.NewMessage, version int64) (store.AppendResult, error) {
	ref := clientRef{m.Sender, m.ClientID}
	if m.ClientID != "" {
		if j, ok := a.originals[ref]; ok {
			return store.Dedupe(a.results[j].Message, m), nil
		}
		orig, found, err := a.original(ref)
		if err != nil {
			return store.AppendResult{}, err
		}
		if found {
			return store.Dedupe(orig, m), nil
		}
	}
	h, refusal, err := a.head(m, version)
	if err != nil || refusal != nil {
		return store.AppendResult{Err: refusal}, err
	}
	msg := store.Message{
		Conversation: m.Conversation,
		Seq:          h.maxSeq + 1,
		ServerID:     m.ServerID,
		ClientID:     m.ClientID,
		Sender:       m.Sender,
		Recipient:    m.Recipient,
		ContentType:  m.ContentType,
		Content:      m.Content,
		Time:         time.UnixMilli(m.Time.UnixMilli()).UTC(),
	}
	h.maxSeq = msg.Seq
	a.key, a.val = appendMessageKey(a.key[:0], msg.Conversation, msg.Seq), appendMessage(a.val[:0], &msg)
	a.b.Set(a.key, a.val, nil)
	if m.ClientID != "" {
		a.key = appendClientKey(a.key[:0], m.Sender, m.ClientID)
		a.val = enc(a.val[:0]).str(msg.Conversation).int(msg.Seq)
		a.b.Set(a.key, a.val, nil)
		a.l.rememberClientKey(a.key) // a failed commit leaves it behind: a false positive, harmless
		a.originals[ref] = i
	}
	if h.kind == conversation.Direct {
		switch m.Sender {
		case h.lo:
			h.lastSentLo = msg.Seq
		case h.hi:
			h.lastSentHi = msg.Seq
		}
	} else if m.Sender != conversation.SystemUser {
		a.senders[userConv{m.Sender, m.Conversation}].readSeq = msg.Seq
	}
	return store.AppendResult{Message: msg}, nil
}

// original looks up the message a client ID was used for before this batch.
func (a *appender) original(ref clientRef) (store.Message, bool, error) {
	key := clientKey(ref.sender, ref.clientID)
	if a.l.clientKeyAbsent(key) {
		return store.Message{}, false, nil
	}
	var conv string
	var seq int64
	found, err := get(a.l.db, key, func(d *dec) { conv, seq = d.str(), d.int() })
	if err != nil || !found {
		return store.Message{}, false, err
	}
	var msg store.Message
	found, err = get(a.l.db, messageKey(conv, seq), func(d *dec) { msg = decodeMessage(d, conv, seq) })
	if err == nil && !found {
		err = fmt.Errorf("client id %q of %q names missing message %s/%d", ref.clientID, ref.sender, conv, seq)
	}
	return msg, found, err
}

// head returns this batch's copy of m's conversation head, creating a direct
// conversation on its first message, or the reason m is refused.
func (a *appender) head(m *store.NewMessage, version int64) (h *head, refusal error, err error) {
	h, ok := a.heads[m.Conversation]
	if !ok {
		cached, err := a.l.headLocked(m.Conversation)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case cached != nil:
			c := *cached
			h = &c
		case m.Kind != conversation.Direct:
			return nil, store.ErrNotFound, nil
		default:
			lo, hi, ok := conversation.Pair(m.Conversation)
			if !ok {
				return nil, nil, fmt.Errorf("direct message in %q, which is no direct conversation id", m.Conversation)
			}
			if m.Sender != lo && m.Sender != hi {
				return nil, store.ErrNotMember, nil
			}
			h = a.newDirect(m, lo, hi, version)
		}
	}
	if h.kind == conversation.Direct {
		if m.Sender != h.lo && m.Sender != h.hi {
			return nil, store.ErrNotMember, nil
		}
	} else if m.Sender != conversation.SystemUser {
		k := userConv{m.Sender, m.Conversation}
		if _, ok := a.senders[k]; !ok {
			mem, found, err := memberOf(a.l.db, m.Sender, m.Conversation)
			if err != nil {
				return nil, nil, err
			}
			if !found || mem.left {
				return nil, store.ErrNotMember, nil
			}
			a.senders[k] = &mem
		}
	}
	if !ok {
		a.heads[m.Conversation] = h
		a.order = append(a.order, m.Conversation)
	}
	return h, nil, nil
}

// newDirect creates the head and the two member records of the direct
// conversation between lo and hi that m starts.
func (a *appender) newDirect(m *store.NewMessage, lo, hi string, version int64) *head {
	h := &head{kind: conversation.Direct, created: m.Time.UnixMilli(), lo: lo, hi: hi, members: 2}
	rec := member{minSeq: 1, version: version}
	a.b.Set(memberKey(lo, m.Conversation), rec.encode(), nil)
	if hi != lo {
		a.b.Set(memberKey(hi, m.Conversation), rec.encode(), nil)
	} else {
		h.members = 1
	}
	return h
}
