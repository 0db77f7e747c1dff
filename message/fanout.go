package message

import (
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// fanoutTask is one frame of a group conversation for the members one
// worker serves.
type fanoutTask struct {
	users  []string
	frame  []byte
	except router.Device
}

// fanoutWorker delivers the group messages of its share of the users.
type fanoutWorker struct {
	queue chan fanoutTask

	mu     sync.Mutex
	behind map[string]int64 // conversation → highest seq shed for want of room; guarded by mu
}

func (s *Service) startFanout() {
	s.workers = make([]*fanoutWorker, s.cfg.FanoutWorkers)
	for i := range s.workers {
		w := &fanoutWorker{queue: make(chan fanoutTask, s.cfg.FanoutQueue), behind: make(map[string]int64)}
		s.workers[i] = w
		s.workWG.Go(func() {
			for t := range w.queue {
				s.router.DeliverBulk(t.users, t.frame, t.except)
				if len(w.queue) == 0 {
					s.catchUp(i, w)
				}
			}
		})
	}
}

// stopFanout lets the workers deliver what they have and waits for them.
func (s *Service) stopFanout() {
	for _, w := range s.workers {
		close(w.queue)
	}
	s.workWG.Wait()
}

// fanOut encodes m once and delivers it to its audience. The two users of a
// direct conversation get it at once, from the delivery goroutine (the
// Router never blocks), so that one-to-one traffic never queues behind a
// group. A group's members get it through the fan-out workers, each of which
// serves a fixed share of the users.
//
// A worker whose queue is full does not hold up the delivery goroutine, and
// with it the acks of every later commit: the group message is shed for that
// worker's members and the conversation marked behind. When the worker's
// queue next runs empty it pushes the newest message it shed in that
// conversation to them (to all their devices, the sender's included, which
// drop what they have by seq); a member who missed messages sees a seq gap
// and pulls them, as after any lost push. Overload thus turns many pushes
// into a few pulls.
func (s *Service) fanOut(m store.Message, origin router.Device) {
	wire := toWire(m)
	frame := protocol.AppendMessagePush(make([]byte, 0, 160+len(m.Content)), &wire)
	if lo, hi, ok := conversation.Pair(m.Conversation); ok {
		users := []string{lo, hi}
		if lo == hi {
			users = users[:1]
		}
		s.router.Deliver(users, frame, origin)
		return
	}
	members, err := s.groupAudience(m.Conversation)
	if err != nil {
		// The message is committed: members catch up by sync.
		s.log.Error("audience of a committed message", "conv", m.Conversation, "seq", m.Seq, "err", err)
		return
	}
	for i, users := range members.parts {
		if len(users) == 0 {
			continue
		}
		w := s.workers[i]
		select {
		case w.queue <- fanoutTask{users: users, frame: frame, except: origin}:
		default:
			metrics.FanoutShed.Inc()
			w.mu.Lock()
			w.behind[m.Conversation] = max(w.behind[m.Conversation], m.Seq)
			w.mu.Unlock()
		}
	}
}

// groupAudience returns a group's members; it is almost always cached, the
// send having been checked against it a moment ago.
func (s *Service) groupAudience(conv string) (*members, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.audience.get(ctx, conv)
}

// catchUp pushes, to worker i's share of each conversation it fell behind
// on, the newest message it shed there.
func (s *Service) catchUp(i int, w *fanoutWorker) {
	w.mu.Lock()
	behind := w.behind
	if len(behind) == 0 {
		w.mu.Unlock()
		return
	}
	w.behind = make(map[string]int64)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for conv, seq := range behind {
		msgs, err := s.store.MessageRange(ctx, conv, 0, 1, seq, store.Backward, 1)
		if err != nil || len(msgs) == 0 {
			s.log.Error("catch up a shed group message", "conv", conv, "seq", seq, "err", err)
			continue
		}
		members, err := s.audience.get(ctx, conv)
		if err != nil {
			s.log.Error("catch up a shed group message", "conv", conv, "seq", seq, "err", err)
			continue
		}
		wire := toWire(msgs[0])
		s.router.DeliverBulk(members.parts[i], protocol.AppendMessagePush(nil, &wire), router.Device{})
	}
}
