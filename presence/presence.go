// Package presence tracks which users are online, aggregated over their
// devices, remembers when each was last seen, and pushes changes to
// subscribers.
//
// # Concurrency model
//
// A Registry is safe for concurrent use; one mutex guards its maps, and
// subscriber callbacks run outside it. Last-seen times are written to the
// store by one flusher goroutine, once a second, in one statement, so a wave
// of disconnects costs one write.
//
// # Lifecycle
//
// New starts the flusher; Close marks everyone still online as seen now,
// flushes and stops it. Close is idempotent.
package presence

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Subscriber receives presence changes. Push must not block.
type Subscriber interface {
	Push(frame []byte)
}

// Store persists last-seen times and loads them for users not seen since start.
type Store interface {
	SetLastSeen(ctx context.Context, ids []string, t time.Time) error
	LastSeen(ctx context.Context, id string) (time.Time, error)
}

// Encoder turns a presence change into a frame for subscribers.
type Encoder func(protocol.Presence) ([]byte, error)

// Registry is the presence registry.
type Registry struct {
	store  Store
	encode Encoder
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	users   map[string]*entry // guarded by mu
	dirty   map[string]time.Time
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type entry struct {
	devices  int
	lastSeen time.Time
	subs     map[Subscriber]struct{}
}

// New returns a running Registry.
func New(st Store, encode Encoder, log *slog.Logger) *Registry {
	r := &Registry{
		store:   st,
		encode:  encode,
		log:     log,
		now:     time.Now,
		users:   make(map[string]*entry),
		dirty:   make(map[string]time.Time),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go r.flushLoop()
	return r
}

func (r *Registry) entry(user string) *entry {
	e := r.users[user]
	if e == nil {
		e = &entry{}
		r.users[user] = e
	}
	return e
}

// Connected records a new device connection of user.
func (r *Registry) Connected(user string) {
	r.mu.Lock()
	e := r.entry(user)
	e.devices++
	changed := e.devices == 1
	r.mu.Unlock()
	if changed {
		r.notify(user)
	}
}

// Disconnected records that one of user's device connections closed.
// Last-seen times have second precision, in memory as in the store.
func (r *Registry) Disconnected(user string) {
	now := r.now().UTC().Truncate(time.Second)
	r.mu.Lock()
	e := r.entry(user)
	e.devices = max(0, e.devices-1)
	changed := e.devices == 0
	if changed {
		e.lastSeen = now
		r.dirty[user] = now
		r.forget(user, e)
	}
	r.mu.Unlock()
	if changed {
		r.notify(user)
	}
}

// forget drops an entry that holds nothing the store does not also have.
// Callers hold mu.
func (r *Registry) forget(user string, e *entry) {
	if e.devices == 0 && len(e.subs) == 0 {
		if _, pending := r.dirty[user]; !pending {
			delete(r.users, user)
		}
	}
}

func (r *Registry) notify(user string) {
	r.mu.Lock()
	e := r.users[user]
	if e == nil || len(e.subs) == 0 {
		r.mu.Unlock()
		return
	}
	p := r.presenceLocked(user, e)
	subs := make([]Subscriber, 0, len(e.subs))
	for s := range e.subs {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	frame, err := r.encode(p)
	if err != nil {
		r.log.Error("encode presence", "err", err)
		return
	}
	for _, s := range subs {
		s.Push(frame)
	}
}

func (r *Registry) presenceLocked(user string, e *entry) protocol.Presence {
	p := protocol.Presence{User: user, Online: e.devices > 0, Devices: e.devices}
	if !e.lastSeen.IsZero() {
		p.LastSeen = e.lastSeen.UnixMilli()
	}
	return p
}

// Get returns the presence of each user, in order. Users never seen since
// start get their last-seen time from the store.
func (r *Registry) Get(ctx context.Context, users []string) []protocol.Presence {
	out := make([]protocol.Presence, len(users))
	for i, u := range users {
		r.mu.Lock()
		e := r.users[u]
		// An entry that is offline and has no last-seen time exists only for
		// its subscribers; the store knows when the user was last seen.
		known := e != nil && (e.devices > 0 || !e.lastSeen.IsZero())
		if known {
			out[i] = r.presenceLocked(u, e)
		}
		r.mu.Unlock()
		if !known {
			out[i] = protocol.Presence{User: u}
			if t, err := r.store.LastSeen(ctx, u); err == nil && !t.IsZero() {
				out[i].LastSeen = t.UnixMilli()
			}
		}
	}
	return out
}

// Online returns the users with at least one connected device, sorted.
func (r *Registry) Online() []string {
	r.mu.Lock()
	var out []string
	for u, e := range r.users {
		if e.devices > 0 {
			out = append(out, u)
		}
	}
	r.mu.Unlock()
	slices.Sort(out)
	return out
}

// Subscribe adds s as a subscriber of users and returns their current state.
func (r *Registry) Subscribe(ctx context.Context, s Subscriber, users []string) []protocol.Presence {
	r.mu.Lock()
	for _, u := range users {
		e := r.entry(u)
		if e.subs == nil {
			e.subs = make(map[Subscriber]struct{})
		}
		e.subs[s] = struct{}{}
	}
	r.mu.Unlock()
	return r.Get(ctx, users)
}

// Unsubscribe removes s as a subscriber of users.
func (r *Registry) Unsubscribe(s Subscriber, users []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range users {
		if e := r.users[u]; e != nil {
			delete(e.subs, s)
			r.forget(u, e)
		}
	}
}

func (r *Registry) flushLoop() {
	defer close(r.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

func (r *Registry) flush() {
	r.mu.Lock()
	byTime := make(map[time.Time][]string)
	for u, t := range r.dirty {
		byTime[t] = append(byTime[t], u)
		delete(r.dirty, u)
		if e := r.users[u]; e != nil {
			r.forget(u, e)
		}
	}
	r.mu.Unlock()
	for t, ids := range byTime {
		if err := r.store.SetLastSeen(context.Background(), ids, t); err != nil {
			r.log.Error("persist last seen", "users", len(ids), "err", err)
		}
	}
}

// Close records every online user as seen now, flushes, and stops the
// flusher.
func (r *Registry) Close() {
	r.once.Do(func() {
		now := r.now().UTC().Truncate(time.Second)
		r.mu.Lock()
		for u, e := range r.users {
			if e.devices > 0 {
				r.dirty[u] = now
			}
		}
		r.mu.Unlock()
		close(r.stop)
	})
	<-r.stopped
}
