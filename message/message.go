// Package message is the send path and the sync path of one-to-one
// conversations: it validates sends, commits them in groups, acknowledges each
// sender after its group is durable, fans committed messages out to devices,
// and answers pulls, conversation lists, read marks and history clears.
//
// # Concurrency model
//
// Sends from any goroutine enter one bounded queue. One committer goroutine
// takes everything queued (up to MaxBatch) and appends it in one store
// transaction, so concurrent sends share one durable commit. It hands each
// committed batch to one delivery goroutine, which encodes each message once,
// calls the senders' callbacks and delivers the frame to the recipients'
// devices, while the committer already commits the next batch. Batches are
// delivered in commit order.
//
// # Lifecycle
//
// New starts both goroutines; Close stops accepting sends, commits and
// delivers everything already queued, then returns. Close is idempotent.
package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// Fanout delivers encoded frames to the online devices of users.
type Fanout interface {
	// Deliver queues frame to every connection of every user in users except
	// the connection numbered except (0 for none). It must not block.
	Deliver(users []string, frame []byte, except uint64)
}

// UserDirectory tells whether a user exists.
type UserDirectory interface {
	UserExists(ctx context.Context, id string) (bool, error)
}

// Config configures a Service.
type Config struct {
	MaxContentBytes int // largest content accepted; default 32 KiB
	MaxBatch        int // most messages per group commit; default 512
	QueueLength     int // sends waiting for the committer before Send reports unavailable; default 8192
}

// Service is the message service. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	store  store.Messages
	users  UserDirectory
	fanout Fanout
	log    *slog.Logger
	now    func() time.Time
	ids    *idGenerator

	queue     chan *pending
	delivered chan []*pending
	done      chan struct{}

	closeMu sync.RWMutex // guards closed against sends racing Close
	closed  bool
}

// SendRequest is one message to send.
type SendRequest struct {
	From        string
	To          string
	ClientID    string
	ContentType string
	Content     json.RawMessage
	// Origin is the connection the send came from (0 for REST): it gets the
	// ack, so the message is not also pushed to it.
	Origin uint64
}

// AckFunc receives the outcome of a send: the ack after the commit, or an
// error. It runs on the delivery goroutine and must not block.
type AckFunc func(protocol.Ack, error)

type pending struct {
	req    store.NewMessage
	origin uint64
	done   AckFunc
	result store.AppendResult
	err    error
}

// New returns a running Service.
func New(cfg Config, st store.Messages, users UserDirectory, fanout Fanout, log *slog.Logger) *Service {
	if cfg.MaxContentBytes <= 0 {
		cfg.MaxContentBytes = 32 << 10
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 8192
	}
	s := &Service{
		cfg:       cfg,
		store:     st,
		users:     users,
		fanout:    fanout,
		log:       log,
		now:       time.Now,
		ids:       newIDGenerator(),
		queue:     make(chan *pending, cfg.QueueLength),
		delivered: make(chan []*pending, 4),
		done:      make(chan struct{}),
	}
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

// DirectConversation returns the id of the one-to-one conversation between
// two users; it is the same whichever of them is a.
func DirectConversation(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return "d:" + a + ":" + b
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
	p := &pending{req: nm, origin: req.Origin, done: done}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		done(protocol.Ack{}, protocol.Errorf(protocol.CodeUnavailable, "server is shutting down"))
		return
	}
	select {
	case s.queue <- p:
	default:
		done(protocol.Ack{}, protocol.Errorf(protocol.CodeUnavailable, "send queue is full, retry"))
	}
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
	case req.To == "":
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "to is required")
	case req.To == req.From:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "cannot send a message to yourself")
	case len(req.Content) > s.cfg.MaxContentBytes:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeContentTooLarge, "content is larger than %d bytes", s.cfg.MaxContentBytes)
	case len(req.Content) == 0:
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "content is required")
	case !utf8.Valid(req.Content):
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidUTF8, "content must be valid UTF-8")
	case !json.Valid(req.Content):
		return store.NewMessage{}, protocol.Errorf(protocol.CodeInvalidArgument, "content must be a JSON value")
	}
	ok, err := s.users.UserExists(ctx, req.To)
	if err != nil {
		return store.NewMessage{}, fmt.Errorf("message: look up recipient: %w", err)
	}
	if !ok {
		return store.NewMessage{}, protocol.Errorf(protocol.CodeNotFound, "no user %q", req.To)
	}
	return store.NewMessage{
		Conversation: DirectConversation(req.From, req.To),
		Kind:         store.KindDirect,
		Members:      []string{req.From, req.To},
		ClientID:     req.ClientID,
		Sender:       req.From,
		Recipient:    req.To,
		ContentType:  req.ContentType,
		Content:      req.Content,
	}, nil
}

func (s *Service) commitLoop() {
	defer close(s.delivered)
	for {
		first, ok := <-s.queue
		if !ok {
			return
		}
		batch := []*pending{first}
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		s.commit(batch)
		s.delivered <- batch
	}
}

// commit appends one batch, stamping server ids and the commit time.
func (s *Service) commit(batch []*pending) {
	now := s.now().UTC().Truncate(time.Millisecond)
	msgs := make([]store.NewMessage, len(batch))
	for i, p := range batch {
		p.req.ServerID = s.ids.next(now)
		p.req.Time = now
		msgs[i] = p.req
	}
	start := time.Now()
	results, err := s.store.AppendMessages(context.Background(), msgs)
	metrics.CommitSeconds.Observe(time.Since(start).Seconds())
	metrics.CommitBatch.Observe(float64(len(batch)))
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("store returned %d results for %d messages", len(results), len(batch))
	}
	if err != nil {
		s.log.Error("group commit failed", "messages", len(batch), "err", err)
		for _, p := range batch {
			p.err = fmt.Errorf("message: commit: %w", err)
		}
		return
	}
	for i, p := range batch {
		p.result = results[i]
	}
}

func (s *Service) deliverLoop() {
	defer close(s.done)
	for batch := range s.delivered {
		for _, p := range batch {
			s.deliver(p)
		}
	}
}

func (s *Service) deliver(p *pending) {
	if p.err != nil {
		p.done(protocol.Ack{}, p.err)
		return
	}
	r := p.result
	if errors.Is(r.Err, store.ErrClientIDConflict) {
		p.done(protocol.Ack{}, protocol.Errorf(protocol.CodeClientIDConflict, "client message id %q was used for a different message", p.req.ClientID))
		return
	}
	if r.Err != nil {
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
		return
	}
	metrics.Sends.Inc()
	frame, err := EncodePush(protocol.TypeMessage, toWire(m))
	if err != nil {
		s.log.Error("encode message frame", "err", err)
		return
	}
	s.fanout.Deliver([]string{m.Recipient, m.Sender}, frame, p.origin)
}

// EncodePush encodes a server-pushed frame (one without a request id).
func EncodePush(typ string, data any) ([]byte, error) {
	return json.Marshal(struct {
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
