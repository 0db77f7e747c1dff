package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/parleyim/parley/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

var (
	_ store.Users  = (*Store)(nil)
	_ store.Tokens = (*Store)(nil)
	_ store.Meta   = (*Store)(nil)
)

// Values of Options.Sync.
const (
	SyncFull   = "full"
	SyncNormal = "normal"
)

// Defaults for the zero values of Options.
const (
	defaultReadConns   = 4
	defaultBusyTimeout = 5 * time.Second
)

// writerCacheKiB is the writer's page cache: 64 MiB, so that batched writes
// and the migration of an old data directory do not spill pages in
// mid-transaction.
const writerCacheKiB = 64 << 10

// Options configures a Store. The zero value is the durable default.
type Options struct {
	// Sync is SyncFull (the default when empty) or SyncNormal; see the
	// package documentation for what each survives.
	Sync string
	// ReadConns is the number of connections in the read pool; 0 means 4.
	ReadConns int
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection (another process, or a checkpoint) before failing with
	// SQLITE_BUSY; 0 means 5s.
	BusyTimeout time.Duration
}

// Store is store.Store on a SQLite database file. Its methods are safe for
// concurrent use.
type Store struct {
	writer *sql.DB // one connection, transactions BEGIN IMMEDIATE: every write
	reader *sql.DB // query-only connections: reads outside write transactions

	closeOnce sync.Once
	closeErr  error // set by the first Close
}

// Open opens or creates the database at path, a file name, and brings its
// schema up to date. It fails with ErrSchemaTooNew if a newer binary has
// migrated the database past the migrations this one knows. The caller
// closes the Store.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	s, err := open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" || strings.Contains(path, "?") {
		// Two pools on one in-memory database would be two databases, and
		// '?' would start the driver's parameters.
		return nil, errors.New("path must be a file name without '?'")
	}
	var synchronous string
	switch opts.Sync {
	case "", SyncFull:
		synchronous = "FULL"
	case SyncNormal:
		synchronous = "NORMAL"
	default:
		return nil, fmt.Errorf("unknown sync mode %q, want %q or %q", opts.Sync, SyncFull, SyncNormal)
	}
	readConns := opts.ReadConns
	if readConns <= 0 {
		readConns = defaultReadConns
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = defaultBusyTimeout
	}
	busyPragma := fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds())

	writer, err := openPool(ctx, path, 1, url.Values{
		"_pragma": {
			busyPragma,
			"journal_mode(WAL)",
			"synchronous(" + synchronous + ")",
			"foreign_keys(on)",
			fmt.Sprintf("cache_size(%d)", -writerCacheKiB),
		},
		"_txlock": {"immediate"},
	})
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		return nil, err
	}
	// The reader is opened after the migrations, which switched the file to
	// WAL (a persistent setting), so its connections need not.
	reader, err := openPool(ctx, path, readConns, url.Values{
		"_pragma": {busyPragma, "query_only(on)"},
	})
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("reader: %w", err)
	}
	return &Store{writer: writer, reader: reader}, nil
}

// openPool opens a pool of at most conns connections to path, each set up
// by the driver with params, and checks that one connection opens.
func openPool(ctx context.Context, path string, conns int, params url.Values) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes both pools, and with them the prepared statements. It is
// safe to call more than once; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The writer closes last: the last connection to a WAL database
		// checkpoints it and removes the WAL file.
		if err := errors.Join(s.reader.Close(), s.writer.Close()); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// timeOf converts stored unix milliseconds to a UTC time.
func timeOf(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}

// Backup writes a consistent copy of the database to path, which must not
// exist, while the store is in use (VACUUM INTO).
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.writer.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return nil
}
