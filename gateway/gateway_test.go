package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/protocol"
)

// anyToken accepts every token as the device "d1" of the user it names.
type anyToken struct{}

func (anyToken) Verify(token string) (account.Claims, error) {
	return account.Claims{User: token, Platform: "web", Device: "d1", Expires: time.Now().Add(time.Hour)}, nil
}

func TestShutdownWaitsForAnUpgradeInFlight(t *testing.T) {
	g := newTestGateway(t, Config{})
	g.auth = anyToken{}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	g.afterEnter = func() {
		once.Do(func() { close(entered) })
		<-release
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // before srv.Close, which waits for the handler

	type dialed struct {
		nc  net.Conn
		r   io.Reader // what the handshake read past the response, then nc
		err error
	}
	dial := make(chan dialed, 1)
	go func() {
		d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer alice"}})}
		nc, br, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
		var r io.Reader = nc
		if br != nil {
			r = br
		}
		dial <- dialed{nc, r, err}
	}()
	<-entered // the upgrade is past the shutdown check

	stopped := make(chan error, 1)
	go func() { stopped <- g.Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while an upgrade was in flight; it must wait for it", err)
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	d := <-dial
	if d.err != nil {
		t.Fatal(d.err)
	}
	defer d.nc.Close()
	// The late connection gets its hello, then the shutdown kick.
	var kicked bool
	for !kicked {
		msg, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{d.r, d.nc})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		kicked = op == ws.OpText && strings.Contains(string(msg), `"kick"`) && strings.Contains(string(msg), string(protocol.CodeKickShutdown))
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := len(g.hub.all()); n != 0 {
		t.Fatalf("%d connections registered after Shutdown", n)
	}
}

func TestSubscribeAfterTeardownIsRefused(t *testing.T) {
	c, client := pipeConn(t)
	go func() { // drain what the connection writes
		buf := make([]byte, 512)
		for {
			if _, err := client.Read(buf); err != nil {
				return
			}
		}
	}()
	c.abort()
	for !c.isDown() {
		time.Sleep(time.Millisecond)
	}
	// Before the fix subscribe added the torn-down connection to presence,
	// where it stayed for good.
	if _, err := c.gw.subscribe(c, []string{"bob"}); protocol.AsError(err).Code != protocol.CodeUnavailable {
		t.Fatalf("subscribe on a torn-down connection: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) != 0 {
		t.Fatalf("subs = %q", c.subs)
	}
}

func TestSubscribeBatchIsBounded(t *testing.T) {
	c, _ := pipeConn(t)
	users := make([]string, MaxSubscribeBatch+1)
	for i := range users {
		users[i] = "u" + strings.Repeat("x", i%10)
	}
	if _, err := c.gw.subscribe(c, users); protocol.AsError(err).Code != protocol.CodeInvalidArgument {
		t.Fatalf("subscribe to %d users: %v", len(users), err)
	}
}

// slowClose is a connection whose Close blocks until released.
type slowClose struct {
	net.Conn
	closing, release chan struct{}
	once             sync.Once
}

func (s *slowClose) Close() error {
	s.once.Do(func() { close(s.closing) })
	<-s.release
	return s.Conn.Close()
}

func TestTeardownDoesNotBlockFanOut(t *testing.T) {
	g := newTestGateway(t, Config{})
	server, client := net.Pipe()
	defer client.Close()
	nc := &slowClose{Conn: server, closing: make(chan struct{}), release: make(chan struct{})}
	c := g.newConn(t, nc)
	defer close(nc.release)
	c.abort()
	<-nc.closing // the teardown is inside Close
	queued := make(chan bool, 1)
	go func() { queued <- c.enqueue([]byte(`{}`), opText) }()
	select {
	case ok := <-queued:
		if ok {
			t.Fatal("a frame was queued on a connection being torn down")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("enqueue waited for the socket's Close: fan-out blocks behind a teardown")
	}
}
