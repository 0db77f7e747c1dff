package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/parleyim/parley/protocol"
)

// GroupEvent is a group event message, decoded: what happened in group
// conversation Conversation at Seq. OnGroupEvent receives them in the same
// order, exactly once, as OnMessage receives their messages.
type GroupEvent struct {
	Conversation string
	Seq          int64
	Time         int64 // unix milliseconds
	protocol.GroupEvent
}

func groupPath(id string, rest ...string) string {
	p := "/v1/groups/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// CreateGroup creates a group the user owns, with its first members.
func (c *Client) CreateGroup(ctx context.Context, g protocol.NewGroup) (protocol.Group, error) {
	var out protocol.Group
	err := c.Call(ctx, http.MethodPost, "/v1/groups", g, &out)
	return out, err
}

// Group returns a group: all of it to a member, its public part to others.
func (c *Client) Group(ctx context.Context, id string) (protocol.Group, error) {
	var out protocol.Group
	err := c.Call(ctx, http.MethodGet, groupPath(id), nil, &out)
	return out, err
}

// UpdateGroup changes a group's info or policies, as the user's role allows.
func (c *Client) UpdateGroup(ctx context.Context, id string, up protocol.GroupUpdate) (protocol.Group, error) {
	var out protocol.Group
	err := c.Call(ctx, http.MethodPatch, groupPath(id), up, &out)
	return out, err
}

// DismissGroup ends a group the user owns.
func (c *Client) DismissGroup(ctx context.Context, id string) error {
	return c.Call(ctx, http.MethodDelete, groupPath(id), nil, nil)
}

// InviteToGroup adds users to a group and returns those it added.
func (c *Client) InviteToGroup(ctx context.Context, id string, users ...string) ([]protocol.GroupMember, error) {
	var out protocol.AddedMembers
	err := c.Call(ctx, http.MethodPost, groupPath(id, "members"), protocol.MemberChange{Users: users}, &out)
	return out.Added, err
}

// RemoveFromGroup removes a member who ranks below the user.
func (c *Client) RemoveFromGroup(ctx context.Context, id, user string) error {
	return c.Call(ctx, http.MethodDelete, groupPath(id, "members", user), nil, nil)
}

// LeaveGroup makes the user leave a group (its owner transfers it first).
func (c *Client) LeaveGroup(ctx context.Context, id string) error {
	return c.RemoveFromGroup(ctx, id, c.user)
}

// UpdateGroupMember changes a member's role, nickname or mute.
func (c *Client) UpdateGroupMember(ctx context.Context, id, user string, up protocol.MemberUpdate) (protocol.GroupMember, error) {
	var out protocol.GroupMember
	err := c.Call(ctx, http.MethodPatch, groupPath(id, "members", user), up, &out)
	return out, err
}

// TransferGroup hands the ownership of a group to another member.
func (c *Client) TransferGroup(ctx context.Context, id, to string) (protocol.Group, error) {
	var out protocol.Group
	err := c.Call(ctx, http.MethodPost, groupPath(id, "transfer"), protocol.Transfer{To: to}, &out)
	return out, err
}

// JoinGroup joins a group by its join policy: at once, or with a join
// request carrying message.
func (c *Client) JoinGroup(ctx context.Context, id, message string) (protocol.Joined, error) {
	var out protocol.Joined
	err := c.Call(ctx, http.MethodPost, groupPath(id, "join"), protocol.JoinGroup{Message: message}, &out)
	return out, err
}

// JoinRequests lists a group's join requests for its owner and admins; for
// anyone else, their own request to the group, if they made one.
func (c *Client) JoinRequests(ctx context.Context, id string) ([]protocol.JoinRequest, error) {
	var out protocol.JoinRequests
	err := c.Call(ctx, http.MethodGet, groupPath(id, "requests"), nil, &out)
	return out.Requests, err
}

// AnswerJoinRequest accepts or refuses a pending join request.
func (c *Client) AnswerJoinRequest(ctx context.Context, id, user string, accept bool) (protocol.JoinRequest, error) {
	answer := "refuse"
	if accept {
		answer = "accept"
	}
	var out protocol.JoinRequest
	err := c.Call(ctx, http.MethodPost, groupPath(id, "requests", user, answer), nil, &out)
	return out, err
}

// GroupMembers returns the members of a group changed after version since
// (0: all current members); apply Items and Deleted, and keep Version.
func (c *Client) GroupMembers(ctx context.Context, id string, since int64) (protocol.Delta[protocol.GroupMember], error) {
	var out protocol.Delta[protocol.GroupMember]
	err := c.Call(ctx, http.MethodGet, groupPath(id, "members")+"?since="+strconv.FormatInt(since, 10), nil, &out)
	return out, err
}

// MyGroups returns the user's groups changed after version since (0: all);
// Deleted holds the ids of groups the user left.
func (c *Client) MyGroups(ctx context.Context, since int64) (protocol.Delta[protocol.UserGroup], error) {
	var out protocol.Delta[protocol.UserGroup]
	err := c.Call(ctx, http.MethodGet, "/v1/me/groups?since="+strconv.FormatInt(since, 10), nil, &out)
	return out, err
}
