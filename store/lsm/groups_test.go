package lsm

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// TestGroupsBeforeRostersGetOne opens a log holding a group as the release
// before rosters wrote it (head, member records, audience keys; no info,
// no roster) and checks that its members are on the roster, so that they
// can still post and be listed.
func TestGroupsBeforeRostersGetOne(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	created := time.UnixMilli(1795343239224).UTC()
	h := head{kind: conversation.Group, version: 1, created: created.UnixMilli(), members: 2}
	b := db.NewBatch()
	b.Set(headKey("g:old"), h.encode(), nil)
	for _, u := range []string{"a", "b"} {
		rec := member{minSeq: 1, version: 1}
		b.Set(memberKey(u, "g:old"), rec.encode(), nil)
		b.Set(audienceKey("g:old", u), nil, nil)
	}
	b.Set(versionKey, enc(nil).int(1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	ms, _, _, err := l.GroupMembers(ctx, "g:old", 0, 0)
	if err != nil || len(ms) != 2 || ms[0].User != "a" || ms[1].Role != "member" || !ms[0].JoinedAt.Equal(created) {
		t.Fatalf("GroupMembers after the upgrade = %+v, %v", ms, err)
	}
	info, err := l.Group(ctx, "g:old")
	if err != nil || info.Members != 2 || info.JoinPolicy != "" || !info.CreatedAt.Equal(created) {
		t.Fatalf("Group = %+v, %v; want default info", info, err)
	}
	// Opening again changes nothing.
	if err := l.upgradeRosters(); err != nil {
		t.Fatal(err)
	}
	if ms2, _, _, _ := l.GroupMembers(ctx, "g:old", 0, 0); len(ms2) != 2 || ms2[0].Version != ms[0].Version {
		t.Errorf("a second upgrade rewrote the roster: %+v", ms2)
	}
	// The members post as before.
	rs, err := l.AppendMessages(ctx, []store.NewMessage{{Conversation: "g:old", Kind: conversation.Group, ServerID: "s1", ClientID: "c1", Sender: "b", ContentType: "text", Content: []byte(`{}`), Time: created}})
	if err != nil || rs[0].Err != nil || rs[0].Message.Seq != 1 {
		t.Fatalf("append after the upgrade = %+v, %v", rs, err)
	}
}
