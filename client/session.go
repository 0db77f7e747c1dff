package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parleyim/parley/protocol"
)

// pullRetry is how long a pull the server refused waits before it is tried
// again.
const pullRetry = time.Second

type taskKind uint8

const (
	taskSync taskKind = iota
	taskSubscribe
	taskPull
)

func (k taskKind) String() string {
	switch k {
	case taskSync:
		return "conversations"
	case taskSubscribe:
		return "presence.subscribe"
	}
	return "pull"
}

// task is the manager's request in flight. The reader decodes the reply
// into it before signalling the call.
type task struct {
	kind  taskKind
	call  *call
	conv  string // taskPull
	start time.Time
	convs protocol.Conversations
	msgs  protocol.Messages
	pres  protocol.PresenceList
}

// session is the manager's state for one connection: it syncs the
// conversation list, renews presence subscriptions, runs the pulls the
// sequencer schedules, one request at a time, and keeps the connection
// alive. It never blocks on a reply, so heartbeats go on during a sync.
type session struct {
	c        *Client
	cn       *conn
	needSync bool // the conversation list is to be synced
	needSubs bool // presence subscriptions are to be renewed
	synced   bool // the conversation list was synced on this connection
	busy     bool // t is in flight
	t        task
}

// loop runs until the connection ends or the client stops.
func (s *session) loop() {
	c, cn := s.c, s.cn
	interval := c.heartbeat(cn.hello)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	taskTimeout := c.opts.AckTimeout + 2*interval
	seen, silent := cn.frames.Load(), 0
	// The sends' watchdog: a send is never written twice on one
	// connection, so one whose server fell silent must be given up on.
	acks := time.NewTicker(c.opts.AckTimeout)
	defer acks.Stop()
	heard, probed := seen, false
	defer s.abandon()
	for {
		if !s.busy {
			if next := s.start(); !next.IsZero() {
				wake.Reset(time.Until(next))
			}
		}
		var taskDone <-chan struct{}
		if s.busy {
			taskDone = s.t.call.done
		}
		select {
		case <-cn.done:
			return
		case <-c.ctx.Done():
			return
		case <-taskDone:
			s.finish()
		case <-ticker.C:
			if n := cn.frames.Load(); n != seen {
				seen, silent = n, 0
			} else if silent++; silent >= 2 {
				cn.fail(errHeartbeat)
				continue
			}
			if s.busy && time.Since(s.t.start) > taskTimeout {
				cn.fail(fmt.Errorf("client: %s request timed out", s.t.kind))
				continue
			}
			_ = cn.writeText(pingFrame) // a failed write fails cn, and the loop sees done
		case <-acks.C:
			// While the server is heard from, sends wait for their acks
			// however long they take: a copy would only add to a busy
			// server's work. Silent for a tick with a send waiting, it is
			// asked for a pong; silent for another, it is presumed gone.
			if n := cn.frames.Load(); n != heard {
				heard, probed = n, false
			} else if !c.sendsWaitingOn(cn) {
				probed = false
			} else if !probed {
				probed = true
				_ = cn.writeText(pingFrame)
			} else {
				cn.fail(errAckTimeout)
			}
		case <-c.d.wakeSync:
		case <-wake.C:
		}
	}
}

// start sends the next request the session needs, if any. When only pulls
// scheduled for later remain, it returns when the next is due.
func (s *session) start() (next time.Time) {
	c := s.c
	var users []string
	if s.needSubs && !s.needSync {
		s.needSubs = false
		users = c.subscribed()
	}
	var (
		typ, want string
		payload   any
	)
	switch {
	case s.needSync:
		s.t = task{kind: taskSync}
		typ, want = protocol.TypeConversations, protocol.TypeConversations
		payload = protocol.ConversationsRequest{Since: c.version}
	case users != nil:
		s.t = task{kind: taskSubscribe}
		typ, want = protocol.TypeSubscribe, protocol.TypeOK
		payload = protocol.Subscribe{Users: users}
	default:
		p, ok, next := c.d.nextPull()
		if !ok {
			return next
		}
		s.t = task{kind: taskPull, conv: p.Conversation}
		typ, want = protocol.TypePull, protocol.TypeMessages
		payload = p
	}
	data, _ := json.Marshal(payload) // structs of strings and integers always marshal
	cl := c.newCall(want)
	switch s.t.kind {
	case taskSync:
		cl.out = &s.t.convs
	case taskSubscribe:
		cl.out = &s.t.pres
	case taskPull:
		cl.out = &s.t.msgs
	}
	s.t.call, s.t.start, s.busy = cl, time.Now(), true
	c.register(cl)
	_ = s.cn.writeText(appendFrame(nil, typ, cl.id, data)) // a failed write fails cn, and the loop sees done
	return next
}

// finish applies the reply to the request in flight.
func (s *session) finish() {
	c, t := s.c, &s.t
	err := t.call.err
	c.release(t.call, true)
	s.busy = false
	switch t.kind {
	case taskSync:
		if err != nil {
			s.cn.fail(fmt.Errorf("client: sync conversations: %w", err))
			return
		}
		atLatest := c.opts.StartAtLatest && !c.synced
		for _, conv := range t.convs.Conversations {
			c.d.applyConversation(conv, atLatest)
		}
		c.version = max(c.version, t.convs.Version)
		if t.convs.More { // the next page at once
			s.needSync = true
			break
		}
		s.needSync, s.synced = false, true
		if !c.synced {
			c.synced = true
			close(c.ready)
		}
	case taskSubscribe:
		if err == nil && c.opts.OnPresence != nil {
			for _, p := range t.pres.Presence {
				c.d.queueItem(item{kind: itemPresence, other: p})
			}
		}
	case taskPull:
		var pe *protocol.Error
		switch {
		case err == nil:
			c.d.pulled(t.conv, &t.msgs)
		case errors.As(err, &pe):
			c.d.pullFailed(t.conv, pe.Code, pullRetry)
		default:
			c.d.pullFailed(t.conv, "", pullRetry)
		}
	}
	s.t = task{}
}

// abandon gives up the request in flight when the session ends.
func (s *session) abandon() {
	if !s.busy {
		return
	}
	s.c.release(s.t.call, false)
	if s.t.kind == taskPull {
		s.c.d.pullAbandoned(s.t.conv)
	}
	s.busy = false
	s.t = task{}
}

// subscribed returns the users whose presence is subscribed, sorted, or nil.
func (c *Client) subscribed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) == 0 {
		return nil
	}
	users := make([]string, 0, len(c.subs))
	for u := range c.subs {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}
