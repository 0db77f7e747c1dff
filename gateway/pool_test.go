package gateway

import (
	"sync"
	"testing"
)

// TestPoolKeepsAtMostMaxAndCloses runs more concurrent jobs than the pool
// keeps goroutines for: every job runs, at most max goroutines stay, later
// jobs reuse them, and close ends them.
func TestPoolKeepsAtMostMaxAndCloses(t *testing.T) {
	p := newPool(4)
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 10 {
		wg.Add(1)
		p.run(func() { <-release; wg.Done() })
	}
	if n := p.kept.Load(); n != 4 {
		t.Errorf("%d goroutines kept while 10 jobs run, want 4", n)
	}
	close(release)
	wg.Wait()
	for range 100 {
		wg.Add(1)
		p.run(wg.Done)
		wg.Wait()
	}
	if n := p.kept.Load(); n > 4 {
		t.Errorf("%d goroutines kept, want at most 4", n)
	}
	p.close()
	if n := p.kept.Load(); n != 0 {
		t.Errorf("%d goroutines kept after close, want 0", n)
	}
}
