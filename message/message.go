// Package message is the send path and the sync path of conversations: it
// validates sends, commits them in groups, acknowledges each sender after its
// group is durable, fans committed messages out to the conversation's
// audience, and answers pulls, conversation lists, read marks, history clears,
// conversation settings and the membership changes of group conversations.
//
// # Concurrency model
//
// Sends from any goroutine enter one queue, bounded in sends and in content
// bytes (QueueLength, QueueBytes). One committer goroutine
// takes everything queued (up to MaxBatch) and appends it in one store
// transaction, so concurrent sends share one durable commit. It hands each
// committed batch to one delivery goroutine, which acknowledges every sender
// of the batch first, then encodes each message once and hands it to the
// fan-out workers, while the committer already commits the next batch.
// Batches are delivered in commit order.
//
// A one-to-one message is delivered by the delivery goroutine itself
// (Router.Deliver never blocks). A group message goes to a fixed set of
// fan-out workers, each with a bounded queue, which hand it to
// Router.DeliverBulk (it writes with a bounded number of goroutines, and a
// worker may wait for one); a user always maps to the same
// worker, so a user's frames keep their commit order, and a group message is
// split by worker up front (the audience cache keeps each group's members
// split), so a large group spreads over all the workers. A full worker queue
// never makes the delivery goroutine wait, which would stop every later ack:
// the worker's share of that message is shed and re-pushed, as the
// conversation's newest message, once the worker catches up (see fanOut).
//
// # Lifecycle
//
// New starts the committer, the delivery goroutine and the fan-out workers;
// Close stops accepting sends, commits, acknowledges and delivers everything
// already queued, then returns. Close is idempotent.
package message

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// Store is what the service keeps in the store: messages and member state,
// and the groups' rosters for who may post.
type Store interface {
	store.Messages
	Group(ctx context.Context, conv string) (store.GroupInfo, error)
	GroupMembers(ctx context.Context, conv string, since int64, limit int) ([]store.GroupMember, int64, bool, error)
}

// UserDirectory tells whether a user exists.
type UserDirectory interface {
	UserExists(ctx context.Context, id string) (bool, error)
}

// DirectPolicy decides whether one user may send a one-to-one message to
// another (package social: blocks, and friendship when required). It is
// asked for every direct send, so it must answer from memory.
type DirectPolicy interface {
	CheckDirect(ctx context.Context, from, to string) error
}

// Config configures a Service.
type Config struct {
	MaxContentBytes int // largest content accepted; default 32 KiB
	MaxBatch        int // most messages per group commit; default 512
	QueueLength     int // sends waiting for the committer before Send reports unavailable; default 65,536
	QueueBytes      int // content bytes of those sends before Send reports unavailable; default 64 MiB
	FanoutWorkers   int // goroutines delivering committed messages; default GOMAXPROCS, at least 2
	FanoutQueue     int // tasks waiting per fan-out worker; default 1024
	AudienceCache   int // group conversations whose members are cached; default 100,000

	// DirectPolicy, if set, refuses the direct sends it does not allow.
	DirectPolicy DirectPolicy
}

// Service is the message service. Its methods are safe for concurrent use.
type Service struct {
	cfg   Config
	store Store
	// appendBatch is the store's append, pipelined where the store can.
	appendBatch func(context.Context, []store.NewMessage) ([]store.AppendResult, func() error, error)
	users       UserDirectory
	router      router.Router
	log         *slog.Logger
	now         func() time.Time
	ids         *idGenerator

	audience *audience
	workers  []*fanoutWorker
	workWG   sync.WaitGroup

	queue       chan *pending
	queuedBytes atomic.Int64       // content bytes of the sends in queue
	msgs        []store.NewMessage // the committer's: the batch handed to the store, reused
	delivered   chan committed
	done        chan struct{}

	closeMu sync.RWMutex // guards closed against sends racing Close
	closed  bool
}

// SendRequest is one message to send, to the conversation Conversation or,
// with To, to the direct conversation with that user.
type SendRequest struct {
	From         string
	To           string
	Conversation string
	ClientID     string
	ContentType  string
	// Content is kept by the service until the message is delivered: the
	// caller must not modify it after the call.
	Content json.RawMessage
	// Origin is the device the send came from (none for REST): it gets the
	// ack, so the message is not also pushed to it.
	Origin router.Device
}

// AckFunc receives the outcome of a send: the ack after the commit, or an
// error. It runs on the delivery goroutine and must not block.
type AckFunc func(protocol.Ack, error)

type pending struct {
	req    store.NewMessage
	origin router.Device
	done   AckFunc
	result store.AppendResult
	err    error
}

// pendings recycles the sends the delivery goroutine is done with: one
// allocated per message was a ninth of what the send path allocated.
var pendings = sync.Pool{New: func() any { return new(pending) }}

// New returns a running Service that delivers through r.
func New(cfg Config, st Store, users UserDirectory, r router.Router, log *slog.Logger) *Service {
	if cfg.MaxContentBytes <= 0 {
		cfg.MaxContentBytes = 32 << 10
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 1 << 16
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 64 << 20
	}
	if cfg.FanoutWorkers <= 0 {
		cfg.FanoutWorkers = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.FanoutQueue <= 0 {
		cfg.FanoutQueue = 1024
	}
	if cfg.AudienceCache <= 0 {
		cfg.AudienceCache = 100_000
	}
	s := &Service{
		cfg:       cfg,
		store:     st,
		users:     users,
		router:    r,
		log:       log,
		now:       time.Now,
		ids:       newIDGenerator(),
		queue:     make(chan *pending, cfg.QueueLength),
		delivered: make(chan committed, 4),
		done:      make(chan struct{}),
	}
	s.appendBatch = appendFunc(st)
	s.audience = newAudience(s.loadAudience, s.queueGroup, cfg.FanoutWorkers, cfg.AudienceCache)
	s.startFanout()
	go s.commitLoop()
	go s.deliverLoop()
	return s
}

// Close stops accepting sends, commits and delivers what is queued, and waits
// for the service's goroutines. Sends after Close fail with unavailable.
func (s *Service) Close() {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.closeMu.Unlock()
	<-s.done
}

// SendAsync validates req and queues it for commit; done is called exactly
// once with the result. Validation errors are reported through done before
// SendAsync returns.
func (s *Service) SendAsync(ctx context.Context, req SendRequest, done AckFunc) {
	nm, err := s.validate(ctx, req)
	if err != nil {
		done(protocol.Ack{}, err)
		return
	}
	p := pendings.Get().(*pending)
	p.req, p.origin, p.done = nm, req.Origin, done
	if err := s.enqueue(p); err != nil {
		*p = pending{}
		pendings.Put(p)
		done(protocol.Ack{}, err) // outside closeMu: done may take its time
	}
}

// enqueue queues p for the committer, or says why it cannot. The queue is
// bounded in sends and in content bytes: as many devices as a server holds
// may each have a send waiting without one being refused, and what waits
// stays within a fixed amount of memory whatever the content sizes.
func (s *Service) enqueue(p *pending) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return protocol.Errorf(protocol.CodeUnavailable, "server is shutting down")
	}
	n := int64(len(p.req.Content))
	if s.queuedBytes.Add(n) > int64(s.cfg.QueueBytes) {
		s.queuedBytes.Add(-n)
		return queueFull()
	}
	select {
	case s.queue <- p:
		return nil
	default:
		s.queuedBytes.Add(-n)
		return queueFull()
	}
}

func queueFull() error { return protocol.Errorf(protocol.CodeUnavailable, "send queue is full, retry") }

// notConversationID is the error for an id that names no conversation at
// all, whatever the request.
func notConversationID(conv string) error {
	return protocol.Errorf(protocol.CodeInvalidArgument, "conv %q is not a conversation id", conv)
}

// noConversation is the error for a conversation that does not exist or
// that the user is not in: the two are not told apart.
func noConversation(conv string) error {
	return protocol.Errorf(protocol.CodeNotFound, "no conversation %q", conv)
}

// Send is SendAsync that waits for the result.
func (s *Service) Send(ctx context.Context, req SendRequest) (protocol.Ack, error) {
	type result struct {
		ack protocol.Ack
		err error
	}
	ch := make(chan result, 1)
	s.SendAsync(ctx, req, func(a protocol.Ack, err error) { ch <- result{a, err} })
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-ctx.Done():
		// The message may still commit; a resend with the same client
		// message id tells.
		return protocol.Ack{}, protocol.Errorf(protocol.CodeUnavailable, "the request ended before the commit finished; resend with the same cid to learn the outcome")
	}
}

func (s *Service) validate(ctx context.Context, req SendRequest) (store.NewMessage, error) {
	switch {
	case !validClientID(req.ClientID):
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "cid must be 1-64 printable ASCII characters")
	case !validContentType(req.ContentType):
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "ctype must be 1-32 of a-z, 0-9, '.', '_', '/', '-'")
	case req.To == "" && req.Conversation == "":
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "to or conv is required")
	case req.To != "" && req.Conversation != "":
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "give to or conv, not both")
	case req.To == req.From:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "cannot send a message to yourself")
	case req.ContentType == protocol.GroupEventType && req.From != conversation.SystemUser:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "ctype %q is reserved for the server's group events", protocol.GroupEventType)
	case len(req.Content) > s.cfg.MaxContentBytes:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeContentTooLarge, "content is larger than %d bytes", s.cfg.MaxContentBytes)
	case len(req.Content) == 0:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "content is required")
	case !utf8.Valid(req.Content):
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidUTF8, "content must be valid UTF-8")
	}
	// Content is kept in compact form: the bytes as sent without the
	// whitespace between JSON tokens. Compacting also checks that it is
	// JSON. Content compact already, as encoding/json and both SDKs write
	// it, is checked in one faster pass and kept as it is (json.Compact
	// was 4 % of the server's CPU at 50,000 messages/s).
	content := req.Content
	if !protocol.IsCompactJSON(content) {
		var buf bytes.Buffer
		buf.Grow(len(content))
		if err := json.Compact(&buf, content); err != nil {
			return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "content must be a JSON value")
		}
		content = buf.Bytes()
	}
	nm := store.NewMessage{
		ClientID:    req.ClientID,
		Sender:      req.From,
		ContentType: req.ContentType,
		Content:     content,
	}
	if req.Conversation != "" {
		return nm, s.validateConversation(ctx, &nm, req.Conversation)
	}
	if !conversation.ValidName(req.To) {
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "to must be a user id")
	}
	ok, err := s.users.UserExists(ctx, req.To)
	if err != nil {
		return store.NewMessage{}, fmt.Errorf("message: look up recipient: %w", err)
	}
	if !ok {
		return store.NewMessage{}, protocol.Errorf(protocol.CodeNotFound, "no user %q", req.To)
	}
	nm.Conversation, nm.Kind, nm.Recipient = conversation.DirectID(req.From, req.To), conversation.Direct, req.To
	return nm, s.checkDirect(ctx, req.From, req.To)
}

// checkDirect asks the DirectPolicy, if any, whether from may message to.
func (s *Service) checkDirect(ctx context.Context, from, to string) error {
	if s.cfg.DirectPolicy == nil {
		return nil
	}
	return s.cfg.DirectPolicy.CheckDirect(ctx, from, to)
}

// validateConversation addresses nm to conv, which its sender must be a
// current member of.
func (s *Service) validateConversation(ctx context.Context, nm *store.NewMessage, conv string) error {
	switch conversation.KindOf(conv) {
	case conversation.Direct:
		peer, ok := conversation.Peer(conv, nm.Sender)
		if !ok {
			return noConversation(conv)
		}
		if peer == nm.Sender {
			return protocol.Errorf(protocol.CodeInvalidArgument, "cannot send a message to yourself")
		}
		// The same check as a send with to: the other user must exist and
		// be active.
		ok, err := s.users.UserExists(ctx, peer)
		if err != nil {
			return fmt.Errorf("message: look up recipient: %w", err)
		}
		if !ok {
			return protocol.Errorf(protocol.CodeNotFound, "no user %q", peer)
		}
		nm.Conversation, nm.Kind, nm.Recipient = conv, conversation.Direct, peer
		return s.checkDirect(ctx, nm.Sender, peer)
	case conversation.Group:
		return s.validateGroup(ctx, nm, conv)
	case "":
		return notConversationID(conv)
	}
	return protocol.Errorf(protocol.CodeForbidden, "conversations of this kind take no messages from users")
}

// notMember is the error for a user who may not send to conv: forbidden for
// one who left it, not_found for one who never was in it, so that nobody
// learns of conversations they are not part of.
func (s *Service) notMember(ctx context.Context, user, conv string) error {
	m, err := s.store.Member(ctx, user, conv)
	if err == nil && m.Left {
		return protocol.Errorf(protocol.CodeForbidden, "you are no longer a member of %q", conv)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("message: member: %w", err)
	}
	return noConversation(conv)
}

func (s *Service) commitLoop() {
	defer close(s.delivered)
	for {
		first, ok := <-s.queue
		if !ok {
			return
		}
		batch := []*pending{first}
		taken := int64(len(first.req.Content)) // content bytes leaving the queue
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, p)
				taken += int64(len(p.req.Content))
			default:
				break fill
			}
		}
		s.queuedBytes.Add(-taken)
		s.delivered <- committed{batch, s.commit(batch)}
	}
}

// committed is a batch handed from the committer to the delivery
// goroutine, with the func that waits until the batch is durable.
type committed struct {
	batch   []*pending
	durable func() error
}

// commit appends one batch, stamping server ids and the commit time, and
// returns the func that waits for the batch to be durable. With a store that
// pipelines, it returns once the batch is applied: the committer builds the
// next batch while the disk syncs this one, and the delivery goroutine waits
// for the sync before any ack.
func (s *Service) commit(batch []*pending) (durable func() error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	msgs := s.msgs[:0]
	for _, p := range batch {
		p.req.ServerID = s.ids.next(now)
		p.req.Time = now
		msgs = append(msgs, p.req)
	}
	start := time.Now()
	results, durable, err := s.appendBatch(context.Background(), msgs)
	clear(msgs) // the contents are the sends' until they are delivered
	s.msgs = msgs
	metrics.CommitSeconds.Observe(time.Since(start).Seconds())
	metrics.CommitBatch.Observe(float64(len(batch)))
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("store returned %d results for %d messages", len(results), len(batch))
	}
	if err != nil {
		s.failBatch(batch, err)
		return noWait
	}
	for i, p := range batch {
		p.result = results[i]
	}
	return durable
}

// noWait is the durable func of a batch that is durable already, or failed.
func noWait() error { return nil }

// appendFunc appends a batch and returns the func that waits for it to be
// durable: the store's pipelined append if it has one, else its plain one.
func appendFunc(st store.Messages) func(context.Context, []store.NewMessage) ([]store.AppendResult, func() error, error) {
	if pl, ok := st.(store.Pipeliner); ok {
		return pl.AppendMessagesPipelined
	}
	return func(ctx context.Context, msgs []store.NewMessage) ([]store.AppendResult, func() error, error) {
		results, err := st.AppendMessages(ctx, msgs)
		return results, noWait, err
	}
}

// failBatch fails every send of a batch whose commit failed.
func (s *Service) failBatch(batch []*pending, err error) {
	s.log.Error("group commit failed", "messages", len(batch), "err", err)
	for _, p := range batch {
		p.err = fmt.Errorf("message: commit: %w", err)
	}
}

func (s *Service) deliverLoop() {
	defer close(s.done)
	defer s.stopFanout()
	for c := range s.delivered {
		batch := c.batch
		if err := c.durable(); err != nil {
			s.failBatch(batch, err)
		}
		// Every sender of the batch hears first; fan-out follows.
		for _, p := range batch {
			s.ack(p)
		}
		for _, p := range batch {
			if p.err == nil && p.result.Err == nil && !p.result.Duplicate {
				s.fanOut(p.result.Message, p.origin)
			}
			*p = pending{}
			pendings.Put(p)
		}
	}
}

// ack tells p's sender the outcome of its send.
func (s *Service) ack(p *pending) {
	if p.err != nil {
		p.done(protocol.Ack{}, p.err)
		return
	}
	r := p.result
	switch {
	case errors.Is(r.Err, store.ErrClientIDConflict):
		p.done(protocol.Ack{}, protocol.Errorf(protocol.CodeClientIDConflict, "client message id %q was used for a different message", p.req.ClientID))
		return
	case errors.Is(r.Err, store.ErrNotMember):
		// The sender left between the check and the commit.
		p.done(protocol.Ack{}, protocol.Errorf(protocol.CodeForbidden, "you are no longer a member of %q", p.req.Conversation))
		return
	case errors.Is(r.Err, store.ErrNotFound):
		p.done(protocol.Ack{}, noConversation(p.req.Conversation))
		return
	case r.Err != nil:
		p.done(protocol.Ack{}, fmt.Errorf("message: commit: %w", r.Err))
		return
	}
	m := r.Message
	p.done(protocol.Ack{
		ClientID:     m.ClientID,
		Conversation: m.Conversation,
		Seq:          m.Seq,
		ServerID:     m.ServerID,
		Time:         m.Time.UnixMilli(),
		Duplicate:    r.Duplicate,
	}, nil)
	if r.Duplicate {
		metrics.Duplicates.Inc()
	} else {
		metrics.Sends.Inc()
	}
}

// EncodePush encodes a server-pushed frame (one without a request id).
func EncodePush(typ string, data any) ([]byte, error) {
	return protocol.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
	}{typ, data})
}

func toWire(m store.Message) protocol.Message {
	return protocol.Message{
		Conversation: m.Conversation,
		Seq:          m.Seq,
		ServerID:     m.ServerID,
		ClientID:     m.ClientID,
		From:         m.Sender,
		To:           m.Recipient,
		ContentType:  m.ContentType,
		Content:      m.Content,
		Time:         m.Time.UnixMilli(),
	}
}

func validClientID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func validContentType(t string) bool {
	if len(t) == 0 || len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}
