package message

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// Pull limits. A page also ends once its messages' content passes
// MaxPullBytes, so that any legal pull fits a connection's outbound queue.
const (
	DefaultPullLimit = 50
	MaxPullLimit     = 200
	MaxPullBytes     = 1 << 20
)

// member returns the user's state in a conversation, hiding conversations the
// user is not in behind not_found; an id that names no conversation at all is
// invalid_argument, as it is for send.
func (s *Service) member(ctx context.Context, user, conv string) (store.Member, error) {
	if err := checkConversationID(conv); err != nil {
		return store.Member{}, err
	}
	m, err := s.store.Member(ctx, user, conv)
	if errors.Is(err, store.ErrNotFound) {
		return store.Member{}, noConversation(conv)
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("message: member: %w", err)
	}
	return m, nil
}

// checkConversationID refuses an empty or malformed conversation id.
func checkConversationID(conv string) error {
	switch {
	case conv == "":
		return protocol.Errorf(protocol.CodeInvalidArgument, "conv is required")
	case conversation.KindOf(conv) == "":
		return notConversationID(conv)
	}
	return nil
}

// Pull returns a page of the messages user may see in a conversation. From
// must lie in the visible range [MinSeq, MaxSeq+1] unless it is 0 (the oldest
// visible message going forward, the newest going backward); a backward pull
// from above MaxSeq starts at MaxSeq.
func (s *Service) Pull(ctx context.Context, user string, p protocol.Pull) (protocol.Messages, error) {
	var dir store.Direction
	switch p.Direction {
	case "", protocol.Forward:
		dir = store.Forward
	case protocol.Backward:
		dir = store.Backward
	default:
		return protocol.Messages{}, protocol.Errorf(protocol.CodeInvalidArgument, "dir must be %q or %q", protocol.Forward, protocol.Backward)
	}
	if p.Limit < 0 || p.From < 0 {
		return protocol.Messages{}, protocol.Errorf(protocol.CodeInvalidArgument, "from and limit must not be negative")
	}
	limit := p.Limit
	if limit == 0 {
		limit = DefaultPullLimit
	}
	limit = min(limit, MaxPullLimit)
	m, err := s.member(ctx, user, p.Conversation)
	if err != nil {
		return protocol.Messages{}, err
	}
	from := p.From
	if from != 0 && (from < m.MinSeq || (dir == store.Forward && from > m.MaxSeq+1)) {
		return protocol.Messages{}, protocol.Errorf(protocol.CodeOutOfRange, "seq %d is outside the visible range %d..%d", from, m.MinSeq, m.MaxSeq)
	}
	out := protocol.Messages{Conversation: p.Conversation, MinSeq: m.MinSeq, MaxSeq: m.MaxSeq, Messages: []protocol.Message{}}
	if m.MaxSeq < m.MinSeq {
		return out, nil
	}
	// Read one more than asked to learn whether more remain.
	msgs, err := s.store.MessageRange(ctx, p.Conversation, from, m.MinSeq, m.MaxSeq, dir, limit+1)
	if err != nil {
		return protocol.Messages{}, fmt.Errorf("message: pull: %w", err)
	}
	if len(msgs) > limit {
		out.More = true
		if dir == store.Forward {
			msgs = msgs[:limit]
		} else {
			msgs = msgs[1:]
		}
	}
	if n := withinBytes(msgs, dir); n < len(msgs) {
		out.More = true
		if dir == store.Forward {
			msgs = msgs[:n]
		} else {
			msgs = msgs[len(msgs)-n:]
		}
	}
	out.Messages = make([]protocol.Message, len(msgs))
	for i, msg := range msgs {
		out.Messages[i] = toWire(msg)
	}
	return out, nil
}

// withinBytes returns how many of msgs, counted from the start going
// forward or from the end going backward, fit in MaxPullBytes of content;
// at least one.
func withinBytes(msgs []store.Message, dir store.Direction) int {
	total := 0
	for i := range msgs {
		m := msgs[i]
		if dir == store.Backward {
			m = msgs[len(msgs)-1-i]
		}
		total += len(m.Content)
		if total > MaxPullBytes && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// Conversations returns a page of the user's conversations changed after
// version q.Since.
func (s *Service) Conversations(ctx context.Context, user string, q protocol.ConversationsRequest) (protocol.Conversations, error) {
	if q.Since < 0 || q.Limit < 0 {
		return protocol.Conversations{}, protocol.Errorf(protocol.CodeInvalidArgument, "since and limit must not be negative")
	}
	limit := q.Limit
	if limit == 0 || limit > protocol.MaxConversationsPage {
		limit = protocol.MaxConversationsPage
	}
	members, version, more, err := s.store.Members(ctx, user, q.Since, limit)
	if err != nil {
		return protocol.Conversations{}, fmt.Errorf("message: conversations: %w", err)
	}
	out := protocol.Conversations{Version: version, More: more, Conversations: make([]protocol.Conversation, len(members))}
	for i, m := range members {
		out.Conversations[i] = conversationToWire(m)
	}
	return out, nil
}

func conversationToWire(m store.Member) protocol.Conversation {
	c := protocol.Conversation{
		ID:          m.Conversation,
		Kind:        m.Kind,
		Peer:        m.Peer,
		MaxSeq:      m.MaxSeq,
		ReadSeq:     m.ReadSeq,
		MinSeq:      m.MinSeq,
		PeerReadSeq: m.PeerReadSeq,
		Left:        m.Left,
		Unread:      m.Unread(),
		Version:     m.Version,
		Pinned:      m.Settings.Pinned,
		MutedUntil:  m.Settings.MutedUntil,
		Hidden:      m.Hidden(),
		Draft:       m.Settings.Draft,
		DraftTime:   m.Settings.DraftTime,
	}
	if m.LastMessage != nil && m.LastMessage.Seq >= m.MinSeq {
		lm := toWire(*m.LastMessage)
		c.LastMessage = &lm
	}
	return c
}

// MarkRead raises the user's read seq in a conversation and tells the
// reader's other devices (all but origin) and, in a direct conversation, the
// peer with a receipt. Group members' reading is not broadcast: in a large
// group it would cost a frame per member per read.
func (s *Service) MarkRead(ctx context.Context, user string, r protocol.Read, origin router.Device) (protocol.Receipt, error) {
	if r.Seq < 0 {
		return protocol.Receipt{}, protocol.Errorf(protocol.CodeInvalidArgument, "seq must not be negative")
	}
	if err := checkConversationID(r.Conversation); err != nil {
		return protocol.Receipt{}, err
	}
	// The store checks the seq and raises the read seq in one write: a read
	// costs one look at the member's state, not two.
	m, raised, err := s.store.MarkRead(ctx, user, r.Conversation, r.Seq)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return protocol.Receipt{}, noConversation(r.Conversation)
	case errors.Is(err, store.ErrAboveMaxSeq):
		return protocol.Receipt{}, protocol.Errorf(protocol.CodeOutOfRange, "seq %d is above the conversation's last seq %d", r.Seq, m.MaxSeq)
	case err != nil:
		return protocol.Receipt{}, fmt.Errorf("message: mark read: %w", err)
	}
	receipt := protocol.Receipt{Conversation: r.Conversation, Reader: user, Seq: m.ReadSeq, Time: s.now().UnixMilli()}
	if raised {
		frame, err := EncodePush(protocol.TypeReceipt, receipt)
		if err != nil {
			return protocol.Receipt{}, fmt.Errorf("message: encode receipt: %w", err)
		}
		to := []string{user}
		if m.Kind == conversation.Direct && m.Peer != user {
			to = append(to, m.Peer)
		}
		s.router.Deliver(to, frame, origin)
	}
	return receipt, nil
}

// Clear hides the conversation's current history from the user alone, and
// tells the user's other devices (all but origin) with a conversation push.
func (s *Service) Clear(ctx context.Context, user, conv string, origin router.Device) (protocol.Conversation, error) {
	before, err := s.member(ctx, user, conv)
	if err != nil {
		return protocol.Conversation{}, err
	}
	m, err := s.store.ClearHistory(ctx, user, conv)
	if err != nil {
		return protocol.Conversation{}, fmt.Errorf("message: clear: %w", err)
	}
	c := conversationToWire(m)
	if m.MinSeq != before.MinSeq {
		if err := s.pushConversation(user, c, origin); err != nil {
			return protocol.Conversation{}, err
		}
	}
	return c, nil
}

// pushConversation tells the user's devices, all but except, their new
// state of a conversation.
func (s *Service) pushConversation(user string, c protocol.Conversation, except router.Device) error {
	frame, err := EncodePush(protocol.TypeConversation, c)
	if err != nil {
		return fmt.Errorf("message: encode conversation: %w", err)
	}
	s.router.Deliver([]string{user}, frame, except)
	return nil
}
