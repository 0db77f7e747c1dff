package gateway

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/router"
)

// TestDeliverBulkBoundsItsWriters delivers two frames to four times
// BulkWriters connections whose clients do not read yet: DeliverBulk
// returns at once each time, BulkWriters goroutines write, each stuck on
// the first connection of its share, and a frame delivered with Deliver
// meanwhile, to a connection still waiting its turn, goes out at once,
// after the bulk frames queued before it. Once the clients read, every
// frame arrives in order and the writers end.
func TestDeliverBulkBoundsItsWriters(t *testing.T) {
	g := newTestGateway(t, Config{})
	h := NewHub("")
	const n = 4 * BulkWriters
	users := make([]string, n)
	clients := make([]net.Conn, n)
	for i := range n {
		server, client := net.Pipe()
		t.Cleanup(func() { client.Close() })
		c := g.newConn(t, server)
		c.user, c.device = fmt.Sprintf("u%03d", i), "d"
		h.add(c)
		users[i], clients[i] = c.user, client
	}
	before := runtime.NumGoroutine()
	frames := []string{`{"type":"message","data":{"n":1}}`, `{"type":"message","data":{"n":2}}`}
	done := make(chan struct{})
	go func() {
		for _, f := range frames {
			h.DeliverBulk(users, []byte(f), router.Device{})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DeliverBulk blocked while its writers were stuck")
	}
	time.Sleep(50 * time.Millisecond) // let the writers reach their first write
	if grown := runtime.NumGoroutine() - before; grown > BulkWriters {
		t.Errorf("%d goroutines more, want at most %d bulk writers", grown, BulkWriters)
	}
	// The last user's connection waits its turn; an ack to it does not.
	last := clients[n-1]
	h.Deliver([]string{users[n-1]}, []byte(`{"type":"ack"}`), router.Device{})
	for _, want := range append(frames, `{"type":"ack"}`) {
		last.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _, err := wsutil.ReadServerData(last)
		if err != nil || string(got) != want {
			t.Fatalf("last client read %q, %v; want %s", got, err, want)
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients[:n-1] {
		wg.Go(func() {
			for _, want := range frames {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, _, err := wsutil.ReadServerData(c)
				if err != nil || string(got) != want {
					t.Errorf("client %d read %q, %v; want %s", i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		running := 0
		for i := range h.bulk {
			h.bulk[i].mu.Lock()
			if h.bulk[i].running {
				running++
			}
			h.bulk[i].mu.Unlock()
		}
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bulk writers still run with nothing to write", running)
		}
	}
}
