package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// gatedStore is a store.Messages whose AppendMessages waits for the test to
// open its gate, so the test controls when a commit becomes durable.
type gatedStore struct {
	Store   // unused methods panic
	gate    chan struct{}
	mu      sync.Mutex
	batches [][]store.NewMessage
	seq     map[string]int64
	fail    error
}

func (g *gatedStore) AppendMessages(_ context.Context, batch []store.NewMessage) ([]store.AppendResult, error) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		return nil, g.fail
	}
	g.batches = append(g.batches, slices.Clone(batch)) // the caller reuses batch
	out := make([]store.AppendResult, len(batch))
	for i, m := range batch {
		g.seq[m.Conversation]++
		out[i].Message = store.Message{Conversation: m.Conversation, Seq: g.seq[m.Conversation], ServerID: m.ServerID,
			ClientID: m.ClientID, Sender: m.Sender, Recipient: m.Recipient, ContentType: m.ContentType, Content: m.Content, Time: m.Time}
	}
	return out, nil
}

type everyoneExists struct{}

func (everyoneExists) UserExists(context.Context, string) (bool, error) { return true, nil }

// recordingFanout is a router.Router that records what it is given.
type recordingFanout struct {
	mu     sync.Mutex
	frames [][]byte
	users  [][]string
	except []router.Device
}

func (r *recordingFanout) DeliverBulk(users []string, frame []byte, except router.Device) {
	r.Deliver(users, frame, except)
}

func (r *recordingFanout) Deliver(users []string, frame []byte, except router.Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, frame)
	r.users = append(r.users, users)
	r.except = append(r.except, except)
}

func (r *recordingFanout) Kick(string, string, protocol.Code, string) int { return 0 }

// delivered returns, under the lock, the users each distinct frame went to,
// sorted, in the order frames were first delivered.
func (r *recordingFanout) delivered() (frames [][]byte, users [][]string, except []router.Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	index := map[string]int{}
	for i, f := range r.frames {
		k, ok := index[string(f)]
		if !ok {
			k = len(frames)
			index[string(f)] = k
			frames, users, except = append(frames, f), append(users, nil), append(except, r.except[i])
		}
		users[k] = append(users[k], r.users[i]...)
	}
	for _, u := range users {
		slices.Sort(u)
	}
	return frames, users, except
}

func newTestService(t *testing.T, maxBatch int) (*Service, *gatedStore, *recordingFanout) {
	st := &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}
	fan := &recordingFanout{}
	s := New(Config{MaxBatch: maxBatch}, st, everyoneExists{}, fan, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		select {
		case <-st.gate:
		default:
			close(st.gate)
		}
		s.Close()
	})
	return s, st, fan
}

var origin = router.Device{User: "a", Device: "laptop"}

func req(from, to, cid string) SendRequest {
	return SendRequest{From: from, To: to, ClientID: cid, ContentType: "text", Content: json.RawMessage(`{"t":1}`), Origin: origin}
}

func TestAckOnlyAfterCommit(t *testing.T) {
	s, st, fan := newTestService(t, 512)
	acked := make(chan protocol.Ack, 1)
	s.SendAsync(context.Background(), req("a", "b", "c1"), func(a protocol.Ack, err error) {
		if err != nil {
			t.Errorf("send: %v", err)
		}
		acked <- a
	})
	select {
	case a := <-acked:
		t.Fatalf("acked %+v before the store committed", a)
	case <-time.After(50 * time.Millisecond):
	}
	if frames, _, _ := fan.delivered(); len(frames) != 0 {
		t.Fatal("delivered before the store committed")
	}

	close(st.gate)
	a := <-acked
	if a.Seq != 1 || a.ClientID != "c1" || a.Conversation != "d:a:b" || a.ServerID == "" {
		t.Fatalf("ack = %+v", a)
	}
	s.Close() // drains delivery
	frames, users, except := fan.delivered()
	if len(frames) != 1 || except[0] != origin || fmt.Sprint(users[0]) != "[a b]" {
		t.Fatalf("fan-out = %d frames to %v except %v", len(frames), users, except)
	}
	var f struct {
		Type string
		Data protocol.Message
	}
	if err := json.Unmarshal(frames[0], &f); err != nil || f.Type != "message" || f.Data.Seq != 1 || f.Data.From != "a" {
		t.Fatalf("frame %s: %v", frames[0], err)
	}
}

func TestConcurrentSendsShareOneCommit(t *testing.T) {
	s, st, _ := newTestService(t, 512)
	const n = 100
	var wg sync.WaitGroup
	wg.Add(n)
	// The first send blocks the committer at the gate; the rest queue up
	// behind it and must be committed together in the next batch.
	for i := range n {
		s.SendAsync(context.Background(), req("a", "b", fmt.Sprint(i)), func(_ protocol.Ack, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	close(st.gate)
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.batches) > 2 {
		t.Fatalf("%d sends took %d commits, want at most 2", n, len(st.batches))
	}
}

func TestFailedCommitFailsEverySendInTheBatch(t *testing.T) {
	s, st, fan := newTestService(t, 512)
	st.fail = errors.New("disk full")
	close(st.gate)
	_, err := s.Send(context.Background(), req("a", "b", "c"))
	if pe := protocol.AsError(err); pe.Code != protocol.CodeInternal {
		t.Fatalf("err = %v, want internal", err)
	}
	s.Close()
	if frames, _, _ := fan.delivered(); len(frames) != 0 {
		t.Fatal("a failed commit was delivered")
	}
}

func TestSendValidation(t *testing.T) {
	s, _, _ := newTestService(t, 512)
	tests := []struct {
		name string
		mut  func(*SendRequest)
		code protocol.Code
	}{
		{"empty cid", func(r *SendRequest) { r.ClientID = "" }, protocol.CodeInvalidArgument},
		{"long cid", func(r *SendRequest) { r.ClientID = strings.Repeat("x", 65) }, protocol.CodeInvalidArgument},
		{"cid with space", func(r *SendRequest) { r.ClientID = "a b" }, protocol.CodeInvalidArgument},
		{"no recipient", func(r *SendRequest) { r.To = "" }, protocol.CodeInvalidArgument},
		{"recipient and conversation", func(r *SendRequest) { r.Conversation = "g:x" }, protocol.CodeInvalidArgument},
		{"malformed recipient", func(r *SendRequest) { r.To = "b:c" }, protocol.CodeInvalidArgument},
		{"malformed conversation", func(r *SendRequest) { r.To, r.Conversation = "", "x" }, protocol.CodeInvalidArgument},
		{"direct conversation of others", func(r *SendRequest) { r.To, r.Conversation = "", "d:b:c" }, protocol.CodeNotFound},
		{"direct conversation with oneself", func(r *SendRequest) { r.To, r.Conversation = "", "d:a:a" }, protocol.CodeInvalidArgument},
		{"channel", func(r *SendRequest) { r.To, r.Conversation = "", "c:news" }, protocol.CodeForbidden},
		{"self", func(r *SendRequest) { r.To = r.From }, protocol.CodeInvalidArgument},
		{"bad ctype", func(r *SendRequest) { r.ContentType = "Text" }, protocol.CodeInvalidArgument},
		{"no content", func(r *SendRequest) { r.Content = nil }, protocol.CodeInvalidArgument},
		{"not json", func(r *SendRequest) { r.Content = json.RawMessage(`{`) }, protocol.CodeInvalidArgument},
		{"invalid utf-8", func(r *SendRequest) { r.Content = json.RawMessage("\"\xff\"") }, protocol.CodeInvalidUTF8},
		{"too large", func(r *SendRequest) { r.Content = json.RawMessage(`"` + strings.Repeat("x", 40<<10) + `"`) }, protocol.CodeContentTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("a", "b", "c")
			tt.mut(&r)
			_, err := s.Send(context.Background(), r)
			if pe := protocol.AsError(err); pe.Code != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
}

// eventRouter records deliveries, in order with the acks the test records,
// in one log.
type eventRouter struct {
	recordingFanout
	log *eventLog
}

type eventLog struct {
	mu     sync.Mutex
	events []string // "ack <cid>" or "deliver <cid>"
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (r *eventRouter) DeliverBulk(users []string, frame []byte, except router.Device) {
	r.Deliver(users, frame, except)
}

func (r *eventRouter) Deliver(users []string, frame []byte, except router.Device) {
	var f struct{ Data protocol.Message }
	json.Unmarshal(frame, &f)
	r.log.add("deliver " + f.Data.ClientID)
	r.recordingFanout.Deliver(users, frame, except)
}

// TestBatchAckedBeforeFanout checks that every sender of a batch hears its
// ack before any message of the batch is fanned out.
func TestBatchAckedBeforeFanout(t *testing.T) {
	st := &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}
	events := &eventLog{}
	s := New(Config{}, st, everyoneExists{}, &eventRouter{log: events}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		cid := fmt.Sprint(i)
		s.SendAsync(t.Context(), req("a", fmt.Sprint("u", i), cid), func(_ protocol.Ack, err error) {
			if err != nil {
				t.Error(err)
			}
			events.add("ack " + cid)
			wg.Done()
		})
	}
	close(st.gate) // the first send is one batch, the other 19 the next
	wg.Wait()
	s.Close()
	st.mu.Lock()
	defer st.mu.Unlock()
	for b, batch := range st.batches {
		lastAck, firstDeliver := -1, len(events.events)
		for _, m := range batch {
			for i, e := range events.events {
				switch e {
				case "ack " + m.ClientID:
					lastAck = max(lastAck, i)
				case "deliver " + m.ClientID:
					firstDeliver = min(firstDeliver, i)
				}
			}
		}
		if lastAck > firstDeliver {
			t.Errorf("batch %d of %d messages: an ack (event %d) came after a delivery (event %d): %q", b, len(batch), lastAck, firstDeliver, events.events)
		}
	}
}

// groupStore is a gatedStore that knows one group conversation.
type groupStore struct {
	*gatedStore
	members []string
}

func (g *groupStore) Group(_ context.Context, conv string) (store.GroupInfo, error) {
	return store.GroupInfo{Conversation: conv, Members: len(g.members)}, nil
}

func (g *groupStore) GroupMembers(context.Context, string, int64, int) ([]store.GroupMember, int64, bool, error) {
	ms := make([]store.GroupMember, len(g.members))
	for i, u := range g.members {
		ms[i] = store.GroupMember{User: u, Role: RoleMember}
	}
	return ms, 1, false, nil
}

func (g *groupStore) MessageRange(_ context.Context, conv string, _, _, maxSeq int64, _ store.Direction, _ int) ([]store.Message, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var seq int64
	for _, batch := range g.batches {
		for _, m := range batch {
			if m.Conversation != conv {
				continue
			}
			if seq++; seq == maxSeq {
				return []store.Message{{Conversation: conv, Seq: seq, ClientID: m.ClientID, Sender: m.Sender, ContentType: m.ContentType, Content: m.Content}}, nil
			}
		}
	}
	return nil, nil
}

// stallingRouter holds deliveries to one user until released, as a worker
// that falls behind would; it records what the others and then that user
// get.
type stallingRouter struct {
	recordingFanout
	slow    string
	release chan struct{}
}

func (r *stallingRouter) DeliverBulk(users []string, frame []byte, except router.Device) {
	r.Deliver(users, frame, except)
}

func (r *stallingRouter) Deliver(users []string, frame []byte, except router.Device) {
	if slices.Contains(users, r.slow) {
		<-r.release
	}
	r.recordingFanout.Deliver(users, frame, except)
}

// TestGroupFanoutShedsAndCatchesUp stalls the fan-out worker of one member
// while a group gets many messages: acks and deliveries to the others go
// on, the stalled member's share is shed, and once the worker catches up the
// member gets the group's newest message, from which it can pull the rest.
func TestGroupFanoutShedsAndCatchesUp(t *testing.T) {
	st := &groupStore{gatedStore: &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}, members: []string{"a", "b"}}
	close(st.gate)
	r := &stallingRouter{slow: "b", release: make(chan struct{})}
	// One worker: a and b share it, so the stall holds both, and the
	// queue of one task fills at once.
	s := New(Config{FanoutWorkers: 1, FanoutQueue: 1}, st, everyoneExists{}, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	const n = 20
	for i := range n {
		r := SendRequest{From: "a", Conversation: "g:team", ClientID: fmt.Sprint(i), ContentType: "text", Content: json.RawMessage(`{}`)}
		if _, err := s.Send(t.Context(), r); err != nil {
			t.Fatalf("send %d while fan-out is stalled: %v", i, err)
		}
	}
	close(r.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		frames, _, _ := r.delivered()
		var last protocol.Message
		if len(frames) > 0 {
			var f struct{ Data protocol.Message }
			json.Unmarshal(frames[len(frames)-1], &f)
			last = f.Data
		}
		if last.Seq == n {
			if len(frames) == n {
				t.Errorf("all %d messages were pushed: nothing was shed", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the newest message (seq %d) never reached the stalled member; last pushed %+v", n, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestContentIsCompacted checks the documented form of content: the JSON as
// sent without whitespace between tokens, numbers and strings untouched;
// and that a resend differing only in that whitespace is the same message.
func TestContentIsCompacted(t *testing.T) {
	s, st, _ := newTestService(t, 512)
	close(st.gate)
	r := req("a", "b", "c1")
	r.Content = json.RawMessage("{ \"text\" : \"hello  there\",\n  \"n\": 1.50 }")
	if _, err := s.Send(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	got := string(st.batches[0][0].Content)
	st.mu.Unlock()
	if want := `{"text":"hello  there","n":1.50}`; got != want {
		t.Errorf("stored content %s, want %s", got, want)
	}
}

func TestSendAfterCloseIsUnavailable(t *testing.T) {
	s, st, _ := newTestService(t, 512)
	close(st.gate)
	s.Close()
	_, err := s.Send(context.Background(), req("a", "b", "c"))
	if pe := protocol.AsError(err); pe.Code != protocol.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

func TestServerIDsAreUniqueAndOrdered(t *testing.T) {
	g := newIDGenerator()
	now := time.Now()
	prev := g.next(now)
	for range 1000 {
		id := g.next(now)
		if id <= prev {
			t.Fatalf("id %s does not sort after %s", id, prev)
		}
		prev = id
	}
	if later := g.next(now.Add(time.Millisecond)); later <= prev {
		t.Fatalf("later id %s sorts before %s", later, prev)
	}
}

// BenchmarkEncodePush encodes a pushed frame with encoding/json, as every
// push but the message push is (that one is protocol.AppendMessagePush).
func BenchmarkEncodePush(b *testing.B) {
	m := protocol.Message{Conversation: "d:alice:bob", Seq: 12345, ServerID: "0123456789abcdefghijklmn", ClientID: "c-123456",
		From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(`{"text":"hello there, how are you today?"}`), Time: time.Now().UnixMilli()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodePush(protocol.TypeMessage, m); err != nil {
			b.Fatal(err)
		}
	}
}

// pipelinedStore applies batches at once and holds their durability until
// the test releases it.
type pipelinedStore struct {
	*gatedStore
	applied chan int // batch sizes, as they are applied
	sync    chan struct{}
}

func (p *pipelinedStore) AppendMessagesPipelined(ctx context.Context, batch []store.NewMessage) ([]store.AppendResult, func() error, error) {
	rs, err := p.gatedStore.AppendMessages(ctx, batch)
	p.applied <- len(batch)
	return rs, func() error { <-p.sync; return nil }, err
}

// TestAcksWaitForDurabilityWhileTheNextBatchIsApplied checks the pipelined
// commit: no ack before its batch is durable, and the next batch is applied
// while the previous one waits for its sync.
func TestAcksWaitForDurabilityWhileTheNextBatchIsApplied(t *testing.T) {
	gs := &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}
	close(gs.gate)
	st := &pipelinedStore{gatedStore: gs, applied: make(chan int, 10), sync: make(chan struct{})}
	s := New(Config{}, st, everyoneExists{}, &recordingFanout{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	acks := make(chan error, 2)
	s.SendAsync(t.Context(), req("a", "b", "1"), func(_ protocol.Ack, err error) { acks <- err })
	<-st.applied
	s.SendAsync(t.Context(), req("a", "b", "2"), func(_ protocol.Ack, err error) { acks <- err })
	<-st.applied // the second batch is applied while the first is not yet durable
	select {
	case <-acks:
		t.Fatal("a send was acked before its batch was durable")
	default:
	}
	close(st.sync)
	for range 2 {
		if err := <-acks; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefusalCallbackRunsOutsideTheCloseLock checks that a send refused
// because the queue is full calls back outside the service's close lock, so
// a callback may do anything, closing the service included.
func TestRefusalCallbackRunsOutsideTheCloseLock(t *testing.T) {
	st := &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}
	s := New(Config{QueueLength: 1}, st, everyoneExists{}, &recordingFanout{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		close(st.gate)
		s.Close()
	})
	// Fill the queue; the committer takes the first sends and waits at the
	// gate with them.
	for i := 0; len(s.queue) < cap(s.queue); i++ {
		s.SendAsync(t.Context(), req("a", "b", fmt.Sprint("fill", i)), func(protocol.Ack, error) {})
		time.Sleep(time.Millisecond)
	}
	refused := make(chan error, 1)
	go s.SendAsync(t.Context(), req("a", "b", "3"), func(_ protocol.Ack, err error) {
		if !s.closeMu.TryLock() { // Close, from here, would deadlock
			t.Error("the refusal's callback runs under the close lock")
		} else {
			s.closeMu.Unlock()
		}
		refused <- err
	})
	select {
	case err := <-refused:
		if protocol.AsError(err).Code != protocol.CodeUnavailable {
			t.Errorf("refusal: %v, want unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refusal's callback deadlocked on the close lock")
	}
}

// countingGroupStore is a groupStore that counts roster reads.
type countingGroupStore struct {
	*groupStore
	reads atomic.Int32
}

func (g *countingGroupStore) GroupMembers(ctx context.Context, conv string, since int64, limit int) ([]store.GroupMember, int64, bool, error) {
	g.reads.Add(1)
	return g.groupStore.GroupMembers(ctx, conv, since, limit)
}

// TestChangeGroupKeepsTheAudienceWithoutReading checks that a membership
// change updates the cached audience in place: joiners may post and are
// fanned out to, leavers not, mutes apply, and the roster is read once.
func TestChangeGroupKeepsTheAudienceWithoutReading(t *testing.T) {
	st := &countingGroupStore{groupStore: &groupStore{gatedStore: &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}, members: []string{"a", "b"}}}
	close(st.gate)
	fan := &recordingFanout{}
	s := New(Config{}, st, everyoneExists{}, fan, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	send := func(from string) error {
		_, err := s.Send(t.Context(), SendRequest{From: from, Conversation: "g:team", ClientID: s.ids.next(time.Now()), ContentType: "text", Content: json.RawMessage(`{}`)})
		return err
	}
	if err := send("a"); err != nil {
		t.Fatal(err)
	}
	change := func(info store.GroupInfo, entries ...store.GroupMember) {
		t.Helper()
		err := s.ChangeGroup(t.Context(), "g:team", func() (store.GroupInfo, []store.GroupMember, bool, error) {
			return info, entries, true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	change(store.GroupInfo{Conversation: "g:team"},
		store.GroupMember{User: "c", Role: RoleMember}, store.GroupMember{User: "b", Left: true}, store.GroupMember{User: "a", Role: RoleMember, MutedUntil: -1})
	if err := send("c"); err != nil {
		t.Errorf("a member who joined cannot post: %v", err)
	}
	if err := send("a"); protocol.AsError(err).Code != protocol.CodeMuted {
		t.Errorf("a muted member posts: %v", err)
	}
	change(store.GroupInfo{Conversation: "g:team", MuteAll: true}, store.GroupMember{User: "a", Role: "admin"})
	if err := send("a"); err != nil {
		t.Errorf("an admin in a muted group cannot post: %v", err)
	}
	if err := send("c"); protocol.AsError(err).Code != protocol.CodeMuted {
		t.Errorf("a member posts in a muted group: %v", err)
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("the roster was read %d times, want once", n)
	}
}

// TestQueueIsBoundedInContentBytes checks that sends waiting for the
// committer are refused with unavailable once their content passes
// QueueBytes, however few they are, and accepted again once the committer
// has taken them.
func TestQueueIsBoundedInContentBytes(t *testing.T) {
	content := len(req("a", "b", "x").Content)
	st := &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}
	open := sync.OnceFunc(func() { close(st.gate) })
	s := New(Config{QueueLength: 1000, QueueBytes: 3 * content}, st, everyoneExists{}, &recordingFanout{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		open() // Close waits for the commits
		s.Close()
	})
	acks := make(chan error, 10)
	send := func(cid string) {
		s.SendAsync(t.Context(), req("a", "b", cid), func(_ protocol.Ack, err error) { acks <- err })
	}

	send("first") // taken by the committer, which waits at the gate with it
	for len(s.queue) > 0 || s.queuedBytes.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 3 {
		send(fmt.Sprint("fits", i))
	}
	send("over")
	select {
	case err := <-acks:
		if protocol.AsError(err).Code != protocol.CodeUnavailable {
			t.Fatalf("the send past QueueBytes: %v, want unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the send past QueueBytes was queued")
	}
	open()
	for range 4 {
		if err := <-acks; err != nil {
			t.Fatalf("a send within the bound: %v", err)
		}
	}
	send("after")
	if err := <-acks; err != nil {
		t.Fatalf("a send once the queue drained: %v", err)
	}
	if n := s.queuedBytes.Load(); n != 0 {
		t.Fatalf("%d content bytes counted as queued after every send was committed", n)
	}
}
