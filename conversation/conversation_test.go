package conversation

import (
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	for _, tt := range []struct {
		id, kind string
	}{
		{DirectID("bob", "alice"), Direct},
		{DirectID("alice", "bob"), Direct},
		{"d:alice:alice", Direct},
		{GroupID("team"), Group},
		{"c:news", Channel},
		{"d:bob:alice", ""}, // not in byte order
		{"d:alice", ""},
		{"d:alice:", ""},
		{"d:al ice:bob", ""},
		{"g:", ""},
		{"g:a:b", ""},
		{"x:team", ""},
		{"team", ""},
		{"", ""},
		{"g:" + strings.Repeat("a", 65), ""},
		{"d:" + strings.Repeat("a", 64) + ":" + strings.Repeat("b", 64), Direct},
	} {
		if got := KindOf(tt.id); got != tt.kind {
			t.Errorf("KindOf(%q) = %q, want %q", tt.id, got, tt.kind)
		}
	}
	if DirectID("bob", "alice") != "d:alice:bob" {
		t.Errorf("DirectID(bob, alice) = %q", DirectID("bob", "alice"))
	}
}

func TestPairAndPeer(t *testing.T) {
	if lo, hi, ok := Pair("d:alice:bob"); !ok || lo != "alice" || hi != "bob" {
		t.Errorf("Pair = %q, %q, %v", lo, hi, ok)
	}
	if _, _, ok := Pair("g:team"); ok {
		t.Error("Pair of a group succeeded")
	}
	for _, tt := range []struct {
		id, user, peer string
		ok             bool
	}{
		{"d:alice:bob", "alice", "bob", true},
		{"d:alice:bob", "bob", "alice", true},
		{"d:alice:bob", "carol", "", false},
		{"d:alice:alice", "alice", "alice", true},
		{"g:team", "alice", "", false},
	} {
		if peer, ok := Peer(tt.id, tt.user); peer != tt.peer || ok != tt.ok {
			t.Errorf("Peer(%q, %q) = %q, %v, want %q, %v", tt.id, tt.user, peer, ok, tt.peer, tt.ok)
		}
	}
}

func TestUnreadAndJoin(t *testing.T) {
	for _, tt := range []struct {
		max, read, min, want int64
	}{
		{10, 4, 1, 6},
		{10, 10, 1, 0},
		{10, 4, 8, 3},  // history below 8 hidden
		{10, 0, 11, 0}, // everything cleared
		{0, 0, 1, 0},
		{5, 7, 1, 0}, // never negative
	} {
		if got := Unread(tt.max, tt.read, tt.min); got != tt.want {
			t.Errorf("Unread(max %d, read %d, min %d) = %d, want %d", tt.max, tt.read, tt.min, got, tt.want)
		}
	}
	if JoinSeq(7, false) != 8 || JoinSeq(7, true) != 1 {
		t.Errorf("JoinSeq(7) = %d, full history %d; want 8 and 1", JoinSeq(7, false), JoinSeq(7, true))
	}
}
