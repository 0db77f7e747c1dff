package gateway

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/router"
)

// TestDeliverBulkBoundsItsWriters delivers one frame to four times
// BulkWriters connections, whose clients do not read yet: BulkWriters
// goroutines write, each stuck on the first connection of its share, and a
// second DeliverBulk waits for room; a frame delivered with Deliver
// meanwhile, to a connection still waiting its turn, goes out at once,
// after the bulk frame queued before it.
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
	h.DeliverBulk(users, []byte(`{"type":"message","data":{}}`), router.Device{})
	done := make(chan struct{})
	go func() {
		h.DeliverBulk(users[1:2], []byte(`{"type":"message","data":{"n":2}}`), router.Device{})
		close(done)
	}()
	// Every slot fills with a write the client does not take.
	deadline := time.Now().Add(5 * time.Second)
	for len(h.bulk) < BulkWriters {
		if time.Now().After(deadline) {
			t.Fatalf("%d bulk writers running, want %d", len(h.bulk), BulkWriters)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a second DeliverBulk returned while every slot was taken")
	case <-time.After(50 * time.Millisecond):
	}
	if len(h.bulk) > BulkWriters {
		t.Fatalf("%d bulk writers, at most %d", len(h.bulk), BulkWriters)
	}
	// The last user's connection waits for a slot; an ack to it does not.
	last := clients[n-1]
	h.Deliver([]string{users[n-1]}, []byte(`{"type":"ack"}`), router.Device{})
	for _, want := range []string{`{"type":"message","data":{}}`, `{"type":"ack"}`} {
		last.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _, err := wsutil.ReadServerData(last)
		if err != nil || string(got) != want {
			t.Fatalf("last client read %q, %v; want %s", got, err, want)
		}
	}
	// Once the clients read, everything is delivered and the second
	// DeliverBulk ends.
	for _, c := range clients[:n-1] {
		go io.Copy(io.Discard, c)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DeliverBulk did not finish once the clients read")
	}
}
