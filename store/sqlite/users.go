package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyim/parley/store"
)

// maxListUsers is the most users ListUsers returns, and what a query
// without a limit gets.
const maxListUsers = 1000

const (
	userColumns = `id, nickname, avatar_url, extra, password_hash, created_at, updated_at, last_seen`

	createUserSQL = `
INSERT INTO users (id, nickname, avatar_url, extra, password_hash, created_at, updated_at, last_seen, id_fold, nickname_fold)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING`

	userSQL = `SELECT ` + userColumns + ` FROM users WHERE id = ?`

	// updateUserSQL changes nickname and extra when ?1 and ?5 are true,
	// avatar_url and password_hash when ?4 and ?7 are not NULL.
	updateUserSQL = `
UPDATE users SET
	nickname = CASE WHEN ?1 THEN ?2 ELSE nickname END,
	nickname_fold = CASE WHEN ?1 THEN ?3 ELSE nickname_fold END,
	avatar_url = coalesce(?4, avatar_url),
	extra = CASE WHEN ?5 THEN ?6 ELSE extra END,
	password_hash = coalesce(?7, password_hash),
	updated_at = ?8
WHERE id = ?9
RETURNING ` + userColumns

	// listUsersSQL matches ?2, already folded, as a plain substring: instr
	// has no wildcards to escape.
	listUsersSQL = `
SELECT ` + userColumns + ` FROM users
WHERE id > ?1 AND (?2 = '' OR instr(id_fold, ?2) > 0 OR instr(nickname_fold, ?2) > 0)
ORDER BY id LIMIT ?3`

	// setLastSeenSQL takes the IDs as a JSON array. last_seen only moves
	// forward, so that reports arriving out of order keep the latest.
	setLastSeenSQL = `
UPDATE users SET last_seen = max(coalesce(last_seen, ?1), ?1)
WHERE id IN (SELECT value FROM json_each(?2))`
)

// fold is the case-insensitive form of s that user search compares.
func fold(s string) string {
	return strings.ToLower(s)
}

// extraValue is the stored form of a user's Extra: NULL when empty.
func extraValue(extra json.RawMessage) any {
	if len(extra) == 0 {
		return nil
	}
	return string(extra)
}

// CreateUser stores a new user, or returns ErrExists if the ID is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	var lastSeen any
	if !u.LastSeen.IsZero() {
		lastSeen = u.LastSeen.UnixMilli()
	}
	res, err := s.writer.ExecContext(ctx, createUserSQL, u.ID, u.Nickname, u.AvatarURL, extraValue(u.Extra), u.PasswordHash,
		u.CreatedAt.UnixMilli(), u.UpdatedAt.UnixMilli(), lastSeen, fold(u.ID), fold(u.Nickname))
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: create user %q: %w", u.ID, store.ErrExists)
	}
	return nil
}

// User returns one user or ErrNotFound.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.reader.QueryRowContext(ctx, userSQL, id))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user %q: %w", id, err)
	}
	return u, nil
}

// UpdateUser applies the update, sets UpdatedAt to now and returns the
// stored user, or ErrNotFound.
func (s *Store) UpdateUser(ctx context.Context, id string, up store.UserUpdate, now time.Time) (store.User, error) {
	var nickname, nicknameFold, avatarURL, extra, passwordHash any
	if up.Nickname != nil {
		nickname, nicknameFold = *up.Nickname, fold(*up.Nickname)
	}
	if up.AvatarURL != nil {
		avatarURL = *up.AvatarURL
	}
	if up.Extra != nil {
		extra = extraValue(*up.Extra)
	}
	if up.PasswordHash != nil {
		passwordHash = *up.PasswordHash
	}
	u, err := scanUser(s.writer.QueryRowContext(ctx, updateUserSQL, up.Nickname != nil, nickname, nicknameFold,
		avatarURL, up.Extra != nil, extra, passwordHash, now.UnixMilli(), id))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: update user %q: %w", id, err)
	}
	return u, nil
}

// ListUsers returns up to q.Limit users matching q in ID order. A Limit of
// 0 or less, or above 1000, means 1000.
func (s *Store) ListUsers(ctx context.Context, q store.UserQuery) ([]store.User, error) {
	limit := q.Limit
	if limit <= 0 || limit > maxListUsers {
		limit = maxListUsers
	}
	rows, err := s.reader.QueryContext(ctx, listUsersSQL, q.After, fold(q.Search), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return users, nil
}

// SetLastSeen records t as the last time the users were online, in one
// statement. It never moves a user's LastSeen back; unknown IDs are ignored.
func (s *Store) SetLastSeen(ctx context.Context, ids []string, t time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("sqlite: set last seen: %w", err)
	}
	if _, err := s.writer.ExecContext(ctx, setLastSeenSQL, t.UnixMilli(), string(list)); err != nil {
		return fmt.Errorf("sqlite: set last seen: %w", err)
	}
	return nil
}

// scanUser reads the columns of userColumns; sql.ErrNoRows becomes
// store.ErrNotFound.
func scanUser(row scanner) (store.User, error) {
	var u store.User
	var extra sql.Null[string]
	var created, updated int64
	var lastSeen sql.Null[int64]
	err := row.Scan(&u.ID, &u.Nickname, &u.AvatarURL, &extra, &u.PasswordHash, &created, &updated, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, store.ErrNotFound
	}
	if err != nil {
		return store.User{}, err
	}
	if extra.Valid {
		u.Extra = json.RawMessage(extra.V)
	}
	u.CreatedAt, u.UpdatedAt = timeOf(created), timeOf(updated)
	if lastSeen.Valid {
		u.LastSeen = timeOf(lastSeen.V)
	}
	return u, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}
