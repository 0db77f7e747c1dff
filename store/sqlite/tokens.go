package sqlite

import (
	"context"
	"fmt"

	"github.com/parleyim/parley/store"
)

const (
	revokeSQL = `
INSERT INTO revocations (user_id, device_id, before) VALUES (?, ?, ?)
ON CONFLICT (user_id, device_id) DO UPDATE SET before = max(before, excluded.before)`

	revocationsSQL = `SELECT user_id, device_id, before FROM revocations ORDER BY user_id, device_id`
)

// Revoke stores the revocation, or raises the stored one's Before; it never
// lowers it.
func (s *Store) Revoke(ctx context.Context, r store.Revocation) error {
	if _, err := s.writer.ExecContext(ctx, revokeSQL, r.User, r.Device, r.Before.UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: revoke: %w", err)
	}
	return nil
}

// Revocations returns every stored revocation, ordered by user and device.
func (s *Store) Revocations(ctx context.Context) ([]store.Revocation, error) {
	rows, err := s.reader.QueryContext(ctx, revocationsSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revocations: %w", err)
	}
	defer rows.Close()
	var rs []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var before int64
		if err := rows.Scan(&r.User, &r.Device, &before); err != nil {
			return nil, fmt.Errorf("sqlite: revocations: %w", err)
		}
		r.Before = timeOf(before)
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: revocations: %w", err)
	}
	return rs, nil
}
