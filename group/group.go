// Package group is the management of group conversations: their info and
// policies, roles (owner, admin, member), invitations, join requests,
// kicks, mutes and ownership, and who may do what (the permission table in
// docs/protocol.md, "Groups"). Every change is recorded as an event message
// in the group's conversation, so every member's devices learn it through
// ordinary sync, and is stamped with a version for incremental sync of the
// roster and of each user's groups.
//
// # Concurrency model
//
// Changes to one group are serialised by a lock per group (striped), so a
// permission check, the event it leads to and the change itself see the
// same roster. The store applies each change atomically.
package group

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// Limits of a group's fields.
const (
	MaxNameLength         = 128  // characters
	MaxAvatarURLBytes     = 2048 // bytes
	MaxAnnouncementLength = 4096 // characters
	MaxIntroductionLength = 1024 // characters
	MaxNicknameLength     = 64   // characters
	MaxExtraBytes         = 4096 // bytes of JSON
	MaxRequestMessage     = 256  // characters
	// MaxMembersPerChange bounds the users one invitation adds; a group's
	// first members are bounded by its maximum size alone.
	MaxMembersPerChange = 1000
	// DefaultMaxMembers is the largest group, unless configured otherwise.
	DefaultMaxMembers = 10_000
	// maxEventUsers bounds the users an event message names; Count says
	// how many there were.
	maxEventUsers = 100
)

// Actor is who asks for a change: a user, or the app server (App) with the
// admin key, which may do anything but remove the owner.
type Actor struct {
	User string
	App  bool
}

// Store is what the service keeps in the store.
type Store interface {
	store.Groups
}

// Messages is the part of the message service the group service drives:
// event messages, the audience cache and conversation pushes.
type Messages interface {
	Send(ctx context.Context, req message.SendRequest) (protocol.Ack, error)
	ChangeGroup(ctx context.Context, conv string, write func() (store.GroupInfo, []store.GroupMember, bool, error)) error
	PushConversation(ctx context.Context, conv string, users []string)
}

// UserDirectory tells whether a user exists.
type UserDirectory interface {
	UserExists(ctx context.Context, id string) (bool, error)
}

// Config configures a Service.
type Config struct {
	// MaxMembers is the largest size a group may have, and the size of a
	// group created without one. Default DefaultMaxMembers.
	MaxMembers int
}

// Service manages groups. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	store  Store
	msgs   Messages
	users  UserDirectory
	router router.Router
	log    *slog.Logger
	now    func() time.Time

	seed  maphash.Seed
	locks [64]sync.Mutex
}

// New returns a Service.
func New(cfg Config, st Store, msgs Messages, users UserDirectory, r router.Router, log *slog.Logger) *Service {
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = DefaultMaxMembers
	}
	return &Service{cfg: cfg, store: st, msgs: msgs, users: users, router: r, log: log, now: time.Now, seed: maphash.MakeSeed()}
}

// lock serialises the changes to one group.
func (s *Service) lock(conv string) func() {
	mu := &s.locks[maphash.String(s.seed, conv)%uint64(len(s.locks))]
	mu.Lock()
	return mu.Unlock
}

// Ranks: who may act on whom. The app server outranks everyone.
const (
	rankOutsider = iota
	rankMember
	rankAdmin
	rankOwner
	rankApp
)

func roleRank(role string) int {
	switch role {
	case protocol.RoleOwner:
		return rankOwner
	case protocol.RoleAdmin:
		return rankAdmin
	case protocol.RoleMember:
		return rankMember
	}
	return rankOutsider
}

// party is an actor as the group sees them.
type party struct {
	Actor
	entry store.GroupMember
	in    bool // a current member
}

func (p party) rank() int {
	if p.App {
		return rankApp
	}
	if !p.in {
		return rankOutsider
	}
	return roleRank(p.entry.Role)
}

// name is how events name the actor.
func (p party) name() string {
	if p.App {
		return conversation.SystemUser
	}
	return p.User
}

// group reads a group and the actor's place in it. A group that does not
// exist, or that was dismissed, is not_found to anyone but its former
// members and the app server.
func (s *Service) group(ctx context.Context, a Actor, id string) (store.GroupInfo, party, error) {
	if !conversation.ValidName(id) {
		return store.GroupInfo{}, party{}, protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a group id", id)
	}
	conv := conversation.GroupID(id)
	info, err := s.store.Group(ctx, conv)
	if errors.Is(err, store.ErrNotFound) {
		return store.GroupInfo{}, party{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if err != nil {
		return store.GroupInfo{}, party{}, fmt.Errorf("group: read %s: %w", id, err)
	}
	// A group made before groups had info (an upgraded data directory)
	// was managed by the app server alone: by invitation, the server's
	// maximum size.
	info.JoinPolicy = cmp.Or(info.JoinPolicy, protocol.JoinInvite)
	info.InvitePolicy = cmp.Or(info.InvitePolicy, protocol.InviteAdmins)
	if info.MaxMembers == 0 {
		info.MaxMembers = s.cfg.MaxMembers
	}
	p := party{Actor: a}
	if !a.App {
		e, err := s.store.GroupMember(ctx, conv, a.User)
		switch {
		case err == nil:
			p.entry, p.in = e, !e.Left
		case !errors.Is(err, store.ErrNotFound):
			return store.GroupInfo{}, party{}, fmt.Errorf("group: read member: %w", err)
		}
		if info.Dismissed && err != nil {
			return store.GroupInfo{}, party{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
		}
	}
	return info, p, nil
}

// need refuses p unless it has at least rank.
func need(p party, rank int, what string) error {
	if p.rank() >= rank {
		return nil
	}
	if p.rank() == rankOutsider {
		return protocol.Errorf(protocol.CodeForbidden, "only members may %s", what)
	}
	switch rank {
	case rankAdmin:
		return protocol.Errorf(protocol.CodeForbidden, "only the owner and admins may %s", what)
	case rankOwner:
		return protocol.Errorf(protocol.CodeForbidden, "only the owner may %s", what)
	}
	return protocol.Errorf(protocol.CodeForbidden, "only the app server may %s", what)
}

// liveGroup is group for a change: a dismissed group changes no more.
func (s *Service) liveGroup(ctx context.Context, a Actor, id string) (store.GroupInfo, party, error) {
	info, p, err := s.group(ctx, a, id)
	if err == nil && info.Dismissed {
		err = protocol.Errorf(protocol.CodeForbidden, "the group was dismissed")
	}
	return info, p, err
}

// Create creates a group with its first members. A user creating a group
// becomes its owner.
func (s *Service) Create(ctx context.Context, a Actor, ng protocol.NewGroup) (protocol.Group, error) {
	if ng.ID == "" {
		ng.ID = newID()
	}
	if !conversation.ValidName(ng.ID) {
		return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "id must be 1-64 letters, digits, '.', '_', '@' or '-'")
	}
	owner := ng.Owner
	if !a.App {
		if owner != "" && owner != a.User {
			return protocol.Group{}, protocol.Errorf(protocol.CodeForbidden, "a user creates groups they own")
		}
		owner = a.User
	}
	info := store.GroupInfo{
		Conversation: conversation.GroupID(ng.ID),
		Owner:        owner,
		JoinPolicy:   cmp.Or(ng.JoinPolicy, protocol.JoinApproval),
		InvitePolicy: cmp.Or(ng.InvitePolicy, protocol.InviteMembers),
		FullHistory:  ng.FullHistory,
		MaxMembers:   ng.MaxMembers,
	}
	up := protocol.GroupUpdate{Name: &ng.Name, AvatarURL: &ng.AvatarURL, Announcement: &ng.Announcement, Introduction: &ng.Introduction}
	if ng.Extra != nil {
		up.Extra = &ng.Extra
	}
	if _, err := applyUpdate(&info, up); err != nil {
		return protocol.Group{}, err
	}
	if err := checkPolicies(&info); err != nil {
		return protocol.Group{}, err
	}
	if info.MaxMembers == 0 {
		info.MaxMembers = s.cfg.MaxMembers
	}
	if info.MaxMembers < 0 || info.MaxMembers > s.cfg.MaxMembers {
		return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "max_members must be 1-%d", s.cfg.MaxMembers)
	}
	users := slices.Clone(ng.Members)
	if owner != "" {
		users = append(users, owner)
	}
	users = dedupe(users)
	if len(users) > info.MaxMembers {
		return protocol.Group{}, protocol.Errorf(protocol.CodeGroupFull, "%d members is more than the group's maximum of %d", len(users), info.MaxMembers)
	}
	if err := s.checkUsers(ctx, users); err != nil {
		return protocol.Group{}, err
	}
	now := s.now().UTC()
	info.CreatedAt, info.UpdatedAt = now, now
	members := make([]store.GroupMember, len(users))
	for i, u := range users {
		members[i] = store.GroupMember{User: u, Role: protocol.RoleMember, JoinedAt: now}
		if u == owner {
			members[i].Role = protocol.RoleOwner
		}
	}
	version, err := s.store.CreateGroup(ctx, info, members)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return protocol.Group{}, protocol.Errorf(protocol.CodeAlreadyExists, "group %q exists", ng.ID)
		}
		return protocol.Group{}, fmt.Errorf("group: create: %w", err)
	}
	s.msgs.PushConversation(ctx, info.Conversation, users)
	s.pushChanged(users, protocol.ScopeGroups, "", version)
	s.event(ctx, info.Conversation, protocol.GroupEvent{Event: protocol.EventCreated, Actor: party{Actor: a}.name(), Name: info.Name})
	created, err := s.store.Group(ctx, info.Conversation)
	if err != nil {
		return protocol.Group{}, fmt.Errorf("group: read back: %w", err)
	}
	return toWire(created, party{Actor: a, in: !a.App, entry: store.GroupMember{Role: roleOf(members, a.User)}}), nil
}

func roleOf(ms []store.GroupMember, user string) string {
	for _, m := range ms {
		if m.User == user {
			return m.Role
		}
	}
	return ""
}

// Get returns a group: all of it to its members and the app server, its
// public part to anyone else.
func (s *Service) Get(ctx context.Context, a Actor, id string) (protocol.Group, error) {
	info, p, err := s.group(ctx, a, id)
	if err != nil {
		return protocol.Group{}, err
	}
	return toWire(info, p), nil
}

// Update changes a group's info and policies. The owner and admins change
// its name, avatar, announcement, introduction and extra, and mute or
// unmute it; the owner alone changes its policies; the app server alone
// its maximum size.
func (s *Service) Update(ctx context.Context, a Actor, id string, up protocol.GroupUpdate) (protocol.Group, error) {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	info, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return protocol.Group{}, err
	}
	if err := need(p, rankAdmin, "change the group"); err != nil {
		return protocol.Group{}, err
	}
	if (up.JoinPolicy != nil || up.InvitePolicy != nil || up.FullHistory != nil) && p.rank() < rankOwner {
		return protocol.Group{}, need(p, rankOwner, "change the group's policies")
	}
	if up.MaxMembers != nil {
		if err := need(p, rankApp, "change the group's maximum size"); err != nil {
			return protocol.Group{}, err
		}
		if *up.MaxMembers < 1 || *up.MaxMembers > s.cfg.MaxMembers {
			return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "max_members must be 1-%d", s.cfg.MaxMembers)
		}
		if *up.MaxMembers < info.Members {
			return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "the group has %d members, more than %d", info.Members, *up.MaxMembers)
		}
	}
	next := info
	fields, err := applyUpdate(&next, up)
	if err != nil {
		return protocol.Group{}, err
	}
	if err := checkPolicies(&next); err != nil {
		return protocol.Group{}, err
	}
	if len(fields) == 0 {
		return toWire(info, p), nil
	}
	next.UpdatedAt = s.now().UTC()
	info, _, _, err = s.change(ctx, conv, []string{}, func(store.GroupInfo, map[string]store.GroupMember) (store.GroupChange, error) {
		return store.GroupChange{Info: &next}, nil
	})
	if err != nil {
		return protocol.Group{}, fmt.Errorf("group: update: %w", err)
	}
	muteAll := slices.Contains(fields, "mute_all")
	fields = slices.DeleteFunc(fields, func(f string) bool { return f == "mute_all" })
	if len(fields) > 0 {
		ev := protocol.GroupEvent{Event: protocol.EventInfoChanged, Actor: p.name(), Fields: fields}
		if slices.Contains(fields, "name") {
			ev.Name = info.Name
		}
		s.event(ctx, conv, ev)
	}
	if muteAll {
		s.event(ctx, conv, protocol.GroupEvent{Event: protocol.EventMuteAll, Actor: p.name(), MuteAll: &info.MuteAll})
	}
	return toWire(info, p), nil
}

// applyUpdate sets the fields of up on info and returns the names of those
// that changed.
func applyUpdate(info *store.GroupInfo, up protocol.GroupUpdate) ([]string, error) {
	var fields []string
	text := func(field string, v *string, limit int, dst *string) error {
		if v == nil {
			return nil
		}
		if !utf8.ValidString(*v) {
			return protocol.Errorf(protocol.CodeInvalidUTF8, "%s must be valid UTF-8", field)
		}
		if utf8.RuneCountInString(*v) > limit {
			return protocol.Errorf(protocol.CodeInvalidArgument, "%s is longer than %d characters", field, limit)
		}
		if *dst != *v {
			*dst = *v
			fields = append(fields, field)
		}
		return nil
	}
	for _, f := range []struct {
		name  string
		v     *string
		limit int
		dst   *string
	}{
		{"name", up.Name, MaxNameLength, &info.Name},
		{"announcement", up.Announcement, MaxAnnouncementLength, &info.Announcement},
		{"introduction", up.Introduction, MaxIntroductionLength, &info.Introduction},
		{"join_policy", up.JoinPolicy, 16, &info.JoinPolicy},
		{"invite_policy", up.InvitePolicy, 16, &info.InvitePolicy},
	} {
		if err := text(f.name, f.v, f.limit, f.dst); err != nil {
			return nil, err
		}
	}
	if up.AvatarURL != nil {
		if len(*up.AvatarURL) > MaxAvatarURLBytes || !utf8.ValidString(*up.AvatarURL) {
			return nil, protocol.Errorf(protocol.CodeInvalidArgument, "avatar_url must be valid UTF-8 of at most %d bytes", MaxAvatarURLBytes)
		}
		if *up.AvatarURL != info.AvatarURL {
			info.AvatarURL = *up.AvatarURL
			fields = append(fields, "avatar_url")
		}
	}
	if up.Extra != nil {
		extra, err := compactExtra(*up.Extra)
		if err != nil {
			return nil, err
		}
		if string(extra) != string(info.Extra) {
			info.Extra = extra
			fields = append(fields, "extra")
		}
	}
	if up.MuteAll != nil && *up.MuteAll != info.MuteAll {
		info.MuteAll = *up.MuteAll
		fields = append(fields, "mute_all")
	}
	if up.FullHistory != nil && *up.FullHistory != info.FullHistory {
		info.FullHistory = *up.FullHistory
		fields = append(fields, "full_history")
	}
	if up.MaxMembers != nil && *up.MaxMembers != info.MaxMembers {
		info.MaxMembers = *up.MaxMembers
		fields = append(fields, "max_members")
	}
	return fields, nil
}

func compactExtra(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) > MaxExtraBytes {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "extra is larger than %d bytes", MaxExtraBytes)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "extra must be a JSON value")
	}
	if b.String() == "null" {
		return nil, nil
	}
	return b.Bytes(), nil
}

func checkPolicies(info *store.GroupInfo) error {
	switch info.JoinPolicy {
	case protocol.JoinFree, protocol.JoinApproval, protocol.JoinInvite:
	default:
		return protocol.Errorf(protocol.CodeInvalidArgument, "join_policy must be %q, %q or %q", protocol.JoinFree, protocol.JoinApproval, protocol.JoinInvite)
	}
	switch info.InvitePolicy {
	case protocol.InviteMembers, protocol.InviteAdmins:
	default:
		return protocol.Errorf(protocol.CodeInvalidArgument, "invite_policy must be %q or %q", protocol.InviteMembers, protocol.InviteAdmins)
	}
	return nil
}

// Dismiss ends a group: its members leave it, keeping what they saw, and
// nothing more can be said or changed in it. The owner or the app server.
func (s *Service) Dismiss(ctx context.Context, a Actor, id string) error {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	_, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return err
	}
	if err := need(p, rankOwner, "dismiss the group"); err != nil {
		return err
	}
	// The event first, so that every member's history ends with it.
	s.event(ctx, conv, protocol.GroupEvent{Event: protocol.EventDismissed, Actor: p.name()})
	now := s.now().UTC()
	_, left, version, err := s.change(ctx, conv, nil, func(info store.GroupInfo, cur map[string]store.GroupMember) (store.GroupChange, error) {
		info.Dismissed, info.UpdatedAt = true, now
		ch := store.GroupChange{Info: &info}
		for _, m := range cur {
			m.Left = true
			ch.Members = append(ch.Members, m)
		}
		return ch, nil
	})
	if err != nil {
		return fmt.Errorf("group: dismiss: %w", err)
	}
	users := usersOf(left)
	s.msgs.PushConversation(ctx, conv, users)
	s.pushChanged(users, protocol.ScopeGroups, "", version)
	return nil
}

// Invite adds users to a group: the owner and admins may, and every member
// when the group's invite policy is "members". New members read the group
// from the next message on, or its whole history when either the group or
// the invitation says so.
func (s *Service) Invite(ctx context.Context, a Actor, id string, ch protocol.MemberChange) ([]protocol.GroupMember, error) {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	info, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return nil, err
	}
	rank := rankAdmin
	if info.InvitePolicy == protocol.InviteMembers {
		rank = rankMember
	}
	if err := need(p, rank, "invite to this group"); err != nil {
		return nil, err
	}
	if len(ch.Users) == 0 {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "users is required")
	}
	if len(ch.Users) > MaxMembersPerChange {
		return nil, protocol.Errorf(protocol.CodeInvalidArgument, "at most %d users at a time", MaxMembersPerChange)
	}
	users := dedupe(ch.Users)
	if err := s.checkUsers(ctx, users); err != nil {
		return nil, err
	}
	joined, err := s.join(ctx, conv, users, ch.FullHistory || info.FullHistory)
	if err != nil {
		return nil, err
	}
	if len(joined) > 0 {
		s.event(ctx, conv, eventUsers(protocol.EventJoined, p.name(), usersOf(joined)))
	}
	return membersToWire(joined), nil
}

// join makes those of users who are not current members join conv as
// members, unless that would make the group larger than its maximum.
func (s *Service) join(ctx context.Context, conv string, users []string, fullHistory bool) ([]store.GroupMember, error) {
	now := s.now().UTC()
	_, joined, version, err := s.change(ctx, conv, users, func(info store.GroupInfo, cur map[string]store.GroupMember) (store.GroupChange, error) {
		ch := store.GroupChange{FullHistory: fullHistory}
		for _, u := range users {
			if m, ok := cur[u]; !ok || m.Left {
				ch.Members = append(ch.Members, store.GroupMember{User: u, Role: protocol.RoleMember, JoinedAt: now})
			}
		}
		if info.Members+len(ch.Members) > info.MaxMembers {
			return ch, protocol.Errorf(protocol.CodeGroupFull, "the group has %d of at most %d members; %d more do not fit", info.Members, info.MaxMembers, len(ch.Members))
		}
		return ch, nil
	})
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, fmt.Errorf("group: add members: %w", err)
	}
	added := usersOf(joined)
	s.msgs.PushConversation(ctx, conv, added)
	s.pushChanged(added, protocol.ScopeGroups, "", version)
	return joined, nil
}

// Remove takes user out of a group: a member leaving by themselves (the
// owner cannot: they transfer ownership or dismiss the group first), or
// removed by someone who outranks them (the owner removes admins and
// members, admins remove members, the app server anyone but the owner).
func (s *Service) Remove(ctx context.Context, a Actor, id, user string) error {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	_, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return err
	}
	if !a.App && user == a.User {
		if !p.in {
			return protocol.Errorf(protocol.CodeNotFound, "you are not a member of group %q", id)
		}
		if p.entry.Role == protocol.RoleOwner {
			return protocol.Errorf(protocol.CodeForbidden, "the owner cannot leave: transfer the ownership or dismiss the group")
		}
		s.event(ctx, conv, protocol.GroupEvent{Event: protocol.EventLeft, Actor: user})
		return s.leave(ctx, conv, p.entry)
	}
	if err := need(p, rankAdmin, "remove members"); err != nil {
		return err
	}
	target, err := s.member(ctx, id, user)
	if err != nil {
		return err
	}
	if target.Role == protocol.RoleOwner {
		return protocol.Errorf(protocol.CodeForbidden, "the owner cannot be removed: transfer the ownership first")
	}
	if p.rank() <= roleRank(target.Role) {
		return protocol.Errorf(protocol.CodeForbidden, "only the owner may remove an admin")
	}
	// The event first: the removed member's history ends with it.
	s.event(ctx, conv, eventUsers(protocol.EventKicked, p.name(), []string{user}))
	return s.leave(ctx, conv, target)
}

// leave ends m's membership.
func (s *Service) leave(ctx context.Context, conv string, m store.GroupMember) error {
	m.Left = true
	_, _, version, err := s.change(ctx, conv, []string{m.User}, one(m))
	if err != nil {
		return fmt.Errorf("group: remove member: %w", err)
	}
	s.msgs.PushConversation(ctx, conv, []string{m.User})
	s.pushChanged([]string{m.User}, protocol.ScopeGroups, "", version)
	return nil
}

// change applies decide through the store, and keeps the message
// service's view of the group (who may post) in step.
func (s *Service) change(ctx context.Context, conv string, users []string, decide store.GroupDecision) (info store.GroupInfo, changed []store.GroupMember, version int64, err error) {
	err = s.msgs.ChangeGroup(ctx, conv, func() (store.GroupInfo, []store.GroupMember, bool, error) {
		info, changed, version, err = s.store.ChangeGroup(ctx, conv, users, decide)
		return info, changed, version != 0, err
	})
	return info, changed, version, err
}

// one is the decision that writes m as it is.
func one(m store.GroupMember) store.GroupDecision {
	return func(store.GroupInfo, map[string]store.GroupMember) (store.GroupChange, error) {
		return store.GroupChange{Members: []store.GroupMember{m}}, nil
	}
}

// member returns a current member's entry, or not_found.
func (s *Service) member(ctx context.Context, id, user string) (store.GroupMember, error) {
	m, err := s.store.GroupMember(ctx, conversation.GroupID(id), user)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.Left {
		return store.GroupMember{}, protocol.Errorf(protocol.CodeNotFound, "%q is not a member of group %q", user, id)
	}
	if err != nil {
		return store.GroupMember{}, fmt.Errorf("group: read member: %w", err)
	}
	return m, nil
}

// UpdateMember changes a member's role (the owner, between admin and
// member), nickname (the member, or someone who outranks them) or mute
// (someone who outranks them).
func (s *Service) UpdateMember(ctx context.Context, a Actor, id, user string, up protocol.MemberUpdate) (protocol.GroupMember, error) {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	_, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return protocol.GroupMember{}, err
	}
	if err := need(p, rankMember, "change members"); err != nil {
		return protocol.GroupMember{}, err
	}
	target, err := s.member(ctx, id, user)
	if err != nil {
		return protocol.GroupMember{}, err
	}
	self := !a.App && user == a.User
	outranks := p.rank() > roleRank(target.Role)
	next := target
	var events []protocol.GroupEvent
	if up.Role != nil {
		if err := need(p, rankOwner, "change roles"); err != nil {
			return protocol.GroupMember{}, err
		}
		if *up.Role != protocol.RoleAdmin && *up.Role != protocol.RoleMember {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeInvalidArgument, "role must be %q or %q; the owner changes by transfer", protocol.RoleAdmin, protocol.RoleMember)
		}
		if target.Role == protocol.RoleOwner {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeForbidden, "the owner's role changes by transfer")
		}
		if next.Role != *up.Role {
			next.Role = *up.Role
			events = append(events, protocol.GroupEvent{Event: protocol.EventRoleChanged, Actor: p.name(), Users: []string{user}, Role: *up.Role})
		}
	}
	if up.Nickname != nil {
		if !self && !outranks {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeForbidden, "only the member, or those above them, may set their nickname")
		}
		if !utf8.ValidString(*up.Nickname) {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeInvalidUTF8, "nickname must be valid UTF-8")
		}
		if utf8.RuneCountInString(*up.Nickname) > MaxNicknameLength {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeInvalidArgument, "nickname is longer than %d characters", MaxNicknameLength)
		}
		if next.Nickname != *up.Nickname {
			next.Nickname = *up.Nickname
			events = append(events, protocol.GroupEvent{Event: protocol.EventNickname, Actor: p.name(), Users: []string{user}, Nickname: *up.Nickname})
		}
	}
	if up.MutedUntil != nil {
		until := *up.MutedUntil
		if p.rank() < rankAdmin || !outranks {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeForbidden, "only the owner and admins may mute, and only those below them")
		}
		if until < -1 || until > 0 && until <= s.now().UnixMilli() {
			return protocol.GroupMember{}, protocol.Errorf(protocol.CodeInvalidArgument, "muted_until must be a future time in unix milliseconds, -1 for no end, or 0 to unmute")
		}
		if next.MutedUntil != until {
			next.MutedUntil = until
			ev := protocol.GroupEvent{Event: protocol.EventMuted, Actor: p.name(), Users: []string{user}, MutedUntil: until}
			if until == 0 {
				ev = protocol.GroupEvent{Event: protocol.EventUnmuted, Actor: p.name(), Users: []string{user}}
			}
			events = append(events, ev)
		}
	}
	if len(events) == 0 {
		return memberToWire(target), nil
	}
	_, changed, version, err := s.change(ctx, conv, []string{user}, one(next))
	if err != nil {
		return protocol.GroupMember{}, fmt.Errorf("group: update member: %w", err)
	}
	if up.Role != nil && next.Role != target.Role {
		s.pushChanged([]string{user}, protocol.ScopeGroups, "", version)
	}
	for _, ev := range events {
		s.event(ctx, conv, ev)
	}
	if len(changed) == 1 {
		next = changed[0]
	}
	return memberToWire(next), nil
}

// Transfer hands the ownership to another member; the old owner becomes an
// admin. The owner or the app server.
func (s *Service) Transfer(ctx context.Context, a Actor, id, to string) (protocol.Group, error) {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	info, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return protocol.Group{}, err
	}
	if err := need(p, rankOwner, "transfer the ownership"); err != nil {
		return protocol.Group{}, err
	}
	if to == info.Owner {
		return protocol.Group{}, protocol.Errorf(protocol.CodeInvalidArgument, "%q owns the group already", to)
	}
	heir, err := s.member(ctx, id, to)
	if err != nil {
		return protocol.Group{}, err
	}
	users := []string{to}
	if info.Owner != "" {
		users = append(users, info.Owner)
	}
	now := s.now().UTC()
	info, _, version, err := s.change(ctx, conv, users, func(info store.GroupInfo, cur map[string]store.GroupMember) (store.GroupChange, error) {
		heir.Role = protocol.RoleOwner
		ch := store.GroupChange{Members: []store.GroupMember{heir}}
		if old, ok := cur[info.Owner]; ok && !old.Left {
			old.Role = protocol.RoleAdmin
			ch.Members = append(ch.Members, old)
		}
		info.Owner, info.UpdatedAt = to, now
		ch.Info = &info
		return ch, nil
	})
	if err != nil {
		return protocol.Group{}, fmt.Errorf("group: transfer: %w", err)
	}
	s.pushChanged(users, protocol.ScopeGroups, "", version)
	s.event(ctx, conv, protocol.GroupEvent{Event: protocol.EventOwnerChanged, Actor: p.name(), Users: []string{to}})
	if !a.App {
		p.entry.Role = protocol.RoleAdmin
	}
	return toWire(info, p), nil
}

// Join lets a user into a group by the group's join policy: at once when
// it is free, by a join request when it asks for approval, not at all when
// it is by invitation only.
func (s *Service) Join(ctx context.Context, a Actor, id string, j protocol.JoinGroup) (protocol.Joined, error) {
	if a.App {
		return protocol.Joined{}, protocol.Errorf(protocol.CodeInvalidArgument, "the app server adds members by invitation; name a user with ?user= to join as them")
	}
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	info, p, err := s.group(ctx, a, id)
	if err != nil {
		return protocol.Joined{}, err
	}
	if info.Dismissed {
		return protocol.Joined{}, protocol.Errorf(protocol.CodeNotFound, "no group %q", id)
	}
	if p.in {
		return protocol.Joined{}, protocol.Errorf(protocol.CodeAlreadyExists, "you are a member of group %q", id)
	}
	if !utf8.ValidString(j.Message) {
		return protocol.Joined{}, protocol.Errorf(protocol.CodeInvalidUTF8, "message must be valid UTF-8")
	}
	if utf8.RuneCountInString(j.Message) > MaxRequestMessage {
		return protocol.Joined{}, protocol.Errorf(protocol.CodeInvalidArgument, "message is longer than %d characters", MaxRequestMessage)
	}
	switch info.JoinPolicy {
	case protocol.JoinFree:
		joined, err := s.join(ctx, conv, []string{a.User}, info.FullHistory)
		if err != nil {
			return protocol.Joined{}, err
		}
		s.event(ctx, conv, eventUsers(protocol.EventJoined, a.User, usersOf(joined)))
		return protocol.Joined{Joined: true}, nil
	case protocol.JoinApproval:
		if info.Members >= info.MaxMembers {
			return protocol.Joined{}, protocol.Errorf(protocol.CodeGroupFull, "the group has reached its maximum of %d members", info.MaxMembers)
		}
		old, err := s.store.JoinRequest(ctx, conv, a.User)
		if err == nil && old.State == "pending" {
			return protocol.Joined{}, protocol.Errorf(protocol.CodeAlreadyExists, "your request to join %q is pending", id)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return protocol.Joined{}, fmt.Errorf("group: read join request: %w", err)
		}
		now := s.now().UTC()
		r := store.JoinRequest{Conversation: conv, User: a.User, Message: j.Message, State: "pending", CreatedAt: now, UpdatedAt: now}
		if r.Version, err = s.store.SetJoinRequest(ctx, r); err != nil {
			return protocol.Joined{}, fmt.Errorf("group: store join request: %w", err)
		}
		s.pushChanged(append(s.managers(ctx, conv), a.User), protocol.ScopeGroupRequests, id, r.Version)
		w := requestToWire(r)
		return protocol.Joined{Request: &w}, nil
	}
	return protocol.Joined{}, protocol.Errorf(protocol.CodeForbidden, "group %q takes members by invitation only", id)
}

// managers returns a group's owner and admins.
func (s *Service) managers(ctx context.Context, conv string) []string {
	ms, _, _, err := s.store.GroupMembers(ctx, conv, 0, 0)
	if err != nil {
		s.log.Error("read group managers", "conv", conv, "err", err)
		return nil
	}
	var out []string
	for _, m := range ms {
		if roleRank(m.Role) >= rankAdmin {
			out = append(out, m.User)
		}
	}
	return out
}

// MaxJoinRequests is the most join requests a listing returns.
const MaxJoinRequests = 500

// Requests lists a group's join requests, newest first: all of them for
// its owner, admins and the app server; for anyone else their own, if they
// made one, which is how a requester learns the answer.
func (s *Service) Requests(ctx context.Context, a Actor, id string) (protocol.JoinRequests, error) {
	_, p, err := s.group(ctx, a, id)
	if err != nil {
		return protocol.JoinRequests{}, err
	}
	conv := conversation.GroupID(id)
	if p.rank() < rankAdmin {
		r, err := s.store.JoinRequest(ctx, conv, a.User)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return protocol.JoinRequests{Requests: []protocol.JoinRequest{}}, nil
		case err != nil:
			return protocol.JoinRequests{}, fmt.Errorf("group: read join request: %w", err)
		}
		return protocol.JoinRequests{Requests: []protocol.JoinRequest{requestToWire(r)}}, nil
	}
	rs, err := s.store.JoinRequests(ctx, conv, MaxJoinRequests)
	if err != nil {
		return protocol.JoinRequests{}, fmt.Errorf("group: join requests: %w", err)
	}
	out := protocol.JoinRequests{Requests: make([]protocol.JoinRequest, len(rs))}
	for i, r := range rs {
		out.Requests[i] = requestToWire(r)
	}
	return out, nil
}

// Answer accepts or refuses a pending join request: the owner, an admin or
// the app server.
func (s *Service) Answer(ctx context.Context, a Actor, id, user string, accept bool) (protocol.JoinRequest, error) {
	conv := conversation.GroupID(id)
	defer s.lock(conv)()
	info, p, err := s.liveGroup(ctx, a, id)
	if err != nil {
		return protocol.JoinRequest{}, err
	}
	if err := need(p, rankAdmin, "answer join requests"); err != nil {
		return protocol.JoinRequest{}, err
	}
	r, err := s.store.JoinRequest(ctx, conv, user)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.State != "pending" {
		return protocol.JoinRequest{}, protocol.Errorf(protocol.CodeNotFound, "no pending request of %q to join %q", user, id)
	}
	if err != nil {
		return protocol.JoinRequest{}, fmt.Errorf("group: read join request: %w", err)
	}
	r.State = "refused"
	if accept {
		r.State = "accepted"
		joined, err := s.join(ctx, conv, []string{user}, info.FullHistory)
		if err != nil {
			return protocol.JoinRequest{}, err
		}
		if len(joined) > 0 {
			s.event(ctx, conv, eventUsers(protocol.EventJoined, p.name(), usersOf(joined)))
		}
	}
	r.UpdatedAt = s.now().UTC()
	if r.Version, err = s.store.SetJoinRequest(ctx, r); err != nil {
		return protocol.JoinRequest{}, fmt.Errorf("group: store join request: %w", err)
	}
	s.pushChanged(append(s.managers(ctx, conv), user), protocol.ScopeGroupRequests, id, r.Version)
	return requestToWire(r), nil
}

// MaxMembersPage is the most entries a members sync returns after the
// first: a first sync returns every current member.
const MaxMembersPage = 1000

// Members returns a group's members changed after version since: to its
// current members and the app server. Former members see nothing of it.
func (s *Service) Members(ctx context.Context, a Actor, id string, since int64, limit int) (protocol.Delta[protocol.GroupMember], error) {
	_, p, err := s.group(ctx, a, id)
	if err != nil {
		return protocol.Delta[protocol.GroupMember]{}, err
	}
	if err := need(p, rankMember, "list the members"); err != nil {
		return protocol.Delta[protocol.GroupMember]{}, err
	}
	if limit == 0 || limit > MaxMembersPage {
		limit = MaxMembersPage
	}
	conv := conversation.GroupID(id)
	d, err := protocol.SyncDelta(since, limit, func(since int64, limit int) ([]store.GroupMember, int64, bool, error) {
		return s.store.GroupMembers(ctx, conv, since, limit)
	}, func(m store.GroupMember) (protocol.GroupMember, string, bool) {
		return memberToWire(m), m.User, m.Left
	})
	if err != nil {
		return protocol.Delta[protocol.GroupMember]{}, fmt.Errorf("group: members: %w", err)
	}
	return d, nil
}

// UserGroups returns the groups of user that changed after version since:
// info changed, joined, role changed (in items) or left (in deleted).
func (s *Service) UserGroups(ctx context.Context, user string, since int64) (protocol.Delta[protocol.UserGroup], error) {
	d, err := protocol.SyncDelta(since, 0, func(since int64, _ int) ([]store.UserGroup, int64, bool, error) {
		gs, version, err := s.store.UserGroups(ctx, user, since)
		return gs, version, false, err
	}, func(g store.UserGroup) (protocol.UserGroup, string, bool) {
		p := party{Actor: Actor{User: user}, entry: g.Member, in: true}
		return protocol.UserGroup{Group: toWire(g.Info, p), Member: memberToWire(g.Member)},
			strings.TrimPrefix(g.Info.Conversation, conversation.GroupPrefix), g.Member.Left
	})
	if err != nil {
		return protocol.Delta[protocol.UserGroup]{}, fmt.Errorf("group: user groups: %w", err)
	}
	return d, nil
}

// event records a group event as a system message in its conversation.
func (s *Service) event(ctx context.Context, conv string, ev protocol.GroupEvent) {
	content, err := protocol.Marshal(ev)
	if err == nil {
		_, err = s.msgs.Send(ctx, message.SendRequest{
			From: conversation.SystemUser, Conversation: conv, ClientID: newID(),
			ContentType: protocol.GroupEventType, Content: content,
		})
	}
	if err != nil {
		s.log.Error("record group event", "conv", conv, "event", ev.Event, "err", err)
	}
}

func eventUsers(event, actor string, users []string) protocol.GroupEvent {
	ev := protocol.GroupEvent{Event: event, Actor: actor, Users: users}
	if len(users) > maxEventUsers {
		ev.Users, ev.Count = users[:maxEventUsers], len(users)
	}
	return ev
}

// pushChanged tells users' devices that scope reached version.
func (s *Service) pushChanged(users []string, scope, id string, version int64) {
	if len(users) == 0 {
		return
	}
	frame, err := message.EncodePush(protocol.TypeChanged, protocol.Changed{Scope: scope, ID: id, Version: version})
	if err != nil {
		s.log.Error("encode changed push", "err", err)
		return
	}
	s.router.Deliver(users, frame, router.Device{})
}

// checkUsers checks that every one of users exists.
func (s *Service) checkUsers(ctx context.Context, users []string) error {
	for _, u := range users {
		if !conversation.ValidName(u) {
			return protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a user id", u)
		}
		ok, err := s.users.UserExists(ctx, u)
		if err != nil {
			return fmt.Errorf("group: look up user: %w", err)
		}
		if !ok {
			return protocol.Errorf(protocol.CodeNotFound, "no user %q", u)
		}
	}
	return nil
}

func dedupe(users []string) []string {
	out := slices.Clone(users)
	slices.Sort(out)
	return slices.Compact(out)
}

func usersOf(ms []store.GroupMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.User
	}
	slices.Sort(out)
	return out
}

// newID returns a random id of 16 lowercase letters and digits.
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func toWire(info store.GroupInfo, p party) protocol.Group {
	g := protocol.Group{
		ID:           strings.TrimPrefix(info.Conversation, conversation.GroupPrefix),
		Conversation: info.Conversation,
		Name:         info.Name,
		AvatarURL:    info.AvatarURL,
		Introduction: info.Introduction,
		JoinPolicy:   info.JoinPolicy,
		Members:      info.Members,
		MaxMembers:   info.MaxMembers,
		CreatedAt:    info.CreatedAt,
	}
	if p.rank() == rankOutsider {
		g.Dismissed = info.Dismissed // only former members see a dismissed group
		return g                     // the public part
	}
	updated := info.UpdatedAt
	g.Announcement, g.Extra, g.Owner, g.InvitePolicy = info.Announcement, info.Extra, info.Owner, info.InvitePolicy
	g.MuteAll, g.FullHistory, g.Dismissed, g.MaxSeq = info.MuteAll, info.FullHistory, info.Dismissed, info.MaxSeq
	g.UpdatedAt, g.Version = &updated, info.Version
	if p.in {
		g.Role = p.entry.Role
	}
	return g
}

func memberToWire(m store.GroupMember) protocol.GroupMember {
	return protocol.GroupMember{User: m.User, Role: m.Role, Nickname: m.Nickname, MutedUntil: m.MutedUntil, JoinedAt: m.JoinedAt, Version: m.Version}
}

func membersToWire(ms []store.GroupMember) []protocol.GroupMember {
	out := make([]protocol.GroupMember, len(ms))
	for i, m := range ms {
		out[i] = memberToWire(m)
	}
	return out
}

func requestToWire(r store.JoinRequest) protocol.JoinRequest {
	return protocol.JoinRequest{
		Group: strings.TrimPrefix(r.Conversation, conversation.GroupPrefix), User: r.User, Message: r.Message,
		State: r.State, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}
