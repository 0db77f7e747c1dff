package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// gatedStore is a store.Messages whose AppendMessages waits for the test to
// open its gate, so the test controls when a commit becomes durable.
type gatedStore struct {
	store.Messages // unused methods panic
	gate           chan struct{}
	mu             sync.Mutex
	batches        [][]store.NewMessage
	seq            map[string]int64
	fail           error
}

func (g *gatedStore) AppendMessages(_ context.Context, batch []store.NewMessage) ([]store.AppendResult, error) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		return nil, g.fail
	}
	g.batches = append(g.batches, batch)
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

type recordingFanout struct {
	mu     sync.Mutex
	frames [][]byte
	users  [][]string
	except []uint64
}

func (r *recordingFanout) Deliver(users []string, frame []byte, except uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, frame)
	r.users = append(r.users, users)
	r.except = append(r.except, except)
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

func req(from, to, cid string) SendRequest {
	return SendRequest{From: from, To: to, ClientID: cid, ContentType: "text", Content: json.RawMessage(`{"t":1}`), Origin: 7}
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
	fan.mu.Lock()
	early := len(fan.frames)
	fan.mu.Unlock() // before failing: a Fatal holding fan.mu hangs the delivery goroutine
	if early != 0 {
		t.Fatal("delivered before the store committed")
	}

	close(st.gate)
	a := <-acked
	if a.Seq != 1 || a.ClientID != "c1" || a.Conversation != "d:a:b" || a.ServerID == "" {
		t.Fatalf("ack = %+v", a)
	}
	s.Close() // drains delivery
	if len(fan.frames) != 1 || fan.except[0] != 7 || fmt.Sprint(fan.users[0]) != "[b a]" {
		t.Fatalf("fan-out = %v to %v except %v", len(fan.frames), fan.users, fan.except)
	}
	var f struct {
		Type string
		Data protocol.Message
	}
	if err := json.Unmarshal(fan.frames[0], &f); err != nil || f.Type != "message" || f.Data.Seq != 1 || f.Data.From != "a" {
		t.Fatalf("frame %s: %v", fan.frames[0], err)
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
	if len(fan.frames) != 0 {
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
