package protocol

import (
	"time"

	"github.com/parleyim/parley/conversation"
)

// Conversation settings and the conversation list in display order: REST
// payloads, and the rules clients apply to a Conversation they hold.

// MuteForever is the muted_until of a mute without an end.
const MuteForever = conversation.MuteForever

// Muted reports whether the user's mute of the conversation is in force at
// now.
func (c *Conversation) Muted(now time.Time) bool { return conversation.Muted(c.MutedUntil, now) }

// Rank is where the conversation sorts in the user's list: pinned first,
// then by the later of its last message and its draft, newest first.
func (c *Conversation) Rank() conversation.Rank {
	activity := c.DraftTime
	if c.LastMessage != nil {
		activity = max(activity, c.LastMessage.Time)
	}
	return conversation.Rank{Pinned: c.Pinned, Activity: activity, ID: c.ID}
}

// MaxDraftBytes bounds a conversation's draft, in bytes of UTF-8.
const MaxDraftBytes = 4096

// SettingsUpdate changes the user's settings of a conversation (PATCH
// /v1/conversations/{conv}/settings): each field set is changed, the others
// kept. MutedUntil is 0 (unmute), MuteForever, or a unix ms in the future;
// Draft "" removes the draft; Hidden true leaves the conversation out of
// the list until a newer message arrives.
type SettingsUpdate struct {
	Pinned     *bool   `json:"pinned,omitempty"`
	MutedUntil *int64  `json:"muted_until,omitempty"`
	Draft      *string `json:"draft,omitempty"`
	Hidden     *bool   `json:"hidden,omitempty"`
}

// ConversationPage is a page of the user's conversation list in display
// order (GET /v1/conversations/recent). Next, when set, is the cursor of
// the next page; Version is the sync version the page was read at.
type ConversationPage struct {
	Conversations []Conversation `json:"conversations"`
	Next          string         `json:"next,omitempty"`
	Version       int64          `json:"version"`
}

// UnreadTotal is the user's unread count over all their conversations but
// hidden ones (GET /v1/conversations/unread): Total over the conversations
// not muted, Conversations how many of those have unread messages, Muted
// over the muted ones.
type UnreadTotal struct {
	Total         int64 `json:"total"`
	Conversations int   `json:"conversations"`
	Muted         int64 `json:"muted"`
}
