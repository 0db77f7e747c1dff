package store

import (
	"context"
	"encoding/json"
	"time"
)

// GroupInfo is what a group conversation says about itself. Its meaning
// (roles, policies) belongs to package group; the store keeps it and stamps
// each change with a version.
type GroupInfo struct {
	Conversation string
	Name         string
	AvatarURL    string
	Announcement string
	Introduction string
	Extra        json.RawMessage // nil or a JSON value
	Owner        string
	JoinPolicy   string
	InvitePolicy string
	MuteAll      bool
	MaxMembers   int
	FullHistory  bool // new members read the whole history
	Dismissed    bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64 // of the last change to these fields
	Members      int   // current members (kept by the store)
	MaxSeq       int64 // the conversation's highest seq (kept by the store)
}

// GroupMember is one user's entry in a group's roster. An entry stays when
// the user leaves (Left), so that "what changed since V" can say who left.
type GroupMember struct {
	User       string
	Role       string
	Nickname   string
	MutedUntil int64 // unix ms; 0 when not muted
	JoinedAt   time.Time
	Left       bool
	Version    int64 // of the last change to this entry
}

// GroupChange is what a GroupDecision makes of a group: the new info (nil
// for no change) and the new entries of the users it changes. An entry
// whose user was absent or Left and is not Left now joins the
// conversation, seeing it from its next seq (from seq 1 with FullHistory);
// one that was current and is Left now leaves it.
type GroupChange struct {
	Info        *GroupInfo
	Members     []GroupMember
	FullHistory bool
}

// GroupDecision decides a change from the group's current info and the
// current entries of the users asked for (absent ones are missing from the
// map). It runs while the group is locked, so it must not call the store;
// an error from it aborts the change and is returned as is.
type GroupDecision func(info GroupInfo, members map[string]GroupMember) (GroupChange, error)

// UserGroup is one of a user's groups, with the user's entry in it.
type UserGroup struct {
	Info   GroupInfo
	Member GroupMember
}

// JoinRequest is a user's request to join a group whose join policy asks
// for approval.
type JoinRequest struct {
	Conversation string
	User         string
	Message      string
	State        string // "pending", "accepted" or "refused"
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64
}

// Groups stores group conversations' info, rosters and join requests,
// beside their messages. Versions come from the same counter as the
// conversation versions of Messages.
type Groups interface {
	// CreateGroup creates the group conversation info.Conversation with its
	// first members (each sees it from seq 1) in one write, and returns the
	// version it was stamped with. ErrExists if the id is taken.
	CreateGroup(ctx context.Context, info GroupInfo, members []GroupMember) (int64, error)
	// Group returns a group's info, or ErrNotFound.
	Group(ctx context.Context, conv string) (GroupInfo, error)
	// ChangeGroup asks decide what to make of the group, given the entries
	// of users (of every current member when users is nil), and writes the
	// change atomically with one version, which it returns with the new
	// info and the changed entries. A change that changes nothing writes
	// nothing and returns version 0. ErrNotFound if there is no such group.
	ChangeGroup(ctx context.Context, conv string, users []string, decide GroupDecision) (GroupInfo, []GroupMember, int64, error)
	// GroupMember returns one user's entry, or ErrNotFound if the user
	// never was in the group.
	GroupMember(ctx context.Context, conv, user string) (GroupMember, error)
	// GroupMembers returns the entries changed after version since (with
	// since 0, the current members only), ordered by version, at most
	// about limit of them (a version is never split), whether more wait,
	// and the version to ask from next time.
	GroupMembers(ctx context.Context, conv string, since int64, limit int) (ms []GroupMember, version int64, more bool, err error)
	// UserGroups returns the groups of user whose info or whose entry of
	// the user changed after version since (with since 0, the groups the
	// user is in), and the version to ask from next time.
	UserGroups(ctx context.Context, user string, since int64) ([]UserGroup, int64, error)
	// SetJoinRequest stores a join request, stamped with a new version that
	// it returns.
	SetJoinRequest(ctx context.Context, r JoinRequest) (int64, error)
	// JoinRequest returns the request of user to join conv, or ErrNotFound.
	JoinRequest(ctx context.Context, conv, user string) (JoinRequest, error)
	// JoinRequests returns the requests to join conv, newest first, at most
	// limit of them.
	JoinRequests(ctx context.Context, conv string, limit int) ([]JoinRequest, error)
}
