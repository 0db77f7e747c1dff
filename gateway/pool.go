package gateway

import (
	"sync"
	"sync/atomic"
)

// pool runs functions on goroutines it keeps for the next one. Reading a
// connection's frames and writing its queue are short jobs: each on a fresh
// goroutine paid for starting it and for growing its stack to what frame
// handling needs (with one message in flight per sender, growing stacks
// was 11 % of the server's CPU). Idle, the kept goroutines cost their
// stacks and nothing else; no connection holds one.
type pool struct {
	work chan func() // unbuffered: a send succeeds only into an idle goroutine
	max  int32
	kept atomic.Int32
	wg   sync.WaitGroup // the kept goroutines
}

func newPool(max int32) *pool { return &pool{work: make(chan func()), max: max} }

// run runs f on an idle kept goroutine, or on a new one that stays while
// fewer than max are kept, or else on a goroutine of its own.
func (p *pool) run(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	if p.kept.Add(1) <= p.max {
		p.wg.Go(func() { p.keep(f) })
		return
	}
	p.kept.Add(-1)
	go f()
}

func (p *pool) keep(f func()) {
	defer p.kept.Add(-1)
	for f != nil {
		f()
		f = <-p.work
	}
}

// close ends the kept goroutines, once none has work, and waits for them:
// run must not be called after it.
func (p *pool) close() {
	for range p.kept.Load() {
		p.work <- nil
	}
	p.wg.Wait()
}
