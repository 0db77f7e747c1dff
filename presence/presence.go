// Package presence tracks which users are online, aggregated over their
// devices, remembers when each was last seen, and pushes changes to
// subscribers.
//
// # Concurrency model
//
// A Registry is safe for concurrent use; one mutex guards its maps.
// Subscribers are pushed to while it is held, so every subscriber sees a
// user's changes in the order they happened (Subscriber.Push must not block
// or call back into the Registry). Last-seen times are written to the store
// by one flusher goroutine, once a second, in one statement per time, so a
// wave of disconnects costs one write; each write is bounded by
// WriteTimeout, and a failed one is retried at the next flush.
//
// # Lifecycle
//
// New starts the flusher; Close marks everyone still online as seen now,
// flushes within its context and stops the flusher. Close is idempotent.
package presence

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Subscriber receives presence changes. Push is called with the Registry's
// lock held: it must not block nor call the Registry.
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

	mu    sync.Mutex
	users map[string]*entry    // guarded by mu
	dirty map[string]time.Time // last-seen times not yet in the store; guarded by mu

	flushMu  sync.Mutex // one flush at a time, so a retried write never overtakes a newer one
	stop     chan struct{}
	stopped  chan struct{}
	once     sync.Once
	closeErr error // the final flush's; written in once
}

// WriteTimeout bounds each last-seen write to the store.
const WriteTimeout = 5 * time.Second

type entry struct {
	devices  int
	lastSeen time.Time
	loaded   bool // lastSeen holds what the store had (zero: never seen), so Get needs no read
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
	defer r.mu.Unlock()
	e := r.entry(user)
	e.devices++
	if e.devices == 1 {
		r.notifyLocked(user, e)
	}
}

// Disconnected records that one of user's device connections closed.
// Last-seen times have second precision, in memory as in the store.
func (r *Registry) Disconnected(user string) {
	now := r.now().UTC().Truncate(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entry(user)
	e.devices = max(0, e.devices-1)
	if e.devices == 0 {
		e.lastSeen, e.loaded = now, true
		r.dirty[user] = now
		r.notifyLocked(user, e)
		r.forget(user, e)
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

// notifyLocked pushes user's state to its subscribers. Callers hold mu, so
// that pushes leave in the order of the changes.
func (r *Registry) notifyLocked(user string, e *entry) {
	if len(e.subs) == 0 {
		return
	}
	frame, err := r.encode(r.presenceLocked(user, e))
	if err != nil {
		r.log.Error("encode presence", "err", err)
		return
	}
	for s := range e.subs {
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

// Get returns the presence of each user, in order. Users not seen since
// start get their last-seen time from the store; for subscribed users the
// answer is kept, so each costs one store read however often it is asked.
func (r *Registry) Get(ctx context.Context, users []string) []protocol.Presence {
	out := make([]protocol.Presence, len(users))
	for i, u := range users {
		r.mu.Lock()
		e := r.users[u]
		known := e != nil && (e.devices > 0 || e.loaded)
		if known {
			out[i] = r.presenceLocked(u, e)
		}
		r.mu.Unlock()
		if known {
			continue
		}
		out[i] = protocol.Presence{User: u}
		t, err := r.store.LastSeen(ctx, u)
		if err != nil {
			continue // not kept: the next Get asks again
		}
		if !t.IsZero() {
			out[i].LastSeen = t.UnixMilli()
		}
		r.mu.Lock()
		// Keep it only for an entry that exists (for its subscribers) and
		// learnt nothing newer meanwhile.
		if e := r.users[u]; e != nil && !e.loaded && e.devices == 0 {
			e.lastSeen, e.loaded = t.UTC(), true
		}
		r.mu.Unlock()
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
			r.flush(context.Background()) // errors are logged; the times wait for the next flush
		case <-r.stop:
			return
		}
	}
}

// flush writes the pending last-seen times, each write bounded by
// WriteTimeout and by ctx. Times whose write failed go back to the pending
// set, unless a newer one for the same user arrived meanwhile, and are
// retried by the next flush; the error is that of the first failed write.
func (r *Registry) flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	byTime := make(map[time.Time][]string)
	for u, t := range r.dirty {
		byTime[t] = append(byTime[t], u)
	}
	clear(r.dirty)
	r.mu.Unlock()
	var first error
	for t, ids := range byTime {
		wctx, cancel := context.WithTimeout(ctx, WriteTimeout)
		err := r.store.SetLastSeen(wctx, ids, t)
		cancel()
		if err != nil {
			r.log.Error("persist last seen", "users", len(ids), "err", err)
			if first == nil {
				first = err
			}
			byTime[t] = nil
			r.mu.Lock()
			for _, u := range ids {
				if newer, ok := r.dirty[u]; !ok || newer.Before(t) {
					r.dirty[u] = t
				}
			}
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	for _, ids := range byTime {
		for _, u := range ids {
			if e := r.users[u]; e != nil {
				r.forget(u, e)
			}
		}
	}
	r.mu.Unlock()
	return first
}

// Close records every online user as seen now, flushes within ctx, and stops
// the flusher. It returns the final flush's error: last-seen times it could
// not write are lost. Later calls return the first call's result.
func (r *Registry) Close(ctx context.Context) error {
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
		<-r.stopped
		r.closeErr = r.flush(ctx)
	})
	return r.closeErr
}
