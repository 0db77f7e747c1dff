package message

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
)

// audience caches the current members of group conversations, so that a
// send is checked and fanned out without a store read per message or per
// member. Membership changes go through the Service, which updates the
// cached conversation once the store has the change; a load that raced the
// change is not cached (see gen).
type audience struct {
	load    func(ctx context.Context, conv string) (*members, error)
	parts   int // how many fan-out workers the members are split for
	seed    maphash.Seed
	maxConv int

	mu    sync.Mutex
	gen   uint64              // bumped by update; guarded by mu
	convs map[string]*members // guarded by mu
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
}

func newAudience(load func(context.Context, string) (*members, error), parts, maxConv int) *audience {
	return &audience{load: load, parts: parts, seed: maphash.MakeSeed(), maxConv: maxConv, convs: make(map[string]*members)}
}

// worker is the fan-out worker that delivers to user: always the same one,
// so that a user's frames keep their order.
func (a *audience) worker(user string) int {
	return int(maphash.String(a.seed, user) % uint64(a.parts))
}

// get returns the members of conv from the cache or the store.
func (a *audience) get(ctx context.Context, conv string) (*members, error) {
	a.mu.Lock()
	m, ok := a.convs[conv]
	gen := a.gen
	a.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := a.load(ctx, conv)
	if err != nil {
		return nil, err
	}
	a.split(m)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen == gen {
		if len(a.convs) >= a.maxConv {
			clear(a.convs) // rare: a cache of this size holds the active groups again soon
		}
		a.convs[conv] = m
	}
	return m, nil
}

// update replaces conv's cached members, if it is cached, with what change
// makes of them; a load in flight is not cached (see gen).
func (a *audience) update(conv string, change func(*members) *members) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	old, ok := a.convs[conv]
	if !ok {
		return
	}
	m := change(old)
	a.split(m)
	a.convs[conv] = m
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
