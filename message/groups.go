package message

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// MaxMembersPerChange bounds the users one request adds or removes, and the
// first members of a new group.
const MaxMembersPerChange = 1000

// CreateGroup creates the group conversation "g:"+g.ID with its first
// members, who must exist, and tells their devices with a conversation push.
func (s *Service) CreateGroup(ctx context.Context, g protocol.NewGroup) (protocol.Group, error) {
	if !conversation.ValidName(g.ID) {
		return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "id must be 1-64 letters, digits, '.', '_', '@' or '-'")
	}
	users, err := s.checkUsers(ctx, g.Members)
	if err != nil {
		return protocol.Group{}, err
	}
	conv := conversation.GroupID(g.ID)
	err = s.store.CreateConversation(ctx, store.NewConversation{ID: conv, Kind: conversation.Group, Members: users, Time: s.now()})
	if errors.Is(err, store.ErrExists) {
		return protocol.Group{}, protocol.Errorf(protocol.CodeAlreadyExists, "group %q exists", g.ID)
	}
	if err != nil {
		return protocol.Group{}, fmt.Errorf("message: create group: %w", err)
	}
	s.audience.forget(conv)
	s.pushMembership(ctx, conv, users)
	return s.Group(ctx, g.ID)
}

// Group returns a group conversation.
func (s *Service) Group(ctx context.Context, id string) (protocol.Group, error) {
	conv := conversation.GroupID(id)
	c, err := s.store.Conversation(ctx, conv)
	if errors.Is(err, store.ErrNotFound) || err == nil && c.Kind != conversation.Group {
		return protocol.Group{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if err != nil {
		return protocol.Group{}, fmt.Errorf("message: group: %w", err)
	}
	return protocol.Group{ID: id, Conversation: conv, Members: c.Members, MaxSeq: c.MaxSeq, CreatedAt: c.CreatedAt}, nil
}

// GroupMembers returns a group's current members in id order.
func (s *Service) GroupMembers(ctx context.Context, id string) (protocol.GroupMembers, error) {
	m, err := s.audience.get(ctx, conversation.GroupID(id))
	if errors.Is(err, store.ErrNotFound) {
		return protocol.GroupMembers{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if err != nil {
		return protocol.GroupMembers{}, fmt.Errorf("message: group members: %w", err)
	}
	return protocol.GroupMembers{Members: slices.Clone(m.sorted)}, nil
}

// AddMembers makes users, who must exist, members of a group. Each new
// member sees messages from the next one on (or the whole history with
// FullHistory) and gets a conversation push; current members are left
// alone. It returns the group's current members.
func (s *Service) AddMembers(ctx context.Context, id string, ch protocol.MemberChange) (protocol.GroupMembers, error) {
	users, err := s.checkUsers(ctx, ch.Users)
	if err != nil {
		return protocol.GroupMembers{}, err
	}
	if len(users) == 0 {
		return protocol.GroupMembers{}, protocol.Errorf(protocol.CodeInvalidArgument, "users is required")
	}
	conv := conversation.GroupID(id)
	before, err := s.audience.get(ctx, conv)
	if err == nil {
		_, err = s.store.AddMembers(ctx, conv, users, ch.FullHistory)
	}
	if errors.Is(err, store.ErrNotFound) {
		return protocol.GroupMembers{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if err != nil {
		return protocol.GroupMembers{}, fmt.Errorf("message: add members: %w", err)
	}
	s.audience.forget(conv)
	var joined []string
	for _, u := range users {
		if !before.has(u) {
			joined = append(joined, u)
		}
	}
	s.pushMembership(ctx, conv, joined)
	return s.GroupMembers(ctx, id)
}

// RemoveMember ends a user's membership of a group: they keep what they
// could see until now and nothing after, and their devices get a
// conversation push marked left.
func (s *Service) RemoveMember(ctx context.Context, id, user string) error {
	conv := conversation.GroupID(id)
	removed, err := s.store.RemoveMembers(ctx, conv, []string{user})
	if errors.Is(err, store.ErrNotFound) {
		return protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if err != nil {
		return fmt.Errorf("message: remove member: %w", err)
	}
	if len(removed) == 0 {
		return protocol.Errorf(protocol.CodeNotFound, "%q is not a member of group %q", user, id)
	}
	s.audience.forget(conv)
	s.pushMembership(ctx, conv, []string{user})
	return nil
}

// checkUsers returns the distinct users of a membership change, which must
// all exist.
func (s *Service) checkUsers(ctx context.Context, users []string) ([]string, error) {
	if len(users) > MaxMembersPerChange {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "at most %d users at a time", MaxMembersPerChange)
	}
	out := slices.Clone(users)
	slices.Sort(out)
	out = slices.Compact(out)
	for _, u := range out {
		if !conversation.ValidName(u) {
			return nil, protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a user id", u)
		}
		ok, err := s.users.UserExists(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("message: look up user: %w", err)
		}
		if !ok {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no user %q", u)
		}
	}
	return out, nil
}

// pushMembership tells each user's devices their new state in conv.
func (s *Service) pushMembership(ctx context.Context, conv string, users []string) {
	for _, u := range users {
		m, err := s.store.Member(ctx, u, conv)
		if err != nil {
			s.log.Error("read member state to push", "conv", conv, "user", u, "err", err)
			continue
		}
		frame, err := EncodePush(protocol.TypeConversation, conversationToWire(m))
		if err != nil {
			s.log.Error("encode conversation frame", "err", err)
			continue
		}
		s.router.Deliver([]string{u}, frame, router.Device{})
	}
}
