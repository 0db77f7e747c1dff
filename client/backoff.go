package client

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnection delays: exponential growth from min, capped
// at max, with full jitter (a uniformly random delay between zero and the
// cap) so that clients dropped together do not come back together.
type backoff struct {
	min, max time.Duration
	rand     func(n int64) int64 // uniform in [0, n); math/rand/v2 unless a test injects one
}

func newBackoff(min, max time.Duration) backoff {
	return backoff{min: min, max: max, rand: rand.Int64N}
}

// delay returns the wait before reconnection attempt n (from 1).
func (b backoff) delay(n int) time.Duration {
	limit := b.max
	if n < 1 {
		n = 1
	}
	// min·2^(n-1), stopping before it can overflow.
	if shift := n - 1; shift < 62 && b.min <= b.max>>shift {
		limit = b.min << shift
	}
	return time.Duration(b.rand(int64(limit) + 1))
}
