package gateway

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

var _ router.Router = (*Hub)(nil)

// Login policies: which of a user's connections a new connection pushes out.
// A new connection from the same device always replaces the old one.
const (
	PolicyAll      = "all"      // every device may stay online
	PolicyPlatform = "platform" // one connection per platform (ios, web, …)
	PolicyClass    = "class"    // one per platform class (mobile, pad, desktop, web)
)

const hubShards = 64

// Hub is the registry of live connections by user, and the Router of one
// node. All methods are safe for concurrent use.
//
// Lock order: a shard's mu, then a conn's mu. Nothing holding a conn's mu
// takes a shard's mu.
type Hub struct {
	policy string
	seed   maphash.Seed
	shards [hubShards]hubShard
	// bulk holds a slot for each write goroutine DeliverBulk started.
	bulk chan struct{}
}

// BulkWriters is the most write goroutines DeliverBulk runs at once.
const BulkWriters = 16

type hubShard struct {
	mu    sync.RWMutex
	users map[string][]*conn // guarded by mu; slices are replaced, never mutated in place
}

// NewHub returns an empty Hub applying the login policy (PolicyAll if empty).
func NewHub(policy string) *Hub {
	if policy == "" {
		policy = PolicyAll
	}
	h := &Hub{policy: policy, seed: maphash.MakeSeed(), bulk: make(chan struct{}, BulkWriters)}
	for i := range h.shards {
		h.shards[i].users = make(map[string][]*conn)
	}
	return h
}

// ValidPolicy reports whether p names a login policy.
func ValidPolicy(p string) bool {
	return p == PolicyAll || p == PolicyPlatform || p == PolicyClass
}

func (h *Hub) shard(user string) *hubShard {
	return &h.shards[maphash.String(h.seed, user)%hubShards]
}

// add registers c and returns the connections it pushes out, with the kick
// code for each.
func (h *Hub) add(c *conn) (victims []*conn, codes []protocol.Code) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[c.user]
	kept := make([]*conn, 0, len(old)+1)
	for _, o := range old {
		switch {
		case o.device == c.device:
			victims, codes = append(victims, o), append(codes, protocol.CodeKickReplaced)
		case h.policy == PolicyPlatform && o.platform == c.platform,
			h.policy == PolicyClass && o.class == c.class:
			victims, codes = append(victims, o), append(codes, protocol.CodeKickPolicy)
		default:
			kept = append(kept, o)
		}
	}
	s.users[c.user] = append(kept, c)
	return victims, codes
}

// remove unregisters c if it is still registered.
func (h *Hub) remove(c *conn) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.users[c.user]
	i := slices.Index(list, c)
	if i < 0 {
		return
	}
	if len(list) == 1 {
		delete(s.users, c.user)
		return
	}
	s.users[c.user] = slices.Delete(slices.Clone(list), i, i+1)
}

// Deliver queues frame on every connection of users except the one of
// device except. It never blocks: a connection whose queue is full is closed
// as a slow consumer.
//
// The connections that negotiated compression share one compressed form of
// the frame, made by the first of them to write it.
func (h *Hub) Deliver(users []string, frame []byte, except router.Device) {
	h.queueAll(users, frame, except, func(c *conn, f outFrame) { c.enqueueFrame(f) })
}

// queueAll calls queue with every connection of users but except's, and
// the frame as that connection takes it: with a shared compressed form,
// made once, when any of them compresses.
func (h *Hub) queueAll(users []string, frame []byte, except router.Device, queue func(*conn, outFrame)) {
	f := outFrame{payload: frame, op: opText}
	for _, u := range users {
		s := h.shard(u)
		s.mu.RLock()
		for _, c := range s.users[u] {
			if c.device == except.Device && u == except.User {
				continue
			}
			if c.deflate && f.shared == nil {
				f.shared = new(sharedDeflate) // made only for compressing connections
			}
			queue(c, f)
		}
		s.mu.RUnlock()
	}
}

// DeliverBulk queues frame like Deliver, but writes to the connections
// that need a writer with at most BulkWriters goroutines at a time, each
// taking a share of them in turn, and blocks until a slot is free. A
// connection whose writer another frame started meanwhile (an ack, say)
// needs none. A connection whose socket stops taking bytes goes on with a
// write goroutine of its own, so that it holds up no other (writeBulk).
//
// With a goroutine started per connection, a 10,000-member group message
// made 10,000 goroutines runnable at once, and every ack and one-to-one
// message queued behind them: one-to-one latency went from 1 ms to 1.8 s
// during a burst into such a group.
func (h *Hub) DeliverBulk(users []string, frame []byte, except router.Device) {
	var idle []*conn
	h.queueAll(users, frame, except, func(c *conn, f outFrame) {
		if c.enqueueDeferred(f) {
			idle = append(idle, c)
		}
	})
	// Each write goroutine takes a share of the connections and writes
	// them one after the other.
	share := (len(idle) + BulkWriters - 1) / BulkWriters
	for len(idle) > 0 {
		part := idle[:min(share, len(idle))]
		idle = idle[len(part):]
		h.bulk <- struct{}{}
		go func() {
			defer func() { <-h.bulk }()
			for _, c := range part {
				if c.claimWriter() {
					c.writeBulk()
				}
			}
		}()
	}
}

// conns returns the user's connections on device (all of them if device is
// empty).
func (h *Hub) conns(user, device string) []*conn {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*conn
	for _, c := range s.users[user] {
		if device == "" || c.device == device {
			out = append(out, c)
		}
	}
	return out
}

// all returns every registered connection.
func (h *Hub) all() []*conn {
	var out []*conn
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, list := range s.users {
			out = append(out, list...)
		}
		s.mu.RUnlock()
	}
	return out
}

// appendStale appends to dst the connections that have read nothing since
// the unix-nanosecond time idleBefore or whose token expired before now,
// and returns it.
func (h *Hub) appendStale(dst []*conn, idleBefore, now int64) []*conn {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, list := range s.users {
			for _, c := range list {
				if c.lastRead.Load() < idleBefore || c.expires < now {
					dst = append(dst, c)
				}
			}
		}
		s.mu.RUnlock()
	}
	return dst
}

// Sessions lists live connections, of one user or (user empty) of everyone,
// ordered by user and device.
func (h *Hub) Sessions(user string) []protocol.Session {
	var list []*conn
	if user != "" {
		list = h.conns(user, "")
	} else {
		list = h.all()
	}
	out := make([]protocol.Session, len(list))
	for i, c := range list {
		out[i] = protocol.Session{User: c.user, Platform: c.platform, Device: c.device, RemoteAddr: c.remote, ConnectedAt: c.connectedAt}
	}
	slices.SortFunc(out, func(a, b protocol.Session) int {
		if a.User != b.User {
			if a.User < b.User {
				return -1
			}
			return 1
		}
		if a.Device < b.Device {
			return -1
		}
		if a.Device > b.Device {
			return 1
		}
		return 0
	})
	return out
}

// Kick closes the user's connections (on one device if device is not empty)
// with a kick frame carrying code, and returns how many it closed.
func (h *Hub) Kick(user, device string, code protocol.Code, msg string) int {
	list := h.conns(user, device)
	for _, c := range list {
		c.kick(code, msg)
	}
	return len(list)
}
