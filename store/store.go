// Package store is the contract between Parley's domain packages and their
// durable storage, in the way database/sql/driver is for database/sql. The
// embedded implementation is store/embedded (accounts in store/sqlite, the
// message log in store/lsm); store/storetest is the conformance suite every
// implementation must pass.
//
// All methods are safe for concurrent use. Implementations own their
// connection pools; AppendMessages is called by one group-commit writer per
// process. The embedded implementations (store/sqlite for accounts, store/lsm
// for messages, joined by store/embedded) assume one process per data
// directory; a shared backend must stay correct with several.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/parleyim/parley/conversation"
)

// Errors returned by every implementation; callers test them with errors.Is.
var (
	ErrNotFound         = errors.New("store: not found")
	ErrExists           = errors.New("store: already exists")
	ErrClientIDConflict = errors.New("store: client message id reused with different content")
	ErrNotMember        = errors.New("store: not a member of the conversation")
	ErrAboveMaxSeq      = errors.New("store: seq above the conversation's last")
)

// Store is everything Parley keeps durably.
type Store interface {
	Users
	Tokens
	Messages
	Groups
	Meta
	Social
	// Close flushes and releases the store. It is safe to call more than once.
	Close() error
}

// User is an account as stored. Extra is free-form JSON owned by the app.
type User struct {
	ID           string
	Nickname     string
	AvatarURL    string
	Extra        json.RawMessage // nil or a JSON value
	PasswordHash string          // empty when the user has no password
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastSeen     time.Time // zero if never connected
}

// UserUpdate changes the non-nil fields of a user.
type UserUpdate struct {
	Nickname     *string
	AvatarURL    *string
	Extra        *json.RawMessage
	PasswordHash *string
}

// UserQuery selects users for listing: IDs greater than After, in ID order,
// whose ID or nickname contains Search (case-insensitive) when it is set.
type UserQuery struct {
	Search string
	After  string
	Limit  int
}

// Users stores accounts.
type Users interface {
	// CreateUser stores a new user; ErrExists if the ID is taken.
	// CreatedAt and UpdatedAt are set by the caller.
	CreateUser(ctx context.Context, u User) error
	// User returns one user or ErrNotFound.
	User(ctx context.Context, id string) (User, error)
	// UpdateUser applies the update, sets UpdatedAt to now and returns the
	// stored result; ErrNotFound if there is no such user.
	UpdateUser(ctx context.Context, id string, up UserUpdate, now time.Time) (User, error)
	// ListUsers returns up to q.Limit users matching q.
	ListUsers(ctx context.Context, q UserQuery) ([]User, error)
	// SetLastSeen records when users were last online.
	SetLastSeen(ctx context.Context, ids []string, t time.Time) error
}

// Revocation says that tokens of User (and of Device alone, when Device is
// not empty) issued before Before are no longer valid. Before may lie far in
// the future (package account deactivates a user with one at the end of
// year 9999); implementations store it exactly, to the millisecond.
type Revocation struct {
	User   string
	Device string
	Before time.Time
}

// Tokens stores token revocations; tokens themselves are signed and stateless.
type Tokens interface {
	// Revoke stores or raises a revocation. Before only ever moves forward:
	// a revocation with an earlier Before than the stored one changes nothing.
	Revoke(ctx context.Context, r Revocation) error
	// Revocations returns every stored revocation, for loading a cache at start.
	Revocations(ctx context.Context) ([]Revocation, error)
}

// Meta stores small server-wide values such as the token signing key.
type Meta interface {
	// MetaValue returns the value stored under key, or ErrNotFound.
	MetaValue(ctx context.Context, key string) (string, error)
	// SetMetaValue stores value under key if the key is absent and returns
	// the value stored afterwards, so concurrent first starts agree.
	SetMetaValue(ctx context.Context, key, value string) (string, error)
}

// NewMessage is a message to append to a conversation of kind Kind (see
// package conversation). A direct conversation comes into being with its
// first message, with Sender and Recipient as its members; a group must
// have been created with CreateGroup, and Sender must be one of its current
// members or conversation.SystemUser, which posts into any group and has no
// member state in it. The sender's read seq advances to the new message: one's
// own messages are never unread. Nothing is written per other member (read
// diffusion): their state follows from the conversation's.
type NewMessage struct {
	Conversation string
	Kind         string
	ServerID     string
	ClientID     string
	Sender       string
	Recipient    string // the other member of a direct conversation; empty otherwise
	ContentType  string
	Content      json.RawMessage
	Time         time.Time
}

// Message is a committed message.
type Message struct {
	Conversation string
	Seq          int64
	ServerID     string
	ClientID     string
	Sender       string
	Recipient    string
	ContentType  string
	Content      json.RawMessage
	Time         time.Time
}

// AppendResult is the outcome of one NewMessage in a batch. When Duplicate is
// true, Message is the originally committed message with the same sender and
// client ID and nothing was stored. Err is ErrClientIDConflict when the client
// ID was reused with a different conversation, content type or content,
// ErrNotFound when a non-direct conversation does not exist, and ErrNotMember
// when the sender is not a current member of it; the rest of the batch is
// unaffected.
type AppendResult struct {
	Message   Message
	Duplicate bool
	Err       error
}

// Member is one user's state in one conversation.
type Member struct {
	User         string
	Conversation string
	Kind         string
	Peer         string // the other user of a direct conversation
	// MaxSeq is the highest seq the user may see: the conversation's highest
	// seq or, once the user has left, the highest seq when they left.
	MaxSeq      int64
	ReadSeq     int64 // highest seq the user has read
	PeerReadSeq int64 // highest seq the peer of a direct conversation has read
	// MinSeq is the lowest seq the user may see: 1, the seq at which they
	// joined, or above the last message they cleared.
	MinSeq      int64
	Left        bool  // the user is no longer a member and sees nothing new
	Version     int64 // version at which this user's view last changed
	LastMessage *Message
	Settings    Settings
}

// Unread is the number of messages the member has not read.
func (m Member) Unread() int64 { return conversation.Unread(m.MaxSeq, m.ReadSeq, m.MinSeq) }

// Hidden reports whether the member hid the conversation from their list
// and no message came since.
func (m Member) Hidden() bool { return m.MaxSeq < m.Settings.UnhideSeq }

// Settings are a member's own settings of a conversation: part of their
// view, invisible to other members.
type Settings struct {
	Pinned bool
	// MutedUntil is when the member's "do not disturb" ends, in unix ms: 0
	// for none, conversation.MuteForever for no end.
	MutedUntil int64
	// UnhideSeq is 0, or, once the member hid the conversation, their
	// MaxSeq+1 then: it stays hidden until a message reaches this seq.
	// Nothing is written per member on a new message; Hidden compares.
	UnhideSeq int64
	Draft     string
	DraftTime int64 // unix ms of the draft's last change; 0 without a draft
}

// SettingsChange changes the non-nil settings of a member. Hidden true
// hides the conversation until a message newer than the member's MaxSeq
// arrives; Clear also clears its history, as ClearHistory does.
type SettingsChange struct {
	Pinned     *bool
	MutedUntil *int64
	Draft      *string
	DraftTime  int64 // the DraftTime of a non-empty Draft
	Hidden     *bool
	Clear      bool
}

// Conversation is a conversation as stored.
type Conversation struct {
	ID        string
	Kind      string
	MaxSeq    int64
	Members   int // current members
	CreatedAt time.Time
}

// Direction of a message range read.
type Direction int

// Directions for MessageRange.
const (
	Forward  Direction = iota // ascending from the start seq
	Backward                  // descending from the start seq
)

// Messages stores conversations, their messages and per-member state.
//
// Versions: every change to a user's view of a conversation (a new message,
// a read, a clear, the peer's read, joining or leaving, their settings) is
// stamped with a version from one store-wide counter that only increases, so
// "members with Version > v" is exactly what changed for a user since v.
// Versions become visible in the order they were taken: a reader that sees
// version v sees every change stamped v or lower. A backend with several
// writers must take versions and commit under one lock (or publish a
// commit-ordered watermark) to keep this promise. A write returns once it
// is durable (when the store syncs); a backend may make it visible to
// readers a moment before, so that concurrent writes share one sync: a
// power loss within that moment may lose what a reader saw, never what a
// call returned.
type Messages interface {
	// AppendMessages commits the batch atomically, with one durable sync
	// when the store syncs. Each new message gets its conversation's next
	// seq (gap-free, starting at 1). Results are in batch order. An error
	// means nothing in the batch was stored. The store does not keep the
	// batch slice after returning (the caller reuses it); the byte slices
	// of its messages (Content) it may keep.
	AppendMessages(ctx context.Context, batch []NewMessage) ([]AppendResult, error)
	// Conversation returns a conversation, or ErrNotFound.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// ConversationMembers returns the current members of a conversation in
	// id order: its audience. ErrNotFound if there is no such conversation.
	ConversationMembers(ctx context.Context, conv string) ([]string, error)
	// Member returns the user's state in the conversation, or ErrNotFound if
	// the user never was a member.
	Member(ctx context.Context, user, conversation string) (Member, error)
	// Members returns the user's conversations whose Version is greater
	// than since, ordered by Version, and the version to pass next time.
	// With limit > 0 it returns at most about limit of them: it stops
	// before the first conversation past limit whose version differs from
	// the previous one (so a version is never split between pages), sets
	// more, and returns the last returned Version as the version to pass
	// next time. Otherwise the version is the highest in the store.
	Members(ctx context.Context, user string, since int64, limit int) (ms []Member, version int64, more bool, err error)
	// MessageRange returns up to limit messages of the conversation with seq
	// in [minSeq, maxSeq], starting at from and going in dir, always returned
	// in ascending seq order.
	MessageRange(ctx context.Context, conversation string, from, minSeq, maxSeq int64, dir Direction, limit int) ([]Message, error)
	// MarkRead raises the user's read seq to seq (never lowered) and
	// returns the updated member state and whether the read seq rose. A
	// raised read seq also gives the peer of a direct conversation a new
	// version, since the peer's PeerReadSeq changed. ErrNotFound if the user
	// is not a member; a seq above the user's MaxSeq changes nothing and
	// returns the current state with ErrAboveMaxSeq. The check and the
	// change are one write, so callers need not read the state first.
	MarkRead(ctx context.Context, user, conversation string, seq int64) (m Member, raised bool, err error)
	// ClearHistory hides every current message from the user: MinSeq becomes
	// MaxSeq+1 and ReadSeq becomes MaxSeq. ErrNotFound if not a member.
	ClearHistory(ctx context.Context, user, conversation string) (Member, error)
	// UpdateSettings applies the change to the user's settings of the
	// conversation and returns the updated state, stamped with a new
	// version if anything changed. ErrNotFound if the user never was a
	// member.
	UpdateSettings(ctx context.Context, user, conversation string, c SettingsChange) (Member, error)
}

// Pipeliner is implemented by stores that can apply a batch of messages
// before its durable sync completes, so that the next batch is built and
// applied while the disk syncs the last, and several batches share one sync.
type Pipeliner interface {
	// AppendMessagesPipelined is AppendMessages returning as soon as the
	// batch is applied. Batches are applied in call order; each becomes
	// durable when its durable func returns nil, which the caller must
	// call exactly once, before it tells anyone that the batch is
	// committed. A batch applied is visible to readers before it is
	// durable: a power loss within that moment may lose what a reader saw,
	// never what was acknowledged.
	AppendMessagesPipelined(ctx context.Context, batch []NewMessage) (results []AppendResult, durable func() error, err error)
}

// Dedupe is the result for m, whose sender already used its client ID for
// orig: a duplicate when m repeats orig's conversation, content type and
// content byte for byte, a conflict otherwise. Every backend answers resends
// with it.
func Dedupe(orig Message, m *NewMessage) AppendResult {
	if orig.Conversation != m.Conversation || orig.ContentType != m.ContentType || !bytes.Equal(orig.Content, m.Content) {
		return AppendResult{Err: ErrClientIDConflict}
	}
	return AppendResult{Message: orig, Duplicate: true}
}
