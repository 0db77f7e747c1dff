package lsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// TestMemberRecordsBeforeSettings checks that member records written before
// settings existed (read seq, min seq, version, left, left seq and nothing
// more) still decode, and that a record without settings is still written
// byte for byte as they were.
func TestMemberRecordsBeforeSettings(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1795343239224)
	if _, err := l.CreateGroup(ctx, store.GroupInfo{Conversation: "g:1", CreatedAt: now}, []store.GroupMember{{User: "a", Role: "owner"}, {User: "b", Role: "member"}}); err != nil {
		t.Fatal(err)
	}
	// The format before settings: varints 0 (read seq), 1 (min seq), 1
	// (version), a false byte, 0 (left seq).
	old := []byte{0x00, 0x02, 0x02, 0x00, 0x00}
	stored, closer, err := l.db.Get(memberKey("a", "g:1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, old) {
		t.Errorf("record without settings = %x, want %x as before settings existed", stored, old)
	}
	closer.Close()
	// b's record as an older server wrote it after b read seq 3 of 5
	// and left at 5, at version 9.
	if err := l.db.Set(memberKey("b", "g:1"), []byte{0x06, 0x02, 0x12, 0x01, 0x0a}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := l.Member(ctx, "b", "g:1")
	if err != nil {
		t.Fatal(err)
	}
	if b.ReadSeq != 3 || b.MaxSeq != 5 || !b.Left || b.Version != 9 || b.Settings != (store.Settings{}) {
		t.Errorf("old record = %+v, want read to 3, left at 5, version 9, no settings", b)
	}
	ms, _, _, err := l.Members(ctx, "b", 0, 0)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Members of an old record = %+v, %v", ms, err)
	}
	pinned := true
	got, err := l.UpdateSettings(ctx, "a", "g:1", store.SettingsChange{Pinned: &pinned})
	if err != nil || !got.Settings.Pinned {
		t.Fatalf("UpdateSettings = %+v, %v", got, err)
	}
	// A group message rewrites its sender's record: the settings stay.
	if _, err := l.AppendMessages(ctx, []store.NewMessage{{Conversation: "g:1", Kind: conversation.Group, ServerID: "s1", Sender: "a", ContentType: "text", Content: []byte(`"x"`), Time: now}}); err != nil {
		t.Fatal(err)
	}
	if a, err := l.Member(ctx, "a", "g:1"); err != nil || !a.Settings.Pinned || a.ReadSeq != 1 {
		t.Errorf("after a's message: %+v, %v; want pinned and read to 1", a, err)
	}
}

// TestMemberRecordTruncatedSettings checks that a record cut inside its
// settings is reported corrupt, not read as settings of zero.
func TestMemberRecordTruncatedSettings(t *testing.T) {
	rec := member{minSeq: 1, version: 2, settings: store.Settings{Draft: "hello", DraftTime: 7}}
	full := rec.encode()
	var got member
	d := &dec{b: full}
	got.decode(d)
	if d.err != nil || got != rec {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", rec, got, d.err)
	}
	d = &dec{b: full[:len(full)-3]}
	got.decode(d)
	if d.err == nil {
		t.Errorf("a truncated record decoded as %+v", got)
	}
}
