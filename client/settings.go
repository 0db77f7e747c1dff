package client

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Conversation settings (docs/protocol.md, "Conversation settings"): the
// user's own pin, mute, hidden state and draft of each conversation, kept on
// the server and synced to their devices. Each method returns the user's
// updated conversation; every device of the user, this one included, also
// gets it as a conversation push (OnConversation).

// UpdateSettings changes the settings set in u and keeps the others.
func (c *Client) UpdateSettings(ctx context.Context, conv string, u protocol.SettingsUpdate) (protocol.Conversation, error) {
	var out protocol.Conversation
	err := c.Call(ctx, http.MethodPatch, "/v1/conversations/"+url.PathEscape(conv)+"/settings", u, &out)
	return out, err
}

// Pin pins the conversation to the top of the user's list, or unpins it.
func (c *Client) Pin(ctx context.Context, conv string, pinned bool) (protocol.Conversation, error) {
	return c.UpdateSettings(ctx, conv, protocol.SettingsUpdate{Pinned: &pinned})
}

// Mute mutes the conversation ("do not disturb") until the time until,
// which must be in the future, or for good when until is zero.
func (c *Client) Mute(ctx context.Context, conv string, until time.Time) (protocol.Conversation, error) {
	ms := int64(protocol.MuteForever)
	if !until.IsZero() {
		ms = until.UnixMilli()
	}
	return c.UpdateSettings(ctx, conv, protocol.SettingsUpdate{MutedUntil: &ms})
}

// Unmute ends a mute of the conversation.
func (c *Client) Unmute(ctx context.Context, conv string) (protocol.Conversation, error) {
	var none int64
	return c.UpdateSettings(ctx, conv, protocol.SettingsUpdate{MutedUntil: &none})
}

// SetDraft keeps text (at most protocol.MaxDraftBytes of UTF-8) as the
// conversation's draft; "" removes it.
func (c *Client) SetDraft(ctx context.Context, conv, text string) (protocol.Conversation, error) {
	return c.UpdateSettings(ctx, conv, protocol.SettingsUpdate{Draft: &text})
}

// Hide leaves the conversation out of the user's list until a message newer
// than its last one arrives, or, with hidden false, shows it again.
func (c *Client) Hide(ctx context.Context, conv string, hidden bool) (protocol.Conversation, error) {
	return c.UpdateSettings(ctx, conv, protocol.SettingsUpdate{Hidden: &hidden})
}

// DeleteConversation removes the conversation from the user's list: it is
// hidden until a newer message and its history is cleared, for this user
// only. Messages the client held below the new MinSeq are not delivered
// again.
func (c *Client) DeleteConversation(ctx context.Context, conv string) (protocol.Conversation, error) {
	var out protocol.Conversation
	if err := c.Call(ctx, http.MethodDelete, "/v1/conversations/"+url.PathEscape(conv), nil, &out); err != nil {
		return out, err
	}
	if out.ID == conv {
		c.d.applyConversation(out, false)
	}
	return out, nil
}

// UnreadTotal returns the user's unread count over the conversations that
// are not hidden, muted ones apart.
func (c *Client) UnreadTotal(ctx context.Context) (protocol.UnreadTotal, error) {
	var out protocol.UnreadTotal
	err := c.Call(ctx, http.MethodGet, "/v1/conversations/unread", nil, &out)
	return out, err
}

// RecentConversations returns a page of the user's list in display order
// (pinned first, then by last activity; hidden ones left out): up to limit
// (0 for the server's default, 100) after the cursor after, "" for the
// first page. Pass the page's Next as after for the next one.
func (c *Client) RecentConversations(ctx context.Context, after string, limit int) (protocol.ConversationPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/conversations/recent"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out protocol.ConversationPage
	err := c.Call(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// DisplayOrder returns the conversations a list shows, in the order the
// server's recent list has them: hidden ones left out, pinned ones first,
// then by last activity, newest first. It is for clients that keep every
// conversation by Conversations sync and sort them themselves.
func DisplayOrder(cs []protocol.Conversation) []protocol.Conversation {
	out := make([]protocol.Conversation, 0, len(cs))
	for _, cv := range cs {
		if !cv.Hidden {
			out = append(out, cv)
		}
	}
	slices.SortFunc(out, func(a, b protocol.Conversation) int { return a.Rank().Compare(b.Rank()) })
	return out
}
