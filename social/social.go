// Package social is who users know: friend requests, friendships (with a
// remark and extra per side) and blocks, their incremental sync, the
// changed pushes that tell devices to sync, and the check the send path
// makes before a one-to-one message (CheckDirect).
//
// The rules live here; the store (store.Social) keeps the rows, stamps
// each with a version and leaves tombstones for deletes.
//
// # Concurrency model
//
// A Service is safe for concurrent use and starts no goroutines. Writes
// are serialised by writeMu, held across the store transaction and the
// update of the in-memory sets that follows, so the sets change in commit
// order. The sets (blocks, and friendships when friendship is required)
// are guarded by mu; CheckDirect, on the send path, takes it for reading
// and never touches the store. Lock order: writeMu, then mu.
//
// # Lifecycle
//
// New loads the block set (and the friendship set when
// Config.FriendRequired) from the store; the process must be the store's
// only writer of social rows, as it is of the embedded store. There is
// nothing to close.
package social

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// UserDirectory tells whether a user exists and is active.
type UserDirectory interface {
	UserExists(ctx context.Context, id string) (bool, error)
}

// Config holds the policies of a Service.
type Config struct {
	// FriendRequired refuses one-to-one messages between users who are
	// not friends (not_friends).
	FriendRequired bool
	// AutoAccept makes every friend request a friendship at once.
	AutoAccept bool
}

// pair is an ordered (owner, user) pair.
type pair struct{ owner, user string }

// Service is the friends and blocks service.
type Service struct {
	cfg    Config
	store  store.Social
	users  UserDirectory
	router router.Router
	log    *slog.Logger
	now    func() time.Time

	writeMu sync.Mutex // serialises writes and the set updates after them

	mu      sync.RWMutex
	blocks  map[pair]struct{} // guarded by mu: owner blocks user
	friends map[pair]struct{} // guarded by mu: owner has user as a friend; nil unless cfg.FriendRequired
}

// New returns a Service with its in-memory sets loaded from st.
func New(ctx context.Context, cfg Config, st store.Social, users UserDirectory, r router.Router, log *slog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, store: st, users: users, router: r, log: log, now: time.Now, blocks: make(map[pair]struct{})}
	err := st.ScanBlocks(ctx, func(owner, user string) error {
		s.blocks[pair{owner, user}] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("social: load blocks: %w", err)
	}
	if cfg.FriendRequired {
		s.friends = make(map[pair]struct{})
		err := st.ScanFriends(ctx, func(owner, user string) error {
			s.friends[pair{owner, user}] = struct{}{}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("social: load friends: %w", err)
		}
	}
	return s, nil
}

// CheckDirect says whether from may send a one-to-one message to to:
// blocked when to blocked from, not_friends when friendship is required
// and they are not friends. Messages from or to the system account are
// always allowed. It reads memory only.
func (s *Service) CheckDirect(_ context.Context, from, to string) error {
	if from == account.SystemUser || to == account.SystemUser {
		return nil
	}
	s.mu.RLock()
	_, blocked := s.blocks[pair{to, from}]
	friends := true
	if s.friends != nil {
		_, friends = s.friends[pair{from, to}]
	}
	s.mu.RUnlock()
	switch {
	case blocked:
		return protocol.Errorf(protocol.CodeBlocked, "%s blocked you", to)
	case !friends:
		return protocol.Errorf(protocol.CodeNotFriends, "you and %s are not friends; this server needs friendship for one-to-one messages", to)
	}
	return nil
}

// blockedBy reports whether owner blocks user.
func (s *Service) blockedBy(owner, user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.blocks[pair{owner, user}]
	return ok
}

// checkOther validates other, the user a request of user's acts on: a
// user id, not user, not the system account, and, when mustExist, an
// existing active user.
func (s *Service) checkOther(ctx context.Context, user, other string, mustExist bool) error {
	switch {
	case !conversation.ValidName(other):
		return protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a user id", other)
	case other == user:
		return protocol.Errorf(protocol.CodeInvalidArgument, "you cannot do this to yourself")
	case other == account.SystemUser || user == account.SystemUser:
		return protocol.Errorf(protocol.CodeReservedUser, "the system account has no friends or blocks")
	}
	if !mustExist {
		return nil
	}
	ok, err := s.users.UserExists(ctx, other)
	if err != nil {
		return fmt.Errorf("social: look up %q: %w", other, err)
	}
	if !ok {
		return protocol.Errorf(protocol.CodeNotFound, "no user %q", other)
	}
	return nil
}

// changes collects what a write changed, for the changed pushes sent once
// it committed: per scope, the users to tell; version is the highest
// version the write stamped.
type changes struct {
	version int64
	scopes  map[string]map[string]bool

	// For the in-memory sets: rows added and removed.
	friended, unfriended []pair
	blocked, unblocked   []pair
}

func (c *changes) note(scope string, version int64, users ...string) {
	if c.scopes == nil {
		c.scopes = make(map[string]map[string]bool)
	}
	if c.scopes[scope] == nil {
		c.scopes[scope] = make(map[string]bool)
	}
	c.version = max(c.version, version)
	for _, u := range users {
		c.scopes[scope][u] = true
	}
}

// update runs fn in a store transaction under writeMu, then applies what
// it changed to the in-memory sets and sends the changed pushes, still
// under writeMu so that pushes leave in commit order (the Router never
// blocks).
func (s *Service) update(ctx context.Context, op string, fn func(tx store.SocialTx, c *changes) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var c changes
	err := s.store.UpdateSocial(ctx, func(tx store.SocialTx) error {
		c = changes{}
		return fn(tx, &c)
	})
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return err
		}
		return fmt.Errorf("social: %s: %w", op, err)
	}
	s.mu.Lock()
	for _, p := range c.blocked {
		s.blocks[p] = struct{}{}
	}
	for _, p := range c.unblocked {
		delete(s.blocks, p)
	}
	if s.friends != nil {
		for _, p := range c.friended {
			s.friends[p] = struct{}{}
		}
		for _, p := range c.unfriended {
			delete(s.friends, p)
		}
	}
	s.mu.Unlock()
	s.push(c)
	return nil
}

// push tells every device of the users c names that their scopes reached
// c.version.
func (s *Service) push(c changes) {
	for _, scope := range []string{protocol.ScopeFriendRequests, protocol.ScopeFriends, protocol.ScopeBlocks} {
		if len(c.scopes[scope]) == 0 {
			continue
		}
		users := slices.Collect(maps.Keys(c.scopes[scope]))
		frame, err := protocol.Marshal(changedPush{Type: protocol.TypeChanged, Data: protocol.Changed{Scope: scope, Version: c.version}})
		if err != nil { // not reached: the push has no value that fails to encode
			s.log.Error("encode changed push", "err", err)
			continue
		}
		s.router.Deliver(users, frame, router.Device{})
	}
}

// changedPush is the frame of a changed push.
type changedPush struct {
	Type string           `json:"type"`
	Data protocol.Changed `json:"data"`
}

// befriend makes a and b friends, writing the rows that are missing, and
// notes what it wrote. It reports whether the friendship is new.
func (s *Service) befriend(tx store.SocialTx, c *changes, a, b string, now time.Time) (bool, error) {
	added := false
	for _, p := range []pair{{a, b}, {b, a}} {
		_, err := tx.Friend(p.owner, p.user)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		f, err := tx.PutFriend(store.Friend{Owner: p.owner, User: p.user, CreatedAt: now})
		if err != nil {
			return false, err
		}
		c.note(protocol.ScopeFriends, f.Version, p.owner)
		c.friended = append(c.friended, p)
		added = true
	}
	return added, nil
}

// settle marks a pending request from from to to as accepted, if there is
// one, and notes it.
func settle(tx store.SocialTx, c *changes, from, to string, now time.Time) error {
	r, err := tx.FriendRequest(from, to)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.State != store.RequestPending {
		return nil
	}
	if err != nil {
		return err
	}
	r.State, r.UpdatedAt = store.RequestAccepted, now
	r, err = tx.PutFriendRequest(r)
	if err != nil {
		return err
	}
	c.note(protocol.ScopeFriendRequests, r.Version, from, to)
	return nil
}

// RequestFriend sends a friend request from user. It makes the two friends
// at once when the other user had asked user already, or when the server
// accepts every request; the request is then returned accepted.
func (s *Service) RequestFriend(ctx context.Context, user string, in protocol.NewFriendRequest) (protocol.FriendRequest, error) {
	if utf8.RuneCountInString(in.Message) > protocol.MaxFriendRequestMessage {
		return protocol.FriendRequest{}, protocol.Errorf(protocol.CodeInvalidArgument, "message is longer than %d characters", protocol.MaxFriendRequestMessage)
	}
	if in.To == "" {
		return protocol.FriendRequest{}, protocol.Errorf(protocol.CodeInvalidArgument, "to is required")
	}
	if err := s.checkOther(ctx, user, in.To, true); err != nil {
		return protocol.FriendRequest{}, err
	}
	if s.blockedBy(in.To, user) {
		return protocol.FriendRequest{}, protocol.Errorf(protocol.CodeBlocked, "%s blocked you", in.To)
	}
	var out store.FriendRequest
	err := s.update(ctx, "request friend", func(tx store.SocialTx, c *changes) error {
		if _, err := tx.Friend(user, in.To); err == nil {
			return protocol.Errorf(protocol.CodeAlreadyExists, "you and %s are friends already", in.To)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		old, err := tx.FriendRequest(user, in.To)
		if err == nil && old.State == store.RequestPending {
			return protocol.Errorf(protocol.CodeAlreadyExists, "your request to %s is pending already", in.To)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		reverse, err := tx.FriendRequest(in.To, user)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		mutual := err == nil && reverse.State == store.RequestPending
		now := s.now()
		r := store.FriendRequest{From: user, To: in.To, Message: in.Message, State: store.RequestPending, CreatedAt: now, UpdatedAt: now}
		if mutual || s.cfg.AutoAccept {
			r.State = store.RequestAccepted
		}
		if out, err = tx.PutFriendRequest(r); err != nil {
			return err
		}
		c.note(protocol.ScopeFriendRequests, out.Version, user, in.To)
		if r.State != store.RequestAccepted {
			return nil
		}
		if err := settle(tx, c, in.To, user, now); err != nil {
			return err
		}
		_, err = s.befriend(tx, c, user, in.To, now)
		return err
	})
	return requestJSON(out), err
}

// AcceptFriend accepts the pending request from from to user, and returns
// user's new friend entry.
func (s *Service) AcceptFriend(ctx context.Context, user, from string) (protocol.Friend, error) {
	return s.answer(ctx, user, from, true)
}

// RefuseFriend refuses the pending request from from to user.
func (s *Service) RefuseFriend(ctx context.Context, user, from string) error {
	_, err := s.answer(ctx, user, from, false)
	return err
}

func (s *Service) answer(ctx context.Context, user, from string, accept bool) (protocol.Friend, error) {
	if err := s.checkOther(ctx, user, from, false); err != nil {
		return protocol.Friend{}, err
	}
	var friend store.Friend
	err := s.update(ctx, "answer friend request", func(tx store.SocialTx, c *changes) error {
		r, err := tx.FriendRequest(from, user)
		if errors.Is(err, store.ErrNotFound) || err == nil && r.State != store.RequestPending {
			return protocol.Errorf(protocol.CodeNotFound, "no pending friend request from %s", from)
		}
		if err != nil {
			return err
		}
		now := s.now()
		r.State, r.UpdatedAt = store.RequestRefused, now
		if accept {
			r.State = store.RequestAccepted
		}
		if r, err = tx.PutFriendRequest(r); err != nil {
			return err
		}
		c.note(protocol.ScopeFriendRequests, r.Version, from, user)
		if !accept {
			return nil
		}
		if err := settle(tx, c, user, from, now); err != nil {
			return err
		}
		if _, err := s.befriend(tx, c, user, from, now); err != nil {
			return err
		}
		friend, err = tx.Friend(user, from)
		return err
	})
	return friendJSON(friend), err
}

// Friend returns user's entry for friend, or not_found if they are not
// friends.
func (s *Service) Friend(ctx context.Context, user, friend string) (protocol.Friend, error) {
	if err := s.checkOther(ctx, user, friend, false); err != nil {
		return protocol.Friend{}, err
	}
	f, err := s.store.Friend(ctx, user, friend)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.Friend{}, protocol.Errorf(protocol.CodeNotFound, "%s is not your friend", friend)
	}
	if err != nil {
		return protocol.Friend{}, fmt.Errorf("social: friend: %w", err)
	}
	return friendJSON(f), nil
}

// UpdateFriend changes user's remark or extra for friend.
func (s *Service) UpdateFriend(ctx context.Context, user, friend string, up protocol.FriendUpdate) (protocol.Friend, error) {
	if err := s.checkOther(ctx, user, friend, false); err != nil {
		return protocol.Friend{}, err
	}
	if up.Remark == nil && up.Extra == nil {
		return protocol.Friend{}, protocol.Errorf(protocol.CodeInvalidArgument, "remark or extra is required")
	}
	if up.Remark != nil && utf8.RuneCountInString(*up.Remark) > protocol.MaxFriendRemark {
		return protocol.Friend{}, protocol.Errorf(protocol.CodeInvalidArgument, "remark is longer than %d characters", protocol.MaxFriendRemark)
	}
	var extra json.RawMessage
	if up.Extra != nil {
		var b bytes.Buffer
		if err := json.Compact(&b, *up.Extra); err != nil {
			return protocol.Friend{}, protocol.Errorf(protocol.CodeInvalidArgument, "extra must be a JSON value")
		}
		if b.Len() > protocol.MaxFriendExtraBytes {
			return protocol.Friend{}, protocol.Errorf(protocol.CodeInvalidArgument, "extra is larger than %d bytes", protocol.MaxFriendExtraBytes)
		}
		extra = b.Bytes()
	}
	var out store.Friend
	err := s.update(ctx, "update friend", func(tx store.SocialTx, c *changes) error {
		f, err := tx.Friend(user, friend)
		if errors.Is(err, store.ErrNotFound) {
			return protocol.Errorf(protocol.CodeNotFound, "%s is not your friend", friend)
		}
		if err != nil {
			return err
		}
		if up.Remark != nil {
			f.Remark = *up.Remark
		}
		if up.Extra != nil {
			f.Extra = extra
		}
		if out, err = tx.PutFriend(f); err != nil {
			return err
		}
		c.note(protocol.ScopeFriends, out.Version, user)
		return nil
	})
	return friendJSON(out), err
}

// DeleteFriend ends the friendship of user and friend, on both sides.
func (s *Service) DeleteFriend(ctx context.Context, user, friend string) error {
	if err := s.checkOther(ctx, user, friend, false); err != nil {
		return err
	}
	return s.update(ctx, "delete friend", func(tx store.SocialTx, c *changes) error {
		found := false
		for _, p := range []pair{{user, friend}, {friend, user}} {
			f, err := tx.Friend(p.owner, p.user)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			f.Deleted = true
			if f, err = tx.PutFriend(f); err != nil {
				return err
			}
			c.note(protocol.ScopeFriends, f.Version, p.owner)
			c.unfriended = append(c.unfriended, p)
			found = found || p.owner == user
		}
		if !found {
			return protocol.Errorf(protocol.CodeNotFound, "%s is not your friend", friend)
		}
		return nil
	})
}

// Block blocks user's messages and friend requests to owner. Blocking
// again changes nothing. The blocked user is not told.
func (s *Service) Block(ctx context.Context, owner, user string) (protocol.Block, error) {
	if err := s.checkOther(ctx, owner, user, true); err != nil {
		return protocol.Block{}, err
	}
	var out store.Block
	err := s.update(ctx, "block", func(tx store.SocialTx, c *changes) error {
		b, err := tx.Block(owner, user)
		if err == nil {
			out = b
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if out, err = tx.PutBlock(store.Block{Owner: owner, User: user, CreatedAt: s.now()}); err != nil {
			return err
		}
		c.note(protocol.ScopeBlocks, out.Version, owner)
		c.blocked = append(c.blocked, pair{owner, user})
		return nil
	})
	return blockJSON(out), err
}

// Unblock lifts owner's block of user; not_found if there is none.
func (s *Service) Unblock(ctx context.Context, owner, user string) error {
	if err := s.checkOther(ctx, owner, user, false); err != nil {
		return err
	}
	return s.update(ctx, "unblock", func(tx store.SocialTx, c *changes) error {
		b, err := tx.Block(owner, user)
		if errors.Is(err, store.ErrNotFound) {
			return protocol.Errorf(protocol.CodeNotFound, "you do not block %s", user)
		}
		if err != nil {
			return err
		}
		b.Deleted = true
		if b, err = tx.PutBlock(b); err != nil {
			return err
		}
		c.note(protocol.ScopeBlocks, b.Version, owner)
		c.unblocked = append(c.unblocked, pair{owner, user})
		return nil
	})
}

// Import makes each pair of users friends, as the app server asks: up to
// MaxFriendImport pairs of existing users, in one transaction. Pairs that
// are friends already are left as they are (with their remarks), so an
// import can be repeated; pending requests between a pair are accepted.
// Blocks do not stop an import.
func (s *Service) Import(ctx context.Context, in protocol.FriendImport) (protocol.FriendImportResult, error) {
	var res protocol.FriendImportResult
	switch {
	case len(in.Friendships) == 0:
		return res, protocol.Errorf(protocol.CodeInvalidArgument, "friendships is required")
	case len(in.Friendships) > protocol.MaxFriendImport:
		return res, protocol.Errorf(protocol.CodeInvalidArgument, "at most %d friendships per import", protocol.MaxFriendImport)
	}
	for _, f := range in.Friendships {
		if err := s.checkOther(ctx, f.Friend, f.User, true); err != nil {
			return res, err
		}
		if err := s.checkOther(ctx, f.User, f.Friend, true); err != nil {
			return res, err
		}
	}
	err := s.update(ctx, "import friends", func(tx store.SocialTx, c *changes) error {
		res = protocol.FriendImportResult{}
		now := s.now()
		for _, f := range in.Friendships {
			added, err := s.befriend(tx, c, f.User, f.Friend, now)
			if err != nil {
				return err
			}
			if !added {
				res.Existing++
				continue
			}
			res.Added++
			if err := settle(tx, c, f.User, f.Friend, now); err != nil {
				return err
			}
			if err := settle(tx, c, f.Friend, f.User, now); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// FriendRequests returns the requests from and to user changed after since.
func (s *Service) FriendRequests(ctx context.Context, user string, since int64, limit int) (protocol.Delta[protocol.FriendRequest], error) {
	return delta(ctx, "friend requests", since, limit, func(since int64, limit int) ([]store.FriendRequest, int64, bool, error) {
		return s.store.FriendRequests(ctx, user, since, limit)
	}, func(r store.FriendRequest) (protocol.FriendRequest, string, bool) {
		return requestJSON(r), "", false
	})
}

// Friends returns user's friend entries changed after since.
func (s *Service) Friends(ctx context.Context, user string, since int64, limit int) (protocol.Delta[protocol.Friend], error) {
	return delta(ctx, "friends", since, limit, func(since int64, limit int) ([]store.Friend, int64, bool, error) {
		return s.store.Friends(ctx, user, since, limit)
	}, func(f store.Friend) (protocol.Friend, string, bool) {
		return friendJSON(f), f.User, f.Deleted
	})
}

// Blocks returns user's blocks changed after since.
func (s *Service) Blocks(ctx context.Context, user string, since int64, limit int) (protocol.Delta[protocol.Block], error) {
	return delta(ctx, "blocks", since, limit, func(since int64, limit int) ([]store.Block, int64, bool, error) {
		return s.store.Blocks(ctx, user, since, limit)
	}, func(b store.Block) (protocol.Block, string, bool) {
		return blockJSON(b), b.User, b.Deleted
	})
}

// delta answers an incremental sync by protocol.SyncDelta, after bounding
// limit.
func delta[R, T any](ctx context.Context, op string, since int64, limit int,
	read func(since int64, limit int) ([]R, int64, bool, error), conv func(R) (T, string, bool)) (protocol.Delta[T], error) {
	if limit == 0 || limit > protocol.MaxDeltaPage {
		limit = protocol.MaxDeltaPage
	}
	d, err := protocol.SyncDelta(since, limit, read, conv)
	if err != nil {
		return protocol.Delta[T]{}, fmt.Errorf("social: %s: %w", op, err)
	}
	return d, nil
}

func requestJSON(r store.FriendRequest) protocol.FriendRequest {
	return protocol.FriendRequest{From: r.From, To: r.To, Message: r.Message, State: r.State,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Version: r.Version}
}

func friendJSON(f store.Friend) protocol.Friend {
	return protocol.Friend{User: f.User, Remark: f.Remark, Extra: f.Extra, CreatedAt: f.CreatedAt, Version: f.Version}
}

func blockJSON(b store.Block) protocol.Block {
	return protocol.Block{User: b.User, CreatedAt: b.CreatedAt, Version: b.Version}
}
