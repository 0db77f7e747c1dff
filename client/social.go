package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/parleyim/parley/protocol"
)

// Friends and blocks: typed methods on Call, and the friend sync behind
// Options.OnFriendEvent.

// RequestFriend asks user to to become friends, with an optional message.
// The returned request is accepted when the two became friends at once (to
// had asked the user already, or the server accepts every request).
func (c *Client) RequestFriend(ctx context.Context, to, message string) (protocol.FriendRequest, error) {
	var r protocol.FriendRequest
	err := c.Call(ctx, http.MethodPost, "/v1/friends/requests", protocol.NewFriendRequest{To: to, Message: message}, &r)
	return r, err
}

// AcceptFriend accepts the pending request from user from and returns the
// new friend entry.
func (c *Client) AcceptFriend(ctx context.Context, from string) (protocol.Friend, error) {
	var f protocol.Friend
	err := c.Call(ctx, http.MethodPost, "/v1/friends/requests/"+url.PathEscape(from)+"/accept", nil, &f)
	return f, err
}

// RefuseFriend refuses the pending request from user from.
func (c *Client) RefuseFriend(ctx context.Context, from string) error {
	return c.Call(ctx, http.MethodPost, "/v1/friends/requests/"+url.PathEscape(from)+"/refuse", nil, nil)
}

// FriendRequests returns the requests to and from the user changed after
// version since (0 for all), one page; see protocol.Delta.
func (c *Client) FriendRequests(ctx context.Context, since int64) (protocol.Delta[protocol.FriendRequest], error) {
	var d protocol.Delta[protocol.FriendRequest]
	err := c.Call(ctx, http.MethodGet, "/v1/friends/requests?since="+strconv.FormatInt(since, 10), nil, &d)
	return d, err
}

// Friends returns the friend entries changed after version since (0 for
// all) and, in Deleted, the friends removed since; one page.
func (c *Client) Friends(ctx context.Context, since int64) (protocol.Delta[protocol.Friend], error) {
	var d protocol.Delta[protocol.Friend]
	err := c.Call(ctx, http.MethodGet, "/v1/friends?since="+strconv.FormatInt(since, 10), nil, &d)
	return d, err
}

// Friend returns the user's entry for user, or a *protocol.Error with
// not_found when they are not friends.
func (c *Client) Friend(ctx context.Context, user string) (protocol.Friend, error) {
	var f protocol.Friend
	err := c.Call(ctx, http.MethodGet, "/v1/friends/"+url.PathEscape(user), nil, &f)
	return f, err
}

// UpdateFriend changes the remark or extra (the non-nil fields of up) of
// the user's entry for user.
func (c *Client) UpdateFriend(ctx context.Context, user string, up protocol.FriendUpdate) (protocol.Friend, error) {
	var f protocol.Friend
	err := c.Call(ctx, http.MethodPatch, "/v1/friends/"+url.PathEscape(user), up, &f)
	return f, err
}

// SetFriendRemark sets the user's remark for user (empty clears it).
func (c *Client) SetFriendRemark(ctx context.Context, user, remark string) (protocol.Friend, error) {
	return c.UpdateFriend(ctx, user, protocol.FriendUpdate{Remark: &remark})
}

// DeleteFriend ends the friendship with user, on both sides.
func (c *Client) DeleteFriend(ctx context.Context, user string) error {
	return c.Call(ctx, http.MethodDelete, "/v1/friends/"+url.PathEscape(user), nil, nil)
}

// Block blocks user: their one-to-one messages and friend requests to the
// user are refused. Blocking again changes nothing.
func (c *Client) Block(ctx context.Context, user string) (protocol.Block, error) {
	var b protocol.Block
	err := c.Call(ctx, http.MethodPut, "/v1/blocks/"+url.PathEscape(user), nil, &b)
	return b, err
}

// Unblock lifts the block of user.
func (c *Client) Unblock(ctx context.Context, user string) error {
	return c.Call(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(user), nil, nil)
}

// Blocks returns the blocks changed after version since (0 for all) and,
// in Deleted, the users unblocked since; one page.
func (c *Client) Blocks(ctx context.Context, since int64) (protocol.Delta[protocol.Block], error) {
	var d protocol.Delta[protocol.Block]
	err := c.Call(ctx, http.MethodGet, "/v1/blocks?since="+strconv.FormatInt(since, 10), nil, &d)
	return d, err
}

// FriendEventKind says what a FriendEvent reports.
type FriendEventKind string

// Kinds of FriendEvent.
const (
	FriendRequestReceived FriendEventKind = "request_received" // someone asked the user: Request
	FriendRequestSent     FriendEventKind = "request_sent"     // the user asked someone, on any device: Request
	FriendRequestAccepted FriendEventKind = "request_accepted" // a request to or from the user was accepted: Request
	FriendRequestRefused  FriendEventKind = "request_refused"  // a request to or from the user was refused: Request
	FriendAdded           FriendEventKind = "friend_added"     // a new friend: Friend
	FriendUpdated         FriendEventKind = "friend_updated"   // a friend's remark or extra changed: Friend
	FriendRemoved         FriendEventKind = "friend_removed"   // a friendship ended: User
	UserBlocked           FriendEventKind = "blocked"          // the user blocked someone: Block
	UserUnblocked         FriendEventKind = "unblocked"        // the user lifted a block: User
)

// FriendEvent is one change to the user's friend requests, friends or
// blocks, passed to Options.OnFriendEvent. User is the other user; Request,
// Friend or Block holds the entry, as the kind says.
type FriendEvent struct {
	Kind    FriendEventKind
	User    string
	Request protocol.FriendRequest
	Friend  protocol.Friend
	Block   protocol.Block
}

// The scopes the friend sync keeps, in the order it syncs them.
var friendScopes = [...]string{protocol.ScopeFriendRequests, protocol.ScopeFriends, protocol.ScopeBlocks}

// friendSync keeps the user's friend requests, friends and blocks in step
// for Options.OnFriendEvent: it syncs every scope after each connection
// and a scope whenever a changed push names a version newer than the one
// it holds, and queues one FriendEvent per change. Its goroutine is owned
// by the Client and exits when the client stops.
type friendSync struct {
	c    *Client
	wake chan struct{} // cap 1: a scope became due

	mu       sync.Mutex
	versions [len(friendScopes)]int64 // guarded by mu: the version held per scope
	due      [len(friendScopes)]bool  // guarded by mu: the scope needs a sync

	// Owned by the goroutine: who the user knows, to tell an added friend
	// from an updated one and to report what a resync removed.
	friends map[string]bool
	blocks  map[string]bool
}

func newFriendSync(c *Client) *friendSync {
	return &friendSync{c: c, wake: make(chan struct{}, 1), friends: map[string]bool{}, blocks: map[string]bool{}}
}

// all makes every scope due: a connection came up.
func (fs *friendSync) all() {
	fs.mu.Lock()
	for i := range fs.due {
		fs.due[i] = true
	}
	fs.mu.Unlock()
	signal(fs.wake)
}

// changed makes ch's scope due if it is one the sync keeps and ch's
// version is newer than the one held.
func (fs *friendSync) changed(ch protocol.Changed) {
	for i, s := range friendScopes {
		if s != ch.Scope {
			continue
		}
		fs.mu.Lock()
		due := ch.Version > fs.versions[i]
		fs.due[i] = fs.due[i] || due
		fs.mu.Unlock()
		if due {
			signal(fs.wake)
		}
	}
}

// run syncs the due scopes whenever woken, until the client stops. A sync
// that fails (the connection dropped) leaves its scope due: the next
// connection, or the next push, tries again.
func (fs *friendSync) run() {
	defer fs.c.wg.Done()
	for {
		select {
		case <-fs.c.ctx.Done():
			return
		case <-fs.wake:
		}
		for i := range friendScopes {
			fs.mu.Lock()
			due, since := fs.due[i], fs.versions[i]
			fs.due[i] = false
			fs.mu.Unlock()
			if !due {
				continue
			}
			v, err := fs.sync(i, since)
			fs.mu.Lock()
			fs.versions[i] = max(fs.versions[i], v)
			if err != nil {
				fs.due[i] = true
			}
			fs.mu.Unlock()
		}
	}
}

// sync brings scope i up to date from since, page by page, queueing the
// events, and returns the version reached. After a resync answer, the
// friends or blocks that no page of it held are reported removed.
func (fs *friendSync) sync(i int, since int64) (int64, error) {
	ctx := fs.c.ctx
	var kept map[string]bool // non-nil during a resync: the users its pages held
	for {
		var err error
		var more, resync bool
		var keys []string
		switch friendScopes[i] {
		case protocol.ScopeFriendRequests:
			var d protocol.Delta[protocol.FriendRequest]
			if d, err = fs.c.FriendRequests(ctx, since); err == nil {
				fs.requests(d.Items)
				since, more = d.Version, d.More
			}
		case protocol.ScopeFriends:
			var d protocol.Delta[protocol.Friend]
			if d, err = fs.c.Friends(ctx, since); err == nil {
				fs.friendChanges(d)
				since, more, resync = d.Version, d.More, d.Resync
				for _, f := range d.Items {
					keys = append(keys, f.User)
				}
			}
		case protocol.ScopeBlocks:
			var d protocol.Delta[protocol.Block]
			if d, err = fs.c.Blocks(ctx, since); err == nil {
				fs.blockChanges(d)
				since, more, resync = d.Version, d.More, d.Resync
				for _, b := range d.Items {
					keys = append(keys, b.User)
				}
			}
		}
		if err != nil {
			return since, err
		}
		if resync {
			kept = make(map[string]bool)
		}
		if kept != nil {
			for _, k := range keys {
				kept[k] = true
			}
		}
		if more {
			continue
		}
		if kept != nil {
			if friendScopes[i] == protocol.ScopeFriends {
				fs.forgetAbsent(fs.friends, kept, FriendRemoved)
			} else {
				fs.forgetAbsent(fs.blocks, kept, UserUnblocked)
			}
		}
		return since, nil
	}
}

func (fs *friendSync) emit(ev FriendEvent) {
	fs.c.d.queueItem(item{kind: itemFriend, other: ev})
}

func (fs *friendSync) requests(rs []protocol.FriendRequest) {
	me := fs.c.user
	for _, r := range rs {
		ev := FriendEvent{Request: r, User: r.From}
		if r.From == me {
			ev.User = r.To
		}
		switch {
		case r.State == protocol.RequestAccepted:
			ev.Kind = FriendRequestAccepted
		case r.State == protocol.RequestRefused:
			ev.Kind = FriendRequestRefused
		case r.From == me:
			ev.Kind = FriendRequestSent
		default:
			ev.Kind = FriendRequestReceived
		}
		fs.emit(ev)
	}
}

func (fs *friendSync) friendChanges(d protocol.Delta[protocol.Friend]) {
	for _, f := range d.Items {
		kind := FriendAdded
		if fs.friends[f.User] {
			kind = FriendUpdated
		}
		fs.friends[f.User] = true
		fs.emit(FriendEvent{Kind: kind, User: f.User, Friend: f})
	}
	for _, u := range d.Deleted {
		if fs.friends[u] {
			delete(fs.friends, u)
			fs.emit(FriendEvent{Kind: FriendRemoved, User: u})
		}
	}
}

func (fs *friendSync) blockChanges(d protocol.Delta[protocol.Block]) {
	for _, b := range d.Items {
		if !fs.blocks[b.User] {
			fs.blocks[b.User] = true
			fs.emit(FriendEvent{Kind: UserBlocked, User: b.User, Block: b})
		}
	}
	for _, u := range d.Deleted {
		if fs.blocks[u] {
			delete(fs.blocks, u)
			fs.emit(FriendEvent{Kind: UserUnblocked, User: u})
		}
	}
}

// forgetAbsent reports as removed (kind) every user in known that a
// resync did not hold, and forgets them.
func (fs *friendSync) forgetAbsent(known, kept map[string]bool, kind FriendEventKind) {
	for u := range known {
		if !kept[u] {
			delete(known, u)
			fs.emit(FriendEvent{Kind: kind, User: u})
		}
	}
}
