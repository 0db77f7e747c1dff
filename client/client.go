package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleyim/parley/protocol"
)

// Client is one device's connection to a Parley server. It is created by
// Dial and must be released with Close. All methods are safe for concurrent
// use.
type Client struct {
	opts    Options
	backoff backoff
	d       *delivery
	stats   counters
	fs      *friendSync // nil unless Options.OnFriendEvent is set

	cidPrefix string        // random per Client, so client message ids never collide across devices
	nextID    atomic.Uint64 // request ids and client message id suffixes
	user      string        // from the first hello; a token's user never changes

	// ctx is cancelled when the client stops for good; stopErr, written
	// before the cancellation, says why.
	ctx       context.Context
	cancel    context.CancelFunc
	stopOnce  sync.Once
	stopErr   error
	closing   chan struct{} // closed by Close; stops the dispatcher
	closeOnce sync.Once
	ready     chan struct{} // closed after the first sync of the conversation list
	wg        sync.WaitGroup

	mu        sync.Mutex
	cn        *conn               // guarded by mu: the connection in service; nil between connections
	connected chan struct{}       // guarded by mu: closed when cn is set
	hello     protocol.Hello      // guarded by mu: from the latest connection
	pending   map[string]*call    // guarded by mu: requests waiting for replies, by request id
	subs      map[string]struct{} // guarded by mu: users whose presence is subscribed

	// Owned by the manager goroutine.
	version int64 // Conversations.Version of the last sync
	synced  bool  // the first sync happened
}

// Dial connects to the server, waits for its hello and for the first sync
// of the conversation list, and returns a running Client. It does not retry:
// if the first connection fails, Dial returns the error, a *protocol.Error
// (found with errors.As) if the server refused the token.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := newClient(o)
	cn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	c.user = cn.hello.User
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.d.dispatch(&c.opts, c.closing)
	}()
	if c.fs != nil {
		c.wg.Add(1)
		go c.fs.run()
	}
	go c.run(cn)
	select {
	case <-c.ready:
		return c, nil
	case <-c.ctx.Done():
		err = c.stopErr
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.Close()
	return nil, fmt.Errorf("client: dial: %w", err)
}

// newClient returns a Client with its state set up and no goroutine
// started; o has its defaults.
func newClient(o Options) *Client {
	var prefix [8]byte
	rand.Read(prefix[:])
	c := &Client{
		opts:      o,
		backoff:   newBackoff(o.BackoffMin, o.BackoffMax),
		cidPrefix: hex.EncodeToString(prefix[:]) + "-",
		closing:   make(chan struct{}),
		ready:     make(chan struct{}),
		connected: make(chan struct{}),
		pending:   make(map[string]*call),
		subs:      make(map[string]struct{}),
	}
	c.d = newDelivery(&c.opts, &c.stats)
	if o.OnFriendEvent != nil {
		c.fs = newFriendSync(c)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Close closes the connection, fails waiting requests with ErrClosed, and
// waits for every goroutine of the client to exit. Queued events not yet
// handled are discarded. It is idempotent, and must not be called from a
// handler, since it waits for the handler goroutine.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.stop(ErrClosed)
		close(c.closing)
	})
	c.wg.Wait()
	return nil
}

// Done returns a channel closed when the client stops for good: Close, a
// kick that forbids reconnecting, or a token refused at reconnection.
func (c *Client) Done() <-chan struct{} {
	return c.ctx.Done()
}

// Err returns nil while the client runs, and then why it stopped: ErrClosed,
// or the *protocol.Error of the kick or token refusal.
func (c *Client) Err() error {
	select {
	case <-c.ctx.Done():
		return c.stopErr
	default:
		return nil
	}
}

// User returns the id of the user the client is connected as.
func (c *Client) User() string {
	return c.user
}

// Hello returns the hello of the latest connection.
func (c *Client) Hello() protocol.Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Positions returns, for every conversation the client knows, the seq of
// the last message delivered to OnMessage (or skipped), for the application
// to store and pass back as Options.Positions.
func (c *Client) Positions() map[string]int64 {
	return c.d.positions()
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Connects:      c.stats.connects.Load(),
		Sends:         c.stats.sends.Load(),
		Retransmits:   c.stats.retransmits.Load(),
		Pulls:         c.stats.pulls.Load(),
		Duplicates:    c.stats.duplicates.Load(),
		Overflows:     c.stats.overflows.Load(),
		DroppedEvents: c.stats.droppedEvents.Load(),
	}
}

// stop ends the client with err, once.
func (c *Client) stop(err error) {
	c.stopOnce.Do(func() {
		c.stopErr = err
		c.cancel()
	})
}

func (c *Client) emit(ev Event) {
	if c.opts.OnEvent != nil {
		c.d.queueItem(item{kind: itemEvent, other: ev})
	}
}

// connect makes one connection attempt.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	token := c.opts.Token
	if c.opts.TokenSource != nil {
		var err error
		if token, err = c.opts.TokenSource(ctx); err != nil {
			return nil, fmt.Errorf("token source: %w", err)
		}
	}
	return dial(ctx, &c.opts, token)
}

// run is the manager goroutine: it serves each connection until it drops,
// then reconnects, until the client stops.
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	attempt := 0
	for {
		if c.serve(cn) {
			attempt = 0
		}
		if c.ctx.Err() != nil {
			return
		}
		kick, cause := cn.result()
		if kick != nil {
			c.emit(Kicked{Kick: *kick})
		}
		c.emit(Disconnected{Err: cause})
		if kick != nil && terminalKick(kick.Code) {
			c.stop(&protocol.Error{Code: kick.Code, Message: kick.Message})
			return
		}
		for cn = nil; cn == nil; {
			attempt++
			delay := c.backoff.delay(attempt)
			c.emit(Reconnecting{Attempt: attempt, Delay: delay, Err: cause})
			if c.sleep(c.ctx, delay) != nil {
				return
			}
			var err error
			cn, err = c.connect(c.ctx)
			if pe, ok := tokenRejection(err); ok {
				c.emit(TokenRejected{Code: pe.Code, Message: pe.Message})
				c.stop(pe)
				return
			}
			cause = err
		}
	}
}

// serve runs the manager's side of one connection: it starts the reader,
// syncs, pulls what is due and sends heartbeats until the connection ends
// or the client stops. It reports whether the connection completed its
// sync, which resets the backoff.
func (c *Client) serve(cn *conn) (synced bool) {
	c.mu.Lock()
	c.cn = cn // published before the reader starts, which unpublishes it on exit
	c.hello = cn.hello
	close(c.connected)
	c.mu.Unlock()
	c.stats.connects.Add(1)
	c.wg.Add(1)
	go c.read(cn)
	c.emit(Connected{Hello: cn.hello})
	if c.fs != nil {
		c.fs.all()
	}

	s := session{c: c, cn: cn, needSync: true, needSubs: c.synced}
	s.loop()
	if c.ctx.Err() != nil {
		_ = cn.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), false) // courtesy; the socket closes next
		cn.fail(c.stopErr)
	}
	<-cn.done
	return s.synced
}

// read is the reader goroutine of cn: it decodes every frame until the
// connection fails, then unpublishes cn.
func (c *Client) read(cn *conn) {
	defer c.wg.Done()
	var f inFrame
	for {
		p, err := cn.readFrame()
		if err == nil {
			err = c.handle(cn, &f, p)
		}
		if err != nil {
			cn.fail(err)
			break
		}
	}
	c.mu.Lock()
	if c.cn == cn {
		c.cn = nil
		c.connected = make(chan struct{})
	}
	c.failSendsLocked(cn)
	c.mu.Unlock()
	close(cn.done)
}

// handle dispatches one incoming frame. An error means the server sent
// something undecodable, and the connection is given up.
func (c *Client) handle(cn *conn, f *inFrame, p []byte) error {
	// The hot frames, as the server writes them, without encoding/json;
	// anything else takes the general path.
	if m, ok := protocol.ParseMessagePush(p); ok {
		c.d.offer(m)
		return nil
	}
	if id, ack, ok := protocol.ParseAckFrame(p); ok {
		c.completeAck(id, ack)
		return nil
	}
	f.reset()
	if err := json.Unmarshal(p, f); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	switch f.Type {
	case protocol.TypeMessage:
		var m protocol.Message
		if err := json.Unmarshal(f.Data, &m); err != nil {
			return fmt.Errorf("decode message: %w", err)
		}
		c.d.offer(m)
	case protocol.TypeReceipt:
		var r protocol.Receipt
		if err := json.Unmarshal(f.Data, &r); err != nil {
			return fmt.Errorf("decode receipt: %w", err)
		}
		if c.opts.OnReceipt != nil {
			c.d.queueItem(item{kind: itemReceipt, other: r})
		}
	case protocol.TypePresence:
		var p protocol.Presence
		if err := json.Unmarshal(f.Data, &p); err != nil {
			return fmt.Errorf("decode presence: %w", err)
		}
		if c.opts.OnPresence != nil {
			c.d.queueItem(item{kind: itemPresence, other: p})
		}
	case protocol.TypeConversation:
		var cv protocol.Conversation
		if err := json.Unmarshal(f.Data, &cv); err != nil {
			return fmt.Errorf("decode conversation: %w", err)
		}
		if c.opts.OnConversation != nil {
			c.d.queueItem(item{kind: itemConversation, other: cv})
		}
	case protocol.TypeChanged:
		var ch protocol.Changed
		if err := json.Unmarshal(f.Data, &ch); err != nil {
			return fmt.Errorf("decode changed: %w", err)
		}
		if c.fs != nil {
			c.fs.changed(ch)
		}
		if c.opts.OnChanged != nil {
			c.d.queueItem(item{kind: itemChanged, other: ch})
		}
	case protocol.TypeKick:
		var k protocol.Kick
		if err := json.Unmarshal(f.Data, &k); err != nil {
			return fmt.Errorf("decode kick: %w", err)
		}
		cn.kicked(k)
	default:
		// Replies; an error frame without an id, or a push type this client
		// does not know, is ignored so that the protocol can grow.
		if f.ID != "" {
			c.complete(f)
		}
	}
	return nil
}

// heartbeat returns the ping interval for a connection.
func (c *Client) heartbeat(h protocol.Hello) time.Duration {
	switch {
	case c.opts.Heartbeat > 0:
		return c.opts.Heartbeat
	case h.HeartbeatMS > 0:
		return time.Duration(h.HeartbeatMS) * time.Millisecond
	}
	return defaultHeartbeat
}
