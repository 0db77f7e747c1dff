// Package parleytest starts real Parley servers on loopback for tests, and
// offers a raw WebSocket connection for frame-level assertions, in the way
// net/http/httptest serves net/http.
package parleytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// AdminKey is the admin key of servers started by NewServer.
const AdminKey = "test-admin-key"

// Server is a running server on 127.0.0.1 with its data in a temporary
// directory. It is shut down when the test ends.
type Server struct {
	*server.Server
	Config server.Config
	URL    string // http://127.0.0.1:port
	WSURL  string // ws://127.0.0.1:port/v1/ws
	Admin  *admin.Client
}

// NewServer starts a server. configure, if not nil, adjusts the
// configuration first (DataDir and Listen are already set, ShutdownDrain is 0).
func NewServer(t testing.TB, configure func(*server.Config)) *Server {
	t.Helper()
	cfg := server.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminKey = AdminKey
	cfg.StoreSync = "normal"
	cfg.ShutdownDrain = 0
	if configure != nil {
		configure(&cfg)
	}
	return Start(t, cfg)
}

// Start starts a server with exactly cfg.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatalf("parleytest: new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("parleytest: start server: %v", err)
	}
	s := &Server{Server: srv, Config: cfg, URL: "http://" + srv.Addr(), WSURL: "ws://" + srv.Addr() + "/v1/ws"}
	s.Admin = &admin.Client{BaseURL: s.URL, Key: cfg.AdminKey}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("parleytest: shutdown: %v", err)
		}
	})
	return s
}

// User creates a user (if missing) and returns a token for one of its
// devices on platform.
func (s *Server) User(t testing.TB, id, platform, device string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Admin.CreateUser(ctx, admin.NewUser{ID: id, Nickname: id}); err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeAlreadyExists {
			t.Fatalf("parleytest: create user %s: %v", id, err)
		}
	}
	tok, err := s.Admin.IssueToken(ctx, id, platform, device, 0)
	if err != nil {
		t.Fatalf("parleytest: token for %s: %v", id, err)
	}
	return tok.Token
}

// Conn is a raw WebSocket connection that reads frames in the background.
type Conn struct {
	t      testing.TB
	nc     net.Conn
	frames chan protocol.Frame
	mu     sync.Mutex // serialises writes
	done   chan struct{}
	err    error // why the read loop ended; read after done closes
}

// Dial connects with token and waits for the hello frame, which it returns.
func Dial(t testing.TB, wsURL, token string) (*Conn, protocol.Hello) {
	t.Helper()
	c, err := DialErr(wsURL, token)
	if err != nil {
		t.Fatalf("parleytest: dial: %v", err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	f := c.Next(t, 5*time.Second)
	if f.Type != protocol.TypeHello {
		t.Fatalf("parleytest: first frame is %q, want hello", f.Type)
	}
	var h protocol.Hello
	if err := json.Unmarshal(f.Data, &h); err != nil {
		t.Fatalf("parleytest: hello: %v", err)
	}
	return c, h
}

// DialErr connects with token. A refused upgrade returns *protocol.Error
// decoded from the response body when there is one.
func DialErr(wsURL, token string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var body []byte
	var status int
	d := ws.Dialer{
		Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
		OnStatusError: func(st int, _ []byte, r io.Reader) {
			status = st
			body, _ = io.ReadAll(io.LimitReader(r, 1<<16))
		},
	}
	nc, br, _, err := d.Dial(ctx, wsURL)
	if err != nil {
		if i := strings.Index(string(body), "{"); i >= 0 {
			var e protocol.ErrorBody
			if json.Unmarshal(body[i:], &e) == nil && e.Error != nil {
				return nil, e.Error
			}
		}
		return nil, fmt.Errorf("dial (HTTP %d): %w", status, err)
	}
	c := &Conn{nc: nc, frames: make(chan protocol.Frame, 4096), done: make(chan struct{})}
	var r io.Reader = nc
	if br != nil {
		// The server's first frames may have arrived with the handshake.
		r = io.MultiReader(br, nc)
	}
	go c.readLoop(r)
	return c, nil
}

func (c *Conn) readLoop(r io.Reader) {
	defer close(c.done)
	defer close(c.frames)
	for {
		data, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{r, c})
		if err != nil {
			c.err = err
			return
		}
		if op != ws.OpText {
			continue
		}
		var f protocol.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.err = fmt.Errorf("server sent a frame that is not JSON: %q", data)
			return
		}
		c.frames <- f
	}
}

// Write writes raw bytes (control frame replies of wsutil), serialised with
// other writes.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc.Write(b)
}

// WriteRaw writes one text message as is.
func (c *Conn) WriteRaw(t testing.TB, payload []byte) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := wsutil.WriteClientMessage(c.nc, ws.OpText, payload); err != nil {
		t.Fatalf("parleytest: write: %v", err)
	}
}

// Request writes a frame of type typ with id and data.
func (c *Conn) Request(t testing.TB, typ, id string, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(protocol.Frame{Type: typ, ID: id, Data: raw})
	c.WriteRaw(t, b)
}

// Next returns the next frame, failing the test if none comes within d.
func (c *Conn) Next(t testing.TB, d time.Duration) protocol.Frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("parleytest: connection closed while waiting for a frame: %v", c.err)
		}
		return f
	case <-time.After(d):
		t.Fatalf("parleytest: no frame within %v", d)
	}
	return protocol.Frame{}
}

// Expect returns the next frame, which must be of type typ, decoding its
// data into v if v is not nil.
func (c *Conn) Expect(t testing.TB, typ string, v any) protocol.Frame {
	t.Helper()
	f := c.Next(t, 5*time.Second)
	if f.Type != typ {
		t.Fatalf("parleytest: got %s frame (%s %v), want %s", f.Type, f.Data, f.Error, typ)
	}
	if v != nil {
		if err := json.Unmarshal(f.Data, v); err != nil {
			t.Fatalf("parleytest: decode %s: %v", typ, err)
		}
	}
	return f
}

// ExpectError returns the next frame, which must be an error with code.
func (c *Conn) ExpectError(t testing.TB, code protocol.Code) protocol.Frame {
	t.Helper()
	f := c.Expect(t, protocol.TypeError, nil)
	if f.Error == nil || f.Error.Code != code {
		t.Fatalf("parleytest: got error %v, want code %s", f.Error, code)
	}
	return f
}

// Quiet fails the test if a frame arrives within d.
func (c *Conn) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			t.Fatalf("parleytest: unexpected %s frame: %s", f.Type, f.Data)
		}
	case <-time.After(d):
	}
}

// Closed waits until the server closes the connection, failing after d.
func (c *Conn) Closed(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("parleytest: connection still open after %v", d)
		}
	}
}

// Close closes the connection and waits for its read loop.
func (c *Conn) Close() {
	c.nc.Close()
	<-c.done
}
