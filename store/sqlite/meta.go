package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleyim/parley/store"
)

const (
	metaValueSQL = `SELECT value FROM meta WHERE key = ?`

	// setMetaValueSQL inserts the value unless the key exists, and returns
	// the stored value either way: the no-op update makes RETURNING report
	// the existing row.
	setMetaValueSQL = `
INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = meta.value
RETURNING value`
)

// MetaValue returns the value stored under key, or ErrNotFound.
func (s *Store) MetaValue(ctx context.Context, key string) (string, error) {
	var v string
	err := s.reader.QueryRowContext(ctx, metaValueSQL, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: meta value %q: %w", key, err)
	}
	return v, nil
}

// SetMetaValue stores value under key unless the key is present, and
// returns the value stored afterwards.
func (s *Store) SetMetaValue(ctx context.Context, key, value string) (string, error) {
	var v string
	if err := s.writer.QueryRowContext(ctx, setMetaValueSQL, key, value).Scan(&v); err != nil {
		return "", fmt.Errorf("sqlite: set meta value %q: %w", key, err)
	}
	return v, nil
}
