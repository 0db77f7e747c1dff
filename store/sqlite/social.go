package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleyim/parley/store"
)

var _ store.Social = (*Store)(nil)

const (
	nextSocialVersionSQL = `UPDATE social_version SET value = value + 1 WHERE id = 0 RETURNING value`
	socialVersionSQL     = `SELECT value FROM social_version WHERE id = 0`

	requestColumns = `from_user, to_user, message, state, created_at, updated_at, version`

	friendRequestSQL = `SELECT ` + requestColumns + ` FROM friend_requests WHERE from_user = ? AND to_user = ?`

	putFriendRequestSQL = `
INSERT INTO friend_requests (` + requestColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (from_user, to_user) DO UPDATE SET
	message = excluded.message, state = excluded.state, created_at = excluded.created_at,
	updated_at = excluded.updated_at, version = excluded.version`

	// friendRequestsSQL reads the user's outgoing and incoming requests,
	// each a range of its own index; ?3 is the limit (-1 for none).
	friendRequestsSQL = `
SELECT ` + requestColumns + ` FROM friend_requests WHERE from_user = ?1 AND version > ?2
UNION ALL
SELECT ` + requestColumns + ` FROM friend_requests WHERE to_user = ?1 AND version > ?2
ORDER BY version LIMIT ?3`

	friendColumns = `owner, user_id, remark, extra, created_at, version, deleted`

	friendSQL = `SELECT ` + friendColumns + ` FROM friends WHERE owner = ? AND user_id = ? AND deleted = 0`

	putFriendSQL = `
INSERT INTO friends (` + friendColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (owner, user_id) DO UPDATE SET
	remark = excluded.remark, extra = excluded.extra, created_at = excluded.created_at,
	version = excluded.version, deleted = excluded.deleted`

	// friendsSQL leaves tombstones out of a full read (?2 = 0).
	friendsSQL = `
SELECT ` + friendColumns + ` FROM friends
WHERE owner = ?1 AND version > ?2 AND (deleted = 0 OR ?2 > 0)
ORDER BY version LIMIT ?3`

	scanFriendsSQL = `SELECT owner, user_id FROM friends WHERE deleted = 0`

	blockColumns = `owner, user_id, created_at, version, deleted`

	blockSQL = `SELECT ` + blockColumns + ` FROM blocks WHERE owner = ? AND user_id = ? AND deleted = 0`

	putBlockSQL = `
INSERT INTO blocks (` + blockColumns + `) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (owner, user_id) DO UPDATE SET
	created_at = excluded.created_at, version = excluded.version, deleted = excluded.deleted`

	blocksSQL = `
SELECT ` + blockColumns + ` FROM blocks
WHERE owner = ?1 AND version > ?2 AND (deleted = 0 OR ?2 > 0)
ORDER BY version LIMIT ?3`

	scanBlocksSQL = `SELECT owner, user_id FROM blocks WHERE deleted = 0`
)

// UpdateSocial runs fn in one write transaction; see store.Social.
func (s *Store) UpdateSocial(ctx context.Context, fn func(tx store.SocialTx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: update social: %w", err)
	}
	defer tx.Rollback()
	if err := fn(&socialTx{ctx: ctx, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: update social: %w", err)
	}
	return nil
}

// socialTx is store.SocialTx on one write transaction.
type socialTx struct {
	ctx context.Context
	tx  *sql.Tx
}

func (t *socialTx) nextVersion() (int64, error) {
	var v int64
	err := t.tx.QueryRowContext(t.ctx, nextSocialVersionSQL).Scan(&v)
	return v, err
}

func (t *socialTx) FriendRequest(from, to string) (store.FriendRequest, error) {
	r, err := scanRequest(t.tx.QueryRowContext(t.ctx, friendRequestSQL, from, to))
	if err != nil {
		return store.FriendRequest{}, fmt.Errorf("sqlite: friend request %s→%s: %w", from, to, err)
	}
	return r, nil
}

func (t *socialTx) Friend(owner, user string) (store.Friend, error) {
	f, err := scanFriend(t.tx.QueryRowContext(t.ctx, friendSQL, owner, user))
	if err != nil {
		return store.Friend{}, fmt.Errorf("sqlite: friend %s→%s: %w", owner, user, err)
	}
	return f, nil
}

func (t *socialTx) Block(owner, user string) (store.Block, error) {
	b, err := scanBlock(t.tx.QueryRowContext(t.ctx, blockSQL, owner, user))
	if err != nil {
		return store.Block{}, fmt.Errorf("sqlite: block %s→%s: %w", owner, user, err)
	}
	return b, nil
}

func (t *socialTx) PutFriendRequest(r store.FriendRequest) (store.FriendRequest, error) {
	v, err := t.nextVersion()
	if err == nil {
		r.Version = v
		_, err = t.tx.ExecContext(t.ctx, putFriendRequestSQL, r.From, r.To, r.Message, r.State,
			r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli(), r.Version)
	}
	if err != nil {
		return store.FriendRequest{}, fmt.Errorf("sqlite: put friend request: %w", err)
	}
	r.CreatedAt, r.UpdatedAt = timeOf(r.CreatedAt.UnixMilli()), timeOf(r.UpdatedAt.UnixMilli())
	return r, nil
}

func (t *socialTx) PutFriend(f store.Friend) (store.Friend, error) {
	if f.Deleted {
		f = store.Friend{Owner: f.Owner, User: f.User, CreatedAt: f.CreatedAt, Deleted: true}
	}
	v, err := t.nextVersion()
	if err == nil {
		f.Version = v
		_, err = t.tx.ExecContext(t.ctx, putFriendSQL, f.Owner, f.User, f.Remark, extraValue(f.Extra),
			f.CreatedAt.UnixMilli(), f.Version, f.Deleted)
	}
	if err != nil {
		return store.Friend{}, fmt.Errorf("sqlite: put friend: %w", err)
	}
	f.CreatedAt = timeOf(f.CreatedAt.UnixMilli())
	return f, nil
}

func (t *socialTx) PutBlock(b store.Block) (store.Block, error) {
	v, err := t.nextVersion()
	if err == nil {
		b.Version = v
		_, err = t.tx.ExecContext(t.ctx, putBlockSQL, b.Owner, b.User, b.CreatedAt.UnixMilli(), b.Version, b.Deleted)
	}
	if err != nil {
		return store.Block{}, fmt.Errorf("sqlite: put block: %w", err)
	}
	b.CreatedAt = timeOf(b.CreatedAt.UnixMilli())
	return b, nil
}

// socialRange reads up to limit rows of query (with since and the limit as
// its parameters after key) and the counter, in one read snapshot, and
// works out the version to pass next time and whether rows are left.
func socialRange[T any](ctx context.Context, db *sql.DB, query, key string, since int64, limit int,
	scan func(scanner) (T, error), version func(T) int64) ([]T, int64, bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, false, err
	}
	defer tx.Rollback()
	n := -1
	if limit > 0 {
		n = limit + 1
	}
	rows, err := tx.QueryContext(ctx, query, key, since, n)
	if err != nil {
		return nil, 0, false, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, 0, false, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, err
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		return out, version(out[limit-1]), true, nil
	}
	var current int64
	if err := tx.QueryRowContext(ctx, socialVersionSQL).Scan(&current); err != nil {
		return nil, 0, false, err
	}
	return out, current, false, nil
}

// FriendRequests returns the requests from or to user changed after since.
func (s *Store) FriendRequests(ctx context.Context, user string, since int64, limit int) ([]store.FriendRequest, int64, bool, error) {
	rs, v, more, err := socialRange(ctx, s.reader, friendRequestsSQL, user, since, limit, scanRequest,
		func(r store.FriendRequest) int64 { return r.Version })
	if err != nil {
		return nil, 0, false, fmt.Errorf("sqlite: friend requests of %q: %w", user, err)
	}
	return rs, v, more, nil
}

// Friends returns owner's friend rows changed after since.
func (s *Store) Friends(ctx context.Context, owner string, since int64, limit int) ([]store.Friend, int64, bool, error) {
	fs, v, more, err := socialRange(ctx, s.reader, friendsSQL, owner, since, limit, scanFriend,
		func(f store.Friend) int64 { return f.Version })
	if err != nil {
		return nil, 0, false, fmt.Errorf("sqlite: friends of %q: %w", owner, err)
	}
	return fs, v, more, nil
}

// Friend returns owner's current entry for user, or ErrNotFound.
func (s *Store) Friend(ctx context.Context, owner, user string) (store.Friend, error) {
	f, err := scanFriend(s.reader.QueryRowContext(ctx, friendSQL, owner, user))
	if err != nil {
		return store.Friend{}, fmt.Errorf("sqlite: friend %s→%s: %w", owner, user, err)
	}
	return f, nil
}

// Blocks returns owner's block rows changed after since.
func (s *Store) Blocks(ctx context.Context, owner string, since int64, limit int) ([]store.Block, int64, bool, error) {
	bs, v, more, err := socialRange(ctx, s.reader, blocksSQL, owner, since, limit, scanBlock,
		func(b store.Block) int64 { return b.Version })
	if err != nil {
		return nil, 0, false, fmt.Errorf("sqlite: blocks of %q: %w", owner, err)
	}
	return bs, v, more, nil
}

// ScanBlocks calls fn for every current block.
func (s *Store) ScanBlocks(ctx context.Context, fn func(owner, user string) error) error {
	if err := scanPairs(ctx, s.reader, scanBlocksSQL, fn); err != nil {
		return fmt.Errorf("sqlite: scan blocks: %w", err)
	}
	return nil
}

// ScanFriends calls fn for every current friend row.
func (s *Store) ScanFriends(ctx context.Context, fn func(owner, user string) error) error {
	if err := scanPairs(ctx, s.reader, scanFriendsSQL, fn); err != nil {
		return fmt.Errorf("sqlite: scan friends: %w", err)
	}
	return nil
}

func scanPairs(ctx context.Context, db *sql.DB, query string, fn func(owner, user string) error) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var owner, user string
		if err := rows.Scan(&owner, &user); err != nil {
			return err
		}
		if err := fn(owner, user); err != nil {
			return err
		}
	}
	return rows.Err()
}

// The scan functions read the columns of their *Columns constant;
// sql.ErrNoRows becomes store.ErrNotFound.

func scanRequest(row scanner) (store.FriendRequest, error) {
	var r store.FriendRequest
	var created, updated int64
	err := row.Scan(&r.From, &r.To, &r.Message, &r.State, &created, &updated, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return r, store.ErrNotFound
	}
	r.CreatedAt, r.UpdatedAt = timeOf(created), timeOf(updated)
	return r, err
}

func scanFriend(row scanner) (store.Friend, error) {
	var f store.Friend
	var extra sql.Null[string]
	var created int64
	err := row.Scan(&f.Owner, &f.User, &f.Remark, &extra, &created, &f.Version, &f.Deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return f, store.ErrNotFound
	}
	if extra.Valid {
		f.Extra = json.RawMessage(extra.V)
	}
	f.CreatedAt = timeOf(created)
	return f, err
}

func scanBlock(row scanner) (store.Block, error) {
	var b store.Block
	var created int64
	err := row.Scan(&b.Owner, &b.User, &created, &b.Version, &b.Deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return b, store.ErrNotFound
	}
	b.CreatedAt = timeOf(created)
	return b, err
}
