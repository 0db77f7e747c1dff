// Package conversation holds the rules of Parley's unit of chat, the
// conversation: how ids are formed, which kinds exist, which part of a
// conversation's history a member may see, how unread counts are computed,
// who receives what, how a user's list is ordered and when a mute is in
// force. The store, the message service and the SDKs take these
// rules from here rather than restating them.
//
// # Concurrency model
//
// The functions are pure. An Audience is safe for concurrent use.
//
// # Lifecycle
//
// Nothing here starts goroutines or holds resources.
package conversation

import (
	"strings"
)

// Kinds of conversation.
const (
	// Direct is a one-to-one conversation. It exists from its first message,
	// has exactly two members and its id is derived from them (Direct).
	Direct = "direct"
	// Group is a conversation of any number of members, created by the app
	// server with its first members; members join and leave it over time.
	Group = "group"
	// Channel is reserved for system notices and broadcast: one stored
	// conversation that many users read. Its id is "c:" and a name.
	Channel = "channel"
)

// MaxIDLength is the longest conversation id: a direct id of two users of the
// longest user id (64 bytes) and its separators.
const MaxIDLength = 2 + 64 + 1 + 64

// DirectID returns the id of the one-to-one conversation between two users,
// "d:<lower id>:<higher id>"; it is the same whichever of them is a. User ids
// never contain ':', so the id names its two members unambiguously.
func DirectID(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return "d:" + a + ":" + b
}

// GroupPrefix begins every group conversation id.
const GroupPrefix = "g:"

// GroupID returns the conversation id of the group named name.
func GroupID(name string) string { return GroupPrefix + name }

// SystemUser is the reserved account the server and the app server speak
// as: system notices, and the events of a group, which it posts into the
// group without being a member.
const SystemUser = "system"

// KindOf returns the kind that id names, or "" if id is not a well-formed
// conversation id. It checks the shape only, not that the conversation
// exists.
func KindOf(id string) string {
	if len(id) > MaxIDLength || len(id) < 3 || id[1] != ':' {
		return ""
	}
	rest := id[2:]
	switch id[0] {
	case 'd':
		a, b, ok := strings.Cut(rest, ":")
		if !ok || !ValidName(a) || !ValidName(b) || a > b {
			return ""
		}
		return Direct
	case 'g':
		if !ValidName(rest) {
			return ""
		}
		return Group
	case 'c':
		if !ValidName(rest) {
			return ""
		}
		return Channel
	}
	return ""
}

// Pair returns the two members of a direct conversation id, lower first.
func Pair(id string) (lo, hi string, ok bool) {
	if KindOf(id) != Direct {
		return "", "", false
	}
	lo, hi, _ = strings.Cut(id[2:], ":")
	return lo, hi, true
}

// Peer returns the other member of a direct conversation for user, and
// whether user is one of its members. A user talking to themself is their
// own peer.
func Peer(id, user string) (string, bool) {
	lo, hi, ok := Pair(id)
	switch {
	case !ok:
		return "", false
	case user == lo:
		return hi, true
	case user == hi:
		return lo, true
	}
	return "", false
}

// ValidName reports whether s may name a user, a group or a channel: 1 to 64
// bytes of ASCII letters, digits, '_', '-', '.' and '@'. It is the same rule
// as for user ids, so that names embed in conversation ids unambiguously.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}

// Unread is the number of messages a member has not read: those above both
// the read seq and the part of history hidden from them.
func Unread(maxSeq, readSeq, minSeq int64) int64 {
	return max(0, maxSeq-max(readSeq, minSeq-1))
}

// JoinSeq is the lowest seq a member who joins a conversation whose last
// message is maxSeq may see: the next message, or the whole history when the
// conversation shows new members its full history.
func JoinSeq(maxSeq int64, fullHistory bool) int64 {
	if fullHistory {
		return 1
	}
	return maxSeq + 1
}
