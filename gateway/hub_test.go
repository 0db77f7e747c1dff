package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/router"
)

// TestDeliverBulkGoesOnPastAStalledClient delivers two large frames to
// twice BulkWriters connections over loopback TCP, where the first client
// of every writer's share does not read. Each writer writes what that
// client's socket takes, leaves the rest to a write goroutine of the
// connection's own once the socket takes no more, and goes on, so the
// other clients get both frames and DeliverBulk returns, where before
// every writer waited on its stalled client until the write deadline (ten
// minutes here). Once the
// stalled clients read, they get both frames whole and in order: the
// write goroutine that took each over sent the rest of the frame the
// socket had cut short, and then the next.
func TestDeliverBulkGoesOnPastAStalledClient(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("without Linux's non-blocking write, a bulk writer waits on a full socket")
	}
	g := newTestGateway(t, Config{WriteTimeout: 10 * time.Minute})
	h := NewHub("")
	const n = 2 * BulkWriters // a share of two each: a stalled client, then one that reads
	users := make([]string, n)
	clients := make([]net.Conn, n)
	for i := range n {
		server, client := narrowPair(t)
		c := g.joinHub(t, h, server, fmt.Sprintf("u%03d", i))
		users[i], clients[i] = c.user, client
	}
	frames := [][]byte{
		[]byte(`{"type":"message","data":"` + string(bytes.Repeat([]byte("a"), 1<<20)) + `"}`),
		[]byte(`{"type":"message","data":"` + string(bytes.Repeat([]byte("b"), 1<<20)) + `"}`),
	}
	done := make(chan struct{})
	go func() {
		for _, f := range frames {
			h.DeliverBulk(users, f, router.Device{})
		}
		close(done)
	}()
	read := func(i int) {
		t.Helper()
		for k, want := range frames {
			clients[i].SetReadDeadline(time.Now().Add(30 * time.Second))
			got, _, err := wsutil.ReadServerData(clients[i])
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("client %d, frame %d: read %d bytes, %v; want %d bytes", i, k, len(got), err, len(want))
			}
		}
	}
	for i := 1; i < n; i += 2 {
		read(i)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("DeliverBulk waited for the clients that do not read")
	}
	for i := 0; i < n; i += 2 {
		read(i)
	}
}

// TestDeliverBulkAfterTheWriteDeadlinePassed writes a bulk frame to a
// connection whose last write's deadline has passed: the bulk writer's
// write, which does not wait, must not fail on it.
func TestDeliverBulkAfterTheWriteDeadlinePassed(t *testing.T) {
	g := newTestGateway(t, Config{WriteTimeout: 50 * time.Millisecond})
	h := NewHub("")
	server, client := tcpPair(t)
	g.joinHub(t, h, server, "u")
	read := func(want string) {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _, err := wsutil.ReadServerData(client)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %s", got, err, want)
		}
	}
	h.Deliver([]string{"u"}, []byte(`{"type":"ack"}`), router.Device{})
	read(`{"type":"ack"}`)
	time.Sleep(100 * time.Millisecond) // the ack's write deadline passes
	h.DeliverBulk([]string{"u"}, []byte(`{"type":"message"}`), router.Device{})
	read(`{"type":"message"}`)
}

// TestAbortEndsAStalledBulkWrite aborts a connection whose client stopped
// reading in the middle of a bulk frame, once the frame's rest has passed
// to a write goroutine of the connection's own: that goroutine gives up at
// once, not at the write deadline (ten minutes here), and the connection
// is torn down.
func TestAbortEndsAStalledBulkWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("without Linux's non-blocking write, a bulk writer waits on a full socket")
	}
	g := newTestGateway(t, Config{WriteTimeout: 10 * time.Minute})
	h := NewHub("")
	server, client := narrowPair(t)
	c := g.joinHub(t, h, server, "u")
	h.DeliverBulk([]string{"u"}, []byte(`{"type":"message","data":"`+string(bytes.Repeat([]byte("a"), 1<<20))+`"}`), router.Device{})
	time.Sleep(3 * bulkPatience) // the bulk writer hands the connection over
	c.abort()
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil {
		t.Fatalf("the client's connection did not end: %v", err)
	}
	if !c.isDown() {
		t.Fatal("the aborted connection is not torn down")
	}
}

// TestAbortDropsTheRestOfAFrame has a writer take over the rest of a frame
// after abort: it drops it and tears the connection down, rather than
// writing it with a fresh deadline.
func TestAbortDropsTheRestOfAFrame(t *testing.T) {
	g := newTestGateway(t, Config{WriteTimeout: 10 * time.Minute})
	server, _ := tcpPair(t) // a client that never reads
	c := g.newConn(t, server)
	if !c.claimWriter() {
		t.Fatal("no writer role for a new connection")
	}
	c.abort() // the writer role is taken: abort starts no writer of its own
	done := make(chan struct{})
	go func() {
		c.writeLoopFrom(bytes.Repeat([]byte("a"), 8<<20)) // more than the socket takes
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer wrote the rest of an aborted connection's frame")
	}
	if !c.isDown() {
		t.Fatal("the aborted connection is not torn down")
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func tcpPair(t *testing.T) (server, client net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// narrowPair is tcpPair with buffers well below the test frames' size, so
// that a frame fills them (tiny ones would slow TCP down to its zero-window
// probes).
func narrowPair(t *testing.T) (server, client net.Conn) {
	server, client = tcpPair(t)
	server.(*net.TCPConn).SetWriteBuffer(64 << 10)
	client.(*net.TCPConn).SetReadBuffer(64 << 10)
	return server, client
}

// joinHub returns a connection on server, as device "d" of user, added to h.
func (g *Gateway) joinHub(t *testing.T, h *Hub, server net.Conn, user string) *conn {
	c := g.newConn(t, server)
	c.user, c.device = user, "d"
	h.add(c)
	return c
}
