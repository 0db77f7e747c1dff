package message

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// UpdateSettings changes the user's settings of a conversation and tells
// the user's other devices (all but origin) with a conversation push when
// anything changed. Every field is checked before anything is changed.
func (s *Service) UpdateSettings(ctx context.Context, user, conv string, u protocol.SettingsUpdate, origin router.Device) (protocol.Conversation, error) {
	if u == (protocol.SettingsUpdate{}) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeInvalidArgument, "no setting to change: set pinned, muted_until, draft or hidden")
	}
	now := s.now()
	if u.MutedUntil != nil {
		if t := *u.MutedUntil; t != 0 && t != conversation.MuteForever && t <= now.UnixMilli() {
			return protocol.Conversation{}, protocol.Errorf(protocol.CodeInvalidArgument, "muted_until must be 0 (unmute), %d (forever) or a time in the future, in unix ms", conversation.MuteForever)
		}
	}
	if u.Draft != nil {
		if !utf8.ValidString(*u.Draft) {
			return protocol.Conversation{}, protocol.Errorf(protocol.CodeInvalidUTF8, "draft is not valid UTF-8")
		}
		if len(*u.Draft) > protocol.MaxDraftBytes {
			return protocol.Conversation{}, protocol.Errorf(protocol.CodeInvalidArgument, "draft is longer than %d bytes", protocol.MaxDraftBytes)
		}
	}
	return s.changeSettings(ctx, user, conv, store.SettingsChange{Pinned: u.Pinned, MutedUntil: u.MutedUntil,
		Draft: u.Draft, DraftTime: now.UnixMilli(), Hidden: u.Hidden}, origin)
}

// DeleteConversation removes a conversation from the user's list: it is
// hidden until a newer message and its history cleared, for the user alone.
// The user's other devices (all but origin) get a conversation push.
func (s *Service) DeleteConversation(ctx context.Context, user, conv string, origin router.Device) (protocol.Conversation, error) {
	hidden := true
	return s.changeSettings(ctx, user, conv, store.SettingsChange{Hidden: &hidden, Clear: true}, origin)
}

func (s *Service) changeSettings(ctx context.Context, user, conv string, c store.SettingsChange, origin router.Device) (protocol.Conversation, error) {
	before, err := s.member(ctx, user, conv)
	if err != nil {
		return protocol.Conversation{}, err
	}
	m, err := s.store.UpdateSettings(ctx, user, conv, c)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.Conversation{}, noConversation(conv)
	}
	if err != nil {
		return protocol.Conversation{}, fmt.Errorf("message: update settings: %w", err)
	}
	out := conversationToWire(m)
	if m.Version != before.Version {
		if err := s.pushConversation(user, out, origin); err != nil {
			return protocol.Conversation{}, err
		}
	}
	return out, nil
}

// RecentConversations returns a page of the user's conversation list in
// display order (conversation.Rank), hidden ones left out: up to limit
// (default and maximum protocol.MaxConversationsPage) after the cursor
// after ("" for the first page).
//
// Messages are stored once per conversation (read diffusion), so nothing
// keeps a per-user index by last activity: each page reads the user's
// member records and their conversations' heads, and sorts them.
func (s *Service) RecentConversations(ctx context.Context, user, after string, limit int) (protocol.ConversationPage, error) {
	var from conversation.Rank
	if after != "" {
		var ok bool
		if from, ok = conversation.ParseRank(after); !ok {
			return protocol.ConversationPage{}, protocol.Errorf(protocol.CodeInvalidArgument, "after is not a cursor this list returned")
		}
	}
	if limit < 0 {
		return protocol.ConversationPage{}, protocol.Errorf(protocol.CodeInvalidArgument, "limit must not be negative")
	}
	if limit == 0 || limit > protocol.MaxConversationsPage {
		limit = protocol.MaxConversationsPage
	}
	members, version, _, err := s.store.Members(ctx, user, 0, 0)
	if err != nil {
		return protocol.ConversationPage{}, fmt.Errorf("message: recent conversations: %w", err)
	}
	list := make([]protocol.Conversation, 0, len(members))
	for _, m := range members {
		if m.Hidden() {
			continue
		}
		c := conversationToWire(m)
		if after != "" && c.Rank().Compare(from) <= 0 {
			continue
		}
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b protocol.Conversation) int { return a.Rank().Compare(b.Rank()) })
	out := protocol.ConversationPage{Conversations: list, Version: version}
	if len(list) > limit {
		out.Conversations = list[:limit]
		out.Next = list[limit-1].Rank().String()
	}
	return out, nil
}

// UnreadTotal sums the user's unread counts over their conversations that
// are not hidden, muted ones apart.
func (s *Service) UnreadTotal(ctx context.Context, user string) (protocol.UnreadTotal, error) {
	members, _, _, err := s.store.Members(ctx, user, 0, 0)
	if err != nil {
		return protocol.UnreadTotal{}, fmt.Errorf("message: unread total: %w", err)
	}
	now := s.now()
	var out protocol.UnreadTotal
	for _, m := range members {
		n := m.Unread()
		switch {
		case m.Hidden() || n == 0:
		case conversation.Muted(m.Settings.MutedUntil, now):
			out.Muted += n
		default:
			out.Total += n
			out.Conversations++
		}
	}
	return out, nil
}
