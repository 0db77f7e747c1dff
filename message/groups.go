package message

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// ChangeGroup runs write, which changes a group in the store, and brings
// what the service caches of the group (its audience, and who may post) in
// step with what write reports: the group's info after it and the roster
// entries that changed (changed false: the store took no change). While
// write runs the group's messages wait, so that each goes to those who were
// members at its seq; a 10,000-member group is not read again for every
// member who joins.
func (s *Service) ChangeGroup(ctx context.Context, conv string, write func() (info store.GroupInfo, entries []store.GroupMember, changed bool, err error)) error {
	old, err := s.audience.changing(ctx, conv)
	if err != nil {
		// The change goes on; senders see it once the group is read
		// again, at the next send.
		s.log.Error("read the audience of a group to change", "conv", conv, "err", err)
	}
	info, entries, changed, err := write()
	next := old
	var joined, left []string
	if old != nil && err == nil && changed {
		next, joined, left = s.audience.apply(old, info, entries)
	}
	s.audience.changed(conv, old, next, joined, left, info.MaxSeq)
	return err
}

// applyEntries returns old's members with the group's new info and the
// roster entries that changed (one per user), and who of them joined and
// who left.
func applyEntries(old *members, info store.GroupInfo, changed []store.GroupMember) (m *members, joined, left []string) {
	m = &members{
		sorted:     slices.Clone(old.sorted),
		muteAll:    info.MuteAll,
		dismissed:  info.Dismissed,
		exempt:     maps.Clone(old.exempt),
		mutedUntil: maps.Clone(old.mutedUntil),
	}
	for _, e := range changed {
		i, found := slices.BinarySearch(m.sorted, e.User)
		switch {
		case e.Left && found:
			m.sorted = slices.Delete(m.sorted, i, i+1)
			left = append(left, e.User)
		case !e.Left && !found:
			m.sorted = slices.Insert(m.sorted, i, e.User)
			joined = append(joined, e.User)
		}
		delete(m.exempt, e.User)
		delete(m.mutedUntil, e.User)
		if !e.Left {
			m.note(e)
		}
	}
	return m, joined, left
}

// PushConversation tells each user's devices their state in conv, after
// they joined or left it.
func (s *Service) PushConversation(ctx context.Context, conv string, users []string) {
	for _, u := range users {
		m, err := s.store.Member(ctx, u, conv)
		if err != nil {
			s.log.Error("read member state to push", "conv", conv, "user", u, "err", err)
			continue
		}
		if err := s.pushConversation(u, conversationToWire(m), router.Device{}); err != nil {
			s.log.Error("push conversation", "conv", conv, "user", u, "err", err)
		}
	}
}

// loadAudience reads a group's current members and who of them may post.
func (s *Service) loadAudience(ctx context.Context, conv string) (*members, error) {
	info, err := s.store.Group(ctx, conv)
	if err != nil {
		return nil, err
	}
	entries, _, _, err := s.store.GroupMembers(ctx, conv, 0, 0)
	if err != nil {
		return nil, err
	}
	m := &members{sorted: make([]string, 0, len(entries)), muteAll: info.MuteAll, dismissed: info.Dismissed}
	for _, e := range entries {
		m.sorted = append(m.sorted, e.User)
		m.note(e)
	}
	slices.Sort(m.sorted)
	return m, nil
}

// note records what of a current member's entry decides whether they may
// post: a role above member, a mute.
func (m *members) note(e store.GroupMember) {
	if e.Role != "" && e.Role != RoleMember {
		if m.exempt == nil {
			m.exempt = make(map[string]bool)
		}
		m.exempt[e.User] = true
	}
	if e.MutedUntil != 0 {
		if m.mutedUntil == nil {
			m.mutedUntil = make(map[string]int64)
		}
		m.mutedUntil[e.User] = e.MutedUntil
	}
}

// RoleMember is the role of a group member who is neither its owner nor one
// of its admins; others are exempt from a muted group.
const RoleMember = "member"

// mayPost says whether user, a current member, may post to the group now.
func (m *members) mayPost(user, conv string, now time.Time) error {
	if until, ok := m.mutedUntil[user]; ok && (until < 0 || until > now.UnixMilli()) {
		if until < 0 {
			return protocol.Errorf(protocol.CodeMuted, "you are muted in %q", conv)
		}
		return protocol.Errorf(protocol.CodeMuted, "you are muted in %q until %s", conv, time.UnixMilli(until).UTC().Format(time.RFC3339))
	}
	if m.muteAll && !m.exempt[user] {
		return protocol.Errorf(protocol.CodeMuted, "%q is muted: only its owner and admins may post", conv)
	}
	return nil
}

// validateGroup addresses nm to the group conv, to which its sender must
// be allowed to post.
func (s *Service) validateGroup(ctx context.Context, nm *store.NewMessage, conv string) error {
	m, err := s.audience.get(ctx, conv)
	if errors.Is(err, store.ErrNotFound) {
		return noConversation(conv)
	}
	if err != nil {
		return fmt.Errorf("message: audience of %s: %w", conv, err)
	}
	if m.dismissed {
		// Its members left it; nobody would read what is said.
		if nm.Sender == conversation.SystemUser || m.has(nm.Sender) {
			return protocol.Errorf(protocol.CodeForbidden, "%q was dismissed", conv)
		}
		return s.notMember(ctx, nm.Sender, conv)
	}
	if nm.Sender != conversation.SystemUser {
		if !m.has(nm.Sender) {
			return s.notMember(ctx, nm.Sender, conv)
		}
		if err := m.mayPost(nm.Sender, conv, s.now()); err != nil {
			return err
		}
	}
	nm.Conversation, nm.Kind = conv, conversation.Group
	return nil
}
