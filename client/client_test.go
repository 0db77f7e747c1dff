package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
)

// waitLimit bounds how long a test waits for something that should happen;
// it only turns a hang into a failure and is never what a test measures.
const waitLimit = 10 * time.Second

// recorder collects what a client's handlers receive.
type recorder struct {
	mu       sync.Mutex
	msgs     []protocol.Message
	events   []Event
	receipts []protocol.Receipt
	presence []protocol.Presence
	changed  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}, 1)}
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	signal(r.changed)
}

// install sets the handlers of o to record into r.
func (r *recorder) install(o *Options) {
	o.OnMessage = func(m protocol.Message) { r.add(func() { r.msgs = append(r.msgs, m) }) }
	o.OnEvent = func(ev Event) { r.add(func() { r.events = append(r.events, ev) }) }
	o.OnReceipt = func(rc protocol.Receipt) { r.add(func() { r.receipts = append(r.receipts, rc) }) }
	o.OnPresence = func(p protocol.Presence) { r.add(func() { r.presence = append(r.presence, p) }) }
}

// waitFor waits until cond, called with r locked, holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-limit.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; messages %v; events %v", what, seqs(r.msgs), r.events)
		}
	}
}

// waitMessages waits until r holds n messages.
func (r *recorder) waitMessages(t *testing.T, n int) []protocol.Message {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d messages", n), func() bool { return len(r.msgs) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...)
}

// countEvents returns how many recorded events satisfy match. r must be
// locked (it is, inside waitFor).
func (r *recorder) countEvents(match func(Event) bool) int {
	n := 0
	for _, ev := range r.events {
		if match(ev) {
			n++
		}
	}
	return n
}

func isConnected(ev Event) bool    { _, ok := ev.(Connected); return ok }
func isDisconnected(ev Event) bool { _, ok := ev.(Disconnected); return ok }

func seqs(msgs []protocol.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// checkInOrder fails unless msgs of conv are exactly seqs from..to.
func checkInOrder(t *testing.T, msgs []protocol.Message, conv string, from, to int64) {
	t.Helper()
	var got []int64
	for _, m := range msgs {
		if m.Conversation == conv {
			got = append(got, m.Seq)
		}
	}
	var want []int64
	for s := from; s <= to; s++ {
		want = append(want, s)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered seqs of %s = %v, want %v", conv, got, want)
	}
}

// testOptions are fast options for tests: short timeouts, tiny backoff,
// gaps pulled at once.
func testOptions(s *clienttest.Server, user, device string) Options {
	return Options{
		URL:        s.WSURL,
		Token:      s.Token(user, device),
		AckTimeout: 100 * time.Millisecond,
		BackoffMin: time.Millisecond,
		BackoffMax: 20 * time.Millisecond,
		GapWait:    -1,
	}
}

// dialTest connects a client with o and r's handlers, closed at cleanup.
func dialTest(t *testing.T, o Options, r *recorder) *Client {
	t.Helper()
	if r != nil {
		r.install(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func TestDeliveryExactlyOnceInOrder(t *testing.T) {
	s := clienttest.NewServer(t)
	// Misbehave on the first 90 messages: drop every 7th (a gap), push every
	// 5th twice (a duplicate) and hold every 3rd back behind the next one
	// (reordering). The last ones arrive cleanly, so the client can see
	// every gap.
	var held []protocol.Message
	s.OnPush(func(_, _ string, m protocol.Message) []protocol.Message {
		if m.Seq > 90 {
			out := append(held, m)
			held = nil
			return out
		}
		switch {
		case m.Seq%7 == 0:
			return nil
		case m.Seq%5 == 0:
			return []protocol.Message{m, m}
		case m.Seq%3 == 0:
			held = append(held, m)
			return nil
		}
		out := append([]protocol.Message{m}, held...)
		held = nil
		return out
	})
	r := newRecorder()
	c := dialTest(t, testOptions(s, "alice", "phone"), r)
	var conv string
	for i := range 100 {
		conv = s.Inject("bob", "alice", fmt.Sprint(i)).Conversation
	}
	msgs := r.waitMessages(t, 100)
	checkInOrder(t, msgs, conv, 1, 100)
	st := c.Stats()
	if st.Pulls == 0 || st.Duplicates == 0 {
		t.Errorf("Stats = %+v, want pulls and duplicates", st)
	}
	if got := c.Positions()[conv]; got != 100 {
		t.Errorf("Positions()[conv] = %d, want 100", got)
	}
}

func TestGapIsPulled(t *testing.T) {
	s := clienttest.NewServer(t)
	s.OnPush(func(_, _ string, m protocol.Message) []protocol.Message {
		if m.Seq >= 2 && m.Seq <= 4 {
			return nil
		}
		return []protocol.Message{m}
	})
	r := newRecorder()
	dialTest(t, testOptions(s, "alice", "phone"), r)
	var conv string
	for i := range 5 {
		conv = s.Inject("bob", "alice", fmt.Sprint(i)).Conversation
	}
	checkInOrder(t, r.waitMessages(t, 5), conv, 1, 5)
	if s.Pulls() == 0 {
		t.Error("no pull for the gap")
	}
}

func TestReorderingWithinGapWaitNeedsNoPull(t *testing.T) {
	s := clienttest.NewServer(t)
	var held *protocol.Message
	s.OnPush(func(_, _ string, m protocol.Message) []protocol.Message {
		if m.Seq == 2 {
			held = &m
			return nil
		}
		if m.Seq == 3 {
			return []protocol.Message{m, *held}
		}
		return []protocol.Message{m}
	})
	o := testOptions(s, "alice", "phone")
	o.GapWait = time.Hour // the gap must close by itself
	r := newRecorder()
	dialTest(t, o, r)
	var conv string
	for i := range 3 {
		conv = s.Inject("bob", "alice", fmt.Sprint(i)).Conversation
	}
	checkInOrder(t, r.waitMessages(t, 3), conv, 1, 3)
	if pulls := s.Pulls(); pulls != 0 {
		t.Errorf("pulls = %d, want 0", pulls)
	}
}

func TestFirstConnectDeliversHistory(t *testing.T) {
	tests := []struct {
		name          string
		positions     bool
		startAtLatest bool
		wantFrom      int64
	}{
		{
			name:     "all history",
			wantFrom: 1,
		},
		{
			name:      "from positions",
			positions: true,
			wantFrom:  3,
		},
		{
			name:          "start at latest",
			startAtLatest: true,
			wantFrom:      4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := clienttest.NewServer(t)
			var conv string
			for i := range 3 {
				conv = s.Inject("bob", "alice", fmt.Sprint(i)).Conversation
			}
			o := testOptions(s, "alice", "phone")
			o.StartAtLatest = tt.startAtLatest
			if tt.positions {
				o.Positions = map[string]int64{conv: 2}
			}
			r := newRecorder()
			dialTest(t, o, r)
			s.Inject("bob", "alice", "new")
			msgs := r.waitMessages(t, int(4-tt.wantFrom+1))
			checkInOrder(t, msgs, conv, tt.wantFrom, 4)
		})
	}
}

func TestCatchUpOnReconnect(t *testing.T) {
	s := clienttest.NewServer(t)
	r := newRecorder()
	dialTest(t, testOptions(s, "alice", "phone"), r)
	conv := s.Inject("bob", "alice", "before").Conversation
	r.waitMessages(t, 1)

	s.Pause()
	s.DropAll()
	r.waitFor(t, "disconnection", func() bool { return r.countEvents(isDisconnected) == 1 })
	for i := range 250 { // more than one page
		s.Inject("bob", "alice", fmt.Sprint(i))
	}
	s.Resume()
	checkInOrder(t, r.waitMessages(t, 251), conv, 1, 251)
}

func TestCatchUpSkipsClearedHistory(t *testing.T) {
	s := clienttest.NewServer(t)
	r := newRecorder()
	c := dialTest(t, testOptions(s, "alice", "phone"), r)
	conv := s.Inject("bob", "alice", "before").Conversation
	r.waitMessages(t, 1)

	s.Pause()
	s.DropAll()
	r.waitFor(t, "disconnection", func() bool { return r.countEvents(isDisconnected) == 1 })
	for i := range 3 {
		s.Inject("bob", "alice", fmt.Sprint(i)) // seqs 2..4, hidden by the clear
	}
	s.Clear("alice", conv) // as another device of alice would
	s.Inject("bob", "alice", "after")
	s.Resume()
	msgs := r.waitMessages(t, 2)
	if got := seqs(msgs); fmt.Sprint(got) != "[1 5]" {
		t.Fatalf("delivered %v, want [1 5]", got)
	}
	if got := c.Positions()[conv]; got != 5 {
		t.Errorf("position = %d, want 5", got)
	}
}

func TestOwnSendsAndOtherDevices(t *testing.T) {
	s := clienttest.NewServer(t)
	phoneRec, laptopRec, bobRec := newRecorder(), newRecorder(), newRecorder()
	phone := dialTest(t, testOptions(s, "alice", "phone"), phoneRec)
	dialTest(t, testOptions(s, "alice", "laptop"), laptopRec)
	dialTest(t, testOptions(s, "bob", "phone"), bobRec)

	const n = 50
	ctx := testContext(t)
	var wg sync.WaitGroup
	acks := make(chan protocol.Ack, n)
	for i := range n {
		wg.Go(func() {
			ack, err := phone.Send(ctx, "bob", "text", mustJSON(fmt.Sprint(i)))
			if err != nil {
				t.Errorf("Send: %v", err)
				return
			}
			acks <- ack
		})
	}
	wg.Wait()
	close(acks)
	var conv string
	for ack := range acks {
		conv = ack.Conversation
	}
	for name, r := range map[string]*recorder{"phone": phoneRec, "laptop": laptopRec, "bob": bobRec} {
		msgs := r.waitMessages(t, n)
		checkInOrder(t, msgs, conv, 1, n)
		for _, m := range msgs {
			if m.From != "alice" || m.To != "bob" || m.ContentType != "text" || len(m.Content) == 0 {
				t.Fatalf("%s got %+v", name, m)
			}
		}
	}
}

func TestSendRetransmitsWithSameID(t *testing.T) {
	tests := []struct {
		name    string
		action  clienttest.SendAction
		wantDup bool
	}{
		{
			name:    "connection dropped before the ack",
			action:  clienttest.SendAction{Hangup: true},
			wantDup: true,
		},
		{
			name:    "server hung after the commit",
			action:  clienttest.SendAction{Hang: true},
			wantDup: true,
		},
		{
			name:   "server unavailable",
			action: clienttest.SendAction{Err: &protocol.Error{Code: protocol.CodeUnavailable, Message: "busy"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := clienttest.NewServer(t)
			s.OnSend(func(_ protocol.Send, attempt int) clienttest.SendAction {
				if attempt == 1 {
					return tt.action
				}
				return clienttest.SendAction{}
			})
			r := newRecorder()
			c := dialTest(t, testOptions(s, "alice", "phone"), r)
			cid := c.NewClientID()
			ack, err := c.SendWithID(testContext(t), cid, "bob", "text", json.RawMessage(`"hi"`))
			if err != nil {
				t.Fatalf("SendWithID: %v", err)
			}
			if ack.ClientID != cid || ack.Seq != 1 || ack.Duplicate != tt.wantDup {
				t.Errorf("ack = %+v, want seq 1, cid %s, duplicate %v", ack, cid, tt.wantDup)
			}
			if got := s.Sends(cid); got != 2 {
				t.Errorf("server saw the client id %d times, want 2", got)
			}
			msgs := r.waitMessages(t, 1)
			checkInOrder(t, msgs, ack.Conversation, 1, 1)
			if msgs[0].ClientID != cid || string(msgs[0].Content) != `"hi"` {
				t.Errorf("delivered %+v", msgs[0])
			}
			if st := c.Stats(); st.Retransmits != 1 {
				t.Errorf("Retransmits = %d, want 1", st.Retransmits)
			}
		})
	}
}

// A server that is slow to ack but answers pings is waited for: a copy of
// the send on the same connection would only add to its work.
func TestSlowAckIsWaitedForNotRetransmitted(t *testing.T) {
	s := clienttest.NewServer(t)
	s.OnSend(func(protocol.Send, int) clienttest.SendAction {
		return clienttest.SendAction{AckAfter: 600 * time.Millisecond} // six ack timeouts
	})
	c := dialTest(t, testOptions(s, "alice", "phone"), nil)
	cid := c.NewClientID()
	ack, err := c.SendWithID(testContext(t), cid, "bob", "text", json.RawMessage(`"hi"`))
	if err != nil {
		t.Fatalf("SendWithID: %v", err)
	}
	if ack.ClientID != cid || ack.Seq != 1 || ack.Duplicate {
		t.Errorf("ack = %+v, want seq 1, cid %s, not a duplicate", ack, cid)
	}
	if got := s.Sends(cid); got != 1 {
		t.Errorf("server saw the client id %d times, want 1", got)
	}
	if s.Pings() == 0 {
		t.Error("the client sent no ping to learn whether the silent server lived")
	}
	if st := c.Stats(); st.Retransmits != 0 || st.Connects != 1 {
		t.Errorf("Retransmits = %d, Connects = %d, want 0 and 1", st.Retransmits, st.Connects)
	}
}

func TestSendServerError(t *testing.T) {
	s := clienttest.NewServer(t)
	s.OnSend(func(protocol.Send, int) clienttest.SendAction {
		return clienttest.SendAction{Err: &protocol.Error{Code: protocol.CodeForbidden, Message: "blocked"}}
	})
	c := dialTest(t, testOptions(s, "alice", "phone"), nil)
	cid := c.NewClientID()
	_, err := c.SendWithID(testContext(t), cid, "bob", "text", json.RawMessage(`"hi"`))
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("SendWithID error = %v, want a *protocol.Error forbidden", err)
	}
	if got := s.Sends(cid); got != 1 {
		t.Errorf("server saw the send %d times, want 1", got)
	}
}

func TestSendRejectsInvalidContent(t *testing.T) {
	s := clienttest.NewServer(t)
	c := dialTest(t, testOptions(s, "alice", "phone"), nil)
	_, err := c.Send(testContext(t), "bob", "text", json.RawMessage(`{`))
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeInvalidArgument {
		t.Fatalf("Send error = %v, want invalid_argument", err)
	}
}

func TestKick(t *testing.T) {
	tests := []struct {
		code      protocol.Code
		reconnect bool
	}{
		{code: protocol.CodeKickReplaced},
		{code: protocol.CodeKickPolicy},
		{code: protocol.CodeKickAdmin},
		{code: protocol.CodeKickRevoked},
		{code: protocol.CodeKickDeactivated},
		{code: protocol.CodeKickShutdown, reconnect: true},
		{code: protocol.CodeKickIdle, reconnect: true},
		{code: protocol.CodeKickSlowClient, reconnect: true},
		{code: protocol.CodeKickProtocol, reconnect: true},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			s := clienttest.NewServer(t)
			r := newRecorder()
			c := dialTest(t, testOptions(s, "alice", "phone"), r)
			s.Kick("alice", tt.code)
			r.waitFor(t, "kicked event", func() bool {
				return r.countEvents(func(ev Event) bool {
					k, ok := ev.(Kicked)
					return ok && k.Kick.Code == tt.code
				}) == 1
			})
			if tt.reconnect {
				r.waitFor(t, "reconnection", func() bool { return r.countEvents(isConnected) == 2 })
				if err := c.Err(); err != nil {
					t.Fatalf("Err() = %v after a %s kick", err, tt.code)
				}
				return
			}
			select {
			case <-c.Done():
			case <-time.After(waitLimit):
				t.Fatal("client did not stop")
			}
			var pe *protocol.Error
			if err := c.Err(); !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Err() = %v, want %s", err, tt.code)
			}
			if _, err := c.Send(testContext(t), "bob", "text", json.RawMessage(`1`)); !errors.As(err, &pe) {
				t.Errorf("Send after stop = %v, want the kick", err)
			}
			c.Close() // the manager has exited: no reconnection can follow
			if connects := s.Connects(); connects != 1 {
				t.Errorf("connects = %d, want 1", connects)
			}
		})
	}
}

func TestTokenRejected(t *testing.T) {
	for _, code := range []protocol.Code{protocol.CodeTokenExpired, protocol.CodeUserDeactivated} {
		t.Run("at dial, "+string(code), func(t *testing.T) {
			s := clienttest.NewServer(t)
			o := testOptions(s, "alice", "phone")
			s.Reject(o.Token, code)
			_, err := Dial(testContext(t), o)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != code {
				t.Fatalf("Dial error = %v, want %s", err, code)
			}
		})
	}
	t.Run("at reconnection", func(t *testing.T) {
		s := clienttest.NewServer(t)
		o := testOptions(s, "alice", "phone")
		tok := o.Token
		var calls int
		o.Token = ""
		o.TokenSource = func(context.Context) (string, error) {
			calls++ // the manager calls it, one attempt at a time
			return tok, nil
		}
		r := newRecorder()
		c := dialTest(t, o, r)
		s.Reject(tok, protocol.CodeTokenRevoked)
		s.DropAll()
		<-c.Done()
		r.waitFor(t, "token rejected event", func() bool {
			return r.countEvents(func(ev Event) bool {
				tr, ok := ev.(TokenRejected)
				return ok && tr.Code == protocol.CodeTokenRevoked
			}) == 1
		})
		var pe *protocol.Error
		if err := c.Err(); !errors.As(err, &pe) || pe.Code != protocol.CodeTokenRevoked {
			t.Errorf("Err() = %v, want token_revoked", err)
		}
		c.Close()
		if calls != 2 {
			t.Errorf("TokenSource called %d times, want 2", calls)
		}
	})
}

func TestReconnectBackoffIsBounded(t *testing.T) {
	s := clienttest.NewServer(t)
	o := testOptions(s, "alice", "phone")
	o.BackoffMin, o.BackoffMax = time.Millisecond, 4*time.Millisecond
	r := newRecorder()
	dialTest(t, o, r)
	s.Refuse(http.StatusServiceUnavailable)
	s.DropAll()
	const attempts = 10
	r.waitFor(t, "reconnection attempts", func() bool {
		return r.countEvents(func(ev Event) bool { _, ok := ev.(Reconnecting); return ok }) >= attempts
	})
	r.mu.Lock()
	var got []Reconnecting
	for _, ev := range r.events {
		if rc, ok := ev.(Reconnecting); ok {
			got = append(got, rc)
		}
	}
	r.mu.Unlock()
	for i, rc := range got {
		limit := min(o.BackoffMax, o.BackoffMin<<i)
		if rc.Attempt != i+1 || rc.Delay < 0 || rc.Delay > limit {
			t.Errorf("event %d = %+v, want attempt %d with a delay in [0, %v]", i, rc, i+1, limit)
		}
		if i > 0 && rc.Err == nil {
			t.Errorf("event %d has no error from the failed attempt", i)
		}
	}
	s.Refuse(0)
	r.waitFor(t, "reconnection", func() bool { return r.countEvents(isConnected) == 2 })
}

func TestHeartbeatDetectsSilentServer(t *testing.T) {
	s := clienttest.NewServer(t)
	o := testOptions(s, "alice", "phone")
	o.Heartbeat = 10 * time.Millisecond
	r := newRecorder()
	dialTest(t, o, r)
	s.Silence()
	r.waitFor(t, "reconnection after heartbeat timeout", func() bool {
		return r.countEvents(func(ev Event) bool {
			d, ok := ev.(Disconnected)
			return ok && errors.Is(d.Err, errHeartbeat)
		}) >= 1 && r.countEvents(isConnected) >= 2
	})
}

func TestHeartbeatKeepsConnectionUp(t *testing.T) {
	s := clienttest.NewServer(t)
	o := testOptions(s, "alice", "phone")
	o.Heartbeat = 50 * time.Millisecond
	r := newRecorder()
	c := dialTest(t, o, r)
	eventually(t, "heartbeat pings", func() bool { return s.Pings() >= 5 })
	if st := c.Stats(); st.Connects != 1 {
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Errorf("Connects = %d, want 1; events %v", st.Connects, r.events)
	}
}

// eventually polls cond until it holds, for conditions no handler reports.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRequestFailsWhenDisconnected(t *testing.T) {
	s := clienttest.NewServer(t)
	r := newRecorder()
	c := dialTest(t, testOptions(s, "alice", "phone"), r)
	conv := s.Inject("bob", "alice", "x").Conversation
	r.waitMessages(t, 1)

	s.Pause()
	s.OnPull(func(protocol.Pull) bool { return true }) // hang up instead of answering
	_, err := c.Pull(testContext(t), protocol.Pull{Conversation: conv, From: 1})
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Pull error = %v, want ErrDisconnected", err)
	}
	r.waitFor(t, "disconnection", func() bool { return r.countEvents(isDisconnected) == 1 })
	if _, err := c.Ping(testContext(t)); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Ping while disconnected = %v, want ErrDisconnected", err)
	}
	s.OnPull(nil)
	s.Resume()
}

func TestRequests(t *testing.T) {
	s := clienttest.NewServer(t)
	r := newRecorder()
	c := dialTest(t, testOptions(s, "alice", "phone"), r)
	ctx := testContext(t)
	ack, err := c.Send(ctx, "bob", "text", json.RawMessage(`"one"`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, "bob", "text", json.RawMessage(`"two"`)); err != nil {
		t.Fatal(err)
	}
	conv := ack.Conversation

	convs, err := c.Conversations(ctx, 0)
	if err != nil || len(convs.Conversations) != 1 || convs.Conversations[0].MaxSeq != 2 || convs.Version == 0 {
		t.Errorf("Conversations = %+v, %v", convs, err)
	}
	page, err := c.Pull(ctx, protocol.Pull{Conversation: conv, Direction: protocol.Backward, Limit: 1})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Seq != 2 || !page.More {
		t.Errorf("Pull = %+v, %v", page, err)
	}
	_, err = c.Pull(ctx, protocol.Pull{Conversation: conv, From: 9})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeOutOfRange {
		t.Errorf("Pull out of range = %v", err)
	}
	if rc, err := c.MarkRead(ctx, conv, 2); err != nil || rc.Seq != 2 || rc.Reader != "alice" {
		t.Errorf("MarkRead = %+v, %v", rc, err)
	}
	if pong, err := c.Ping(ctx); err != nil || pong.ServerTime != 1 {
		t.Errorf("Ping = %+v, %v", pong, err)
	}
	if cv, err := c.Clear(ctx, conv); err != nil || cv.MinSeq != 3 {
		t.Errorf("Clear = %+v, %v", cv, err)
	}

	list, err := c.Subscribe(ctx, "bob")
	if err != nil || len(list) != 1 || list[0].Online {
		t.Fatalf("Subscribe = %+v, %v", list, err)
	}
	dialTest(t, testOptions(s, "bob", "phone"), nil)
	r.waitFor(t, "bob online", func() bool { return len(r.presence) > 0 && r.presence[len(r.presence)-1].Online })

	// The subscription is renewed after a reconnection, and its state
	// passed to OnPresence.
	n := len(r.presence)
	s.DropAll()
	r.waitFor(t, "presence after reconnection", func() bool {
		return r.countEvents(isConnected) >= 2 && len(r.presence) > n
	})
	if err := c.Unsubscribe(ctx, "bob"); err != nil {
		t.Errorf("Unsubscribe: %v", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := clienttest.NewServer(t)
	r := newRecorder()
	c := dialTest(t, testOptions(s, "alice", "phone"), r)
	ctx := testContext(t)
	for range 10 {
		if _, err := c.Send(ctx, "bob", "text", json.RawMessage(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	// A send waiting for a connection that never comes back, and a client
	// stuck reconnecting.
	s.Refuse(http.StatusServiceUnavailable)
	s.DropAll()
	r.waitFor(t, "disconnection", func() bool { return r.countEvents(isDisconnected) == 1 })
	sendErr := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, "bob", "text", json.RawMessage(`2`))
		sendErr <- err
	}()
	c.Close()
	c.Close()
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Errorf("Send during Close = %v, want ErrClosed", err)
	}
	if err := c.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", err)
	}
	checkNoClientGoroutines(t)
}

// checkNoClientGoroutines fails if a goroutine runs client code (the fake
// server's goroutines do not count).
func checkNoClientGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for range 100 { // a goroutine past wg.Done may need a moment to vanish
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "client.(*Client)") && !strings.Contains(stacks, "client.(*delivery)") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("client goroutines left after Close:\n%s", stacks)
}

func TestDialUsesLocalAddr(t *testing.T) {
	s := clienttest.NewServer(t)
	o := testOptions(s, "alice", "phone")
	o.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	c := dialTest(t, o, nil)
	if c.User() != "alice" || c.Hello().Device != "phone" {
		t.Errorf("User() = %q, Hello() = %+v", c.User(), c.Hello())
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{
			name: "no token",
			opts: Options{URL: "ws://127.0.0.1:1/v1/ws"},
		},
		{
			name: "http url",
			opts: Options{URL: "http://127.0.0.1:1/v1/ws", Token: "t"},
		},
		{
			name: "nothing listening",
			opts: Options{URL: "ws://127.0.0.1:1/v1/ws", Token: "t"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Dial(testContext(t), tt.opts); err == nil {
				t.Fatal("Dial succeeded")
			}
		})
	}
}

func BenchmarkSend(b *testing.B) {
	s := clienttest.NewServer(b)
	o := testOptions(s, "alice", "phone")
	o.OnMessage = func(protocol.Message) {}
	c, err := Dial(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	content := json.RawMessage(`{"text":"hello, world","ts":1234567890}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), "bob", "text", content); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestSlowHandlerCostsPullsNotMessages(t *testing.T) {
	s := clienttest.NewServer(t)
	o := testOptions(s, "alice", "phone")
	o.QueueSize = 4
	release := make(chan struct{})
	var once sync.Once
	r := newRecorder()
	r.install(&o)
	record := o.OnMessage
	o.OnMessage = func(m protocol.Message) {
		<-release
		record(m)
	}
	c := dialTest(t, o, nil)
	var conv string
	for i := range 50 {
		conv = s.Inject("bob", "alice", fmt.Sprint(i)).Conversation
	}
	eventually(t, "an overflow", func() bool { return c.Stats().Overflows > 0 })
	once.Do(func() { close(release) })
	checkInOrder(t, r.waitMessages(t, 50), conv, 1, 50)
	if s.Pulls() == 0 {
		t.Error("no pull after the overflow")
	}
}

func TestHandlerMaySend(t *testing.T) {
	s := clienttest.NewServer(t)
	bobReady := make(chan *Client, 1)
	o := testOptions(s, "bob", "phone")
	o.OnMessage = func(m protocol.Message) {
		if m.From == "alice" {
			bob := <-bobReady
			bobReady <- bob
			// The test may end, closing bob, before the last ack arrives.
			if _, err := bob.Send(context.Background(), "alice", "text", m.Content); err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("echo: %v", err)
			}
		}
	}
	bobReady <- dialTest(t, o, nil)
	r := newRecorder()
	alice := dialTest(t, testOptions(s, "alice", "phone"), r)
	for i := range 5 {
		if _, err := alice.Send(testContext(t), "bob", "text", mustJSON(i)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := r.waitMessages(t, 10)
	checkInOrder(t, msgs, msgs[0].Conversation, 1, 10)
}

func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"type":"message","data":{"conv":"c","seq":1,"from":"b","to":"a","content":"x"}}`,
		`{"type":"message","data":{"conv":"c","seq":-5}}`,
		`{"type":"receipt","data":{"conv":"c","reader":"b","seq":3}}`,
		`{"type":"presence","data":{"user":"b","online":true}}`,
		`{"type":"kick","data":{"code":"replaced"}}`,
		`{"type":"ack","id":"1","data":{"cid":"x","conv":"c","seq":1}}`,
		`{"type":"error","id":"1","error":{"code":"forbidden","message":"no"}}`,
		`{"type":"messages","id":"2","data":{"messages":null}}`,
		`{"type":"message","data":7}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		o, err := Options{URL: "ws://x/v1/ws", Token: "t", OnMessage: func(protocol.Message) {}}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(o)
		a, b := net.Pipe()
		defer b.Close()
		cn := &conn{nc: a, done: make(chan struct{})}
		for _, id := range []string{"1", "2"} {
			cl := c.newCall(protocol.TypeAck)
			cl.id, cl.send, cl.out = id, true, &cl.ack
			c.register(cl)
		}
		var fr inFrame
		_ = c.handle(cn, &fr, p) // any error is fine; a panic is not
		_ = c.handle(cn, &fr, p)
	})
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
