package lsm

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// commitWrite runs build on a new batch under the write lock with the next
// version and commits what it wrote; build returns false to commit nothing.
// After a commit, the head build returns (nil for none) is cached as conv's.
//
// The batch is applied under the lock, which orders versions, and its sync
// is waited for after the lock is released, so that writes made at once
// (the read receipts of many clients) share fsyncs as sends do, and none
// holds up the group commit of messages while the disk syncs it.
func (l *Log) commitWrite(ctx context.Context, op, conv string, build func(b *pebble.Batch, version int64) (changed bool, h *head, err error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lsm: %s: %w", op, err)
	}
	b, err := l.applyWrite(conv, build)
	if err == nil && b != nil {
		err = b.SyncWait()
		b.Close()
	}
	if err != nil {
		return fmt.Errorf("lsm: %s: %w", op, err)
	}
	return nil
}

// applyWrite is commitWrite's part under the lock. It returns the applied
// batch, whose sync the caller waits for and which it closes, or nil if
// nothing was written or the log does not sync.
func (l *Log) applyWrite(conv string, build func(b *pebble.Batch, version int64) (changed bool, h *head, err error)) (*pebble.Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, pebble.ErrClosed
	}
	b := l.db.NewBatch()
	version := l.version + 1
	changed, h, err := build(b, version)
	if err != nil || !changed {
		b.Close()
		return nil, err
	}
	b.Set(versionKey, enc(nil).int(version), nil)
	if !l.write.Sync {
		err = b.Commit(l.write)
		b, err = nil, errors.Join(err, b.Close())
	} else if err = l.db.ApplyNoSyncWait(b, l.write); err != nil {
		b.Close()
		b = nil
	}
	if err != nil {
		return nil, err
	}
	l.version = version
	if h != nil {
		l.cacheHead(conv, h)
	}
	return b, nil
}

// Conversation returns a conversation.
func (l *Log) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	var h head
	found, err := get(l.db, headKey(id), h.decode)
	if err != nil {
		return store.Conversation{}, fmt.Errorf("lsm: conversation: %w", err)
	}
	if !found {
		return store.Conversation{}, store.ErrNotFound
	}
	return store.Conversation{ID: id, Kind: h.kind, MaxSeq: h.maxSeq, Members: h.members, CreatedAt: time.UnixMilli(h.created).UTC()}, nil
}

// ConversationMembers returns the current members of a conversation.
func (l *Log) ConversationMembers(ctx context.Context, conv string) ([]string, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	var h head
	found, err := get(snap, headKey(conv), h.decode)
	if err != nil {
		return nil, fmt.Errorf("lsm: conversation members: %w", err)
	}
	if !found {
		return nil, store.ErrNotFound
	}
	if h.kind == conversation.Direct {
		if h.lo == h.hi {
			return []string{h.lo}, nil
		}
		return []string{h.lo, h.hi}, nil
	}
	prefix := audiencePrefix(conv)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("lsm: conversation members: %w", err)
	}
	defer it.Close()
	users := make([]string, 0, h.members)
	for ok := it.First(); ok; ok = it.Next() {
		users = append(users, string(it.Key()[len(prefix):]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lsm: conversation members: %w", err)
	}
	return users, nil
}

// view computes a user's state from their record and the conversation's
// head. peer is the peer's record in a direct conversation, or nil when it
// has none or is not wanted.
func (l *Log) view(user, conv string, h *head, rec *member, peer *member) store.Member {
	m := store.Member{
		User:         user,
		Conversation: conv,
		Kind:         h.kind,
		MaxSeq:       h.maxSeq,
		ReadSeq:      rec.readSeq,
		MinSeq:       rec.minSeq,
		Left:         rec.left,
		Version:      max(rec.version, h.version),
		Settings:     rec.settings,
	}
	if rec.left {
		m.MaxSeq, m.Version = rec.leftSeq, rec.version
	}
	if h.kind == conversation.Direct {
		m.Peer, _ = conversation.Peer(conv, user)
		m.ReadSeq = max(m.ReadSeq, h.lastSent(user))
		m.PeerReadSeq = h.lastSent(m.Peer)
		if peer != nil {
			m.PeerReadSeq = max(m.PeerReadSeq, peer.readSeq)
		}
	}
	m.ReadSeq = min(m.ReadSeq, m.MaxSeq)
	return m
}

// memberView reads a user's full state, with its last message, from g.
func (l *Log) memberView(g getter, user, conv string, rec *member) (store.Member, error) {
	var h head
	found, err := get(g, headKey(conv), h.decode)
	if err != nil {
		return store.Member{}, err
	}
	if !found {
		return store.Member{}, noHead(user, conv)
	}
	peer, err := peerOf(g, user, conv, &h)
	if err != nil {
		return store.Member{}, err
	}
	return withLastMessage(g, l.view(user, conv, &h, rec, peer))
}

// noHead is the error for a member record whose conversation has no head.
func noHead(user, conv string) error {
	return fmt.Errorf("member %s of %s: %w: no head", user, conv, errCorrupt)
}

// peerOf reads the record of user's peer in a direct conversation, or nil
// if the conversation has none.
func peerOf(g getter, user, conv string, h *head) (*member, error) {
	if h.kind != conversation.Direct {
		return nil, nil
	}
	p, _ := conversation.Peer(conv, user)
	if p == user {
		return nil, nil
	}
	pr, found, err := memberOf(g, p, conv)
	if err != nil || !found {
		return nil, err
	}
	return &pr, nil
}

// withLastMessage fills in m's last message from g, if it has one in view.
// A stored message never changes, so any read after m was computed finds
// the same one.
func withLastMessage(g getter, m store.Member) (store.Member, error) {
	if m.MaxSeq < m.MinSeq || m.MaxSeq == 0 {
		return m, nil
	}
	var last store.Message
	found, err := get(g, messageKey(m.Conversation, m.MaxSeq), func(d *dec) { last = decodeMessage(d, m.Conversation, m.MaxSeq) })
	if err != nil {
		return store.Member{}, err
	}
	if found {
		m.LastMessage = &last
	}
	return m, nil
}

// Member returns the user's state in the conversation.
func (l *Log) Member(ctx context.Context, user, conv string) (store.Member, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	rec, found, err := memberOf(snap, user, conv)
	if err != nil {
		return store.Member{}, fmt.Errorf("lsm: member: %w", err)
	}
	if !found {
		return store.Member{}, store.ErrNotFound
	}
	m, err := l.memberView(snap, user, conv, &rec)
	if err != nil {
		return store.Member{}, fmt.Errorf("lsm: member: %w", err)
	}
	return m, nil
}

// Members returns the user's conversations changed after version since.
func (l *Log) Members(ctx context.Context, user string, since int64, limit int) ([]store.Member, int64, bool, error) {
	ms, version, more, err := l.members(user, since, limit)
	if err != nil {
		return nil, 0, false, fmt.Errorf("lsm: members: %w", err)
	}
	return ms, version, more, nil
}

func (l *Log) members(user string, since int64, limit int) ([]store.Member, int64, bool, error) {
	// One snapshot, so that no change falls between the rows and the
	// version the caller passes next time.
	snap := l.db.NewSnapshot()
	defer snap.Close()
	version, err := l.readVersion(snap)
	if err != nil {
		return nil, 0, false, err
	}
	prefix := memberPrefix(user)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, false, err
	}
	defer it.Close()
	var out []store.Member
	for ok := it.First(); ok; ok = it.Next() {
		conv := string(it.Key()[len(prefix):])
		var rec member
		d := &dec{b: it.Value()}
		rec.decode(d)
		if d.err != nil {
			return nil, 0, false, fmt.Errorf("%w: member %s of %s", d.err, user, conv)
		}
		// A member who left changes no more; others change with the head.
		if rec.left && rec.version <= since {
			continue
		}
		m, err := l.memberView(snap, user, conv, &rec)
		if err != nil {
			return nil, 0, false, err
		}
		if m.Version > since {
			out = append(out, m)
		}
	}
	if err := it.Error(); err != nil {
		return nil, 0, false, err
	}
	slices.SortFunc(out, func(a, b store.Member) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.Conversation, b.Conversation))
	})
	if limit > 0 && len(out) > limit {
		n := limit
		for n < len(out) && out[n].Version == out[n-1].Version {
			n++
		}
		if n < len(out) {
			return out[:n], out[n-1].Version, true, nil
		}
	}
	return out, version, false, nil
}

// MessageRange returns up to limit messages of the conversation in ascending
// seq order.
func (l *Log) MessageRange(ctx context.Context, conv string, from, minSeq, maxSeq int64, dir store.Direction, limit int) ([]store.Message, error) {
	if limit <= 0 || maxSeq < minSeq {
		return nil, nil
	}
	lo, hi := max(from, minSeq), maxSeq
	if dir == store.Backward {
		lo = minSeq
		if from != 0 {
			hi = min(from, maxSeq)
		}
	} else if dir != store.Forward {
		return nil, fmt.Errorf("lsm: message range: unknown direction %d", dir)
	}
	if hi < lo {
		return nil, nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: messageKey(conv, lo), UpperBound: messageKey(conv, hi+1)})
	if err != nil {
		return nil, fmt.Errorf("lsm: message range: %w", err)
	}
	defer it.Close()
	prefix := len(messagePrefix(conv))
	var msgs []store.Message
	decode := func() error {
		key := it.Key()
		seq := int64(binary.BigEndian.Uint64(key[prefix:]))
		d := &dec{b: it.Value()}
		m := decodeMessage(d, conv, seq)
		if d.err != nil {
			return fmt.Errorf("lsm: message range: %w: %s/%d", d.err, conv, seq)
		}
		msgs = append(msgs, m)
		return nil
	}
	if dir == store.Forward {
		for ok := it.First(); ok && len(msgs) < limit; ok = it.Next() {
			if err := decode(); err != nil {
				return nil, err
			}
		}
	} else {
		for ok := it.Last(); ok && len(msgs) < limit; ok = it.Prev() {
			if err := decode(); err != nil {
				return nil, err
			}
		}
		slices.Reverse(msgs)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lsm: message range: %w", err)
	}
	return msgs, nil
}

// MarkRead raises the user's read seq.
func (l *Log) MarkRead(ctx context.Context, user, conv string, seq int64) (m store.Member, raised bool, err error) {
	above := false
	m, err = l.updateMember(ctx, "mark read", user, conv, true, func(m store.Member) (readSeq, minSeq int64) {
		above = seq > m.MaxSeq
		if raised = !above && seq > m.ReadSeq; !raised {
			return m.ReadSeq, m.MinSeq
		}
		return seq, m.MinSeq
	})
	if err == nil && above {
		return m, false, fmt.Errorf("lsm: mark read %d of %d: %w", seq, m.MaxSeq, store.ErrAboveMaxSeq)
	}
	return m, raised, err
}

// ClearHistory hides the conversation's current messages from the user.
func (l *Log) ClearHistory(ctx context.Context, user, conv string) (store.Member, error) {
	return l.updateMember(ctx, "clear history", user, conv, false, func(m store.Member) (readSeq, minSeq int64) {
		return max(m.ReadSeq, m.MaxSeq), m.MaxSeq + 1
	})
}

// updateMember sets the member's read and min seqs to what change computes
// from its current state and, if they changed, stamps the record with a new
// version; with toPeer, it stamps the peer's record of a direct conversation
// too (the peer sees the new read seq as its PeerReadSeq).
func (l *Log) updateMember(ctx context.Context, op, user, conv string, toPeer bool, change func(store.Member) (readSeq, minSeq int64)) (store.Member, error) {
	var out store.Member
	err := l.commitWrite(ctx, op, conv, func(b *pebble.Batch, version int64) (bool, *head, error) {
		rec, peer, m, err := l.memberForUpdate(user, conv)
		if err != nil {
			return false, nil, err
		}
		readSeq, minSeq := change(m)
		out = m
		if readSeq == m.ReadSeq && minSeq == m.MinSeq {
			return false, nil, nil
		}
		rec.readSeq, rec.minSeq, rec.version = readSeq, minSeq, version
		b.Set(memberKey(user, conv), rec.encode(), nil)
		if toPeer && readSeq != m.ReadSeq && peer != nil {
			p := *peer
			p.version = version
			b.Set(memberKey(m.Peer, conv), p.encode(), nil)
		}
		out.ReadSeq, out.MinSeq, out.Version = readSeq, minSeq, version
		return true, nil, nil
	})
	if err != nil {
		return store.Member{}, err
	}
	return withLastMessage(l.db, out)
}

// memberForUpdate reads, for a change, a member's record, the peer's record
// of a direct conversation (nil if none) and the member's view without its
// last message, which the caller reads once the change is written
// (withLastMessage): the fewer reads under the write lock, the sooner the
// message committer has it. The caller holds l.mu, so the head comes from
// the writer's cache. ErrNotFound if the user never was a member.
func (l *Log) memberForUpdate(user, conv string) (rec member, peer *member, m store.Member, err error) {
	rec, found, err := memberOf(l.db, user, conv)
	if err == nil && !found {
		err = store.ErrNotFound
	}
	if err != nil {
		return member{}, nil, store.Member{}, err
	}
	h, err := l.headLocked(conv)
	if err == nil && h == nil {
		err = noHead(user, conv)
	}
	if err == nil {
		peer, err = peerOf(l.db, user, conv, h)
	}
	if err != nil {
		return member{}, nil, store.Member{}, err
	}
	return rec, peer, l.view(user, conv, h, &rec, peer), nil
}
