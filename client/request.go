package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleyim/parley/protocol"
)

// call is a request waiting for its reply. Between registration and the
// signal on done, the reader goroutine may take it out of Client.pending and
// fill in the reply; after the signal the caller owns it again. Calls are
// pooled: the per-message path allocates little.
type call struct {
	id   string
	want string        // reply type on success
	done chan struct{} // cap 1: the reader has filled in the reply
	out  any           // where a successful reply's data is decoded; nil to ignore it
	err  error         // the server's *protocol.Error, or why the reply did not decode
	cn   *conn         // sends: the connection the call was last written on

	// A send keeps what the reader needs to deliver the message to
	// OnMessage as soon as the ack arrives.
	send    bool
	cid     string
	to      string
	ctype   string
	content json.RawMessage
	ack     protocol.Ack
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func (c *Client) newCall(want string) *call {
	cl := callPool.Get().(*call)
	cl.id = strconv.FormatUint(c.nextID.Add(1), 10)
	cl.want = want
	return cl
}

// register makes cl visible to the reader.
func (c *Client) register(cl *call) {
	c.mu.Lock()
	c.pending[cl.id] = cl
	c.mu.Unlock()
}

// release returns cl to the pool. If the caller stopped waiting before the
// reply (answered is false) but the reader already took cl, release waits
// for the reader to finish with it.
func (c *Client) release(cl *call, answered bool) {
	if !answered {
		c.mu.Lock()
		mine := c.pending[cl.id] == cl
		if mine {
			delete(c.pending, cl.id)
		}
		c.mu.Unlock()
		if !mine {
			<-cl.done
		}
	}
	*cl = call{done: cl.done}
	callPool.Put(cl)
}

// complete hands a reply frame to the call waiting for it. It runs on the
// reader goroutine.
func (c *Client) complete(f *inFrame) {
	cl := c.take(f.ID)
	if cl == nil {
		return // a heartbeat pong, or a request given up on
	}
	switch {
	case f.Error != nil:
		cl.err = f.Error
	case f.Type != cl.want:
		cl.err = fmt.Errorf("got a %q reply, want %q", f.Type, cl.want)
	case cl.out != nil && len(f.Data) > 0:
		if err := json.Unmarshal(f.Data, cl.out); err != nil {
			cl.err = fmt.Errorf("decode %s reply: %w", f.Type, err)
		}
	}
	c.answered(cl)
}

// completeAck hands an ack, read by the fast path, to the send waiting
// for it. It runs on the reader goroutine.
func (c *Client) completeAck(id string, a protocol.Ack) {
	cl := c.take(id)
	if cl == nil {
		return
	}
	if out, ok := cl.out.(*protocol.Ack); ok && cl.want == protocol.TypeAck {
		*out = a
	} else {
		cl.err = fmt.Errorf("got a %q reply, want %q", protocol.TypeAck, cl.want)
	}
	c.answered(cl)
}

// take removes the call waiting for reply id and returns it, or nil.
func (c *Client) take(id string) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.pending[id]
	delete(c.pending, id)
	return cl
}

// answered gives cl back to its caller, after delivering a sent message to
// OnMessage once its ack came.
func (c *Client) answered(cl *call) {
	if cl.send && cl.err == nil {
		c.d.offer(protocol.Message{
			Conversation: cl.ack.Conversation,
			Seq:          cl.ack.Seq,
			ServerID:     cl.ack.ServerID,
			ClientID:     cl.cid,
			From:         c.user,
			To:           cl.to,
			ContentType:  cl.ctype,
			Content:      cl.content,
			Time:         cl.ack.Time,
		})
	}
	cl.done <- struct{}{}
}

// NewClientID returns a client message id unique to this Client, for
// SendWithID.
func (c *Client) NewClientID() string {
	return c.cidPrefix + strconv.FormatUint(c.nextID.Add(1), 36)
}

// Send sends a message to user to, with a new client message id, and
// returns the server's ack. See SendWithID.
func (c *Client) Send(ctx context.Context, to, contentType string, content json.RawMessage) (protocol.Ack, error) {
	return c.SendWithID(ctx, c.NewClientID(), to, contentType, content)
}

// SendTo sends a message to the conversation conv (a group, or a direct
// conversation of the user's), with a new client message id, and returns the
// server's ack. It works as SendWithID does.
func (c *Client) SendTo(ctx context.Context, conv, contentType string, content json.RawMessage) (protocol.Ack, error) {
	return c.send(ctx, c.NewClientID(), "conv", conv, contentType, content)
}

// SendToWithID is SendTo with the caller's client message id.
func (c *Client) SendToWithID(ctx context.Context, clientID, conv, contentType string, content json.RawMessage) (protocol.Ack, error) {
	return c.send(ctx, clientID, "conv", conv, contentType, content)
}

// SendWithID sends a message to user to with the caller's client message id
// and returns the server's ack once the message is committed. It
// retransmits with the same id after every reconnection, until
// acknowledged, until ctx ends, or until the client stops; the server stores
// the message once however many copies it receives. It never writes a copy
// on the connection that carried the send: a slow ack on a connection the
// server is heard on is waited for, and a connection that stays silent for
// two checks (Options.AckTimeout apart) while a send waits, the second
// after a ping, is closed and replaced. A refusal by the server is returned
// as a *protocol.Error, except unavailable and internal, which are retried
// after a backoff. If SendWithID returns early the message may still be
// committed: calling it again with the same id finds out without sending a
// second message.
//
// Content must be valid JSON; SendWithID does not retain it after
// returning. Once acknowledged, the message is also delivered to OnMessage
// in its conversation's order. Many sends may be in flight at once.
func (c *Client) SendWithID(ctx context.Context, clientID, to, contentType string, content json.RawMessage) (protocol.Ack, error) {
	return c.send(ctx, clientID, "to", to, contentType, content)
}

// send sends a message addressed by field ("to" or "conv") to target.
func (c *Client) send(ctx context.Context, clientID, field, target, contentType string, content json.RawMessage) (protocol.Ack, error) {
	if !protocol.IsCompactJSON(content) { // content as encoding/json writes it is sent as it is
		var compact bytes.Buffer
		if json.Compact(&compact, content) != nil { // one pass validates and compacts
			return protocol.Ack{}, fmt.Errorf("client: send: %w", protocol.Errorf(protocol.CodeInvalidArgument, "content is not valid JSON"))
		}
		content = compact.Bytes()
	}
	cl := c.newCall(protocol.TypeAck)
	frame, start := appendSendFrame(nil, cl.id, clientID, field, target, contentType, content)
	cl.send, cl.cid, cl.ctype = true, clientID, contentType
	if field == "to" {
		cl.to = target
	}
	cl.content = frame[start : start+len(content) : start+len(content)]
	cl.out = &cl.ack
	ack, err := c.sendLoop(ctx, cl, frame)
	if err != nil {
		return ack, fmt.Errorf("client: send: %w", err)
	}
	return ack, nil
}

// sendLoop writes a send on the connection in service and waits for its
// answer, again on the next connection when the one it was written on
// ends before the answer (the reader then completes the call with
// errConnLost), and again after a backoff when the server answers
// unavailable or internal. The wait is on the call alone: the session's
// watchdog, not a timer per send, gives up on a silent connection.
func (c *Client) sendLoop(ctx context.Context, cl *call, frame []byte) (ack protocol.Ack, err error) {
	registered := false
	defer func() { c.release(cl, !registered) }()
	for attempt := 1; ; attempt++ {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return ack, err
		}
		var gather bool
		if registered, gather = c.registerOn(cl, cn); !registered {
			attempt--
			continue // cn ended meanwhile
		}
		c.stats.sends.Add(1)
		if attempt > 1 {
			c.stats.retransmits.Add(1)
		}
		_ = cn.write(ws.OpText, frame, gather) // a failed write fails cn, whose end completes cl
		select {
		case <-cl.done:
			registered = false
		case <-ctx.Done():
			return ack, ctx.Err()
		}
		if cl.err == errConnLost {
			cl.err = nil
			continue
		}
		if pe, ok := cl.err.(*protocol.Error); ok && retryableCode(pe.Code) {
			if err := c.sleep(ctx, c.backoff.delay(attempt)); err != nil {
				return ack, err
			}
			cl.err = nil
			continue
		}
		return cl.ack, cl.err
	}
}

// registerOn makes the send cl visible to the reader of cn, unless cn has
// ended, which it reports with ok false. Gather reports whether other
// requests await their replies too, so that the write gathers: woken by the
// same read, theirs may go out with this one.
func (c *Client) registerOn(cl *call, cn *conn) (ok, gather bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cn != cn {
		return false, false
	}
	cl.cn = cn
	c.pending[cl.id] = cl
	return true, len(c.pending) > 1
}

// failSendsLocked completes, with errConnLost, the sends waiting for an
// answer on cn, which has ended. The caller holds c.mu and has unpublished
// cn, so none can register on it after.
func (c *Client) failSendsLocked(cn *conn) {
	for id, cl := range c.pending {
		if cl.send && cl.cn == cn {
			delete(c.pending, id)
			cl.err = errConnLost
			cl.done <- struct{}{}
		}
	}
}

// sendsWaitingOn reports whether a send written on cn awaits its answer.
func (c *Client) sendsWaitingOn(cn *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.pending {
		if cl.send && cl.cn == cn {
			return true
		}
	}
	return false
}

// sleep waits for d, or returns early with why ctx or the client ended.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.stopErr
	}
}

// waitConn returns the connection in service, waiting for one if the client
// is between connections.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, up := c.cn, c.connected
		c.mu.Unlock()
		if cn != nil {
			return cn, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.stopErr
		}
	}
}

// request sends a request of type typ on the current connection and decodes
// the reply's data, of type want, into out. It fails with ErrDisconnected
// if no connection is up or the connection drops before the reply.
func (c *Client) request(ctx context.Context, typ, want string, payload, out any) error {
	var data []byte
	if payload != nil {
		var err error
		if data, err = json.Marshal(payload); err != nil {
			return fmt.Errorf("client: %s: %w", typ, err)
		}
	}
	cl := c.newCall(want)
	cl.out = out
	frame := appendFrame(nil, typ, cl.id, data)
	err := c.roundTrip(ctx, cl, frame)
	if err != nil {
		return fmt.Errorf("client: %s: %w", typ, err)
	}
	return nil
}

func (c *Client) roundTrip(ctx context.Context, cl *call, frame []byte) error {
	c.mu.Lock()
	cn, gather := c.cn, false
	if cn != nil {
		c.pending[cl.id] = cl
		gather = len(c.pending) > 1 // see registerOn
	}
	c.mu.Unlock()
	if cn == nil {
		c.release(cl, true)
		if c.ctx.Err() != nil {
			return c.stopErr
		}
		return ErrDisconnected
	}
	answered := false
	defer func() { c.release(cl, answered) }()
	if cn.write(ws.OpText, frame, gather) != nil {
		return ErrDisconnected
	}
	select {
	case <-cl.done:
		answered = true
		return cl.err
	case <-cn.done:
		select {
		case <-cl.done: // the reply made it before the connection closed
			answered = true
			return cl.err
		default:
			return ErrDisconnected
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.stopErr
	}
}

// Call makes a REST request over the connection as the user (a call
// frame): method and path (with its query) of a route under /v1/, body
// marshalled as its JSON body when not nil, and the reply's body decoded
// into out when out is not nil. A refusal is the server's *protocol.Error.
// The typed methods (Friends, CreateGroup, …) are built on it.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	call := protocol.Call{Method: method, Path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		call.Body = b
	}
	var res protocol.CallResult
	if err := c.request(ctx, protocol.TypeCall, protocol.TypeResult, call, &res); err != nil {
		return err
	}
	if out != nil && len(res.Body) > 0 {
		if err := json.Unmarshal(res.Body, out); err != nil {
			return fmt.Errorf("client: %s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// Conversations returns the user's conversations changed after version
// since (0 for all) and the version to pass next time. It does not affect
// delivery, which keeps its own sync.
func (c *Client) Conversations(ctx context.Context, since int64) (protocol.Conversations, error) {
	var r protocol.Conversations
	err := c.request(ctx, protocol.TypeConversations, protocol.TypeConversations, protocol.ConversationsRequest{Since: since}, &r)
	return r, err
}

// Pull returns a page of a conversation's history, for example older
// messages when the user scrolls back. The messages are returned, not
// delivered to OnMessage.
func (c *Client) Pull(ctx context.Context, p protocol.Pull) (protocol.Messages, error) {
	var r protocol.Messages
	err := c.request(ctx, protocol.TypePull, protocol.TypeMessages, p, &r)
	return r, err
}

// MarkRead marks conv read up to seq and returns the receipt the server
// sent to the conversation's members.
func (c *Client) MarkRead(ctx context.Context, conv string, seq int64) (protocol.Receipt, error) {
	var r protocol.Receipt
	err := c.request(ctx, protocol.TypeRead, protocol.TypeOK, protocol.Read{Conversation: conv, Seq: seq}, &r)
	return r, err
}

// Clear hides conv's history up to now for the user and returns the
// conversation's new state. Messages of conv not yet delivered to OnMessage
// that the clear hid are skipped.
func (c *Client) Clear(ctx context.Context, conv string) (protocol.Conversation, error) {
	var r protocol.Conversation
	if err := c.request(ctx, protocol.TypeClear, protocol.TypeOK, protocol.Clear{Conversation: conv}, &r); err != nil {
		return r, err
	}
	if r.ID == conv {
		c.d.applyConversation(r, false)
	}
	return r, nil
}

// Subscribe asks for the presence of users to be pushed to OnPresence and
// returns their current state. The client subscribes again after each
// reconnection and passes the fresh state to OnPresence.
func (c *Client) Subscribe(ctx context.Context, users ...string) ([]protocol.Presence, error) {
	var r protocol.PresenceList
	if err := c.request(ctx, protocol.TypeSubscribe, protocol.TypeOK, protocol.Subscribe{Users: users}, &r); err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, u := range users {
		c.subs[u] = struct{}{}
	}
	c.mu.Unlock()
	return r.Presence, nil
}

// Unsubscribe stops presence pushes for users. They are forgotten even if
// the request fails, so they are not subscribed again after a reconnection.
func (c *Client) Unsubscribe(ctx context.Context, users ...string) error {
	c.mu.Lock()
	for _, u := range users {
		delete(c.subs, u)
	}
	c.mu.Unlock()
	return c.request(ctx, protocol.TypeUnsubscribe, protocol.TypeOK, protocol.Subscribe{Users: users}, nil)
}

// Ping measures a round trip to the server and returns its clock.
func (c *Client) Ping(ctx context.Context) (protocol.Pong, error) {
	var r protocol.Pong
	err := c.request(ctx, protocol.TypePing, protocol.TypePong, nil, &r)
	return r, err
}

// inFrame is an incoming frame. The reader reuses one, so Data is only
// valid until the next frame.
type inFrame struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
	Error *protocol.Error `json:"error"`
}

func (f *inFrame) reset() {
	f.Type, f.ID, f.Data, f.Error = "", "", f.Data[:0], nil
}

// appendFrame appends a request frame. typ and id need no JSON escaping;
// data is JSON or empty.
func appendFrame(b []byte, typ, id string, data []byte) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	b = append(b, '"')
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

// appendSendFrame appends a send frame and returns where content starts in
// it. Building it by hand spares a marshal of the content, the one large
// field, which is copied as is.
func appendSendFrame(b []byte, id, cid, field, target, ctype string, content json.RawMessage) ([]byte, int) {
	b = slices.Grow(b, 64+len(id)+len(cid)+len(target)+len(ctype)+len(content))
	b = append(b, `{"type":"send","id":"`...)
	b = append(b, id...)
	b = append(b, `","data":{"cid":`...)
	b = protocol.AppendString(b, cid)
	b = append(b, `,"`...)
	b = append(b, field...)
	b = append(b, `":`...)
	b = protocol.AppendString(b, target)
	b = append(b, `,"ctype":`...)
	b = protocol.AppendString(b, ctype)
	b = append(b, `,"content":`...)
	start := len(b)
	b = append(b, content...)
	return append(b, "}}"...), start
}
