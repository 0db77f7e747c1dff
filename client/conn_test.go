package client

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// countingConn counts the writes to a net.Conn.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestFramesQueuedDuringAWriteGoOutInOne checks that frames written while
// another goroutine's write is under way are queued, not blocked, and that
// the writer sends them all in one further write, each a whole masked frame
// in the order queued.
func TestFramesQueuedDuringAWriteGoOutInOne(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	nc := &countingConn{Conn: client}
	cn := &conn{nc: nc, done: make(chan struct{})}
	defer client.Close()

	first := make(chan error, 1)
	go func() { first <- cn.writeText([]byte(`{"n":1}`)) }()
	// net.Pipe's Write waits for a reader: the first write is under way
	// once it holds the writer role.
	for !writing(cn) {
		time.Sleep(time.Millisecond)
	}
	queued := make(chan error, 2)
	go func() {
		queued <- cn.writeText([]byte(`{"n":2}`))
		queued <- cn.writeText([]byte(`{"n":3}`))
	}()
	for range 2 {
		select {
		case err := <-queued:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a frame written during another write waited for it")
		}
	}

	r := wsutil.Reader{Source: server, State: ws.StateServerSide}
	for n := 1; n <= 3; n++ {
		hdr, err := r.NextFrame()
		if err != nil {
			t.Fatal(err)
		}
		if hdr.OpCode != ws.OpText || !hdr.Masked {
			t.Fatalf("frame %d: header %+v", n, hdr)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(&r); err != nil {
			t.Fatal(err)
		}
		if want := []byte(`{"n":` + string(rune('0'+n)) + `}`); !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("frame %d: %s, want %s", n, b.Bytes(), want)
		}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.writes != 2 {
		t.Fatalf("%d writes for three frames, want 2: the first, then the two queued meanwhile", nc.writes)
	}
}

func writing(cn *conn) bool {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	return cn.writing
}
