package lsm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

func openTemp(tb testing.TB, opts Options) *Log {
	tb.Helper()
	l, err := Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// directBatch fills batch with direct messages of about 100 bytes, each in
// one of convs conversations between 2×convs users picked at random, with
// new client ids.
func directBatch(rng *rand.Rand, batch []store.NewMessage, convs int, n *int, now time.Time) {
	content := []byte(`{"text":"a message of about a hundred bytes, which is what most chat messages are, give or take"}`)
	for i := range batch {
		*n++
		pair := rng.IntN(convs)
		from, to := fmt.Sprint("u", pair), fmt.Sprint("u", pair+convs)
		if rng.IntN(2) == 0 {
			from, to = to, from
		}
		batch[i] = store.NewMessage{
			Conversation: conversation.DirectID(from, to),
			Kind:         conversation.Direct,
			ServerID:     fmt.Sprint("s", *n),
			ClientID:     fmt.Sprint("c", *n),
			Sender:       from,
			Recipient:    to,
			ContentType:  "text",
			Content:      content,
			Time:         now,
		}
	}
}

// BenchmarkAppendMessages appends batches of direct messages spread over
// 10,000 conversations, as group commits of a busy server do.
func BenchmarkAppendMessages(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, size := range []int{1, 64, 512} {
			name := fmt.Sprintf("sync=%v/batch=%d", sync, size)
			b.Run(name, func(b *testing.B) {
				l := openTemp(b, Options{NoSync: !sync})
				rng := rand.New(rand.NewPCG(1, 2))
				batch := make([]store.NewMessage, size)
				n := 0
				now := time.Now()
				b.ReportAllocs()
				for b.Loop() {
					directBatch(rng, batch, 10_000, &n, now)
					if _, err := l.AppendMessages(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkLastMessages reads the last 50 messages of a random conversation
// of 1,000 holding 200 messages each.
func BenchmarkLastMessages(b *testing.B) {
	l := openTemp(b, Options{NoSync: true})
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]store.NewMessage, 512)
	n := 0
	for range 200_000 / 512 {
		directBatch(rng, batch, 1000, &n, time.Now())
		if _, err := l.AppendMessages(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		pair := rng.IntN(1000)
		conv := conversation.DirectID(fmt.Sprint("u", pair), fmt.Sprint("u", pair+1000))
		msgs, err := l.MessageRange(b.Context(), conv, 0, 1, 1<<40, store.Backward, 50)
		if err != nil || len(msgs) == 0 {
			b.Fatal(len(msgs), err)
		}
	}
}

// TestAppendAfterCloseFails checks that a closed log refuses writes and
// that Close is idempotent.
func TestAppendAfterCloseFails(t *testing.T) {
	l := openTemp(t, Options{NoSync: true})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendMessages(t.Context(), []store.NewMessage{{Conversation: "d:a:b", Kind: conversation.Direct, Sender: "a", Recipient: "b"}}); err == nil {
		t.Fatal("append after Close succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// waitFilter waits for the filter in front of the dedupe lookup to be
// filled.
func waitFilter(t *testing.T, l *Log) *clientFilter {
	t.Helper()
	for range 1000 {
		l.mu.Lock()
		f := l.filter
		l.mu.Unlock()
		if f.ready.Load() {
			return f
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the client-id filter was not filled")
	return nil
}

// TestDedupeThroughTheFilter resends messages from before a restart, once
// the filter is filled from the stored keys, and after the filter was
// outgrown and rebuilt: every resend is a duplicate, every new id is new.
func TestDedupeThroughTheFilter(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	sent := make([]store.NewMessage, 300)
	directBatch(rng, sent, 50, &n, time.Now())
	if _, err := l.AppendMessages(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkResends := func(what string) {
		t.Helper()
		rs, err := l.AppendMessages(t.Context(), sent)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			if !r.Duplicate || r.Message.ClientID != sent[i].ClientID {
				t.Fatalf("%s: resend %d = %+v, want a duplicate", what, i, r)
			}
		}
	}
	f := waitFilter(t, l)
	if f.keys.Load() != int64(len(sent)) {
		t.Errorf("filter filled with %d keys, want %d", f.keys.Load(), len(sent))
	}
	checkResends("after a restart")

	// Outgrow the filter: the next append starts a bigger one.
	f.keys.Store(int64(f.capacity) + 1)
	fresh := make([]store.NewMessage, 10)
	directBatch(rng, fresh, 50, &n, time.Now())
	if rs, err := l.AppendMessages(t.Context(), fresh); err != nil || rs[0].Duplicate {
		t.Fatalf("new messages: %+v, %v", rs, err)
	}
	if g := waitFilter(t, l); g == f || g.capacity <= f.capacity {
		t.Fatalf("filter not replaced by a bigger one: capacity %d after %d", g.capacity, f.capacity)
	}
	checkResends("after the filter was rebuilt")
	sent = fresh
	checkResends("of messages written while it was rebuilt")
}
