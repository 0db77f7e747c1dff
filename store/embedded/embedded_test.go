package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/storetest"

	_ "modernc.org/sqlite"
)

func openTemp(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, t.TempDir(), Options{Sync: SyncNormal})
	})
}

func TestConformanceSynced(t *testing.T) {
	if testing.Short() {
		t.Skip("the synced suite is slow on some disks")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, t.TempDir(), Options{})
	})
}

func TestOpenRejectsUnknownSync(t *testing.T) {
	if _, err := Open(t.Context(), t.TempDir(), Options{Sync: "sometimes"}); err == nil {
		t.Fatal("Open accepted an unknown sync mode")
	}
}

var now = time.UnixMilli(1_800_000_000_000).UTC()

func direct(from, to, cid, text string) store.NewMessage {
	return store.NewMessage{
		Conversation: conversation.DirectID(from, to), Kind: conversation.Direct,
		ServerID: "s-" + cid, ClientID: cid, Sender: from, Recipient: to,
		ContentType: "text", Content: []byte(fmt.Sprintf("%q", text)), Time: now,
	}
}

// TestReopen checks that everything survives a close and an open, and that
// a resend from before the restart is still a duplicate.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, store.User{ID: "a", Nickname: "A", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	msg := direct("a", "b", "c1", "hi")
	if _, err := s.AppendMessages(ctx, []store.NewMessage{msg}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, store.GroupInfo{Conversation: "g:1", CreatedAt: now}, []store.GroupMember{{User: "a", Role: "owner"}, {User: "b", Role: "member"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MarkRead(ctx, "b", msg.Conversation, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTemp(t, dir, Options{})
	if u, err := s.User(ctx, "a"); err != nil || u.Nickname != "A" {
		t.Errorf("User after reopen = %+v, %v", u, err)
	}
	if m, err := s.Member(ctx, "b", msg.Conversation); err != nil || m.ReadSeq != 1 || m.LastMessage == nil || m.LastMessage.ClientID != "c1" {
		t.Errorf("Member after reopen = %+v, %v", m, err)
	}
	if ms, err := s.ConversationMembers(ctx, "g:1"); err != nil || len(ms) != 2 {
		t.Errorf("ConversationMembers after reopen = %q, %v", ms, err)
	}
	retry := msg
	retry.ServerID = "s-retry"
	next := direct("a", "b", "c2", "again")
	rs, err := s.AppendMessages(ctx, []store.NewMessage{retry, next})
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].Duplicate || rs[0].Message.ServerID != "s-c1" || rs[1].Message.Seq != 2 {
		t.Errorf("AppendMessages after reopen = %+v", rs)
	}
	_, v1, _, err := s.Members(ctx, "a", 0, 0)
	if err != nil || v1 < 3 {
		t.Errorf("version after reopen = %d, %v; want it to go on from before", v1, err)
	}
}

func TestBackup(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t, t.TempDir(), Options{})
	if err := s.CreateUser(ctx, store.User{ID: "a", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessages(ctx, []store.NewMessage{direct("a", "b", "1", "kept")}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "copy")
	if err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, backup); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Backup into the same directory: %v, want an error", err)
	}
	// Changes after the backup are not in it.
	if _, err := s.AppendMessages(ctx, []store.NewMessage{direct("a", "b", "2", "later")}); err != nil {
		t.Fatal(err)
	}
	c := openTemp(t, backup, Options{})
	if _, err := c.User(ctx, "a"); err != nil {
		t.Errorf("user in the backup: %v", err)
	}
	msgs, err := c.MessageRange(ctx, conversation.DirectID("a", "b"), 0, 1, 10, store.Forward, 10)
	if err != nil || len(msgs) != 1 || string(msgs[0].Content) != `"kept"` {
		t.Errorf("messages in the backup = %+v, %v; want the one before the backup", msgs, err)
	}
}

// TestUpgrade writes a data directory as the release before the message
// log moved did (schema 0001, messages in SQLite), opens it, and checks
// that everything a client sees is the same.
func TestUpgrade(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	writeLegacy(t, filepath.Join(dir, AccountsFile))
	var lines []string
	s := openTemp(t, dir, Options{Progress: func(msg string, args ...any) { lines = append(lines, msg) }})
	if len(lines) < 2 {
		t.Errorf("progress lines = %q, want a start and an end", lines)
	}
	ab, sb := conversation.DirectID("a", "b"), conversation.DirectID("b", "system")
	checks := []struct {
		user, conv          string
		maxSeq, read, peerR int64
		minSeq              int64
	}{
		{"a", ab, 3, 3, 2, 1}, // a sent 3; b read 1 and sent 2
		{"b", ab, 3, 2, 3, 1},
		{"b", sb, 1, 1, 0, 2}, // b cleared the system's notice
	}
	for _, c := range checks {
		m, err := s.Member(ctx, c.user, c.conv)
		if err != nil {
			t.Fatalf("Member(%s, %s): %v", c.user, c.conv, err)
		}
		if m.MaxSeq != c.maxSeq || m.ReadSeq != c.read || m.PeerReadSeq != c.peerR || m.MinSeq != c.minSeq {
			t.Errorf("Member(%s, %s) = %+v, want max %d read %d peer read %d min %d", c.user, c.conv, m, c.maxSeq, c.read, c.peerR, c.minSeq)
		}
	}
	msgs, err := s.MessageRange(ctx, ab, 0, 1, 3, store.Forward, 10)
	if err != nil || len(msgs) != 3 || string(msgs[2].Content) != `{"text":"three"}` || msgs[2].Sender != "a" {
		t.Errorf("messages after the upgrade = %+v, %v", msgs, err)
	}
	// Resends of old messages are still duplicates, and new messages go on.
	rs, err := s.AppendMessages(ctx, []store.NewMessage{{
		Conversation: ab, Kind: conversation.Direct, ServerID: "new", ClientID: "c3", Sender: "a", Recipient: "b",
		ContentType: "text", Content: []byte(`{"text":"three"}`), Time: now,
	}, direct("b", "a", "c4", "four")})
	if err != nil || !rs[0].Duplicate || rs[0].Message.ServerID != "s3" || rs[1].Message.Seq != 4 {
		t.Errorf("AppendMessages after the upgrade = %+v, %v", rs, err)
	}
	if u, err := s.User(ctx, "a"); err != nil || u.Nickname != "Alice" {
		t.Errorf("User(a) = %+v, %v", u, err)
	}
	_, v, _, err := s.Members(ctx, "a", 0, 0)
	if err != nil || v <= 7 {
		t.Errorf("version after the upgrade = %d, %v; want it above the old counter's 7", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The old tables are gone: a second open copies nothing.
	lines = nil
	s = openTemp(t, dir, Options{Progress: func(msg string, args ...any) { lines = append(lines, msg) }})
	if len(lines) != 0 {
		t.Errorf("second open printed %q", lines)
	}
	if m, err := s.Member(ctx, "a", ab); err != nil || m.MaxSeq != 4 {
		t.Errorf("Member(a) after reopening = %+v, %v", m, err)
	}
}

// legacySchema is migration 0001 as released, and legacyRows what that
// release wrote for: users a and b; a→b 1, b→a 2, a→b 3 (pair recorded);
// b read 1; a system notice to b (pair not recorded, only b's row), which b
// cleared.
const (
	legacySchema = `
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0);
CREATE TABLE users (id TEXT PRIMARY KEY, nickname TEXT NOT NULL, avatar_url TEXT NOT NULL, extra TEXT, password_hash TEXT NOT NULL,
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_seen INTEGER, id_fold TEXT NOT NULL, nickname_fold TEXT NOT NULL);
CREATE TABLE revocations (user_id TEXT NOT NULL, device_id TEXT NOT NULL DEFAULT '', before INTEGER NOT NULL, PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE version_counter (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT INTO version_counter (id, value) VALUES (0, 0);
CREATE TABLE conversations (id TEXT PRIMARY KEY, kind TEXT NOT NULL, max_seq INTEGER NOT NULL, version INTEGER NOT NULL,
	member_lo TEXT, member_hi TEXT, last_sent_lo INTEGER NOT NULL DEFAULT 0, last_sent_hi INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (conv_id TEXT NOT NULL, seq INTEGER NOT NULL, server_id TEXT NOT NULL, client_id TEXT NOT NULL, sender TEXT NOT NULL,
	recipient TEXT NOT NULL, content_type TEXT NOT NULL, created_at INTEGER NOT NULL, content BLOB, PRIMARY KEY (conv_id, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_client_id ON messages (sender, client_id) WHERE client_id <> '';
CREATE TABLE members (user_id TEXT NOT NULL, conv_id TEXT NOT NULL, peer TEXT NOT NULL, read_seq INTEGER NOT NULL,
	min_seq INTEGER NOT NULL DEFAULT 1, version INTEGER NOT NULL, PRIMARY KEY (user_id, conv_id)) WITHOUT ROWID;`
	legacyRows = `
INSERT INTO users VALUES ('a', 'Alice', '', NULL, '', 1, 1, NULL, 'a', 'alice'), ('b', 'Bob', '', NULL, '', 1, 1, NULL, 'b', 'bob');
INSERT INTO conversations VALUES ('d:a:b', 'direct', 3, 5, 'a', 'b', 3, 2, 1800000000000);
INSERT INTO conversations VALUES ('d:b:system', 'direct', 1, 6, NULL, NULL, 0, 0, 1800000000000);
INSERT INTO messages VALUES ('d:a:b', 1, 's1', 'c1', 'a', 'b', 'text', 1800000000000, '{"text":"one"}');
INSERT INTO messages VALUES ('d:a:b', 2, 's2', 'c2', 'b', 'a', 'text', 1800000000000, '{"text":"two"}');
INSERT INTO messages VALUES ('d:a:b', 3, 's3', 'c3', 'a', 'b', 'text', 1800000000000, '{"text":"three"}');
INSERT INTO messages VALUES ('d:b:system', 1, 's4', 'n1', 'system', 'b', 'text', 1800000000000, '{"text":"shipped"}');
INSERT INTO members VALUES ('a', 'd:a:b', 'b', 0, 1, 1), ('b', 'd:a:b', 'a', 1, 1, 4);
INSERT INTO members VALUES ('b', 'd:b:system', 'system', 1, 2, 7);
UPDATE version_counter SET value = 7;`
)

func writeLegacy(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{legacySchema, legacyRows} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("write legacy data: %v", err)
		}
	}
}
