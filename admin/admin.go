// Package admin is a Go client for Parley's REST API as the app server uses
// it, with the admin key: users, tokens, sessions, presence and messages.
// The parley CLI and the load generator are built on it. A Client is safe
// for concurrent use.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Client calls the REST API at BaseURL (for example http://127.0.0.1:8080).
type Client struct {
	BaseURL string
	Key     string       // the admin key
	HTTP    *http.Client // nil means http.DefaultClient
}

// NewUser is the body of a user creation; an empty ID asks the server for one.
type NewUser struct {
	ID        string          `json:"id,omitempty"`
	Nickname  string          `json:"nickname,omitempty"`
	AvatarURL string          `json:"avatar_url,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	Password  string          `json:"password,omitempty"`
}

// Message is a message the app server sends; From empty means the system account.
type Message struct {
	From         string          `json:"from,omitempty"`
	To           string          `json:"to,omitempty"`
	Conversation string          `json:"conv,omitempty"` // instead of To: a conversation id
	ClientID     string          `json:"cid,omitempty"`
	ContentType  string          `json:"ctype"`
	Content      json.RawMessage `json:"content"`
}

// CreateUser creates a user. An existing ID yields a *protocol.Error with
// code already_exists.
func (c *Client) CreateUser(ctx context.Context, u NewUser) (protocol.User, error) {
	var out struct{ User protocol.User }
	err := c.do(ctx, http.MethodPost, "/v1/users", u, &out)
	return out.User, err
}

// User fetches one user.
func (c *Client) User(ctx context.Context, id string) (protocol.User, error) {
	var out struct{ User protocol.User }
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(id), nil, &out)
	return out.User, err
}

// ListUsers lists users whose id or nickname contains search, after the
// cursor after, and returns the cursor for the next page ("" at the end).
func (c *Client) ListUsers(ctx context.Context, search, after string, limit int) ([]protocol.User, string, error) {
	q := url.Values{}
	if search != "" {
		q.Set("search", search)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out struct {
		Users []protocol.User
		Next  string
	}
	err := c.do(ctx, http.MethodGet, "/v1/users?"+q.Encode(), nil, &out)
	return out.Users, out.Next, err
}

// IssueToken mints a token for a user's device; ttl 0 means the server's default.
func (c *Client) IssueToken(ctx context.Context, user, platform, device string, ttl time.Duration) (protocol.Token, error) {
	var out protocol.Token
	body := map[string]any{"platform": platform, "device": device, "ttl_seconds": int64(ttl / time.Second)}
	err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/tokens", body, &out)
	return out, err
}

// Revoke revokes the user's tokens, of one device if device is not empty.
func (c *Client) Revoke(ctx context.Context, user, device string) error {
	path := "/v1/users/" + url.PathEscape(user) + "/tokens"
	if device != "" {
		path += "?device=" + url.QueryEscape(device)
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// Kick forces a device (every device if empty) offline and revokes its
// tokens; it returns how many connections were closed.
func (c *Client) Kick(ctx context.Context, user, device string) (int, error) {
	path := "/v1/users/" + url.PathEscape(user) + "/kick"
	if device != "" {
		path += "?device=" + url.QueryEscape(device)
	}
	var out struct{ Kicked int }
	err := c.do(ctx, http.MethodPost, path, nil, &out)
	return out.Kicked, err
}

// Sessions lists live connections, of one user or of everyone if user is empty.
func (c *Client) Sessions(ctx context.Context, user string) ([]protocol.Session, error) {
	path := "/v1/sessions"
	if user != "" {
		path += "?user=" + url.QueryEscape(user)
	}
	var out struct{ Sessions []protocol.Session }
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Sessions, err
}

// UserSessions lists one user's live connections; an unknown user is a
// not_found error.
func (c *Client) UserSessions(ctx context.Context, user string) ([]protocol.Session, error) {
	var out struct{ Sessions []protocol.Session }
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(user)+"/sessions", nil, &out)
	return out.Sessions, err
}

// Deactivate ends a user's account for good: their tokens stop working and
// their connections are kicked. It returns how many connections were closed.
func (c *Client) Deactivate(ctx context.Context, user string) (int, error) {
	var out struct{ Kicked int }
	err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/deactivate", nil, &out)
	return out.Kicked, err
}

// Presence returns the online state of users.
func (c *Client) Presence(ctx context.Context, users ...string) ([]protocol.Presence, error) {
	var out protocol.PresenceList
	err := c.do(ctx, http.MethodGet, "/v1/presence?users="+url.QueryEscape(strings.Join(users, ",")), nil, &out)
	return out.Presence, err
}

// Send commits a message and returns its acknowledgement.
func (c *Client) Send(ctx context.Context, m Message) (protocol.Ack, error) {
	var out protocol.Ack
	err := c.do(ctx, http.MethodPost, "/v1/messages", m, &out)
	return out, err
}

// UserUpdate is the body of a profile change: nil fields are kept.
type UserUpdate struct {
	Nickname  *string         `json:"nickname,omitempty"`
	AvatarURL *string         `json:"avatar_url,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	Password  *string         `json:"password,omitempty"`
}

// UpdateUser changes the fields of u that are set and returns the user.
func (c *Client) UpdateUser(ctx context.Context, id string, u UserUpdate) (protocol.User, error) {
	var out struct{ User protocol.User }
	err := c.do(ctx, http.MethodPatch, "/v1/users/"+url.PathEscape(id), u, &out)
	return out.User, err
}

// Conversations lists user's conversations changed after version since
// (0 for all).
func (c *Client) Conversations(ctx context.Context, user string, since int64) (protocol.Conversations, error) {
	var out protocol.Conversations
	q := url.Values{"user": {user}, "since": {fmt.Sprint(since)}}
	err := c.do(ctx, http.MethodGet, "/v1/conversations?"+q.Encode(), nil, &out)
	return out, err
}

// Messages reads a page of conversation p.Conversation as user sees it
// (the REST form of the WebSocket pull).
func (c *Client) Messages(ctx context.Context, user string, p protocol.Pull) (protocol.Messages, error) {
	var out protocol.Messages
	q := url.Values{"user": {user}, "from": {fmt.Sprint(p.From)}}
	if p.Direction != "" {
		q.Set("dir", p.Direction)
	}
	if p.Limit > 0 {
		q.Set("limit", fmt.Sprint(p.Limit))
	}
	err := c.do(ctx, http.MethodGet, "/v1/conversations/"+url.PathEscape(p.Conversation)+"/messages?"+q.Encode(), nil, &out)
	return out, err
}

// do performs one request. Error responses become *protocol.Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin: %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("admin: %s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e protocol.ErrorBody
		if json.Unmarshal(raw, &e) == nil && e.Error != nil {
			return e.Error
		}
		return fmt.Errorf("admin: %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("admin: %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// Backup has the server write a consistent copy of its store into dir, an
// absolute path on the server's machine that must not exist yet.
func (c *Client) Backup(ctx context.Context, dir string) error {
	return c.do(ctx, http.MethodPost, "/v1/backup", map[string]string{"dir": dir}, nil)
}
