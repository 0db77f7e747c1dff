package client

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// newTestDelivery returns a delivery whose clock stands still unless the
// test moves *now.
func newTestDelivery(queueSize int, gapWait time.Duration) (*delivery, *time.Time) {
	now := time.Unix(1000, 0)
	o := Options{OnMessage: func(protocol.Message) {}, QueueSize: queueSize, GapWait: gapWait}
	d := newDelivery(&o, &counters{})
	d.now = func() time.Time { return now }
	return d, &now
}

func msg(seq int64) protocol.Message {
	return protocol.Message{Conversation: "c", Seq: seq}
}

// queued returns the seqs waiting in d's queue and empties it.
func queued(d *delivery) []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int64
	for _, it := range d.queue {
		out = append(out, it.msg.Seq)
	}
	d.queue = d.queue[:0]
	return out
}

func TestSequencerOffer(t *testing.T) {
	tests := []struct {
		name     string
		offers   []int64
		want     []int64
		wantPull int64 // From of the due pull, 0 if none is due
	}{
		{
			name:   "in order",
			offers: []int64{1, 2, 3},
			want:   []int64{1, 2, 3},
		},
		{
			name:   "duplicates",
			offers: []int64{1, 1, 2, 1, 2, 3},
			want:   []int64{1, 2, 3},
		},
		{
			name:   "reordered",
			offers: []int64{2, 1, 4, 3},
			want:   []int64{1, 2, 3, 4},
		},
		{
			name:     "gap",
			offers:   []int64{1, 4, 5, 4},
			want:     []int64{1},
			wantPull: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDelivery(100, 0)
			for _, s := range tt.offers {
				d.offer(msg(s))
			}
			if got := queued(d); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("queued %v, want %v", got, tt.want)
			}
			p, ok, _ := d.nextPull()
			if ok != (tt.wantPull != 0) || p.From != tt.wantPull {
				t.Errorf("nextPull = %+v, %v; want from %d", p, ok, tt.wantPull)
			}
		})
	}
}

func TestSequencerGapWait(t *testing.T) {
	d, now := newTestDelivery(100, time.Second)
	d.offer(msg(1))
	d.offer(msg(3))
	if _, ok, next := d.nextPull(); ok || !next.Equal(now.Add(time.Second)) {
		t.Fatalf("nextPull before GapWait = %v, next %v", ok, next)
	}
	*now = now.Add(time.Second)
	p, ok, _ := d.nextPull()
	if !ok || p.From != 2 || p.Limit != pullLimit || p.Direction != protocol.Forward {
		t.Fatalf("nextPull after GapWait = %+v, %v", p, ok)
	}
	if _, ok, _ := d.nextPull(); ok {
		t.Fatal("a second pull started while one is in flight")
	}
	d.pulled("c", &protocol.Messages{Conversation: "c", Messages: []protocol.Message{msg(2), msg(3)}, MinSeq: 1, MaxSeq: 3})
	if got := queued(d); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("queued %v, want [1 2 3]", got)
	}
	if _, ok, next := d.nextPull(); ok || !next.IsZero() {
		t.Fatalf("a pull is still due: %v, %v", ok, next)
	}
}

func TestSequencerPulled(t *testing.T) {
	tests := []struct {
		name     string
		last     int64 // delivered before the gap
		held     []int64
		moved    []int64 // offered while the pull is in flight
		page     protocol.Messages
		want     []int64
		wantPull int64
	}{
		{
			name: "more pages",
			held: []int64{5},
			page: protocol.Messages{Messages: []protocol.Message{msg(1), msg(2)}, MinSeq: 1, MaxSeq: 5, More: true},
			want: []int64{1, 2}, wantPull: 3,
		},
		{
			name: "history cleared",
			held: []int64{9},
			page: protocol.Messages{Messages: []protocol.Message{msg(7), msg(8)}, MinSeq: 7, MaxSeq: 9},
			want: []int64{7, 8, 9},
		},
		{
			name: "missing seqs are not visible",
			held: []int64{6},
			page: protocol.Messages{Messages: []protocol.Message{msg(4)}, MinSeq: 1, MaxSeq: 6},
			want: []int64{4, 6},
		},
		{
			name:  "stale page",
			held:  []int64{9},
			moved: []int64{1, 2, 3},
			page:  protocol.Messages{Messages: []protocol.Message{msg(1), msg(2)}, MinSeq: 1, MaxSeq: 2},
			want:  []int64{1, 2, 3}, wantPull: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDelivery(100, 0)
			for _, s := range tt.held {
				d.offer(msg(s))
			}
			if _, ok, _ := d.nextPull(); !ok {
				t.Fatal("no pull due")
			}
			for _, s := range tt.moved {
				d.offer(msg(s))
			}
			d.pulled("c", &tt.page)
			if got := queued(d); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("queued %v, want %v", got, tt.want)
			}
			p, ok, _ := d.nextPull()
			if ok != (tt.wantPull != 0) || p.From != tt.wantPull {
				t.Errorf("nextPull = %+v, %v; want from %d", p, ok, tt.wantPull)
			}
		})
	}
}

func TestSequencerPullFailed(t *testing.T) {
	tests := []struct {
		name     string
		code     protocol.Code
		wantPull bool
		wantFrom int64
	}{
		{
			name:     "out of range retries from the lowest visible seq",
			code:     protocol.CodeOutOfRange,
			wantPull: true,
			wantFrom: 0,
		},
		{
			name: "not found gives up",
			code: protocol.CodeNotFound,
		},
		{
			name: "unavailable retries later",
			code: protocol.CodeUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, now := newTestDelivery(100, 0)
			d.offer(msg(3))
			d.nextPull()
			d.pullFailed("c", tt.code, time.Second)
			p, ok, next := d.nextPull()
			if ok != tt.wantPull || (ok && p.From != tt.wantFrom) {
				t.Fatalf("nextPull = %+v, %v, want %v from %d", p, ok, tt.wantPull, tt.wantFrom)
			}
			if tt.code == protocol.CodeUnavailable && !next.Equal(now.Add(time.Second)) {
				t.Errorf("retry at %v, want a second later", next)
			}
		})
	}
}

func TestSequencerOverflow(t *testing.T) {
	d, _ := newTestDelivery(2, 0)
	for s := int64(1); s <= 5; s++ {
		d.offer(msg(s))
	}
	if got := queued(d); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("queued %v, want [1 2]", got)
	}
	if d.stats.overflows.Load() == 0 {
		t.Error("overflow not counted")
	}
	p, ok, _ := d.nextPull()
	if !ok || p.From != 3 {
		t.Fatalf("nextPull = %+v, %v; want from 3", p, ok)
	}
}

func TestSequencerApplyConversation(t *testing.T) {
	tests := []struct {
		name     string
		conv     protocol.Conversation
		atLatest bool
		wantLast int64
		wantPull int64
	}{
		{
			name:     "behind",
			conv:     protocol.Conversation{ID: "c", MinSeq: 1, MaxSeq: 4},
			wantPull: 1,
		},
		{
			name:     "cleared",
			conv:     protocol.Conversation{ID: "c", MinSeq: 4, MaxSeq: 5},
			wantLast: 3,
			wantPull: 4,
		},
		{
			name:     "at latest",
			conv:     protocol.Conversation{ID: "c", MinSeq: 1, MaxSeq: 5},
			atLatest: true,
			wantLast: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDelivery(100, 0)
			d.applyConversation(tt.conv, tt.atLatest)
			if got := d.positions()["c"]; got != tt.wantLast {
				t.Errorf("position %d, want %d", got, tt.wantLast)
			}
			p, ok, _ := d.nextPull()
			if ok != (tt.wantPull != 0) || p.From != tt.wantPull {
				t.Errorf("nextPull = %+v, %v; want from %d", p, ok, tt.wantPull)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		want    time.Duration // the cap: the largest delay the attempt may draw
	}{
		{
			name:    "first",
			attempt: 1,
			want:    250 * time.Millisecond,
		},
		{
			name:    "doubles",
			attempt: 3,
			want:    time.Second,
		},
		{
			name:    "capped",
			attempt: 10,
			want:    30 * time.Second,
		},
		{
			name:    "no overflow",
			attempt: 500,
			want:    30 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackoff(250*time.Millisecond, 30*time.Second)
			b.rand = func(n int64) int64 { return n - 1 }
			if got := b.delay(tt.attempt); got != tt.want {
				t.Errorf("largest delay %v, want %v", got, tt.want)
			}
			b.rand = func(int64) int64 { return 0 }
			if got := b.delay(tt.attempt); got != 0 {
				t.Errorf("smallest delay %v, want 0", got)
			}
		})
	}
}

func BenchmarkOfferInOrder(b *testing.B) {
	d, _ := newTestDelivery(1<<30, 0)
	m := msg(0)
	b.ReportAllocs()
	for i := range b.N {
		m.Seq = int64(i) + 1
		d.offer(m)
		if len(d.queue) == 1024 {
			d.queue = d.queue[:0]
		}
	}
}
