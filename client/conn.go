package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/protocol"
)

// Buffer sizes of a connection. Buffers that grew for one large frame are
// released afterwards so that thousands of idle connections stay small.
const (
	readBufferSize = 4 << 10
	keepBufferSize = 64 << 10
)

// pingFrame is the heartbeat. Its id is not one the client generates for
// requests (those are decimal), so the pong matches no waiting request.
var pingFrame = []byte(`{"type":"ping","id":"hb"}`)

// conn is one WebSocket connection. Its reader goroutine owns the read side;
// any goroutine may write.
type conn struct {
	nc    net.Conn
	rd    wsutil.Reader // reads frames from a bufio.Reader over nc; reader goroutine only
	buf   []byte        // payload of the frame being decoded; reader goroutine only
	hello protocol.Hello

	frames atomic.Uint64 // frames received; the manager watches it for liveness

	wmu     sync.Mutex
	wbuf    bytes.Buffer           // guarded by wmu: frames queued for the writer, each whole
	spare   bytes.Buffer           // guarded by wmu: the buffer being written, kept for reuse
	writing bool                   // guarded by wmu: a goroutine is writing the queued frames
	whdr    [ws.MaxHeaderSize]byte // guarded by wmu: scratch space for a frame header

	// done is closed when the reader goroutine has exited; cause and kick
	// are final from then on.
	done  chan struct{}
	mu    sync.Mutex
	cause error          // guarded by mu: why the connection ended, first reason wins
	kick  *protocol.Kick // guarded by mu: the kick frame received, if any
}

// tokenError is the dial error for an upgrade refused with HTTP 401, or 403
// for a deactivated user.
type tokenError struct {
	err *protocol.Error
}

func (e *tokenError) Error() string { return "upgrade refused: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// dial opens a connection and reads the server's hello.
func dial(ctx context.Context, o *Options, token string) (*conn, error) {
	var rejected *protocol.Error
	d := ws.Dialer{
		Timeout: o.DialTimeout,
		Header:  ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
		NetDial: o.NetDial,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				rejected = readErrorBody(resp)
			}
		},
	}
	if d.NetDial == nil && o.LocalAddr != nil {
		nd := net.Dialer{LocalAddr: o.LocalAddr}
		d.NetDial = nd.DialContext
	}
	nc, br, _, err := d.Dial(ctx, o.URL)
	if rejected != nil {
		return nil, &tokenError{err: rejected}
	}
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, readBufferSize)
	}
	cn := &conn{nc: nc, done: make(chan struct{})}
	cn.rd = wsutil.Reader{
		Source:         br,
		State:          ws.StateClientSide,
		MaxFrameSize:   o.MaxFrameSize,
		MaxMessageSize: o.MaxFrameSize,
		OnIntermediate: cn.control,
	}
	if err := cn.readHello(o.DialTimeout); err != nil {
		nc.Close()
		return nil, err
	}
	return cn, nil
}

// readErrorBody decodes the {"error":{...}} body of a refused upgrade; resp
// holds the whole HTTP response. A body that does not decode counts as
// unauthenticated.
func readErrorBody(resp io.Reader) *protocol.Error {
	fallback := &protocol.Error{Code: protocol.CodeUnauthenticated, Message: "upgrade refused"}
	res, err := http.ReadResponse(bufio.NewReader(resp), nil)
	if err != nil {
		return fallback
	}
	defer res.Body.Close()
	var body protocol.ErrorBody
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&body); err != nil || body.Error == nil {
		return fallback
	}
	return body.Error
}

// readHello reads the first frame, which must be a hello, within timeout.
func (cn *conn) readHello(timeout time.Duration) error {
	if err := cn.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	p, err := cn.readFrame()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	var f struct {
		Type string         `json:"type"`
		Data protocol.Hello `json:"data"`
	}
	if err := json.Unmarshal(p, &f); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if f.Type != protocol.TypeHello {
		return fmt.Errorf("read hello: got a %q frame first", f.Type)
	}
	cn.hello = f.Data
	if err := cn.nc.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	return nil
}

// readFrame returns the payload of the next data frame. It answers control
// frames on the way. The payload is valid until the next call.
func (cn *conn) readFrame() ([]byte, error) {
	for {
		hdr, err := cn.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			if err := cn.control(hdr, &cn.rd); err != nil {
				return nil, err
			}
			continue
		}
		if cap(cn.buf) > keepBufferSize {
			cn.buf = nil
		}
		buf := slices.Grow(cn.buf[:0], int(min(hdr.Length, keepBufferSize)))
		for {
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, 512)
			}
			n, err := cn.rd.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		cn.buf = buf
		cn.frames.Add(1)
		return buf, nil
	}
}

// control handles a control frame whose payload r holds: pings are answered,
// pongs ignored, and a close frame is echoed and ends the connection.
func (cn *conn) control(hdr ws.Header, r io.Reader) error {
	var p [125]byte // RFC 6455: control payloads are at most 125 bytes
	n, err := io.ReadFull(r, p[:hdr.Length])
	if err != nil {
		return err
	}
	cn.frames.Add(1)
	switch hdr.OpCode {
	case ws.OpPing:
		return cn.write(ws.OpPong, p[:n], false)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p[:n])
		_ = cn.write(ws.OpClose, ws.NewCloseFrameBody(code, ""), false) // best effort: the peer is leaving anyway
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil
}

// writeText writes one text frame with payload p, which it does not modify.
func (cn *conn) writeText(p []byte) error {
	return cn.write(ws.OpText, p, false)
}

// write queues a frame and, unless another goroutine is writing already
// (which then writes this frame too), writes the queue. A frame left to
// another writer returns nil: a failed write fails cn, which every waiter
// watches. With gather, the writer first lets other runnable goroutines
// queue theirs: requests woken together, as by one read of several acks,
// then go out in one system call instead of one each.
func (cn *conn) write(op ws.OpCode, p []byte, gather bool) error {
	cn.wmu.Lock()
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	if err := ws.WriteHeaderBuffer(&cn.wbuf, h, cn.whdr[:]); err != nil {
		cn.wmu.Unlock()
		return err
	}
	start := cn.wbuf.Len()
	cn.wbuf.Write(p)
	ws.Cipher(cn.wbuf.Bytes()[start:], h.Mask, 0)
	if cn.writing {
		cn.wmu.Unlock()
		return nil
	}
	cn.writing = true
	cn.wmu.Unlock()
	if gather {
		runtime.Gosched()
	}
	for {
		cn.wmu.Lock()
		if cn.wbuf.Len() == 0 {
			cn.writing = false
			cn.wmu.Unlock()
			return nil
		}
		cn.wbuf, cn.spare = cn.spare, cn.wbuf
		cn.wbuf.Reset()
		out := cn.spare.Bytes()
		cn.wmu.Unlock()
		_, err := cn.nc.Write(out)
		cn.wmu.Lock()
		if cn.spare.Cap() > keepBufferSize {
			cn.spare = bytes.Buffer{}
		}
		if err != nil {
			cn.wbuf.Reset()
			cn.writing = false
		}
		cn.wmu.Unlock()
		if err != nil {
			cn.fail(err)
			return err
		}
	}
}

// fail records why the connection ends, unless a reason is already known,
// and closes the socket so that the reader and any blocked writer return.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.cause == nil {
		cn.cause = err
	}
	cn.mu.Unlock()
	cn.nc.Close()
}

// kicked records a kick frame and ends the connection with it as the cause.
func (cn *conn) kicked(k protocol.Kick) {
	cn.mu.Lock()
	cn.kick = &k
	cn.mu.Unlock()
	cn.fail(&protocol.Error{Code: k.Code, Message: k.Message})
}

// result returns the kick, if any, and why the connection ended. It may only
// be called after done is closed.
func (cn *conn) result() (*protocol.Kick, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.kick, cn.cause
}

// tokenRejection returns the server's reason if err is an upgrade refused
// with HTTP 401 or 403.
func tokenRejection(err error) (*protocol.Error, bool) {
	var te *tokenError
	if errors.As(err, &te) {
		return te.err, true
	}
	return nil, false
}
