// Package gateway is Parley's WebSocket gateway: it authenticates devices at
// upgrade, applies the login policy, reads and answers client frames, and
// writes server frames through a bounded per-connection queue.
//
// # Concurrency model
//
// No goroutine waits on an idle connection. After the upgrade its socket is
// registered one-shot in an epoll instance watched by one poller goroutine;
// when the socket becomes readable a short-lived serve goroutine reads and
// answers everything buffered, then rearms it. Writes go through the
// connection's bounded outbound queue; a write goroutine runs only while the
// queue holds frames and writes them in batches with one writev. An idle
// connection therefore costs its socket and a small struct (see
// docs/benchmarks.md). Sends are handed to the message service without
// waiting for the commit: the ack is queued by the message service's
// delivery goroutine. The write goroutine is the one owner of a
// connection's teardown (see conn).
//
// # Slow consumers
//
// A connection whose queue exceeds QueueFrames frames or QueueBytes bytes is
// closed at once and counted in parley_gateway_slow_consumers_total; its
// client reconnects and catches up through sync, so nothing is lost.
//
// # Lifecycle
//
// New returns a Gateway ready to serve; Shutdown refuses new connections
// (an upgrade already past the check is counted and waited for), sends
// every connection a shutdown kick, and waits for them to close.
package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/presence"
	"github.com/parleyim/parley/protocol"
)

// Config configures a Gateway. Zero values take the defaults shown.
type Config struct {
	Heartbeat     time.Duration // how often clients should ping: 25s
	IdleTimeout   time.Duration // close a connection silent this long: 60s
	WriteTimeout  time.Duration // give up on a blocked write after: 10s
	MaxFrameBytes int           // largest client message: 64 KiB
	QueueFrames   int           // outbound queue limit in frames: 1024
	QueueBytes    int           // outbound queue limit in bytes: 4 MiB
	MaxSubscribe  int           // presence subscriptions per connection: 1000
	Compression   bool          // offer permessage-deflate to clients
	CompressMin   int           // compress server messages at least this long: 512
}

func (c *Config) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 25 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.QueueFrames <= 0 {
		c.QueueFrames = 1024
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 4 << 20
	}
	if c.MaxSubscribe <= 0 {
		c.MaxSubscribe = 1000
	}
	if c.CompressMin <= 0 {
		c.CompressMin = 512
	}
}

// Authenticator verifies device tokens.
type Authenticator interface {
	Verify(token string) (account.Claims, error)
}

// Gateway serves WebSocket connections at /v1/ws. It is an http.Handler.
type Gateway struct {
	cfg      Config
	auth     Authenticator
	hub      *Hub
	messages *message.Service
	presence *presence.Registry
	log      *slog.Logger

	ctx     context.Context // cancelled by Shutdown, for requests in flight
	cancel  context.CancelFunc
	nextID  atomic.Uint64
	poller  *poller
	workers sync.WaitGroup // serve, write and sweep goroutines
	runs    *pool          // the goroutines serve and write run on

	// gate orders upgrades with Shutdown: an upgrade is counted in conns
	// under it unless closing is set, so Shutdown's wait sees every upgrade
	// that got past the check.
	gate      sync.Mutex
	closing   atomic.Bool    // Shutdown began; set under gate
	conns     sync.WaitGroup // upgrades in flight and connections until their teardown; Add under gate
	stopSweep chan struct{}
	shutdown  sync.Once

	afterEnter func() // test hook: runs after an upgrade is counted

	calls CallFunc // serves call frames; nil until ServeCalls
}

// CallFunc serves a REST request made over a connection by user, as the
// same request with the user's token would be served: the status and body
// of a success, or the error.
type CallFunc func(ctx context.Context, user string, call protocol.Call) (protocol.CallResult, error)

// ServeCalls makes call frames go to fn. The server calls it once, before it
// accepts connections.
func (g *Gateway) ServeCalls(fn CallFunc) { g.calls = fn }

// New returns a Gateway.
func New(cfg Config, auth Authenticator, hub *Hub, messages *message.Service, pres *presence.Registry, log *slog.Logger) (*Gateway, error) {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{cfg: cfg, auth: auth, hub: hub, messages: messages, presence: pres, log: log, ctx: ctx, cancel: cancel, stopSweep: make(chan struct{}), runs: newPool(maxKeptGoroutines)}
	var err error
	if g.poller, err = newPoller(g.dispatch); err != nil {
		cancel()
		return nil, err
	}
	g.workers.Add(1)
	go g.sweep()
	return g, nil
}

// ServeHTTP authenticates and upgrades a connection. The token comes from
// "Authorization: Bearer" or, for browsers, the "token" query parameter.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.enter() {
		writeHTTPError(w, protocol.Errorf(protocol.CodeUnavailable, "server is shutting down"))
		return
	}
	registered := false
	defer func() {
		if !registered {
			g.conns.Done()
		}
	}()
	if g.afterEnter != nil {
		g.afterEnter()
	}
	token := account.BearerToken(r.Header.Get("Authorization"))
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	if token == "" {
		writeHTTPError(w, protocol.Errorf(protocol.CodeUnauthenticated, "a token is required"))
		return
	}
	claims, err := g.auth.Verify(token)
	if err != nil {
		writeHTTPError(w, protocol.AsError(err))
		return
	}
	var upgrader ws.HTTPUpgrader
	var ext wsflate.Extension
	if g.cfg.Compression {
		ext.Parameters = wsflate.DefaultParameters // no context takeover either way
		upgrader.Negotiate = ext.Negotiate
	}
	nc, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		// The upgrader has hijacked the connection and written the error
		// response; the connection is ours to close.
		g.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	c := &conn{
		id:          g.nextID.Add(1),
		gw:          g,
		nc:          nc,
		user:        claims.User,
		platform:    claims.Platform,
		class:       account.PlatformClass(claims.Platform),
		device:      claims.Device,
		remote:      r.RemoteAddr,
		connectedAt: time.Now().UTC(),
		expires:     claims.Expires.UnixNano(),
	}
	_, c.deflate = ext.Accepted()
	c.src = c.nc
	if len(early) > 0 {
		c.src = &prefixReader{prefix: early, r: c.nc}
	}
	if c.fd, err = socketFD(nc); err != nil {
		g.log.Error("websocket connection without a socket", "err", err)
		nc.Close()
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	registered = true // from here the teardown counts the connection out
	g.register(c)
	c.pollMu.Lock()
	if !c.isDown() {
		err = g.poller.add(c)
	}
	c.pollMu.Unlock()
	if err != nil {
		g.log.Error("watch websocket connection", "err", err)
		c.abort()
		return
	}
	if len(early) > 0 {
		g.dispatch(c) // bytes that came with the handshake will not wake the poller
	}
}

// enter counts an upgrade in conns unless Shutdown began, and reports
// whether it did.
func (g *Gateway) enter() bool {
	g.gate.Lock()
	defer g.gate.Unlock()
	if g.closing.Load() {
		return false
	}
	g.conns.Add(1)
	return true
}

func writeHTTPError(w http.ResponseWriter, e *protocol.Error) {
	metrics.Errors.WithLabelValues(string(e.Code)).Inc()
	e.WriteHTTP(w)
}

// register adds a new connection to the hub, applying the login policy, and
// queues its hello.
func (g *Gateway) register(c *conn) {
	victims, codes := g.hub.add(c)
	for i, v := range victims {
		v.kick(codes[i], kickMessage(codes[i]))
	}
	g.presence.Connected(c.user)
	metrics.Connections.Inc()
	g.log.Debug("connection opened", "conn", c.id, "user", c.user, "device", c.device, "platform", c.platform, "remote", c.remote)
	c.enqueue(encodeFrame(protocol.TypeHello, "", protocol.Hello{
		Protocol:    protocol.Version,
		User:        c.user,
		Platform:    c.platform,
		Device:      c.device,
		HeartbeatMS: g.cfg.Heartbeat.Milliseconds(),
		ServerTime:  time.Now().UnixMilli(),
	}), opText)
	if g.closing.Load() {
		c.kick(protocol.CodeKickShutdown, kickMessage(protocol.CodeKickShutdown))
	}
}

// maxKeptGoroutines is how many goroutines the gateway keeps for serving
// and writing connections (see pool).
const maxKeptGoroutines = 256

// dispatch serves a connection that became readable, on a goroutine of its
// own.
func (g *Gateway) dispatch(c *conn) {
	g.workers.Add(1)
	g.runs.run(func() { g.serve(c) })
}

// serve reads and answers every frame that has arrived on c, then rearms the
// poller and returns, so that an idle connection holds no goroutine. At most
// one serve runs per connection: the poller's registration is one-shot, and
// the serving flag guards against stray events.
func (g *Gateway) serve(c *conn) {
	defer g.workers.Done()
	if !c.serving.CompareAndSwap(false, true) {
		return
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.src)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	hdr := make([]byte, ws.MaxHeaderSize-2)
	for {
		payload, tooLarge, err := c.readFrame(br, hdr)
		switch {
		case isTimeout(err):
			c.kick(protocol.CodeKickIdle, kickMessage(protocol.CodeKickIdle))
			return
		case err == errProtocol:
			c.kick(protocol.CodeKickProtocol, "websocket protocol violation")
			return
		case err == errClientClosed:
			g.log.Debug("client closed the connection", "conn", c.id, "user", c.user, "device", c.device)
			return
		case err != nil:
			// The teardown's log line cannot say why (a field for it would
			// cost every idle connection); this one does.
			g.log.Debug("connection read failed", "conn", c.id, "user", c.user, "device", c.device, "err", err)
			c.abort()
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		switch {
		case tooLarge:
			c.sendError("", protocol.Errorf(protocol.CodeFrameTooLarge, "frame is larger than %d bytes", g.cfg.MaxFrameBytes))
		case payload != nil:
			g.handle(c, payload)
		}
		if br.Buffered() == 0 {
			break
		}
	}
	c.serving.Store(false)
	c.pollMu.Lock()
	var err error
	if !c.isDown() {
		err = g.poller.rearm(c)
	}
	c.pollMu.Unlock()
	if err != nil {
		g.log.Warn("rearm connection", "user", c.user, "err", err)
		c.abort()
	}
}

// readers are read buffers lent to serve while a connection has data.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// teardown ends a connection: it stops polling it, closes the socket, and
// unregisters it. Only the connection's write goroutine calls it, once (see
// conn); everything else asks for it with closeWith or abort.
func (g *Gateway) teardown(c *conn) {
	c.mu.Lock()
	c.state = stateDown
	c.queue, c.queued = nil, 0
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	// Out of the poller before the close, for the descriptor number may be
	// reused; pollMu keeps a rearm from slipping in between.
	c.pollMu.Lock()
	g.poller.remove(c)
	c.nc.Close()
	c.pollMu.Unlock()

	g.hub.remove(c)
	g.presence.Unsubscribe(c, subs)
	g.presence.Disconnected(c.user)
	metrics.Connections.Dec()
	g.log.Debug("connection closed", "conn", c.id, "user", c.user, "device", c.device)
	g.conns.Done()
}

// sweep kicks connections that have sent nothing for IdleTimeout, and those
// whose token expired (the client must reconnect with a fresh token). It
// runs every quarter of the timeout (at most every second) until Shutdown.
func (g *Gateway) sweep() {
	defer g.workers.Done()
	t := time.NewTicker(min(g.cfg.IdleTimeout/4, time.Second))
	defer t.Stop()
	var stale []*conn
	for {
		select {
		case <-g.stopSweep:
			return
		case now := <-t.C:
			stale = g.hub.appendStale(stale[:0], now.Add(-g.cfg.IdleTimeout).UnixNano(), now.UnixNano())
			for _, c := range stale {
				if c.expires < now.UnixNano() {
					c.kick(protocol.CodeKickExpired, kickMessage(protocol.CodeKickExpired))
				} else {
					c.kick(protocol.CodeKickIdle, kickMessage(protocol.CodeKickIdle))
				}
			}
			clear(stale)
		}
	}
}

// prefixReader returns bytes that arrived with the handshake before reading
// the socket.
type prefixReader struct {
	prefix []byte
	r      io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// send hands a send frame's message to the message service; the ack, or the
// error, answers request id.
func (g *Gateway) send(c *conn, id string, s *protocol.Send) {
	g.messages.SendAsync(g.ctx, message.SendRequest{
		From: c.user, To: s.To, Conversation: s.Conversation, ClientID: s.ClientID,
		ContentType: s.ContentType, Content: s.Content, Origin: c.origin(),
	}, func(ack protocol.Ack, err error) {
		if err != nil {
			c.sendError(id, err)
			return
		}
		c.enqueue(protocol.AppendAckFrame(nil, id, &ack), opText)
	})
}

// handle answers one client frame.
func (g *Gateway) handle(c *conn, payload []byte) {
	if !utf8.Valid(payload) {
		c.sendError("", protocol.Errorf(protocol.CodeInvalidUTF8, "frame is not valid UTF-8"))
		return
	}
	if id, sf, ok := protocol.ParseSendFrame(payload); ok {
		// The hot frame, as the SDKs write it. Anything unusual takes the
		// general path below, which also words the errors.
		metrics.FramesIn.WithLabelValues(protocol.TypeSend).Inc()
		g.send(c, id, &sf)
		return
	}
	var f protocol.Frame
	if err := json.Unmarshal(payload, &f); err != nil || f.Type == "" {
		c.sendError("", protocol.Errorf(protocol.CodeBadFrame, "frame must be a JSON object with a type"))
		return
	}
	metrics.FramesIn.WithLabelValues(frameLabel(f.Type)).Inc()
	decode := func(v any) bool {
		if len(f.Data) == 0 {
			return true
		}
		if err := json.Unmarshal(f.Data, v); err != nil {
			c.sendError(f.ID, protocol.Errorf(protocol.CodeBadFrame, "data of a %s frame does not decode: %v", f.Type, err))
			return false
		}
		return true
	}
	ctx := g.ctx
	switch f.Type {
	case protocol.TypeSend:
		var s protocol.Send
		if decode(&s) {
			g.send(c, f.ID, &s)
		}
	case protocol.TypePull:
		var p protocol.Pull
		if decode(&p) {
			res, err := g.messages.Pull(ctx, c.user, p)
			c.reply(f.ID, protocol.TypeMessages, res, err)
		}
	case protocol.TypeConversations:
		var q protocol.ConversationsRequest
		if decode(&q) {
			res, err := g.messages.Conversations(ctx, c.user, q)
			c.reply(f.ID, protocol.TypeConversations, res, err)
		}
	case protocol.TypeRead:
		var rd protocol.Read
		if decode(&rd) {
			res, err := g.messages.MarkRead(ctx, c.user, rd, c.origin())
			c.reply(f.ID, protocol.TypeOK, res, err)
		}
	case protocol.TypeClear:
		var cl protocol.Clear
		if decode(&cl) {
			res, err := g.messages.Clear(ctx, c.user, cl.Conversation, c.origin())
			c.reply(f.ID, protocol.TypeOK, res, err)
		}
	case protocol.TypeSubscribe:
		var s protocol.Subscribe
		if decode(&s) {
			res, err := g.subscribe(c, s.Users)
			c.reply(f.ID, protocol.TypeOK, res, err)
		}
	case protocol.TypeUnsubscribe:
		var s protocol.Subscribe
		if decode(&s) {
			g.presence.Unsubscribe(c, s.Users)
			c.mu.Lock()
			c.subs = removeAll(c.subs, s.Users)
			c.mu.Unlock()
			c.reply(f.ID, protocol.TypeOK, nil, nil)
		}
	case protocol.TypeCall:
		var call protocol.Call
		if decode(&call) {
			if g.calls == nil {
				c.sendError(f.ID, protocol.Errorf(protocol.CodeDisabled, "calls are not served here"))
				return
			}
			res, err := g.calls(ctx, c.user, call)
			c.reply(f.ID, protocol.TypeResult, res, err)
		}
	case protocol.TypePing:
		c.reply(f.ID, protocol.TypePong, protocol.Pong{ServerTime: time.Now().UnixMilli()}, nil)
	default:
		c.sendError(f.ID, protocol.Errorf(protocol.CodeUnknownType, "unknown frame type %q", f.Type))
	}
}

// MaxSubscribeBatch is the most users one presence.subscribe frame may
// name: each unknown one costs a store read.
const MaxSubscribeBatch = 100

func (g *Gateway) subscribe(c *conn, users []string) (protocol.PresenceList, error) {
	if len(users) > MaxSubscribeBatch {
		return protocol.PresenceList{}, protocol.Errorf(protocol.CodeInvalidArgument, "at most %d users per presence.subscribe", MaxSubscribeBatch)
	}
	for _, u := range users {
		if !account.ValidUserID(u) {
			return protocol.PresenceList{}, protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a user id", u)
		}
	}
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return protocol.PresenceList{}, protocol.Errorf(protocol.CodeUnavailable, "the connection is closing")
	}
	fresh := removeAll(users, c.subs)
	if len(c.subs)+len(fresh) > g.cfg.MaxSubscribe {
		c.mu.Unlock()
		return protocol.PresenceList{}, protocol.Errorf(protocol.CodeInvalidArgument, "at most %d presence subscriptions per connection", g.cfg.MaxSubscribe)
	}
	c.subs = append(c.subs, fresh...)
	c.mu.Unlock()
	list := g.presence.Subscribe(g.ctx, c, users)
	// A teardown that ran meanwhile may have unsubscribed c.subs before
	// Subscribe added c: undo it. The teardown sets closing before it takes
	// c.subs, so a connection still open here will unsubscribe them itself.
	c.mu.Lock()
	open := c.state == stateOpen
	c.mu.Unlock()
	if !open {
		g.presence.Unsubscribe(c, fresh)
	}
	return protocol.PresenceList{Presence: list}, nil
}

// removeAll returns list without the elements of drop, deduplicated.
func removeAll(list, drop []string) []string {
	skip := make(map[string]bool, len(drop)+len(list))
	for _, d := range drop {
		skip[d] = true
	}
	var out []string
	for _, u := range list {
		if !skip[u] {
			skip[u] = true
			out = append(out, u)
		}
	}
	return out
}

// knownTypes bounds the frames_in metric's label values.
var knownTypes = map[string]bool{
	protocol.TypeSend: true, protocol.TypePull: true, protocol.TypeConversations: true, protocol.TypeRead: true,
	protocol.TypeClear: true, protocol.TypeSubscribe: true, protocol.TypeUnsubscribe: true, protocol.TypePing: true,
	protocol.TypeCall: true,
}

func frameLabel(t string) string {
	if knownTypes[t] {
		return t
	}
	return "unknown"
}

// reply queues the reply to request id: a frame of type typ with data, or an
// error frame if err is not nil.
func (c *conn) reply(id, typ string, data any, err error) {
	if err != nil {
		c.sendError(id, err)
		return
	}
	c.enqueue(encodeFrame(typ, id, data), opText)
}

func (c *conn) sendError(id string, err error) {
	e := protocol.AsError(err)
	if e.Code == protocol.CodeInternal {
		c.gw.log.Error("request failed", "user", c.user, "err", err)
	}
	c.gw.log.Debug("request refused", "conn", c.id, "user", c.user, "device", c.device, "id", id, "code", e.Code)
	metrics.Errors.WithLabelValues(string(e.Code)).Inc()
	c.enqueue(encodeFrame(protocol.TypeError, id, nil, e), opText)
}

// encodeFrame encodes a frame; data may be nil. It cannot fail for the
// payload types of package protocol.
func encodeFrame(typ, id string, data any, e ...*protocol.Error) []byte {
	f := struct {
		Type  string          `json:"type"`
		ID    string          `json:"id,omitempty"`
		Data  any             `json:"data,omitempty"`
		Error *protocol.Error `json:"error,omitempty"`
	}{Type: typ, ID: id, Data: data}
	if len(e) > 0 {
		f.Error = e[0]
	}
	b, err := protocol.Marshal(f)
	if err != nil {
		panic(fmt.Sprintf("gateway: encode %s frame: %v", typ, err))
	}
	return b
}

func kickMessage(code protocol.Code) string {
	switch code {
	case protocol.CodeKickReplaced:
		return "the same device connected again"
	case protocol.CodeKickPolicy:
		return "another device signed in under the login policy"
	case protocol.CodeKickAdmin:
		return "the device was forced offline"
	case protocol.CodeKickIdle:
		return "no heartbeat received in time"
	case protocol.CodeKickShutdown:
		return "the server is shutting down; reconnect shortly"
	case protocol.CodeKickRevoked:
		return "the token was revoked"
	case protocol.CodeKickExpired:
		return "the token expired; reconnect with a new one"
	case protocol.CodeKickDeactivated:
		return "the user was deactivated"
	default:
		return string(code)
	}
}

// Hub returns the gateway's connection registry.
func (g *Gateway) Hub() *Hub { return g.hub }

// KickDevice closes a user's connections on device (all devices if empty)
// with code, returning how many it closed.
func (g *Gateway) KickDevice(user, device string, code protocol.Code) int {
	return g.hub.Kick(user, device, code, kickMessage(code))
}

// Shutdown refuses new connections, kicks every connection with a shutdown
// frame and waits until they are closed or ctx ends, when it closes the rest.
// It is idempotent.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.shutdown.Do(func() {
		g.gate.Lock()
		g.closing.Store(true)
		g.gate.Unlock()
		for _, c := range g.hub.all() {
			c.kick(protocol.CodeKickShutdown, kickMessage(protocol.CodeKickShutdown))
		}
		done := make(chan struct{})
		go func() { g.conns.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			for _, c := range g.hub.all() {
				c.abort()
			}
			<-done
			err = fmt.Errorf("gateway: shutdown: %w", ctx.Err())
		}
		close(g.stopSweep)
		g.poller.close()
		g.workers.Wait()
		g.runs.close()
		g.cancel()
	})
	return err
}
