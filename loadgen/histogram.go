package loadgen

import (
	"encoding/json"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies are counted in log-linear buckets, in the manner of HDR
// histograms: exact below 2^subBits nanoseconds, then 2^subBits buckets per
// power of two, so a bucket's width is under 1/128 of its values (0.8%).
// Durations from 2^40 ns (18 minutes) up land in the last bucket; the
// maximum is kept exactly.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxTracked = 1<<40 - 1
)

var numBuckets = bucketOf(maxTracked) + 1

// bucketOf returns the bucket counting ns nanoseconds.
func bucketOf(ns int64) int {
	ns = min(max(ns, 0), maxTracked)
	if ns < subCount {
		return int(ns)
	}
	// ns lies in [2^(e+subBits), 2^(e+subBits+1)): its top subBits+1 bits,
	// ns>>e, are in [subCount, 2·subCount).
	e := bits.Len64(uint64(ns)) - subBits - 1
	return (e+1)*subCount + int(ns>>e) - subCount
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	e := i/subCount - 1
	return int64(i%subCount+subCount) << e, 1 << e
}

// recorder accumulates durations from many goroutines at once, without
// locks or allocations.
type recorder struct {
	counts []atomic.Uint64
	max    atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{counts: make([]atomic.Uint64, numBuckets)}
}

// record counts one duration.
func (r *recorder) record(d time.Duration) {
	r.counts[bucketOf(int64(d))].Add(1)
	for {
		m := r.max.Load()
		if int64(d) <= m || r.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// drain moves what r counted into h and empties r. Durations recorded
// during the drain land in this one or in the next.
func (r *recorder) drain(h *histogram) {
	h.grow()
	for i := range r.counts {
		if n := r.counts[i].Swap(0); n != 0 {
			h.counts[i] += n
			h.n += n
		}
	}
	h.max = max(h.max, time.Duration(r.max.Swap(0)))
}

// histogram is a snapshot of durations that can be merged, queried and sent
// between processes. The zero value is empty.
type histogram struct {
	counts []uint64 // nil while empty
	n      uint64
	max    time.Duration
}

func (h *histogram) grow() {
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
}

// add merges o into h.
func (h *histogram) add(o *histogram) {
	if o.n == 0 {
		return
	}
	h.grow()
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the duration below which a fraction q of the recorded
// ones lie, to within a bucket's width, or zero if h is empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(h.n))), 1)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			low, width := bucketRange(i)
			return min(time.Duration(low+width/2), h.max)
		}
	}
	return h.max
}

// histogramJSON is the wire form of a histogram: the non-empty buckets as
// [index, count] pairs.
type histogramJSON struct {
	N       uint64      `json:"n"`
	Max     int64       `json:"max_ns"`
	Buckets [][2]uint64 `json:"buckets,omitempty"`
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	w := histogramJSON{N: h.n, Max: int64(h.max)}
	for i, n := range h.counts {
		if n != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), n})
		}
	}
	return json.Marshal(w)
}

func (h *histogram) UnmarshalJSON(p []byte) error {
	var w histogramJSON
	if err := json.Unmarshal(p, &w); err != nil {
		return err
	}
	*h = histogram{max: time.Duration(w.Max)}
	for _, b := range w.Buckets {
		if b[0] >= uint64(numBuckets) {
			continue // from a build with other bucket bounds; drop rather than misplace
		}
		h.grow()
		h.counts[b[0]] += b[1]
		h.n += b[1]
	}
	return nil
}
