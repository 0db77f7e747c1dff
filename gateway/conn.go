package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

const (
	opText  = ws.OpText
	opPong  = ws.OpPong
	opClose = ws.OpClose
)

// outFrame is one frame waiting in a connection's outbound queue. Payloads
// are shared between connections (a fan-out frame is encoded once) and never
// modified.
type outFrame struct {
	payload []byte
	op      ws.OpCode
	shared  *sharedDeflate // for a fan-out frame: its compressed form, made once for every connection; nil otherwise
}

// conn is one WebSocket connection. No goroutine waits on an idle one: a
// serve goroutine runs only while the poller reports it readable, and a
// write goroutine only while its outbound queue holds frames or it is being
// closed, so an idle connection costs this struct and its socket.
//
// # Lifecycle
//
// A connection is open, then closing, then down. Anything may ask for the
// close, in one of two ways: closeWith queues last frames (a kick, the reply
// to the client's Close) to be written first, and abort drops the queue and
// unblocks a write in progress. Either one sets closing and makes sure the
// write goroutine runs; that goroutine is the one owner of the teardown
// (Gateway.teardown), which it runs once the queue is written or dropped.
//
// Lock order: a hub shard's lock, then the presence registry's, then mu.
// pollMu is taken before mu, never inside it: it serialises the poller's
// registration (add, rearm) with the teardown's removal and close of the
// socket, so that no rearm follows the close while the syscalls run outside
// mu, which fan-out takes.
type conn struct {
	id          uint64
	gw          *Gateway
	nc          net.Conn
	user        string
	platform    string
	class       string
	device      string
	remote      string
	connectedAt time.Time
	deflate     bool      // permessage-deflate was negotiated
	expires     int64     // unix nanoseconds when the token expires
	fd          int       // the socket's descriptor, for the poller
	src         io.Reader // the socket, after any bytes that came with the handshake

	lastRead atomic.Int64 // unix nanoseconds of the last frame read, for the idle sweep
	serving  atomic.Bool  // a serve goroutine is reading the connection
	// readDeadline is the socket's read deadline, unix nanoseconds; the
	// serving goroutine's.
	readDeadline int64

	mu      sync.Mutex
	subs    []string   // presence subscriptions; guarded by mu
	queue   []outFrame // guarded by mu
	queued  int        // bytes in queue; guarded by mu
	writing bool       // a write goroutine is running; guarded by mu
	aborted bool       // abort dropped the queue: the writer drops what it holds too; guarded by mu
	// writeDeadline is the socket's write deadline, unix nanoseconds;
	// guarded by mu.
	writeDeadline int64
	state         connState // guarded by mu

	pollMu sync.Mutex // see Lifecycle
}

// connState is where a connection is in its lifecycle.
type connState uint8

const (
	stateOpen    connState = iota
	stateClosing           // no more frames are queued; the writer tears it down
	stateDown              // torn down: out of the poller, closed, unregistered
)

// isDown reports whether the connection has been torn down.
func (c *conn) isDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateDown
}

// origin names the connection's device, for leaving it out of the fan-out of
// what it did itself.
func (c *conn) origin() router.Device { return router.Device{User: c.user, Device: c.device} }

// Push implements presence.Subscriber.
func (c *conn) Push(frame []byte) { c.enqueue(frame, opText) }

// enqueue adds a frame to the outbound queue and starts the write goroutine
// if none runs. If the queue is over its limits the connection is a slow
// consumer: its queue is dropped and it is closed (the client resyncs when it
// reconnects). It reports whether the frame was queued.
func (c *conn) enqueue(payload []byte, op ws.OpCode) bool {
	return c.enqueueFrame(outFrame{payload: payload, op: op})
}

// enqueueFrame is enqueue of a frame that may carry a shared compressed form.
func (c *conn) enqueueFrame(f outFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.queueLocked(f) {
		return false
	}
	c.startWriterLocked()
	return true
}

// queueLocked appends f to the outbound queue, or closes the connection as
// a slow consumer when the queue is over its limits. It reports whether f
// was queued. Callers hold mu.
func (c *conn) queueLocked(f outFrame) bool {
	if c.state != stateOpen {
		return false
	}
	cfg := &c.gw.cfg
	if len(c.queue) >= cfg.QueueFrames || c.queued+len(f.payload) > cfg.QueueBytes {
		c.abortLocked()
		metrics.SlowConsumers.Inc()
		metrics.Kicks.WithLabelValues(string(protocol.CodeKickSlowClient)).Inc()
		c.gw.log.Info("closing slow consumer", "conn", c.id, "user", c.user, "device", c.device)
		return false
	}
	c.queue = append(c.queue, f)
	c.queued += len(f.payload)
	return true
}

// enqueueDeferred is enqueueFrame without starting the write goroutine:
// it reports whether the frame was queued with none running, in which case
// the caller starts one later (claimWriter). Until then the frame waits;
// any other frame queued meanwhile starts the writer, which writes both.
func (c *conn) enqueueDeferred(f outFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.queueLocked(f) {
		return false
	}
	return !c.writing
}

// claimWriter marks the write goroutine as running, for a caller about to
// run writeLoop, unless one runs already or the connection is down.
func (c *conn) claimWriter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || c.state == stateDown {
		return false
	}
	c.writing = true
	c.gw.workers.Add(1)
	return true
}

// startWriterLocked starts the write goroutine unless it runs or the
// connection is down. Callers hold mu.
func (c *conn) startWriterLocked() {
	if !c.writing && c.state != stateDown {
		c.writing = true
		c.gw.workers.Add(1)
		c.gw.runs.run(c.writeLoop)
	}
}

// closeWith queues the last frames of a connection; the writer tears the
// connection down once they are written. It reports whether it queued them
// (false if the connection was already closing).
func (c *conn) closeWith(last ...outFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return false
	}
	c.queue = append(c.queue, last...)
	c.state = stateClosing
	c.startWriterLocked()
	return true
}

// abort closes the connection at once: it drops the queue, fails a write in
// progress, and has the writer tear the connection down. It never blocks, so
// it may be called under a hub shard lock, and it is idempotent.
func (c *conn) abort() {
	c.mu.Lock()
	c.abortLocked()
	c.mu.Unlock()
}

func (c *conn) abortLocked() {
	if c.state == stateDown {
		return
	}
	c.state = stateClosing
	c.aborted = true
	c.queue, c.queued = nil, 0
	// The writer sets its deadline under mu when it takes a batch: this one,
	// in the past, comes after it and fails the write at once.
	c.nc.SetWriteDeadline(time.Unix(1, 0))
	c.startWriterLocked()
}

// kick queues a kick frame and a WebSocket close frame as the last frames
// and closes the connection once they are written.
func (c *conn) kick(code protocol.Code, msg string) {
	frame := encodeFrame(protocol.TypeKick, "", protocol.Kick{Code: code, Message: msg})
	status := ws.StatusNormalClosure
	switch code {
	case protocol.CodeKickProtocol:
		status = ws.StatusProtocolError
	case protocol.CodeKickShutdown:
		status = ws.StatusGoingAway
	case protocol.CodeKickPolicy, protocol.CodeKickReplaced, protocol.CodeKickAdmin, protocol.CodeKickRevoked, protocol.CodeKickDeactivated:
		status = ws.StatusPolicyViolation
	}
	if c.closeWith(outFrame{payload: frame, op: opText}, outFrame{payload: ws.NewCloseFrameBody(status, string(code)), op: opClose}) {
		metrics.Kicks.WithLabelValues(string(code)).Inc()
		c.gw.log.Debug("kick", "conn", c.id, "user", c.user, "device", c.device, "code", code)
	}
}

// writeLoop writes the outbound queue in batches, one writev per batch,
// until the queue is empty, then releases the writer role (writing); a
// full socket is waited for until the write deadline. If the connection is
// closing, it tears it down after the last frame or at the first failed
// write: it is the teardown's one owner.
func (c *conn) writeLoop() { c.writeLoopFrom(nil) }

// writeBulk is writeLoop for DeliverBulk's writers, which must not wait
// on a client that stopped reading: it would hold up every member after it
// in that writer's share until the write deadline. It writes what the
// socket takes at once; at a full socket it waits while the socket keeps
// taking some (writeBriefly), and a connection whose socket takes nothing
// passes, with the bytes left over, to a write goroutine of its own, which
// waits for it as writeLoop does.
func (c *conn) writeBulk() {
	rest, stalled := c.drain(nil, false)
	if !stalled {
		c.gw.workers.Done()
		return
	}
	c.gw.runs.run(func() { c.writeLoopFrom(rest) })
}

// writeLoopFrom is writeLoop for a connection whose socket did not take
// all of unsent, the bytes of the frames last written.
func (c *conn) writeLoopFrom(unsent []byte) {
	defer c.gw.workers.Done()
	c.drain(unsent, true)
}

// drainScratch is what a drain call builds its writes in: the frame
// headers, the buffers of one writev and the compressed frames. It is
// pooled: allocated per call, it was a twentieth of what the send path
// allocated.
type drainScratch struct {
	headers  []byte
	bufs     net.Buffers
	deflated bytes.Buffer
}

var drainPool = sync.Pool{New: func() any { return new(drainScratch) }}

// put returns d to the pool with the buffers drain grew, holding on to no
// frame, and dropping buffers a large batch made large.
func (d *drainScratch) put(headers []byte, bufs net.Buffers) {
	clear(bufs[:cap(bufs)])
	d.headers, d.bufs = headers[:0], bufs[:0]
	if cap(d.headers) > maxKeptScratch || cap(d.bufs) > maxKeptScratch/16 {
		d.headers, d.bufs = nil, nil
	}
	if d.deflated.Cap() > maxKeptScratch {
		d.deflated = bytes.Buffer{}
	}
	d.deflated.Reset()
	drainPool.Put(d)
}

// maxKeptScratch bounds the bytes a pooled drainScratch keeps.
const maxKeptScratch = 64 << 10

// drain writes unsent, the bytes of a write the socket did not finish, and
// then the queue, until the queue is empty. Without wait it stops at a
// socket that takes nothing more and returns the rest, stalled, still
// holding the writer role.
func (c *conn) drain(unsent []byte, wait bool) (rest []byte, stalled bool) {
	d := drainPool.Get().(*drainScratch)
	headers, bufs, deflated := d.headers, d.bufs, &d.deflated
	defer func() { d.put(headers, bufs) }()
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		if c.aborted {
			unsent = nil
		}
		if len(batch) == 0 && len(unsent) == 0 {
			closing := c.state == stateClosing
			if !closing {
				c.writing = false
			}
			c.mu.Unlock()
			if closing {
				c.gw.teardown(c) // leaves writing set: no writer starts again
			}
			return nil, false
		}
		// A blocked write gives up after 7/8 to all of WriteTimeout: the
		// deadline is moved on only when less than 7/8 of it is left,
		// which saves resetting the socket's timer for every batch. A
		// write that does not wait needs no deadline, but fails at once
		// on one that has passed: one about to pass is cleared.
		now, timeout := time.Now(), c.gw.cfg.WriteTimeout
		switch left := time.Duration(c.writeDeadline - now.UnixNano()); {
		case wait && left < timeout-timeout/8:
			deadline := now.Add(timeout)
			c.writeDeadline = deadline.UnixNano()
			c.nc.SetWriteDeadline(deadline)
		case !wait && c.writeDeadline != 0 && left < bulkPatience:
			c.writeDeadline = 0
			c.nc.SetWriteDeadline(time.Time{})
		}
		c.mu.Unlock()

		headers, bufs = headers[:0], bufs[:0]
		if len(unsent) > 0 {
			bufs = append(bufs, unsent)
			unsent = nil
		}
		var ends []int
		if c.deflate {
			ends = compressBatch(deflated, batch, c.gw.cfg.CompressMin)
		}
		start := 0
		for i, f := range batch {
			payload, rsv := f.payload, byte(0)
			switch {
			case ends != nil && ends[i] >= 0:
				payload, rsv = deflated.Bytes()[start:ends[i]], rsv1
				start = ends[i]
			case c.deflate && f.shared != nil && f.op == opText && len(f.payload) >= c.gw.cfg.CompressMin:
				if z, ok := f.shared.get(f.payload); ok {
					payload, rsv = z, rsv1
				}
			}
			h := len(headers)
			headers = appendHeader(headers, rsv, f.op, len(payload))
			bufs = append(bufs, headers[h:len(headers):len(headers)], payload)
		}
		var err error
		if wait {
			out := bufs // WriteTo consumes its receiver; bufs keeps the capacity
			_, err = out.WriteTo(c.nc)
		} else if rest, err = writeNow(c.nc, bufs); err == nil && rest != nil {
			rest, err = c.writeBriefly(rest)
		}
		if err != nil {
			c.mu.Lock()
			aborted := c.aborted // an abort says why where it is decided
			c.mu.Unlock()
			if !aborted {
				c.gw.log.Debug("connection write failed", "conn", c.id, "user", c.user, "device", c.device, "err", err)
			}
			c.gw.teardown(c)
			return nil, false
		}
		metrics.FramesOut.Add(float64(len(batch)))
		if rest != nil {
			return rest, true
		}
	}
}

// errAborted fails a write that abort stopped.
var errAborted = errors.New("gateway: connection aborted")

// bulkPatience is how long a bulk writer waits for a full socket to take
// anything: a client that reads, however far behind (as every client is in
// a burst), takes some within it, and waiting for it paces the fan-out to
// its readers; a client that stopped reading takes nothing.
const bulkPatience = 100 * time.Millisecond

// writeBriefly writes b for as long as the socket keeps taking some of it
// within bulkPatience, and returns what it did not take.
func (c *conn) writeBriefly(b []byte) ([]byte, error) {
	for len(b) > 0 {
		deadline := time.Now().Add(bulkPatience)
		c.mu.Lock()
		if c.aborted { // its deadline, in the past, stays
			c.mu.Unlock()
			return nil, errAborted
		}
		c.writeDeadline = deadline.UnixNano() // the next writer moves it on
		c.nc.SetWriteDeadline(deadline)
		c.mu.Unlock()
		n, err := c.nc.Write(b)
		b = b[n:]
		if err != nil && !isTimeout(err) {
			return nil, err
		}
		if err != nil && n == 0 {
			return b, nil // the socket took nothing within bulkPatience
		}
	}
	return nil, nil
}

// rsv1 is the RSV bits value (ws.Header.Rsv) of a compressed message.
const rsv1 = 0b100

// appendHeader appends an unmasked, final server frame header.
func appendHeader(b []byte, rsv byte, op ws.OpCode, n int) []byte {
	first := 0x80 | rsv<<4 | byte(op)
	switch {
	case n < 126:
		return append(b, first, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, first, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(n))
	}
}

var (
	errProtocol     = errors.New("gateway: websocket protocol violation")
	errClientClosed = errors.New("gateway: client sent close")
)

// readFrame reads the next frame and, for a text message, any continuation
// frames, enforcing the size limit. It returns the unmasked payload of a text
// message, or nil after answering a control frame on its own. Messages over
// the limit are discarded, up to discardLimit bytes, and reported with
// tooLarge so the connection survives. After the client's Close frame it
// queues the reply, lets the writer end the connection, and returns
// errClientClosed.
func (c *conn) readFrame(r io.Reader, hdr []byte) (payload []byte, tooLarge bool, err error) {
	limit := int64(c.gw.cfg.MaxFrameBytes)
	msg := []byte{} // not nil: an empty message is still a message
	var total int64
	fragmented, compressed := false, false
	for {
		c.moveReadDeadline()
		h, err := ws.ReadHeaderBuffer(r, hdr)
		if err != nil {
			return nil, false, err
		}
		compressedFrame := h.Rsv == rsv1 && c.deflate && h.OpCode == ws.OpText
		if !h.Masked || (h.Rsv != 0 && !compressedFrame) {
			return nil, false, errProtocol
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > 125 {
				return nil, false, errProtocol
			}
			body := make([]byte, h.Length)
			if _, err := io.ReadFull(r, body); err != nil {
				return nil, false, err
			}
			ws.Cipher(body, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				c.enqueue(body, opPong)
			case ws.OpClose:
				// Answer with a close frame echoing the status, as the
				// protocol requires; the caller then ends the connection.
				code, _ := ws.ParseCloseFrameData(body)
				if code == 0 {
					code = ws.StatusNormalClosure
				}
				c.closeWith(outFrame{payload: ws.NewCloseFrameBody(code, ""), op: opClose})
				return nil, false, errClientClosed
			}
			if !fragmented {
				return nil, false, nil
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpContinuation && !fragmented,
			h.OpCode != ws.OpContinuation && fragmented,
			h.OpCode == ws.OpBinary:
			return nil, false, errProtocol
		}
		compressed = compressed || compressedFrame
		total += h.Length
		if total > limit || tooLarge {
			tooLarge = true
			msg = nil
			if total > discardLimit {
				return nil, true, errProtocol
			}
			if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
				return nil, true, err
			}
		} else {
			start := len(msg)
			msg = append(msg, make([]byte, h.Length)...)
			if _, err := io.ReadFull(r, msg[start:]); err != nil {
				return nil, false, err
			}
			ws.Cipher(msg[start:], h.Mask, 0)
		}
		if h.Fin {
			if compressed && !tooLarge {
				msg, tooLarge, err = decompress(msg, int(limit))
				if err != nil {
					return nil, false, errProtocol
				}
			}
			return msg, tooLarge, nil
		}
		fragmented = true
	}
}

// moveReadDeadline keeps the socket's read deadline at least IdleTimeout
// ahead, so that a frame stalled halfway is cut after IdleTimeout to 9/8 of
// it. It moves the deadline on only when less than IdleTimeout is left,
// to 9/8 of it ahead: resetting the socket's timer before every frame was
// 1.5 % of the server's CPU with one message in flight per sender.
func (c *conn) moveReadDeadline() {
	now, timeout := time.Now(), c.gw.cfg.IdleTimeout
	if time.Duration(c.readDeadline-now.UnixNano()) >= timeout {
		return
	}
	deadline := now.Add(timeout + timeout/8)
	c.readDeadline = deadline.UnixNano()
	c.nc.SetReadDeadline(deadline)
}

// discardLimit is the largest oversize message the gateway reads and throws
// away to keep the connection; beyond it the connection is closed.
const discardLimit = 4 << 20

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
