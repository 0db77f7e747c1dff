package message

import (
	"context"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// fanoutTask is one frame for the users of one worker.
type fanoutTask struct {
	users  []string
	frame  []byte
	except router.Device
}

func (s *Service) startFanout() {
	s.workers = make([]chan fanoutTask, s.cfg.FanoutWorkers)
	for i := range s.workers {
		q := make(chan fanoutTask, s.cfg.FanoutQueue)
		s.workers[i] = q
		s.workWG.Go(func() {
			for t := range q {
				s.router.Deliver(t.users, t.frame, t.except)
			}
		})
	}
}

// stopFanout lets the workers deliver what they have and waits for them.
func (s *Service) stopFanout() {
	for _, q := range s.workers {
		close(q)
	}
	s.workWG.Wait()
}

// fanOut encodes m once and hands it to the workers of its audience: the
// two users of a direct conversation, or a group's current members.
func (s *Service) fanOut(m store.Message, origin router.Device) {
	wire := toWire(m)
	frame := protocol.AppendMessagePush(make([]byte, 0, 160+len(m.Content)), &wire)
	if lo, hi, ok := conversation.Pair(m.Conversation); ok {
		s.enqueue(s.audience.worker(lo), fanoutTask{users: []string{lo}, frame: frame, except: origin})
		if hi != lo {
			s.enqueue(s.audience.worker(hi), fanoutTask{users: []string{hi}, frame: frame, except: origin})
		}
		return
	}
	// The audience is almost always cached: the send was checked against
	// it a moment ago.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	members, err := s.audience.get(ctx, m.Conversation)
	if err != nil {
		// The message is committed: members catch up by sync.
		s.log.Error("audience of a committed message", "conv", m.Conversation, "seq", m.Seq, "err", err)
		return
	}
	for w, users := range members.parts {
		if len(users) > 0 {
			s.enqueue(w, fanoutTask{users: users, frame: frame, except: origin})
		}
	}
}

// enqueue hands t to worker w, waiting while its queue is full.
func (s *Service) enqueue(w int, t fanoutTask) {
	select {
	case s.workers[w] <- t:
	default:
		metrics.FanoutWaits.Inc()
		s.workers[w] <- t
	}
}
