package message

import (
	"context"
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// audience caches the members of group conversations, so that a send is
// checked and fanned out without a store read per message or per member,
// and hands each committed message to the fan-out for the members the
// conversation had at its seq.
//
// Membership changes go through the Service (ChangeGroup): while one is
// written, the group's messages wait; once it is written, the cached
// members are updated in place and the messages that waited go out. A
// message committed before a change and fanned out after it still goes to
// those who were members at its seq: the members remember who joined at
// which seq and who left at which, for as long as a message from before
// may still go out.
type audience struct {
	load    func(ctx context.Context, conv string) (*members, error)
	send    func(m *members, p groupPush) // hands p to the fan-out workers; must not block
	parts   int                           // how many fan-out workers the members are split for
	seed    maphash.Seed
	maxConv int

	mu    sync.Mutex
	gen   uint64                // bumped by every change; guarded by mu
	convs map[string]*convState // guarded by mu
}

// convState is what the audience holds of one group conversation.
type convState struct {
	m       *members    // nil until read
	sent    int64       // the highest seq handed to send
	changes int         // membership changes being written or waiting to be
	held    []groupPush // messages committed meanwhile, in seq order
	writing sync.Mutex  // held by the change being written
}

// groupPush is a committed group message on its way to the members.
type groupPush struct {
	conv   string
	seq    int64
	frame  []byte
	except router.Device
}

// members is one conversation's current members: sorted, and split by
// fan-out worker, with what decides who may post. Never modified once
// cached.
type members struct {
	sorted []string
	parts  [][]string

	muteAll    bool
	dismissed  bool
	exempt     map[string]bool  // owner and admins: they post in a muted group
	mutedUntil map[string]int64 // unix ms, or -1 for no end

	// Those who joined or left while the conversation was cached: a joiner
	// is sent no message below their joinedAt, a leaver every message of
	// their membership. lastJoin and lastLeft are the highest of those
	// seqs: a message above both goes to the current members as they are.
	joinedAt           map[string]int64
	departed           []departure
	lastJoin, lastLeft int64
}

// departure is a member who left: they are sent seqs from joined to left.
type departure struct {
	user         string
	part         int
	joined, left int64
}

func newAudience(load func(context.Context, string) (*members, error), send func(*members, groupPush), parts, maxConv int) *audience {
	return &audience{load: load, send: send, parts: parts, seed: maphash.MakeSeed(), maxConv: maxConv, convs: make(map[string]*convState)}
}

// worker is the fan-out worker that delivers to user: always the same one,
// so that a user's frames keep their order.
func (a *audience) worker(user string) int {
	return int(maphash.String(a.seed, user) % uint64(a.parts))
}

// get returns the members of conv from the cache or the store.
func (a *audience) get(ctx context.Context, conv string) (*members, error) {
	a.mu.Lock()
	var m *members
	if st := a.convs[conv]; st != nil {
		m = st.m
	}
	gen := a.gen
	a.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := a.read(ctx, conv)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen == gen { // else a change may have come between the read and now
		a.stateLocked(conv).m = m
	}
	return m, nil
}

// stateLocked returns conv's state, making one if need be. Callers hold mu.
func (a *audience) stateLocked(conv string) *convState {
	st := a.convs[conv]
	if st == nil {
		if len(a.convs) >= a.maxConv {
			// Rare: a cache of this size holds the active groups again
			// soon. What is being changed stays.
			maps.DeleteFunc(a.convs, func(_ string, st *convState) bool { return st.changes == 0 })
		}
		st = &convState{}
		a.convs[conv] = st
	}
	return st
}

// dispatch sends p with its conversation's members, under the audience's
// lock so that a conversation's messages go out in seq order; while a
// membership change is written it keeps p to send once the change is in.
// It reports false, and does nothing, when the members are not cached: the
// caller reads them (get) and tries again.
func (a *audience) dispatch(p groupPush) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.convs[p.conv]
	switch {
	case st != nil && st.changes > 0:
		st.held = append(st.held, p)
	case st == nil || st.m == nil:
		return false
	default:
		a.sendLocked(st, p)
	}
	return true
}

// late returns the members of worker part who were members at seq, for a
// message sent again out of order (a catch-up), and whether the audience
// can tell: it cannot while a change is written, or once a later message
// went out and what it knew of earlier changes may have been let go.
func (a *audience) late(conv string, part int, seq int64) ([]string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.convs[conv]
	if st == nil || st.m == nil || st.changes > 0 || seq < st.sent {
		return nil, false
	}
	return st.m.at(part, seq), true
}

// changing marks a change of conv as being written, once no other change
// of conv is (so that changes apply in the order they are written), and
// returns conv's members before it, read if not cached. conv's messages
// wait until changed.
func (a *audience) changing(ctx context.Context, conv string) (*members, error) {
	a.mu.Lock()
	a.gen++
	st := a.stateLocked(conv)
	st.changes++ // keeps st in the map
	a.mu.Unlock()
	st.writing.Lock()
	a.mu.Lock()
	m := st.m
	a.mu.Unlock()
	if m != nil {
		return m, nil
	}
	return a.read(ctx, conv)
}

// read reads conv's members from the store, split by worker.
func (a *audience) read(ctx context.Context, conv string) (*members, error) {
	m, err := a.load(ctx, conv)
	if err != nil {
		return nil, err
	}
	a.split(m)
	return m, nil
}

// changed ends a change begun by changing, which returned old. If the
// store took it, next is what it made of old (see apply), joined and left
// who joined and who left; the joiners are sent messages from seq head+1
// and the leavers up to head, head being the conversation's last seq when
// the change was written. Then, when no other change is waiting, the
// messages that waited go out.
func (a *audience) changed(conv string, old, next *members, joined, left []string, head int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	st := a.convs[conv]
	defer st.writing.Unlock()
	switch {
	case old == nil:
		st.m = nil // unreadable: read again at the next send
	case next != old:
		st.m = a.remember(old, next, joined, left, head, st.sent)
	default:
		st.m = old
	}
	if st.changes--; st.changes > 0 {
		return
	}
	for _, p := range st.held {
		if st.m == nil {
			break // the members catch up by sync
		}
		a.sendLocked(st, p)
	}
	st.held = nil
}

// sendLocked sends p with st's members, in seq order. Callers hold mu.
func (a *audience) sendLocked(st *convState, p groupPush) {
	a.send(st.m, p)
	st.sent = max(st.sent, p.seq)
}

// apply returns old's members after a change to the group's info and to
// the roster entries changed, split by worker, and who joined and who
// left. It runs outside the lock: for a large group it copies thousands of
// members.
func (a *audience) apply(old *members, info store.GroupInfo, changed []store.GroupMember) (next *members, joined, left []string) {
	next, joined, left = applyEntries(old, info, changed)
	a.split(next)
	return next, joined, left
}

// remember returns next, the members after a change written when the
// conversation's last seq was head, in which joined joined and left left,
// with who joined and left when: what old knew and what the change did,
// less what no message still to send (seq above sent) needs.
func (a *audience) remember(old, next *members, joined, left []string, head, sent int64) *members {
	next.joinedAt = make(map[string]int64)
	for u, j := range old.joinedAt {
		if j > sent {
			next.joinedAt[u] = j
		}
	}
	for _, d := range old.departed {
		if d.left >= sent {
			next.departed = append(next.departed, d)
		}
	}
	for _, u := range joined {
		next.joinedAt[u] = head + 1
	}
	for _, u := range left {
		next.departed = append(next.departed, departure{user: u, part: a.worker(u), joined: old.joinedAt[u], left: head})
		delete(next.joinedAt, u)
	}
	next.lastJoin, next.lastLeft = 0, 0
	for _, j := range next.joinedAt {
		next.lastJoin = max(next.lastJoin, j)
	}
	for _, d := range next.departed {
		next.lastLeft = max(next.lastLeft, d.left)
	}
	return next
}

// split divides m's members by fan-out worker.
func (a *audience) split(m *members) {
	m.parts = make([][]string, a.parts)
	for _, u := range m.sorted {
		w := a.worker(u)
		m.parts[w] = append(m.parts[w], u)
	}
}

func (m *members) has(user string) bool {
	_, ok := slices.BinarySearch(m.sorted, user)
	return ok
}

// at returns the users of worker part who were members at seq.
func (m *members) at(part int, seq int64) []string {
	users := m.parts[part]
	if seq >= m.lastJoin && seq > m.lastLeft {
		return users
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if j, ok := m.joinedAt[u]; !ok || seq >= j {
			out = append(out, u)
		}
	}
	for _, d := range m.departed {
		if d.part == part && d.joined <= seq && seq <= d.left {
			out = append(out, d.user)
		}
	}
	return out
}
