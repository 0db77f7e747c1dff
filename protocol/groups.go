package protocol

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Roles of a group member, from the most to the least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Join policies: how a user who is not a member gets in.
const (
	JoinFree     = "free"     // anyone may join
	JoinApproval = "approval" // a join request, accepted by the owner or an admin
	JoinInvite   = "invite"   // only by invitation
)

// Invite policies: who may add members.
const (
	InviteMembers = "members" // every member
	InviteAdmins  = "admins"  // the owner and admins
)

// NewGroup creates a group: the body of POST /v1/groups. ID names the group
// (its conversation id is "g:" + ID); the server picks one when it is
// empty. A user who creates a group is its owner; the app server names the
// owner, or creates a group without one. Members are its first members
// besides the owner.
type NewGroup struct {
	ID           string          `json:"id,omitempty"`
	Owner        string          `json:"owner,omitempty"`
	Members      []string        `json:"members,omitempty"`
	Name         string          `json:"name,omitempty"`
	AvatarURL    string          `json:"avatar_url,omitempty"`
	Announcement string          `json:"announcement,omitempty"`
	Introduction string          `json:"introduction,omitempty"`
	Extra        json.RawMessage `json:"extra,omitempty"`
	JoinPolicy   string          `json:"join_policy,omitempty"`
	InvitePolicy string          `json:"invite_policy,omitempty"`
	FullHistory  bool            `json:"full_history,omitempty"`
	MaxMembers   int             `json:"max_members,omitempty"`
}

// Group is a group as the API shows it. Outsiders see the public part: id,
// conv, name, avatar_url, introduction, join_policy, members, max_members
// and created_at.
type Group struct {
	ID           string          `json:"id"`
	Conversation string          `json:"conv"`
	Name         string          `json:"name"`
	AvatarURL    string          `json:"avatar_url,omitempty"`
	Introduction string          `json:"introduction,omitempty"`
	JoinPolicy   string          `json:"join_policy"`
	Members      int             `json:"members"`
	MaxMembers   int             `json:"max_members"`
	CreatedAt    time.Time       `json:"created_at"`
	Announcement string          `json:"announcement,omitempty"`
	Extra        json.RawMessage `json:"extra,omitempty"`
	Owner        string          `json:"owner,omitempty"`
	InvitePolicy string          `json:"invite_policy,omitempty"`
	MuteAll      bool            `json:"mute_all,omitempty"`
	FullHistory  bool            `json:"full_history,omitempty"`
	Dismissed    bool            `json:"dismissed,omitempty"`
	MaxSeq       int64           `json:"max_seq,omitempty"`
	UpdatedAt    *time.Time      `json:"updated_at,omitempty"`
	Version      int64           `json:"version,omitempty"`
	// Role is the caller's role, for a member.
	Role string `json:"role,omitempty"`
}

// GroupUpdate changes the fields of a group that are set: the body of
// PATCH /v1/groups/{id}.
type GroupUpdate struct {
	Name         *string          `json:"name,omitempty"`
	AvatarURL    *string          `json:"avatar_url,omitempty"`
	Announcement *string          `json:"announcement,omitempty"`
	Introduction *string          `json:"introduction,omitempty"`
	Extra        *json.RawMessage `json:"extra,omitempty"`
	JoinPolicy   *string          `json:"join_policy,omitempty"`
	InvitePolicy *string          `json:"invite_policy,omitempty"`
	MuteAll      *bool            `json:"mute_all,omitempty"`
	FullHistory  *bool            `json:"full_history,omitempty"`
	MaxMembers   *int             `json:"max_members,omitempty"`
}

// MemberChange adds members to a group (POST /v1/groups/{id}/members).
// FullHistory lets the new members read the group's whole history instead
// of the messages after they joined; without it the group's own setting
// decides.
type MemberChange struct {
	Users       []string `json:"users"`
	FullHistory bool     `json:"full_history,omitempty"`
}

// AddedMembers is the reply to MemberChange: the members it added (users
// who were members already are left as they are).
type AddedMembers struct {
	Added []GroupMember `json:"added"`
}

// GroupMember is one member of a group, as group member sync returns it.
type GroupMember struct {
	User       string    `json:"user"`
	Role       string    `json:"role"`
	Nickname   string    `json:"nickname,omitempty"`
	MutedUntil int64     `json:"muted_until,omitempty"` // unix ms; -1: until unmuted
	JoinedAt   time.Time `json:"joined_at"`
	Version    int64     `json:"version"`
}

// MemberUpdate changes a member (PATCH /v1/groups/{id}/members/{user}):
// role (admin or member; by the owner), nickname (by the member, or those
// above them), muted_until (unix ms, -1 for no end, 0 to unmute; by those
// above them).
type MemberUpdate struct {
	Role       *string `json:"role,omitempty"`
	Nickname   *string `json:"nickname,omitempty"`
	MutedUntil *int64  `json:"muted_until,omitempty"`
}

// Transfer hands a group's ownership to a member (POST
// /v1/groups/{id}/transfer); the old owner becomes an admin.
type Transfer struct {
	To string `json:"to"`
}

// JoinGroup asks to join a group (POST /v1/groups/{id}/join); Message goes
// with the join request when the group asks for approval.
type JoinGroup struct {
	Message string `json:"message,omitempty"`
}

// Joined is the reply to a JoinGroup: joined, or a join request pending.
type Joined struct {
	Joined  bool         `json:"joined"`
	Request *JoinRequest `json:"request,omitempty"`
}

// JoinRequest is a user's request to join a group.
type JoinRequest struct {
	Group     string    `json:"group"`
	User      string    `json:"user"`
	Message   string    `json:"message,omitempty"`
	State     string    `json:"state"` // pending, accepted or refused
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// JoinRequests lists a group's join requests, newest first.
type JoinRequests struct {
	Requests []JoinRequest `json:"requests"`
}

// GroupEventType is the content type of the system messages that record a
// group's events in its conversation; their content is a GroupEvent.
const GroupEventType = "group.event"

// Group events.
const (
	EventCreated      = "created"
	EventJoined       = "joined" // users joined: invited by actor, or by themselves
	EventLeft         = "left"   // actor left
	EventKicked       = "kicked" // actor removed users
	EventRoleChanged  = "role_changed"
	EventMuted        = "muted"   // users muted until muted_until (-1: no end)
	EventUnmuted      = "unmuted" // users unmuted
	EventMuteAll      = "mute_all"
	EventInfoChanged  = "info_changed" // fields: the names of the fields changed
	EventNickname     = "nickname"
	EventOwnerChanged = "owner_changed"
	EventDismissed    = "dismissed"
)

// GroupEvent is the content of a group event message: what happened, who
// did it (actor; "system" for the app server) and to whom.
type GroupEvent struct {
	Event      string   `json:"event"`
	Actor      string   `json:"actor"`
	Users      []string `json:"users,omitempty"`
	Count      int      `json:"count,omitempty"` // how many users, when more than Users names
	Role       string   `json:"role,omitempty"`
	MutedUntil int64    `json:"muted_until,omitempty"`
	MuteAll    *bool    `json:"mute_all,omitempty"`
	Fields     []string `json:"fields,omitempty"`
	Name       string   `json:"name,omitempty"`
	Nickname   string   `json:"nickname,omitempty"`
}

// UserGroup is one of the user's groups, as group sync returns it: the
// group and the user's entry in it.
type UserGroup struct {
	Group  Group       `json:"group"`
	Member GroupMember `json:"member"`
}

// String describes the event in English, for logs and simple clients:
// "alice added bob and carol".
func (e GroupEvent) String() string { return e.describe(englishList(e.Users, e.Count)) }

// englishList joins names as English does ("a", "a and b", "a, b and c"),
// ending in "and N more" when count says there were more than named.
func englishList(names []string, count int) string {
	parts := slices.Clone(names)
	if count > len(names) {
		parts = append(parts, fmt.Sprintf("%d more", count-len(names)))
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func (e GroupEvent) describe(users string) string {
	switch e.Event {
	case EventCreated:
		if e.Name == "" {
			return e.Actor + " created the group"
		}
		return e.Actor + " created the group " + strconv.Quote(e.Name)
	case EventJoined:
		if len(e.Users) == 1 && e.Users[0] == e.Actor {
			return e.Actor + " joined"
		}
		return e.Actor + " added " + users
	case EventLeft:
		return e.Actor + " left"
	case EventKicked:
		return e.Actor + " removed " + users
	case EventRoleChanged:
		return e.Actor + " made " + users + " " + e.Role
	case EventMuted:
		if e.MutedUntil < 0 {
			return e.Actor + " muted " + users
		}
		return e.Actor + " muted " + users + " until " + time.UnixMilli(e.MutedUntil).UTC().Format(time.RFC3339)
	case EventUnmuted:
		return e.Actor + " unmuted " + users
	case EventMuteAll:
		if e.MuteAll != nil && *e.MuteAll {
			return e.Actor + " muted the group"
		}
		return e.Actor + " unmuted the group"
	case EventInfoChanged:
		if e.Name != "" {
			return e.Actor + " renamed the group " + strconv.Quote(e.Name)
		}
		return e.Actor + " changed the group's " + strings.Join(e.Fields, ", ")
	case EventNickname:
		return e.Actor + " set the nickname of " + users + " to " + strconv.Quote(e.Nickname)
	case EventOwnerChanged:
		return e.Actor + " made " + users + " the owner"
	case EventDismissed:
		return e.Actor + " dismissed the group"
	}
	return e.Actor + ": " + e.Event
}
