package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/presence"
	"github.com/parleyim/parley/protocol"
)

type noPresenceStore struct{}

func (noPresenceStore) SetLastSeen(context.Context, []string, time.Time) error { return nil }
func (noPresenceStore) LastSeen(context.Context, string) (time.Time, error)    { return time.Time{}, nil }

// newTestGateway returns a running Gateway without an authenticator or a
// message service, for tests of the connection machinery.
func newTestGateway(t testing.TB, cfg Config) *Gateway {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pres := presence.New(noPresenceStore{}, func(protocol.Presence) ([]byte, error) { return nil, nil }, log)
	g, err := New(cfg, nil, NewHub(""), nil, pres, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Shutdown(context.Background())
		pres.Close(context.Background())
	})
	return g
}

// newConn returns a connection on nc, counted as registered and torn down
// when the test ends.
func (g *Gateway) newConn(t testing.TB, nc net.Conn) *conn {
	c := &conn{gw: g, nc: nc, fd: -1, src: nc}
	g.conns.Add(1)
	t.Cleanup(c.abort)
	return c
}

// testConn returns a conn reading from the bytes in input.
func testConn(t testing.TB, input []byte, maxFrame int) *conn {
	g := newTestGateway(t, Config{MaxFrameBytes: maxFrame, WriteTimeout: time.Second, IdleTimeout: time.Second})
	server, client := net.Pipe()
	go func() {
		client.Write(input)
		client.Close()
	}()
	return g.newConn(t, server)
}

// pipeConn returns a conn whose writes the test reads from the returned end.
func pipeConn(t testing.TB) (*conn, net.Conn) {
	g := newTestGateway(t, Config{})
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	return g.newConn(t, server), client
}

func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var b bytes.Buffer
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	if err := ws.WriteFrame(&b, f); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestReadFrame(t *testing.T) {
	long := bytes.Repeat([]byte("z"), 3000)
	tests := []struct {
		name     string
		input    [][]byte
		want     string // "" with a nil payload is nil: a control frame answered on its own
		tooLarge bool
		err      error
		pong     string // the payload of the Pong queued in answer, if any
	}{
		{"text", [][]byte{clientFrame(ws.OpText, true, []byte(`{"type":"ping"}`))}, `{"type":"ping"}`, false, nil, ""},
		{"fragments", [][]byte{clientFrame(ws.OpText, false, []byte(`{"ty`)), clientFrame(ws.OpContinuation, true, []byte(`pe":1}`))}, `{"type":1}`, false, nil, ""},
		{"ping between fragments", [][]byte{clientFrame(ws.OpText, false, []byte(`ab`)), clientFrame(ws.OpPing, true, []byte("p")), clientFrame(ws.OpContinuation, true, []byte(`cd`))}, "abcd", false, nil, "p"},
		{"too large is skipped", [][]byte{clientFrame(ws.OpText, true, long)}, "", true, nil, ""},
		{"too large across fragments", [][]byte{clientFrame(ws.OpText, false, long[:1500]), clientFrame(ws.OpContinuation, true, long[1500:])}, "", true, nil, ""},
		{"binary", [][]byte{clientFrame(ws.OpBinary, true, []byte("x"))}, "", false, errProtocol, ""},
		{"continuation first", [][]byte{clientFrame(ws.OpContinuation, true, []byte("x"))}, "", false, errProtocol, ""},
		{"unmasked", [][]byte{ws.MustCompileFrame(ws.NewTextFrame([]byte("x")))}, "", false, errProtocol, ""},
		{"close", [][]byte{clientFrame(ws.OpClose, true, nil)}, "", false, errClientClosed, ""},
		{"ping alone", [][]byte{clientFrame(ws.OpPing, true, []byte("p"))}, "", false, nil, "p"},
		{"empty text", [][]byte{clientFrame(ws.OpText, true, nil)}, "", false, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConn(t, bytes.Join(tt.input, nil), 2048)
			c.writing = true // keep what readFrame queues in the queue, to look at
			got, tooLarge, err := c.readFrame(c.nc, make([]byte, ws.MaxHeaderSize-2))
			if !errors.Is(err, tt.err) || tooLarge != tt.tooLarge || string(got) != tt.want {
				t.Fatalf("readFrame = %q, %v, %v; want %q, %v, %v", got, tooLarge, err, tt.want, tt.tooLarge, tt.err)
			}
			// A message, even an empty one, is a non-nil payload to answer;
			// a control frame alone is nil. Errors and oversize give nil.
			wantNil := tt.err != nil || tt.tooLarge || tt.name == "ping alone"
			if (got == nil) != wantNil {
				t.Fatalf("payload nil = %v, want %v", got == nil, wantNil)
			}
			c.mu.Lock()
			var pongs []string
			for _, f := range c.queue {
				if f.op == opPong {
					pongs = append(pongs, string(f.payload))
				}
			}
			c.writing = false
			if c.state != stateOpen { // the reply to a Close waits for a writer
				c.startWriterLocked()
			}
			c.mu.Unlock()
			if tt.pong != "" && (len(pongs) != 1 || pongs[0] != tt.pong) {
				t.Fatalf("pongs queued = %q, want one with %q", pongs, tt.pong)
			}
		})
	}
}

func TestAppendHeaderMatchesLibrary(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		var want bytes.Buffer
		ws.WriteHeader(&want, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(n)})
		got := appendHeader(nil, 0, ws.OpText, n)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("n=%d: header %x, want %x", n, got, want.Bytes())
		}
	}
}

// FuzzReadFrame feeds arbitrary client bytes to the frame reader: it must
// return or fail, never panic or hang.
func FuzzReadFrame(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte(`{"type":"ping","id":"1"}`)))
	f.Add(append(clientFrame(ws.OpText, false, []byte("a")), clientFrame(ws.OpContinuation, true, []byte("b"))...))
	f.Add(clientFrame(ws.OpPing, true, []byte("x")))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, input []byte) {
		c := testConn(t, input, 1024)
		hdr := make([]byte, ws.MaxHeaderSize-2)
		for range 16 {
			if _, _, err := c.readFrame(c.nc, hdr); err != nil {
				return
			}
		}
	})
}

// BenchmarkWriteBatch measures the outbound path: 64 fan-out frames queued
// on a connection and written by its write goroutine with one writev.
func BenchmarkWriteBatch(b *testing.B) {
	frame := encodeFrame(protocol.TypeMessage, "", protocol.Message{Conversation: "d:alice:bob", Seq: 1, From: "alice", To: "bob", ContentType: "text", Content: []byte(`{"text":"hello"}`)})
	c, client := pipeConn(b)
	go io.Copy(io.Discard, client)
	const batch = 64
	b.SetBytes(int64(batch * len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		for range batch {
			if !c.enqueue(frame, opText) {
				b.Fatal("frame refused")
			}
		}
		for {
			c.mu.Lock()
			drained := !c.writing
			c.mu.Unlock()
			if drained {
				break
			}
			runtime.Gosched()
		}
	}
}

func TestWrittenFramesDecode(t *testing.T) {
	c, client := pipeConn(t)
	frames := [][]byte{[]byte(`{"a":1}`), bytes.Repeat([]byte("b"), 70000), []byte(`{}`)}
	for _, f := range frames {
		c.enqueue(f, opText)
	}
	for i, want := range frames {
		got, op, err := wsutil.ReadServerData(client)
		if err != nil || op != ws.OpText || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, op %v, err %v", i, len(got), op, err)
		}
	}
	c.kick(protocol.CodeKickShutdown, "bye")
	got, _, err := wsutil.ReadServerData(client)
	if err != nil || !bytes.Contains(got, []byte(`"kick"`)) {
		t.Fatalf("kick frame %q, %v", got, err)
	}
	f, err := readServerFrame(client)
	if code, reason := ws.ParseCloseFrameData(f.Payload); err != nil || f.Header.OpCode != ws.OpClose || code != ws.StatusGoingAway || reason != "shutdown" {
		t.Fatalf("close frame %+v %q: %v", f.Header, f.Payload, err)
	}
}

func TestCompressionBothWays(t *testing.T) {
	big := bytes.Repeat([]byte(`{"text":"compress me"}`), 100)

	// Client to server: a compressed message is inflated; one that inflates
	// past the limit is refused without inflating it all.
	compressed, err := wsflate.CompressFrame(ws.NewTextFrame(big))
	if err != nil {
		t.Fatal(err)
	}
	masked := ws.MaskFrameInPlace(compressed)
	var in bytes.Buffer
	ws.WriteFrame(&in, masked)
	c := testConn(t, in.Bytes(), 4096)
	c.deflate = true
	got, tooLarge, err := c.readFrame(c.nc, make([]byte, ws.MaxHeaderSize-2))
	if err != nil || tooLarge || !bytes.Equal(got, big) {
		t.Fatalf("inflate: %d bytes, tooLarge %v, err %v", len(got), tooLarge, err)
	}
	c = testConn(t, in.Bytes(), 1024)
	c.deflate = true
	if _, tooLarge, err := c.readFrame(c.nc, make([]byte, ws.MaxHeaderSize-2)); !tooLarge || err != nil {
		t.Fatalf("bomb: tooLarge %v, err %v", tooLarge, err)
	}

	// Server to client: long messages go out compressed, short ones plain.
	w, client := pipeConn(t)
	w.deflate = true
	w.enqueue(big, opText)
	w.enqueue([]byte(`{}`), opText)
	f, err := readServerFrame(client)
	if err != nil || f.Header.Rsv != rsv1 || len(f.Payload) >= len(big) {
		t.Fatalf("long frame: rsv %b, %d bytes, err %v", f.Header.Rsv, len(f.Payload), err)
	}
	if f, err = wsflate.DecompressFrame(f); err != nil || !bytes.Equal(f.Payload, big) {
		t.Fatalf("client could not inflate: %v", err)
	}
	f, err = readServerFrame(client)
	if err != nil || f.Header.Rsv != 0 || string(f.Payload) != `{}` {
		t.Fatalf("short frame: %+v %q %v", f.Header, f.Payload, err)
	}
}

// readServerFrame reads one unmasked frame written by the server.
func readServerFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	f := ws.Frame{Header: h, Payload: make([]byte, h.Length)}
	_, err = io.ReadFull(r, f.Payload)
	return f, err
}

// TestSharedDeflateCompressesOnce checks that a fan-out frame's compressed
// form is made once, whichever connections ask, and inflates to the frame.
func TestSharedDeflateCompressesOnce(t *testing.T) {
	payload := bytes.Repeat([]byte(`{"type":"message","data":{"text":"hello hello hello"}}`), 20)
	var s sharedDeflate
	var wg sync.WaitGroup
	outs := make([][]byte, 8)
	for i := range outs {
		wg.Go(func() {
			z, ok := s.get(payload)
			if !ok {
				t.Error("compression failed")
			}
			outs[i] = z
		})
	}
	wg.Wait()
	for i, z := range outs {
		if len(z) == 0 || &z[0] != &outs[0][0] {
			t.Fatalf("connection %d got its own compressed copy", i)
		}
	}
	back, tooLarge, err := decompress(outs[0], len(payload))
	if err != nil || tooLarge || !bytes.Equal(back, payload) {
		t.Fatalf("inflated to %d bytes (too large %v, %v), want the %d-byte frame", len(back), tooLarge, err, len(payload))
	}
	if len(outs[0]) >= len(payload) {
		t.Errorf("compressed %d bytes into %d", len(payload), len(outs[0]))
	}
}

// TestAFailedWriteSaysWhy checks that a connection torn down after a failed
// write logs why, with its conn id, before it logs that it closed.
func TestAFailedWriteSaysWhy(t *testing.T) {
	c, client := pipeConn(t)
	var logged bytes.Buffer
	var mu sync.Mutex
	c.gw.log = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c.id = 42
	client.Close() // the next write fails
	c.enqueue([]byte(`{"type":"pong"}`), opText)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		out := logged.String()
		mu.Unlock()
		if strings.Contains(out, "connection closed") {
			why := strings.Index(out, `msg="connection write failed" conn=42`)
			if why < 0 || why > strings.Index(out, "connection closed") || !strings.Contains(out[why:], "err=") {
				t.Fatalf("no reason before the close, with the conn id and the error:\n%s", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection did not close:\n%s", out)
		}
		time.Sleep(time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestReadDeadline: a frame stalled halfway is cut, never sooner than
// IdleTimeout after it began, and the socket's deadline is not moved for
// every frame.
func TestReadDeadline(t *testing.T) {
	const idle = 200 * time.Millisecond
	g := newTestGateway(t, Config{MaxFrameBytes: 2048, WriteTimeout: time.Second, IdleTimeout: idle})
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	c := g.newConn(t, server)
	hdr := make([]byte, ws.MaxHeaderSize-2)
	frame := clientFrame(ws.OpText, true, []byte(`{"type":"ping"}`))
	go client.Write(append(append([]byte(nil), frame...), frame...))
	if _, _, err := c.readFrame(c.nc, hdr); err != nil {
		t.Fatal(err)
	}
	first := c.readDeadline
	if first == 0 {
		t.Fatal("no read deadline set")
	}
	if _, _, err := c.readFrame(c.nc, hdr); err != nil {
		t.Fatal(err)
	}
	if c.readDeadline != first {
		t.Error("the read deadline moved for a frame read with most of the timeout left")
	}

	c.readDeadline = 0 // as after a long idle: the next frame moves it
	go client.Write(frame[:len(frame)/2])
	start := time.Now()
	_, _, err := c.readFrame(c.nc, hdr)
	if !isTimeout(err) {
		t.Fatalf("readFrame of half a frame = %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed < idle {
		t.Errorf("half a frame cut after %v, sooner than the idle timeout %v", elapsed, idle)
	}
}
