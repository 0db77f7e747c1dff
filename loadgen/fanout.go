package loadgen

import (
	"sync"
	"time"
)

// Group runs measure each message's fan-out: how many members' devices it
// reached and how long the last of them waited. A shard sees only its own
// connections, so it reports per message the deliveries it saw and their
// longest latency, and the messages its senders had acked; the parent
// merges these over the shards (fanoutTally) into the time to the last
// member and the deliveries that never came.

// msgKey names a group message: the group's index and the message's seq.
type msgKey struct {
	Group int32
	Seq   int64
}

// fanoutStripes spreads the receivers' updates over this many locks.
const fanoutStripes = 64

// fanoutRecorder counts the deliveries of each group message and keeps the
// longest latency. It is safe for concurrent use; the handlers of many
// clients record at once, so the map is split over striped locks.
type fanoutRecorder struct {
	stripes [fanoutStripes]struct {
		mu sync.Mutex
		m  map[msgKey]msgFanout // guarded by mu
	}
}

// msgFanout is what is known of one message's deliveries.
type msgFanout struct {
	N   uint32        // deliveries
	Max time.Duration // longest send→deliver latency
}

func newFanoutRecorder() *fanoutRecorder {
	r := &fanoutRecorder{}
	for i := range r.stripes {
		r.stripes[i].m = make(map[msgKey]msgFanout)
	}
	return r
}

// record counts a delivery of message k after lat.
func (r *fanoutRecorder) record(k msgKey, lat time.Duration) {
	s := &r.stripes[uint64(k.Seq)%fanoutStripes]
	s.mu.Lock()
	f := s.m[k]
	f.N++
	f.Max = max(f.Max, lat)
	s.m[k] = f
	s.mu.Unlock()
}

// messages returns what was recorded, one entry per message.
func (r *fanoutRecorder) messages() []deliveredMsg {
	var out []deliveredMsg
	for i := range r.stripes {
		s := &r.stripes[i]
		s.mu.Lock()
		for k, f := range s.m {
			out = append(out, deliveredMsg{Group: k.Group, Seq: k.Seq, N: f.N, MaxNS: int64(f.Max)})
		}
		s.mu.Unlock()
	}
	return out
}

// deliveredMsg is a shard's account of one group message's deliveries to
// its connections. It travels in the shard's result.
type deliveredMsg struct {
	Group int32  `json:"g"`
	Seq   int64  `json:"seq"`
	N     uint32 `json:"n"`
	MaxNS int64  `json:"max_ns"`
}

// ackedMsg is a group message sent in the measured window and acked, by a
// connection of user User. It travels in the shard's result.
type ackedMsg struct {
	Group int32 `json:"g"`
	Seq   int64 `json:"seq"`
	User  int   `json:"user"`
}

// fanoutTally merges the shards' accounts of group messages.
type fanoutTally struct {
	delivered map[msgKey]msgFanout
	acked     []ackedMsg
}

// add folds in one shard's result.
func (t *fanoutTally) add(delivered []deliveredMsg, acked []ackedMsg) {
	if t.delivered == nil {
		t.delivered = make(map[msgKey]msgFanout)
	}
	for _, d := range delivered {
		k := msgKey{Group: d.Group, Seq: d.Seq}
		f := t.delivered[k]
		f.N += d.N
		f.Max = max(f.Max, time.Duration(d.MaxNS))
		t.delivered[k] = f
	}
	t.acked = append(t.acked, acked...)
}

// devices returns how many connections each user has: connection i is a
// device of user i mod users.
func devices(conns, users int) []int {
	d := make([]int, users)
	for u := range d {
		d[u] = conns / users
		if u < conns%users {
			d[u]++
		}
	}
	return d
}

// fanoutResult is the merged account of the acked group messages.
type fanoutResult struct {
	last     histogram // per message, the latency to its last delivery
	expected uint64    // deliveries the acked messages should have made
	missing  uint64    // of those, the ones that never came
}

// result compares the deliveries of every acked message with its
// audience: the devices of the group's members other than the sender's
// (the sending device hears its own ack; its user's other devices are
// not counted, as in one-to-one runs).
func (t *fanoutTally) result(c *Config) fanoutResult {
	dev := devices(c.Conns, c.Users)
	audience := make([]int, c.Groups)
	for k := range audience {
		for _, u := range groupMembers(k, c.GroupSize, c.Users) {
			audience[k] += dev[u]
		}
	}
	var (
		r   fanoutResult
		rec = newRecorder()
	)
	for _, a := range t.acked {
		want := uint64(audience[a.Group] - dev[a.User])
		r.expected += want
		f, ok := t.delivered[msgKey{Group: a.Group, Seq: a.Seq}]
		if got := uint64(f.N); got < want {
			r.missing += want - got
		}
		if ok {
			rec.record(f.Max)
		}
	}
	rec.drain(&r.last)
	return r
}
