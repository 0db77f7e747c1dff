package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/storetest"
)

// openTemp opens a store in a new temporary directory and closes it when t
// ends. It returns the store and the database's path.
func openTemp(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		path string
		opts Options
	}{
		{"unknown sync", filepath.Join(dir, "a.db"), Options{Sync: "off"}},
		{"memory", ":memory:", Options{}},
		{"empty path", "", Options{}},
		{"query in path", filepath.Join(dir, "a.db?mode=ro"), Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.path, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// pragma returns the value of a PRAGMA on one connection.
func pragma(t *testing.T, conn *sql.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	for _, tt := range []struct {
		sync string
		want string // PRAGMA synchronous: 1 is NORMAL, 2 is FULL
	}{
		{"", "2"},
		{SyncFull, "2"},
		{SyncNormal, "1"},
	} {
		t.Run("sync="+tt.sync, func(t *testing.T) {
			s, _ := openTemp(t, Options{Sync: tt.sync, ReadConns: 3, BusyTimeout: 1500 * time.Millisecond})
			w, err := s.writer.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for name, want := range map[string]string{
				"journal_mode": "wal",
				"synchronous":  tt.want,
				"busy_timeout": "1500",
				"foreign_keys": "1",
				"query_only":   "0",
			} {
				if got := pragma(t, w, name); got != want {
					t.Errorf("writer: %s = %s, want %s", name, got, want)
				}
			}
			// Hold every reader connection at once, so each is checked.
			for i := range 3 {
				r, err := s.reader.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				for name, want := range map[string]string{
					"journal_mode": "wal",
					"busy_timeout": "1500",
					"query_only":   "1",
				} {
					if got := pragma(t, r, name); got != want {
						t.Errorf("reader %d: %s = %s, want %s", i, name, got, want)
					}
				}
				if _, err := r.ExecContext(t.Context(), "INSERT INTO meta (key, value) VALUES ('k', 'v')"); err == nil {
					t.Errorf("reader %d: a write succeeded", i)
				}
			}
		})
	}
}

// appliedMigrations returns the versions recorded in schema_migrations.
func appliedMigrations(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	var want []int
	for _, m := range ms {
		want = append(want, m.version)
	}
	if len(want) == 0 || want[0] != 1 {
		t.Fatalf("migrations = %v, want them numbered from 1", want)
	}

	s, path := openTemp(t, Options{})
	if got := appliedMigrations(t, s.writer); !slices.Equal(got, want) {
		t.Fatalf("after Open: migrations %v, want %v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got := appliedMigrations(t, s.writer); !slices.Equal(got, want) {
		t.Fatalf("after reopen: migrations %v, want %v", got, want)
	}
}

func TestSchemaTooNew(t *testing.T) {
	s, path := openTemp(t, Options{})
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(t.Context(), recordMigrationSQL, len(ms)+1, "from_the_future.sql", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open: got %v, want ErrSchemaTooNew", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t, Options{Sync: SyncNormal})
	now := time.UnixMilli(1_800_000_000_000).UTC()
	if err := s.CreateUser(ctx, store.User{ID: "a", Nickname: "A", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, store.Revocation{User: "a", Before: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetMetaValue(ctx, "key", "value"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{Sync: SyncNormal})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if u, err := s.User(ctx, "a"); err != nil || u.Nickname != "A" || !u.CreatedAt.Equal(now) {
		t.Errorf("User after reopen = %+v, %v", u, err)
	}
	if rs, err := s.Revocations(ctx); err != nil || len(rs) != 1 {
		t.Errorf("Revocations after reopen = %+v, %v", rs, err)
	}
	if v, err := s.MetaValue(ctx, "key"); err != nil || v != "value" {
		t.Errorf("MetaValue after reopen = %q, %v", v, err)
	}
}

func TestSetLastSeenNeverMovesBack(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t, Options{})
	now := time.UnixMilli(1_800_000_000_000).UTC()
	if err := s.CreateUser(ctx, store.User{ID: "a", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{now.Add(time.Minute), now} {
		if err := s.SetLastSeen(ctx, []string{"a"}, ts); err != nil {
			t.Fatal(err)
		}
	}
	if u, err := s.User(ctx, "a"); err != nil || !u.LastSeen.Equal(now.Add(time.Minute)) {
		t.Errorf("LastSeen = %v, %v, want %v", u.LastSeen, err, now.Add(time.Minute))
	}
}

func TestSocialConformance(t *testing.T) {
	storetest.RunSocial(t, func(t *testing.T) store.Social {
		s, _ := openTemp(t, Options{Sync: SyncNormal})
		return s
	})
}
