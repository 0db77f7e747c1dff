// Package protocol defines Parley's WebSocket wire format: the frame envelope,
// the payload of every frame type, the stable error codes and the protocol
// version. The server, the Go SDK and the load generator all share it, so a
// change here is a change to the public protocol: docs/protocol.md is its
// contract, and records every change in its dated history.
package protocol

import (
	"encoding/json"
)

// Version is the protocol version the server speaks; it is sent in the hello
// frame so clients can tell what they are talking to. Its dated history is
// the last section of docs/protocol.md.
const Version = 2

// Frame is the envelope of every WebSocket text message in both directions.
// A client request carries an ID of the client's choosing; the server's reply
// (of the reply type listed for the request, or an error frame) echoes it.
// Frames the server pushes on its own (message, receipt, presence, kick,
// hello) carry no ID.
type Frame struct {
	Type  string          `json:"type"`
	ID    string          `json:"id,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// Frame types sent by clients, each with the type of its successful reply.
const (
	TypeSend          = "send"          // Send → ack
	TypePull          = "pull"          // Pull → messages
	TypeConversations = "conversations" // ConversationsRequest → conversations
	TypeRead          = "read"          // Read → ok (Receipt)
	TypeClear         = "clear"         // Clear → ok
	TypeSubscribe     = "presence.subscribe"
	TypeUnsubscribe   = "presence.unsubscribe"
	TypePing          = "ping" // no data → pong
	// TypeCall carries a REST request over the WebSocket: Call → result
	// (CallResult). Every route a user token may call works this way too.
	TypeCall = "call"
)

// Frame types sent by the server.
const (
	TypeAck      = "ack"      // reply to send: Ack
	TypeMessages = "messages" // reply to pull: Messages
	TypeOK       = "ok"       // reply with no payload, or a small one named per request
	TypePong     = "pong"     // reply to ping: Pong
	TypeError    = "error"    // reply to a failed request, or a connection-level error
	TypeHello    = "hello"    // first frame on every connection: Hello
	TypeMessage  = "message"  // a new message in one of the user's conversations: Message
	TypeReceipt  = "receipt"  // someone read up to a seq: Receipt
	TypePresence = "presence" // a subscribed user went online or offline: Presence
	TypeKick     = "kick"     // the server is about to close this connection: Kick
	// TypeConversation: one of the user's conversations changed other than
	// by a new message: its history was cleared or its settings changed on
	// another of the user's devices, or the user joined or left it:
	// Conversation.
	TypeConversation = "conversation"
	TypeResult       = "result"  // reply to call: CallResult
	TypeChanged      = "changed" // something the user syncs by version changed: Changed
)

// Hello is the first frame the server sends after a successful upgrade.
type Hello struct {
	Protocol    int    `json:"protocol"`
	User        string `json:"user"`
	Platform    string `json:"platform"`
	Device      string `json:"device"`
	HeartbeatMS int64  `json:"heartbeat_ms"` // send a ping at least this often
	ServerTime  int64  `json:"server_time"`  // unix milliseconds
}

// Send asks the server to commit a message to a conversation: the group or
// direct conversation Conversation, or, with To, the direct conversation
// with that user (exactly one of the two is set). ClientID identifies the
// message for its sender: a resend with the same ClientID returns the
// original Ack and stores nothing new.
type Send struct {
	ClientID     string          `json:"cid"`
	To           string          `json:"to,omitempty"`
	Conversation string          `json:"conv,omitempty"`
	ContentType  string          `json:"ctype"`
	Content      json.RawMessage `json:"content"`
}

// Ack is the server's reply to Send, sent only after the message is durably
// committed. Duplicate is true when the send repeated an earlier ClientID.
type Ack struct {
	ClientID     string `json:"cid"`
	Conversation string `json:"conv"`
	Seq          int64  `json:"seq"`
	ServerID     string `json:"sid"`
	Time         int64  `json:"ts"` // unix milliseconds, assigned at commit
	Duplicate    bool   `json:"dup,omitempty"`
}

// Message is a committed message, as pushed to devices and returned by pulls.
type Message struct {
	Conversation string          `json:"conv"`
	Seq          int64           `json:"seq"`
	ServerID     string          `json:"sid"`
	ClientID     string          `json:"cid"`
	From         string          `json:"from"`
	To           string          `json:"to,omitempty"` // the recipient of a direct message
	ContentType  string          `json:"ctype"`
	Content      json.RawMessage `json:"content"`
	Time         int64           `json:"ts"` // unix milliseconds
}

// Directions of a pull.
const (
	Forward  = "forward"  // from From upwards (older to newer)
	Backward = "backward" // from From downwards (newer to older)
)

// Pull asks for up to Limit messages of a conversation starting at seq From
// (inclusive) in Direction. From 0 means the newest message when pulling
// backward and the oldest visible one when pulling forward.
type Pull struct {
	Conversation string `json:"conv"`
	From         int64  `json:"from"`
	Direction    string `json:"dir,omitempty"` // Forward (default) or Backward
	Limit        int    `json:"limit,omitempty"`
}

// Messages is the reply to Pull. Messages are always in ascending seq order.
// MinSeq and MaxSeq bound what the user may see; More is true when the pull
// stopped, at Limit or at MaxPullBytes of content, with visible messages left
// in that direction.
type Messages struct {
	Conversation string    `json:"conv"`
	Messages     []Message `json:"messages"`
	MinSeq       int64     `json:"min_seq"`
	MaxSeq       int64     `json:"max_seq"`
	More         bool      `json:"more"`
}

// ConversationsRequest asks for the user's conversations changed after
// version Since (0 for all), at most Limit of them (default and maximum
// MaxConversationsPage; a page can be longer when conversations share the
// version at the cut).
type ConversationsRequest struct {
	Since int64 `json:"since"`
	Limit int   `json:"limit,omitempty"`
}

// MaxConversationsPage is the default and largest page of a conversation
// list.
const MaxConversationsPage = 100

// Conversation is one user's view of a conversation.
type Conversation struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"`           // "direct" or "group"
	Peer        string   `json:"peer,omitempty"` // the other user of a direct conversation
	MaxSeq      int64    `json:"max_seq"`
	ReadSeq     int64    `json:"read_seq"`
	PeerReadSeq int64    `json:"peer_read_seq"`  // how far the peer has read: receipts missed while offline
	MinSeq      int64    `json:"min_seq"`        // lowest seq the user may see
	Left        bool     `json:"left,omitempty"` // no longer a member: max_seq is where the user left
	Unread      int64    `json:"unread"`
	LastMessage *Message `json:"last_message,omitempty"`
	Version     int64    `json:"version"`
	// The user's own settings of the conversation (docs/protocol.md,
	// "Conversation settings"), each omitted while unset.
	Pinned     bool   `json:"pinned,omitempty"`
	MutedUntil int64  `json:"muted_until,omitempty"` // unix ms; MuteForever: no end
	Hidden     bool   `json:"hidden,omitempty"`      // left out of the list until a newer message
	Draft      string `json:"draft,omitempty"`
	DraftTime  int64  `json:"draft_ts,omitempty"` // unix ms of the draft's last change
}

// Conversations is the reply to ConversationsRequest. Version is the value to
// pass as Since next time; More says that more changes wait, to be asked for
// at once with Since set to Version.
type Conversations struct {
	Version       int64          `json:"version"`
	Conversations []Conversation `json:"conversations"`
	More          bool           `json:"more,omitempty"`
}

// Read marks a conversation read up to Seq for the user.
type Read struct {
	Conversation string `json:"conv"`
	Seq          int64  `json:"seq"`
}

// Receipt tells a conversation's members, and the reader's other devices,
// that Reader has read up to Seq. It is also the ok reply to Read.
type Receipt struct {
	Conversation string `json:"conv"`
	Reader       string `json:"reader"`
	Seq          int64  `json:"seq"`
	Time         int64  `json:"ts"`
}

// Clear hides a conversation's history up to now for the user alone.
// Its ok reply is the user's updated Conversation, which the user's other
// devices receive as a conversation push.
type Clear struct {
	Conversation string `json:"conv"`
}

// Subscribe (for presence.subscribe and presence.unsubscribe) names the users
// whose presence the connection wants pushed. The ok reply to a subscribe is
// a PresenceList with their current state.
type Subscribe struct {
	Users []string `json:"users"`
}

// Presence is one user's online state, aggregated over their devices.
type Presence struct {
	User     string `json:"user"`
	Online   bool   `json:"online"`
	Devices  int    `json:"devices"`
	LastSeen int64  `json:"last_seen,omitempty"` // unix milliseconds; 0 if never seen
}

// PresenceList is the ok reply to a presence subscription.
type PresenceList struct {
	Presence []Presence `json:"presence"`
}

// Pong is the reply to ping.
type Pong struct {
	ServerTime int64 `json:"server_time"`
}

// Kick tells a connection why the server is closing it. Code is one of the
// Kick* reasons.
type Kick struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Call is a REST request made over the WebSocket as the connection's user:
// Method and Path (with its query) of a route under /v1/, and its JSON Body.
// It is answered exactly as the same request with the user's token would be:
// a result frame with the status and body of a success, or an error frame
// with the error's code and message.
type Call struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// CallResult is the reply to a successful Call.
type CallResult struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// Changed tells a user's devices that something they keep in step by
// version changed: the state of Scope (for group_requests, of the group ID)
// reached Version. A device that holds an older version asks for the
// changes since it (see docs/protocol.md, "Incremental sync").
type Changed struct {
	Scope   string `json:"scope"`
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version"`
}

// Scopes of a Changed push, each with its incremental sync route.
const (
	ScopeFriends        = "friends"         // GET /v1/friends?since=
	ScopeFriendRequests = "friend_requests" // GET /v1/friends/requests?since=
	ScopeBlocks         = "blocks"          // GET /v1/blocks?since=
	ScopeGroups         = "groups"          // GET /v1/me/groups?since=
	ScopeGroupMembers   = "group_members"   // GET /v1/groups/{id}/members?since=
	ScopeGroupRequests  = "group_requests"  // GET /v1/groups/{id}/requests
)

// Delta is the shape of every incremental sync reply: the items inserted or
// updated since the version asked for, the keys of those deleted, and the
// version to ask from next time. Resync says the version asked for is one
// the server cannot answer from (newer than its own, as after a restore):
// the device drops what it holds and takes Items as the whole state.
type Delta[T any] struct {
	Version int64    `json:"version"`
	Items   []T      `json:"items"`
	Deleted []string `json:"deleted,omitempty"`
	Resync  bool     `json:"resync,omitempty"`
	More    bool     `json:"more,omitempty"`
}

// SyncDelta answers an incremental sync from read, a range read of what
// changed after a version (at most limit entries, whether more wait, and
// the version to ask from next), and conv, which makes an entry an item or,
// for a removed one, a deleted key. A since newer than anything the server
// holds (a device that synced before a restore) gets the whole state with
// Resync set. A negative since or limit is invalid_argument. Every
// incremental sync answers by this rule.
func SyncDelta[R, T any](since int64, limit int, read func(since int64, limit int) ([]R, int64, bool, error), conv func(R) (item T, key string, deleted bool)) (Delta[T], error) {
	switch {
	case since < 0:
		return Delta[T]{}, Errorf(CodeInvalidArgument, "since must not be negative")
	case limit < 0:
		return Delta[T]{}, Errorf(CodeInvalidArgument, "limit must not be negative")
	}
	rows, version, more, err := read(since, limit)
	resync := false
	if err == nil && !more && since > version {
		resync = true
		rows, version, more, err = read(0, limit)
	}
	if err != nil {
		return Delta[T]{}, err
	}
	out := Delta[T]{Version: version, Items: []T{}, More: more, Resync: resync}
	for _, r := range rows {
		item, key, deleted := conv(r)
		if deleted {
			out.Deleted = append(out.Deleted, key)
		} else {
			out.Items = append(out.Items, item)
		}
	}
	return out, nil
}
