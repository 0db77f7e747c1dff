// Package store is the contract between Parley's domain packages and their
// durable storage, in the way database/sql/driver is for database/sql. The
// embedded implementation is store/sqlite; store/storetest is the conformance
// suite every implementation must pass.
//
// All methods are safe for concurrent use. Implementations own their
// connection pools; AppendMessages is called by one group-commit writer per
// process, but implementations must stay correct if several processes append
// to the same database.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors returned by every implementation; callers test them with errors.Is.
var (
	ErrNotFound         = errors.New("store: not found")
	ErrExists           = errors.New("store: already exists")
	ErrClientIDConflict = errors.New("store: client message id reused with different content")
)

// Store is everything Parley keeps durably.
type Store interface {
	Users
	Tokens
	Messages
	Meta
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

// Conversation kinds.
const (
	KindDirect = "direct"
)

// NewMessage is a message to append. Members are the users whose
// per-conversation state the message touches (for a direct conversation, the
// sender and the recipient); each gets a member row if it has none and a new
// version, and the sender's read seq advances to the new message.
type NewMessage struct {
	Conversation string
	Kind         string
	Members      []string
	ServerID     string
	ClientID     string
	Sender       string
	Recipient    string
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
// ID was reused with a different recipient, content type or content; the rest
// of the batch is unaffected.
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
	MaxSeq       int64  // the conversation's highest seq
	ReadSeq      int64  // highest seq the user has read
	PeerReadSeq  int64  // highest seq the peer of a direct conversation has read
	MinSeq       int64  // lowest seq the user may see (1 unless history was cleared)
	Version      int64  // version at which this row last changed
	LastMessage  *Message
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
// Versions: every change to a member row (new message, read, clear) stamps it
// with a version from one store-wide counter that only increases, so
// "rows with Version > v" is exactly what changed for a user since v.
type Messages interface {
	// AppendMessages commits the batch in one transaction. Each new message
	// gets its conversation's next seq (gap-free, starting at 1). Results are
	// in batch order. An error means nothing in the batch was stored.
	AppendMessages(ctx context.Context, batch []NewMessage) ([]AppendResult, error)
	// Member returns the user's state in the conversation, or ErrNotFound if
	// the user is not a member.
	Member(ctx context.Context, user, conversation string) (Member, error)
	// Members returns the user's conversations whose Version is greater than
	// since, ordered by Version, and the highest version in the store (the
	// value to pass next time).
	Members(ctx context.Context, user string, since int64) ([]Member, int64, error)
	// MessageRange returns up to limit messages of the conversation with seq
	// in [minSeq, maxSeq], starting at from and going in dir, always returned
	// in ascending seq order.
	MessageRange(ctx context.Context, conversation string, from, minSeq, maxSeq int64, dir Direction, limit int) ([]Message, error)
	// MarkRead raises the user's read seq to seq (clamped to the conversation's
	// max seq; never lowered) and returns the updated member state. A raised
	// read seq also gives the peer's row of a direct conversation a new
	// version, since the peer's PeerReadSeq changed. ErrNotFound if the user
	// is not a member.
	MarkRead(ctx context.Context, user, conversation string, seq int64) (Member, error)
	// ClearHistory hides every current message from the user: MinSeq becomes
	// MaxSeq+1 and ReadSeq becomes MaxSeq. ErrNotFound if not a member.
	ClearHistory(ctx context.Context, user, conversation string) (Member, error)
}
