package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
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

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t, Options{})
		return s
	})
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
	msg := store.NewMessage{
		Conversation: "d:a:b", Kind: store.KindDirect, Members: []string{"a", "b"},
		ServerID: "s1", ClientID: "c1", Sender: "a", Recipient: "b",
		ContentType: "text", Content: []byte(`"hi"`), Time: now,
	}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkRead(ctx, "b", "d:a:b", 1); err != nil {
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
	if m, err := s.Member(ctx, "b", "d:a:b"); err != nil || m.ReadSeq != 1 || m.LastMessage == nil || m.LastMessage.ClientID != "c1" {
		t.Errorf("Member after reopen = %+v, %v", m, err)
	}
	if rs, err := s.Revocations(ctx); err != nil || len(rs) != 1 {
		t.Errorf("Revocations after reopen = %+v, %v", rs, err)
	}
	if v, err := s.MetaValue(ctx, "key"); err != nil || v != "value" {
		t.Errorf("MetaValue after reopen = %q, %v", v, err)
	}
	// The retry of a message from before the restart is still a duplicate,
	// and seqs go on.
	retry := msg
	retry.ServerID = "s2"
	next := msg
	next.ClientID = "c2"
	rs, err := s.AppendMessages(ctx, []store.NewMessage{retry, next})
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].Duplicate || rs[0].Message.ServerID != "s1" || rs[1].Message.Seq != 2 {
		t.Errorf("AppendMessages after reopen = %+v", rs)
	}
}

// TestAppendRollback makes the second message of a batch fail in SQL and
// checks that the first was not stored either.
func TestAppendRollback(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t, Options{})
	msg := func(conv, clientID string) store.NewMessage {
		return store.NewMessage{
			Conversation: conv, Kind: store.KindDirect, Members: []string{"a", "b"},
			ClientID: clientID, Sender: "a", Recipient: "b", ContentType: "text", Content: []byte(`"x"`),
		}
	}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{msg("broken", "1")}); err != nil {
		t.Fatal(err)
	}
	// A message behind the conversation's back takes the next seq.
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES ('broken', 2, '', '', 'x', 'y', 'text', NULL, 0)`); err != nil {
		t.Fatal(err)
	}
	_, before, err := s.Members(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.AppendMessages(ctx, []store.NewMessage{msg("fine", "2"), msg("broken", "3")}); err == nil {
		t.Fatal("AppendMessages succeeded over a seq clash")
	}

	if _, err := s.Member(ctx, "a", "fine"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Member of the rolled back conversation: got %v, want ErrNotFound", err)
	}
	if got, err := s.MessageRange(ctx, "fine", 0, 1, 10, store.Forward, 10); err != nil || len(got) != 0 {
		t.Errorf("messages of the rolled back conversation: %v, %v", got, err)
	}
	if m, err := s.Member(ctx, "a", "broken"); err != nil || m.MaxSeq != 1 {
		t.Errorf("Member(a, broken) = %+v, %v, want max seq 1", m, err)
	}
	if _, after, err := s.Members(ctx, "a", 0); err != nil || after != before {
		t.Errorf("version after the rollback = %d, %v, want %d", after, err, before)
	}
	// The client ID of the rolled back message is free.
	if rs, err := s.AppendMessages(ctx, []store.NewMessage{msg("fine", "2")}); err != nil || rs[0].Duplicate || rs[0].Message.Seq != 1 {
		t.Errorf("AppendMessages after the rollback = %+v, %v", rs, err)
	}
}

// TestTwoStores appends through two stores on one file, as two processes
// would, and checks that the seqs stay gap-free.
func TestTwoStores(t *testing.T) {
	a, path := openTemp(t, Options{})
	b, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const batches, size = 20, 5
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			for n := range batches {
				var batch []store.NewMessage
				for k := range size {
					batch = append(batch, store.NewMessage{
						Conversation: "c", Kind: store.KindDirect, Members: []string{"a", "b"},
						ClientID: fmt.Sprint(i, "-", n, "-", k), Sender: "a", Recipient: "b", ContentType: "text",
					})
				}
				if _, err := s.AppendMessages(t.Context(), batch); err != nil {
					t.Errorf("store %d: AppendMessages: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	msgs, err := a.MessageRange(t.Context(), "c", 0, 1, 1000, store.Forward, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*batches*size {
		t.Fatalf("%d messages, want %d", len(msgs), 2*batches*size)
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
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

func TestUnchangedMemberKeepsVersion(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t, Options{})
	m := store.NewMessage{Conversation: "c", Kind: store.KindDirect, Members: []string{"a", "b"}, Sender: "a", Recipient: "b"}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{m}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Member(ctx, "a", "c") // the sender has read its message
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.MarkRead(ctx, "a", "c", 1)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version {
		t.Errorf("MarkRead without a change moved the version from %d to %d", before.Version, after.Version)
	}
}

// TestDuplicateCreatesNoConversation checks that the seqs a duplicate
// reserved in a conversation of its own are given back with the row.
func TestDuplicateCreatesNoConversation(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t, Options{})
	m := store.NewMessage{Conversation: "c", Kind: store.KindDirect, Members: []string{"a", "b"}, ClientID: "1", Sender: "a", Recipient: "b"}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{m}); err != nil {
		t.Fatal(err)
	}
	m.Conversation = "elsewhere"
	if rs, err := s.AppendMessages(ctx, []store.NewMessage{m}); err != nil || !rs[0].Duplicate {
		t.Fatalf("AppendMessages = %+v, %v, want a duplicate", rs, err)
	}
	var n int
	if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM conversations WHERE id = 'elsewhere'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the duplicate left its conversation behind")
	}
}

func TestAppendCancelled(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := store.NewMessage{Conversation: "c", Kind: store.KindDirect, Members: []string{"a", "b"}, Sender: "a", Recipient: "b"}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{m}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendMessages: got %v, want context.Canceled", err)
	}
	if _, err := s.Member(t.Context(), "a", "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Member after a cancelled append: got %v, want ErrNotFound", err)
	}
}

// TestDirectMessageWritesNoMemberRows checks that a message in a direct
// conversation whose members are recorded leaves their member rows alone:
// the conversation row carries the new message and the sender's read seq.
func TestDirectMessageWritesNoMemberRows(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t, Options{})
	m := store.NewMessage{Conversation: "c", Kind: store.KindDirect, Members: []string{"b", "a"}, Sender: "b", Recipient: "a"}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{m}); err != nil {
		t.Fatal(err)
	}
	rows := func() map[string][2]int64 {
		t.Helper()
		rs, err := s.reader.QueryContext(ctx, "SELECT user_id, read_seq, version FROM members WHERE conv_id = 'c'")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got := make(map[string][2]int64)
		for rs.Next() {
			var user string
			var read, version int64
			if err := rs.Scan(&user, &read, &version); err != nil {
				t.Fatal(err)
			}
			got[user] = [2]int64{read, version}
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	before := rows()
	if len(before) != 2 {
		t.Fatalf("member rows %v, want a and b", before)
	}
	m.Sender, m.Recipient = "a", "b"
	if _, err := s.AppendMessages(ctx, []store.NewMessage{m, m}); err != nil {
		t.Fatal(err)
	}
	if after := rows(); !maps.Equal(after, before) {
		t.Errorf("member rows changed from %v to %v", before, after)
	}
	for user, read := range map[string]int64{"a": 3, "b": 1} {
		if got, err := s.Member(ctx, user, "c"); err != nil || got.ReadSeq != read || got.MaxSeq != 3 {
			t.Errorf("Member(%s) = %+v, %v, want read seq %d of 3", user, got, err, read)
		}
	}
}
