// Package clienttest provides a fake Parley server for testing clients, in
// the way net/http/httptest does for HTTP. It keeps everything in memory,
// speaks the WebSocket protocol of package protocol and the REST calls a
// load generator needs (create user, mint token, metrics), and has hooks to
// misbehave: drop, duplicate or reorder pushes, lose acks, refuse requests,
// kick, hang up and go silent. It is not the real server and checks little;
// tests of the server itself belong with the server.
//
// All methods are safe for concurrent use. Hooks run on the goroutine
// serving the connection concerned; OnPush hooks are called for one message
// at a time.
package clienttest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
)

// AdminKey is the admin credential the REST endpoints accept.
const AdminKey = "clienttest-admin-key"

// Server is a fake Parley server listening on a loopback port.
type Server struct {
	URL   string // base URL of the REST endpoints, http://127.0.0.1:port
	WSURL string // the WebSocket endpoint, ws://127.0.0.1:port/v1/ws

	tb  testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	users     map[string]string                                                // guarded by mu: nickname by user id
	tokens    map[string]identity                                              // guarded by mu
	convs     map[string]*conv                                                 // guarded by mu
	versions  map[string]int64                                                 // guarded by mu: per-user version counter
	conns     map[*conn]struct{}                                               // guarded by mu
	sends     map[string]int                                                   // guarded by mu: send frames received per client id
	acks      map[string]protocol.Ack                                          // guarded by mu: ack per committed client id
	gate      chan struct{}                                                    // guarded by mu: upgrades wait while non-nil
	refuse    int                                                              // guarded by mu: HTTP status refusing upgrades, 0 to accept
	heartbeat int64                                                            // guarded by mu: HeartbeatMS of hello
	connects  int                                                              // guarded by mu: successful upgrades
	pulls     int                                                              // guarded by mu: pull requests
	pings     int                                                              // guarded by mu: ping requests
	injected  int                                                              // guarded by mu: messages injected, for unique client ids
	onPush    func(user, device string, m protocol.Message) []protocol.Message // guarded by mu
	onSend    func(s protocol.Send, attempt int) SendAction                    // guarded by mu
	onPull    func(p protocol.Pull) (hangup bool)                              // guarded by mu
}

// SendAction is what an OnSend hook makes of a send frame. The zero value
// handles it normally.
type SendAction struct {
	Err    *protocol.Error // refuse the send with this error; nothing is committed
	Hangup bool            // commit, then close the connection without an ack
	// Hang: commit, then answer nothing more on this connection (no ack,
	// no pong), keeping it open, as a hung server would.
	Hang bool
	// AckAfter: commit, and ack after this long, answering other frames
	// meanwhile, as a busy server would.
	AckAfter time.Duration
}

type identity struct {
	user, device string
	reject       protocol.Code // refuse the upgrade with 401 and this code
}

type conv struct {
	id       string
	members  [2]string
	msgs     []protocol.Message // seq n at index n-1
	minSeq   map[string]int64
	readSeq  map[string]int64
	versions map[string]int64
}

type conn struct {
	s  *Server
	nc net.Conn
	identity

	wmu    sync.Mutex
	mu     sync.Mutex
	silent bool                // guarded by mu: ignore every frame
	subs   map[string]struct{} // guarded by mu
}

// NewServer starts a server, closed when the test ends. Protocol
// violations by the client fail tb.
func NewServer(tb testing.TB) *Server {
	s := &Server{
		tb:        tb,
		users:     make(map[string]string),
		tokens:    make(map[string]identity),
		convs:     make(map[string]*conv),
		versions:  make(map[string]int64),
		conns:     make(map[*conn]struct{}),
		sends:     make(map[string]int),
		acks:      make(map[string]protocol.Ack),
		heartbeat: 10_000,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	mux.HandleFunc("POST /v1/users", s.admin(s.createUser))
	mux.HandleFunc("POST /v1/users/{id}/tokens", s.admin(s.createToken))
	mux.HandleFunc("GET /metrics", s.metrics)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.WSURL = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/ws"
	tb.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.Resume()
	s.DropAll()
	s.srv.Close()
}

// Token registers a token for user's device and returns it.
func (s *Server) Token(user, device string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := "tok-" + user + "-" + device
	s.tokens[tok] = identity{user: user, device: device}
	return tok
}

// Reject makes tok refused at upgrade with code, and its HTTP status.
func (s *Server) Reject(tok string, code protocol.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.tokens[tok]
	id.reject = code
	s.tokens[tok] = id
}

// Pause makes upgrades wait until Resume.
func (s *Server) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// Resume lets paused upgrades proceed.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// Refuse makes upgrades fail with HTTP status; 0 accepts them again.
func (s *Server) Refuse(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = status
}

// SetHeartbeat sets the HeartbeatMS of the hello of later connections.
func (s *Server) SetHeartbeat(ms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeat = ms
}

// OnPush makes f decide what is pushed to user's device for each new
// message: nothing (a gap), several copies (duplicates), or messages held
// back from earlier calls (reordering). nil restores normal pushes.
func (s *Server) OnPush(f func(user, device string, m protocol.Message) []protocol.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPush = f
}

// OnSend makes f decide how each send frame is handled; attempt counts the
// frames received with the same client id, from 1.
func (s *Server) OnSend(f func(send protocol.Send, attempt int) SendAction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onSend = f
}

// OnPull makes the connection hang up instead of answering the pulls for
// which f returns true.
func (s *Server) OnPull(f func(p protocol.Pull) (hangup bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onPull = f
}

// Connects returns the number of successful upgrades so far.
func (s *Server) Connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connects
}

// Pulls returns the number of pull requests received so far.
func (s *Server) Pulls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulls
}

// Pings returns the number of ping requests received so far.
func (s *Server) Pings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

// Sends returns how many send frames carried the client id cid.
func (s *Server) Sends(cid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends[cid]
}

// Online returns the number of connections of user.
func (s *Server) Online(user string) int {
	return len(s.online(user))
}

func (s *Server) online(user string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for c := range s.conns {
		if c.user == user {
			out = append(out, c)
		}
	}
	return out
}

// DropAll closes every connection without a kick.
func (s *Server) DropAll() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
}

// Kick sends a kick with code to every connection of user and closes them.
func (s *Server) Kick(user string, code protocol.Code) {
	for _, c := range s.online(user) {
		c.write(protocol.Frame{Type: protocol.TypeKick, Data: mustJSON(protocol.Kick{Code: code, Message: "clienttest"})})
		c.nc.Close()
	}
}

// Silence makes every current connection ignore what it receives, as a
// hung server would, while keeping it open.
func (s *Server) Silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.mu.Lock()
		c.silent = true
		c.mu.Unlock()
	}
}

// Inject commits a text message from a device of from that is not
// connected, and pushes it like a real send.
func (s *Server) Inject(from, to, text string) protocol.Message {
	s.mu.Lock()
	s.injected++
	cid := "injected-" + strconv.Itoa(s.injected)
	s.mu.Unlock()
	m, _ := s.commit(from, protocol.Send{ClientID: cid, To: to, ContentType: "text", Content: mustJSON(text)})
	s.pushAll(nil, m)
	return m
}

// Clear hides conversation id's history for user, as another device of the
// user would.
func (s *Server) Clear(user, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[id]
	c.minSeq[user] = int64(len(c.msgs)) + 1
	s.bumpLocked(c, user)
}

// bumpLocked records a change of c for user. s.mu must be held.
func (s *Server) bumpLocked(c *conv, user string) {
	s.versions[user]++
	c.versions[user] = s.versions[user]
}

// commit stores a send and returns the message, or the earlier ack if the
// client id was seen.
func (s *Server) commit(from string, sd protocol.Send) (protocol.Message, *protocol.Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ack, ok := s.acks[sd.ClientID]; ok {
		ack.Duplicate = true
		return protocol.Message{}, &ack
	}
	id := conversation.DirectID(from, sd.To)
	a, b, _ := conversation.Pair(id)
	c := s.convs[id]
	if c == nil {
		c = &conv{id: id, members: [2]string{a, b}, minSeq: map[string]int64{}, readSeq: map[string]int64{}, versions: map[string]int64{}}
		s.convs[id] = c
	}
	m := protocol.Message{
		Conversation: id,
		Seq:          int64(len(c.msgs)) + 1,
		ServerID:     "s-" + sd.ClientID,
		ClientID:     sd.ClientID,
		From:         from,
		To:           sd.To,
		ContentType:  sd.ContentType,
		Content:      sd.Content,
		Time:         time.Now().UnixMilli(),
	}
	c.msgs = append(c.msgs, m)
	s.bumpLocked(c, from)
	s.bumpLocked(c, sd.To)
	s.acks[sd.ClientID] = protocol.Ack{ClientID: sd.ClientID, Conversation: id, Seq: m.Seq, ServerID: m.ServerID, Time: m.Time}
	return m, nil
}

// pushAll pushes m to every connection of its sender and recipient except
// the one it came from.
func (s *Server) pushAll(except *conn, m protocol.Message) {
	s.mu.Lock()
	hook := s.onPush
	var targets []*conn
	for c := range s.conns {
		if c != except && (c.user == m.From || c.user == m.To) {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	for _, c := range targets {
		msgs := []protocol.Message{m}
		if hook != nil {
			msgs = hook(c.user, c.device, m)
		}
		for _, pm := range msgs {
			c.write(protocol.Frame{Type: protocol.TypeMessage, Data: mustJSON(pm)})
		}
	}
}

// admin wraps a REST handler with the admin credential check.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+AdminKey {
			writeError(w, protocol.Errorf(protocol.CodeUnauthenticated, "admin key required"))
			return
		}
		h(w, r)
	}
}

func writeError(w http.ResponseWriter, e *protocol.Error) {
	writeJSON(w, e.Code.HTTPStatus(), protocol.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID       string `json:"id"`
		Nickname string `json:"nickname"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ID == "" {
		writeError(w, protocol.Errorf(protocol.CodeInvalidArgument, "bad user"))
		return
	}
	s.mu.Lock()
	_, exists := s.users[body.ID]
	if !exists {
		s.users[body.ID] = body.Nickname
	}
	s.mu.Unlock()
	if exists {
		writeError(w, protocol.Errorf(protocol.CodeAlreadyExists, "user %s exists", body.ID))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": body})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Platform   string `json:"platform"`
		Device     string `json:"device"`
		TTLSeconds int64  `json:"ttl_seconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Device == "" || body.Platform == "" {
		writeError(w, protocol.Errorf(protocol.CodeInvalidArgument, "bad token request"))
		return
	}
	user := r.PathValue("id")
	var raw [16]byte
	rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	s.mu.Lock()
	_, exists := s.users[user]
	if exists {
		s.tokens[tok] = identity{user: user, device: body.Device}
	}
	s.mu.Unlock()
	if !exists {
		writeError(w, protocol.Errorf(protocol.CodeNotFound, "no user %s", user))
		return
	}
	expires := time.Now().Add(time.Duration(body.TTLSeconds) * time.Second)
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires_at": expires.Format(time.RFC3339)})
}

// metrics serves the two metrics a load generator reads, with a resident
// memory that grows by 10 KiB per connection.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 50<<20+n*10<<10)
	fmt.Fprintf(w, "# TYPE parley_gateway_connections gauge\nparley_gateway_connections{node=\"test\"} %d\n", n)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	gate, refuse := s.gate, s.refuse
	id, ok := s.tokens[tok]
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if refuse != 0 {
		http.Error(w, "refused by clienttest", refuse)
		return
	}
	if !ok || id.reject != "" {
		code := id.reject
		if !ok {
			code = protocol.CodeUnauthenticated
		}
		writeError(w, protocol.Errorf(code, "refused by clienttest"))
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		s.tb.Errorf("clienttest: upgrade: %v", err)
		return
	}
	c := &conn{s: s, nc: nc, identity: id, subs: map[string]struct{}{}}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.connects++
	hb := s.heartbeat
	s.mu.Unlock()
	c.write(protocol.Frame{Type: protocol.TypeHello, Data: mustJSON(protocol.Hello{
		Protocol: protocol.Version, User: id.user, Device: id.device, HeartbeatMS: hb, ServerTime: time.Now().UnixMilli(),
	})})
	s.presenceChanged(id.user)
	c.serve()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	nc.Close()
	s.presenceChanged(id.user)
}

func (c *conn) write(f protocol.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = wsutil.WriteServerText(c.nc, mustJSON(f)) // a closed connection is the test's doing
}

func (c *conn) reply(id, typ string, data any) {
	c.write(protocol.Frame{Type: typ, ID: id, Data: mustJSON(data)})
}

func (c *conn) fail(id string, code protocol.Code) {
	c.write(protocol.Frame{Type: protocol.TypeError, ID: id, Error: &protocol.Error{Code: code, Message: "clienttest"}})
}

// serve reads and answers frames until the connection closes.
func (c *conn) serve() {
	for {
		p, err := wsutil.ReadClientText(c.nc)
		if err != nil {
			return
		}
		c.mu.Lock()
		silent := c.silent
		c.mu.Unlock()
		if silent {
			continue
		}
		var f protocol.Frame
		if err := json.Unmarshal(p, &f); err != nil {
			c.s.tb.Errorf("clienttest: bad frame %q: %v", p, err)
			return
		}
		if !c.handle(f) {
			return
		}
	}
}

// handle answers one frame; false means hang up.
func (c *conn) handle(f protocol.Frame) bool {
	s := c.s
	switch f.Type {
	case protocol.TypePing:
		s.mu.Lock()
		s.pings++
		s.mu.Unlock()
		c.reply(f.ID, protocol.TypePong, protocol.Pong{ServerTime: 1})
	case protocol.TypeSend:
		var sd protocol.Send
		s.decode(f.Data, &sd)
		s.mu.Lock()
		s.sends[sd.ClientID]++
		attempt, hook := s.sends[sd.ClientID], s.onSend
		s.mu.Unlock()
		var act SendAction
		if hook != nil {
			act = hook(sd, attempt)
		}
		if act.Err != nil {
			c.write(protocol.Frame{Type: protocol.TypeError, ID: f.ID, Error: act.Err})
			return true
		}
		m, dup := s.commit(c.user, sd)
		if dup != nil {
			c.reply(f.ID, protocol.TypeAck, dup)
			return true
		}
		s.pushAll(c, m)
		ack := protocol.Ack{ClientID: m.ClientID, Conversation: m.Conversation, Seq: m.Seq, ServerID: m.ServerID, Time: m.Time}
		switch {
		case act.Hangup:
			return false
		case act.Hang:
			c.mu.Lock()
			c.silent = true
			c.mu.Unlock()
		case act.AckAfter > 0:
			time.AfterFunc(act.AckAfter, func() { c.reply(f.ID, protocol.TypeAck, ack) })
		default:
			c.reply(f.ID, protocol.TypeAck, ack)
		}
	case protocol.TypePull:
		var p protocol.Pull
		s.decode(f.Data, &p)
		s.mu.Lock()
		s.pulls++
		hook := s.onPull
		s.mu.Unlock()
		if hook != nil && hook(p) {
			return false
		}
		r, code := s.pull(c.user, p)
		if code != "" {
			c.fail(f.ID, code)
			return true
		}
		c.reply(f.ID, protocol.TypeMessages, r)
	case protocol.TypeConversations:
		var req protocol.ConversationsRequest
		s.decode(f.Data, &req)
		c.reply(f.ID, protocol.TypeConversations, s.conversations(c.user, req.Since))
	case protocol.TypeRead:
		var rd protocol.Read
		s.decode(f.Data, &rd)
		c.reply(f.ID, protocol.TypeOK, protocol.Receipt{Conversation: rd.Conversation, Reader: c.user, Seq: rd.Seq, Time: 1})
	case protocol.TypeClear:
		var cl protocol.Clear
		s.decode(f.Data, &cl)
		s.Clear(c.user, cl.Conversation)
		s.mu.Lock()
		view := s.viewLocked(s.convs[cl.Conversation], c.user)
		s.mu.Unlock()
		c.reply(f.ID, protocol.TypeOK, view)
	case protocol.TypeSubscribe:
		var sub protocol.Subscribe
		s.decode(f.Data, &sub)
		c.mu.Lock()
		for _, u := range sub.Users {
			c.subs[u] = struct{}{}
		}
		c.mu.Unlock()
		var list protocol.PresenceList
		for _, u := range sub.Users {
			list.Presence = append(list.Presence, s.presence(u))
		}
		c.reply(f.ID, protocol.TypeOK, list)
	case protocol.TypeUnsubscribe:
		var sub protocol.Subscribe
		s.decode(f.Data, &sub)
		c.mu.Lock()
		for _, u := range sub.Users {
			delete(c.subs, u)
		}
		c.mu.Unlock()
		c.write(protocol.Frame{Type: protocol.TypeOK, ID: f.ID})
	default:
		c.fail(f.ID, protocol.CodeUnknownType)
	}
	return true
}

func (s *Server) pull(user string, p protocol.Pull) (protocol.Messages, protocol.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[p.Conversation]
	if c == nil || !slices.Contains(c.members[:], user) {
		return protocol.Messages{}, protocol.CodeNotFound
	}
	minSeq := max(c.minSeq[user], 1)
	maxSeq := int64(len(c.msgs))
	r := protocol.Messages{Conversation: c.id, MinSeq: minSeq, MaxSeq: maxSeq}
	limit := int64(p.Limit)
	if limit <= 0 || limit > 200 {
		limit = 200
	}
	from := p.From
	if from != 0 && (from < minSeq || from > maxSeq) {
		return protocol.Messages{}, protocol.CodeOutOfRange
	}
	if p.Direction == protocol.Backward {
		if from == 0 {
			from = maxSeq
		}
		lo := max(minSeq, from-limit+1)
		if lo <= from {
			r.Messages = slices.Clone(c.msgs[lo-1 : from])
		}
		r.More = lo > minSeq
		return r, ""
	}
	if from == 0 {
		from = minSeq
	}
	hi := min(maxSeq, from+limit-1)
	if from <= hi {
		r.Messages = slices.Clone(c.msgs[from-1 : hi])
	}
	r.More = hi < maxSeq
	return r, ""
}

func (s *Server) conversations(user string, since int64) protocol.Conversations {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := protocol.Conversations{Version: s.versions[user]}
	for _, c := range s.convs {
		if v, ok := c.versions[user]; ok && v > since {
			r.Conversations = append(r.Conversations, s.viewLocked(c, user))
		}
	}
	return r
}

// viewLocked is user's view of c. s.mu must be held.
func (s *Server) viewLocked(c *conv, user string) protocol.Conversation {
	maxSeq := int64(len(c.msgs))
	peer := c.members[0]
	if peer == user {
		peer = c.members[1]
	}
	v := protocol.Conversation{
		ID:      c.id,
		Kind:    "direct",
		Peer:    peer,
		MaxSeq:  maxSeq,
		ReadSeq: c.readSeq[user],
		MinSeq:  max(c.minSeq[user], 1),
		Version: c.versions[user],
	}
	if v.MinSeq <= maxSeq {
		last := c.msgs[maxSeq-1]
		v.LastMessage = &last
		v.Unread = maxSeq - max(v.ReadSeq, v.MinSeq-1)
	}
	return v
}

func (s *Server) presence(user string) protocol.Presence {
	n := len(s.online(user))
	return protocol.Presence{User: user, Online: n > 0, Devices: n}
}

// presenceChanged pushes user's presence to the connections subscribed to it.
func (s *Server) presenceChanged(user string) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	p := s.presence(user)
	for _, c := range conns {
		c.mu.Lock()
		_, sub := c.subs[user]
		c.mu.Unlock()
		if sub {
			c.write(protocol.Frame{Type: protocol.TypePresence, Data: mustJSON(p)})
		}
	}
}

func (s *Server) decode(data []byte, v any) {
	if err := json.Unmarshal(data, v); err != nil {
		s.tb.Errorf("clienttest: decode %s: %v", data, err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values of this package's own making are marshalled
	}
	return b
}
