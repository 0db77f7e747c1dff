package admin

import (
	"context"
	"net/http"
	"net/url"

	"github.com/parleyim/parley/protocol"
)

// CreateGroup creates a group conversation with its first members.
func (c *Client) CreateGroup(ctx context.Context, id string, members []string) (protocol.Group, error) {
	return c.NewGroup(ctx, protocol.NewGroup{ID: id, Members: members})
}

// NewGroup creates a group with everything NewGroup can say: an owner, a
// name, policies.
func (c *Client) NewGroup(ctx context.Context, g protocol.NewGroup) (protocol.Group, error) {
	var out protocol.Group
	err := c.do(ctx, http.MethodPost, "/v1/groups", g, &out)
	return out, err
}

// UpdateGroup changes a group's info or policies as the app server.
func (c *Client) UpdateGroup(ctx context.Context, id string, up protocol.GroupUpdate) (protocol.Group, error) {
	var out protocol.Group
	err := c.do(ctx, http.MethodPatch, "/v1/groups/"+url.PathEscape(id), up, &out)
	return out, err
}

// DismissGroup ends a group as the app server.
func (c *Client) DismissGroup(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(id), nil, nil)
}

// Group returns a group.
func (c *Client) Group(ctx context.Context, id string) (protocol.Group, error) {
	var out protocol.Group
	err := c.do(ctx, http.MethodGet, "/v1/groups/"+url.PathEscape(id), nil, &out)
	return out, err
}

// GroupMembers returns a group's current members, in user order.
func (c *Client) GroupMembers(ctx context.Context, id string) ([]protocol.GroupMember, error) {
	var out protocol.Delta[protocol.GroupMember]
	err := c.do(ctx, http.MethodGet, "/v1/groups/"+url.PathEscape(id)+"/members", nil, &out)
	return out.Items, err
}

// AddMembers adds users to a group and returns those it added.
func (c *Client) AddMembers(ctx context.Context, id string, users []string, fullHistory bool) ([]protocol.GroupMember, error) {
	var out protocol.AddedMembers
	err := c.do(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(id)+"/members", protocol.MemberChange{Users: users, FullHistory: fullHistory}, &out)
	return out.Added, err
}

// RemoveMember removes a user from a group.
func (c *Client) RemoveMember(ctx context.Context, id, user string) error {
	return c.do(ctx, http.MethodDelete, "/v1/groups/"+url.PathEscape(id)+"/members/"+url.PathEscape(user), nil, nil)
}
