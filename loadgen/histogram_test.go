package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	for ns := int64(0); ns < 2*subCount; ns++ {
		if low, width := bucketRange(bucketOf(ns)); low != ns || width != 1 {
			t.Fatalf("%d ns falls in [%d, +%d), want exactly", ns, low, width)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		ns := r.Int64N(maxTracked)
		low, width := bucketRange(bucketOf(ns))
		if ns < low || ns >= low+width {
			t.Fatalf("%d ns falls in [%d, +%d)", ns, low, width)
		}
		if float64(width)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket of %d ns is %d wide: over 1/%d of its values", ns, width, subCount)
		}
	}
	if got := bucketOf(-5); got != 0 {
		t.Errorf("bucketOf(-5) = %d, want 0", got)
	}
	if got := bucketOf(1 << 50); got != numBuckets-1 {
		t.Errorf("bucketOf(2^50) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestQuantiles(t *testing.T) {
	rec := newRecorder()
	// 1µs to 100,000µs, each once, recorded from several goroutines.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for us := 1 + g; us <= 100_000; us += 4 {
				rec.record(time.Duration(us) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	var h histogram
	rec.drain(&h)
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{q: 0.5, want: 50 * time.Millisecond},
		{q: 0.9, want: 90 * time.Millisecond},
		{q: 0.99, want: 99 * time.Millisecond},
		{q: 1, want: 100 * time.Millisecond},
		{q: 0, want: time.Microsecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if diff := float64(got-tt.want) / float64(tt.want); diff > 0.01 || diff < -0.01 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", tt.q, got, tt.want)
		}
	}
	if h.n != 100_000 || h.max != 100*time.Millisecond {
		t.Errorf("n = %d, max = %v", h.n, h.max)
	}
	var empty histogram
	rec.drain(&empty)
	if empty.n != 0 || empty.quantile(0.5) != 0 {
		t.Errorf("a drained recorder still holds %d", empty.n)
	}
}

func TestHistogramMergeAndJSON(t *testing.T) {
	var a, b histogram
	ra, rb := newRecorder(), newRecorder()
	ra.record(time.Millisecond)
	ra.record(3 * time.Millisecond)
	rb.record(2 * time.Second)
	ra.drain(&a)
	rb.drain(&b)
	a.add(&b)
	a.add(&histogram{})
	p, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	var back histogram
	if err := json.Unmarshal(p, &back); err != nil {
		t.Fatal(err)
	}
	if back.n != 3 || back.max != 2*time.Second || back.quantile(0.5) != a.quantile(0.5) {
		t.Errorf("round trip of %s gave n %d, max %v, p50 %v", p, back.n, back.max, back.quantile(0.5))
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	rec := newRecorder()
	if n := testing.AllocsPerRun(1000, func() { rec.record(1234 * time.Microsecond) }); n != 0 {
		t.Errorf("record allocates %v times", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	rec := newRecorder()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 997
			rec.record(d % time.Second)
		}
	})
}
