package store

import (
	"context"
	"encoding/json"
	"time"
)

// States of a FriendRequest.
const (
	RequestPending  = "pending"
	RequestAccepted = "accepted"
	RequestRefused  = "refused"
)

// FriendRequest is a request from From to To to become friends. There is
// at most one per (From, To): a new request after a refusal reuses it.
type FriendRequest struct {
	From      string
	To        string
	Message   string
	State     string // RequestPending, RequestAccepted or RequestRefused
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   int64
}

// Friend is one side of a friendship: Owner's entry for User, with the
// Remark and Extra only Owner sees. A friendship is two rows, one per
// owner. Deleted marks a tombstone: the friendship ended at Version.
type Friend struct {
	Owner     string
	User      string
	Remark    string
	Extra     json.RawMessage // nil or a JSON value
	CreatedAt time.Time
	Version   int64
	Deleted   bool
}

// Block says that Owner blocked User. Deleted marks a tombstone: the block
// was lifted at Version.
type Block struct {
	Owner     string
	User      string
	CreatedAt time.Time
	Version   int64
	Deleted   bool
}

// Social stores friend requests, friendships and blocks, each change
// stamped with a version from one counter of its own (not the message
// log's), so that "what changed for a user since V" is a range read.
//
// Versions: every row written gets the next value of the counter, so
// versions are unique and increase in commit order. Deleting a friend or
// lifting a block writes a tombstone row (Deleted, with the new version)
// instead of removing the row, so that a sync from before the delete
// learns of it. Versions become visible in the order they were taken, as
// for Messages.
type Social interface {
	// UpdateSocial runs fn in one transaction that sees and writes the
	// social tables alone, serialised with every other UpdateSocial: what
	// fn reads cannot change before it commits. If fn returns an error
	// nothing it wrote is kept and UpdateSocial returns that error. fn
	// must not keep tx after it returns.
	UpdateSocial(ctx context.Context, fn func(tx SocialTx) error) error
	// FriendRequests returns the requests from or to user whose Version
	// is greater than since, by Version; see Friends for limit, the
	// version and more.
	FriendRequests(ctx context.Context, user string, since int64, limit int) (rs []FriendRequest, version int64, more bool, err error)
	// Friends returns owner's friend rows whose Version is greater than
	// since, by Version, tombstones included when since > 0 (with since 0,
	// the current friends alone). With limit > 0 it returns at most limit
	// rows and sets more when rows are left; the version to pass next time
	// is then the last row's, else the counter's current value, read in
	// the same snapshot as the rows.
	Friends(ctx context.Context, owner string, since int64, limit int) (fs []Friend, version int64, more bool, err error)
	// Friend returns owner's current entry for user, or ErrNotFound if
	// they are not friends.
	Friend(ctx context.Context, owner, user string) (Friend, error)
	// Blocks is Friends for owner's blocks.
	Blocks(ctx context.Context, owner string, since int64, limit int) (bs []Block, version int64, more bool, err error)
	// ScanBlocks calls fn for every current block, for loading a cache at
	// start; an error from fn stops the scan and is returned.
	ScanBlocks(ctx context.Context, fn func(owner, user string) error) error
	// ScanFriends calls fn for every current friend row.
	ScanFriends(ctx context.Context, fn func(owner, user string) error) error
}

// SocialTx reads and writes within one UpdateSocial transaction. Its
// methods are for the goroutine running fn alone.
type SocialTx interface {
	// FriendRequest returns the request from from to to, or ErrNotFound.
	FriendRequest(from, to string) (FriendRequest, error)
	// Friend returns owner's current entry for user, or ErrNotFound
	// (tombstones are not returned).
	Friend(owner, user string) (Friend, error)
	// Block returns owner's current block of user, or ErrNotFound
	// (tombstones are not returned).
	Block(owner, user string) (Block, error)
	// PutFriendRequest stores r, replacing the request with the same From
	// and To, with the next version, and returns it as stored.
	PutFriendRequest(r FriendRequest) (FriendRequest, error)
	// PutFriend stores f (a tombstone when f.Deleted), replacing the row
	// with the same Owner and User, with the next version, and returns it
	// as stored. A tombstone keeps only the keys, CreatedAt and Version.
	PutFriend(f Friend) (Friend, error)
	// PutBlock is PutFriend for blocks.
	PutBlock(b Block) (Block, error)
}
