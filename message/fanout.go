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
// group. A group's members, those it had at the message's seq, get it
// through the fan-out workers, each of which serves a fixed share of the
// users.
//
// A worker whose queue is full does not hold up the delivery goroutine, and
// with it the acks of every later commit: the group message is shed for that
// worker's members and the conversation marked behind. When the worker's
// queue next runs empty it pushes the newest message it shed in that
// conversation to them, unless a later one went out since (to all their
// devices, the sender's included, which drop what they have by seq); a
// member who missed messages sees a seq gap and pulls them, as after any
// lost push. Overload thus turns many pushes into a few pulls.
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
	s.fanOutGroup(groupPush{conv: m.Conversation, seq: m.Seq, frame: frame, except: origin})
}

// fanOutGroup hands p to the audience, reading the group's members first
// if they are not cached.
func (s *Service) fanOutGroup(p groupPush) {
	for range 3 { // a change between the read and the dispatch drops what was read
		if s.audience.dispatch(p) {
			return
		}
		if _, err := s.groupAudience(p.conv); err != nil {
			// The message is committed: members catch up by sync.
			s.log.Error("audience of a committed message", "conv", p.conv, "seq", p.seq, "err", err)
			return
		}
	}
	s.log.Error("audience of a committed message kept changing; its members catch up by sync", "conv", p.conv, "seq", p.seq)
}

// queueGroup queues p for each fan-out worker with the members it serves
// who were members at p's seq. It never blocks: a worker whose queue is
// full sheds p (see fanOut). The audience calls it under its lock.
func (s *Service) queueGroup(m *members, p groupPush) {
	for i := range m.parts {
		users := m.at(i, p.seq)
		if len(users) == 0 {
			continue
		}
		w := s.workers[i]
		select {
		case w.queue <- fanoutTask{users: users, frame: p.frame, except: p.except}:
		default:
			metrics.FanoutShed.Inc()
			w.mu.Lock()
			w.behind[p.conv] = max(w.behind[p.conv], p.seq)
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
		users, ok := s.audience.late(conv, i, seq)
		if !ok || len(users) == 0 {
			// A later message went out to them, or will: the event
			// message of the change being written, say.
			continue
		}
		msgs, err := s.store.MessageRange(ctx, conv, 0, 1, seq, store.Backward, 1)
		if err != nil || len(msgs) == 0 {
			s.log.Error("catch up a shed group message", "conv", conv, "seq", seq, "err", err)
			continue
		}
		wire := toWire(msgs[0])
		s.router.DeliverBulk(users, protocol.AppendMessagePush(nil, &wire), router.Device{})
	}
}
