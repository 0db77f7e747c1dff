package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// testGroups checks conversations whose members join and leave: stored once,
// with each member's visible range.
func testGroups(t *testing.T, open opener) {
	t.Run("create", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "b", "a", "b")
		c, err := s.Conversation(t.Context(), "g:1")
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != "g:1" || c.Kind != conversation.Group || c.MaxSeq != 0 || c.Members != 2 || !sameTime(c.CreatedAt, epoch) {
			t.Errorf("Conversation = %+v, want g:1, group, no messages, 2 members, created at %v", c, epoch)
		}
		checkAudience(t, s, "g:1", "a", "b")
		err = createGroup(t, s, "g:1", "c")
		if !errors.Is(err, store.ErrExists) {
			t.Errorf("second CreateGroup: got %v, want ErrExists", err)
		}
		checkAudience(t, s, "g:1", "a", "b")
	})

	t.Run("unknown conversation", func(t *testing.T) {
		s := open(t)
		if _, err := s.Conversation(t.Context(), "g:none"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Conversation: got %v, want ErrNotFound", err)
		}
		if _, err := s.ConversationMembers(t.Context(), "g:none"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConversationMembers: got %v, want ErrNotFound", err)
		}
		if _, err := addMembers(t, s, "g:none", []string{"a"}, false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AddMembers: got %v, want ErrNotFound", err)
		}
		if _, err := removeMembers(t, s, "g:none", []string{"a"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveMembers: got %v, want ErrNotFound", err)
		}
		rs, err := s.AppendMessages(t.Context(), []store.NewMessage{post("a", "g:none", "1", "x"), send("a", "b", "2", "y")})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(rs[0].Err, store.ErrNotFound) || rs[1].Err != nil || rs[1].Message.Seq != 1 {
			t.Errorf("append to a missing group: got %+v, want ErrNotFound, and the rest of the batch stored", rs)
		}
	})

	t.Run("direct conversations have fixed members", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, send("a", "b", "1", "x"))
		if _, err := addMembers(t, s, directID("a", "b"), []string{"c"}, false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AddMembers to a direct conversation: got %v, want ErrNotFound", err)
		}
		checkAudience(t, s, directID("a", "b"), "a", "b")
		intruder := send("c", "b", "2", "y")
		intruder.Conversation = directID("a", "b")
		rs, err := s.AppendMessages(t.Context(), []store.NewMessage{intruder})
		if err != nil || !errors.Is(rs[0].Err, store.ErrNotMember) {
			t.Errorf("a third user sending in a direct conversation: got %+v, %v, want ErrNotMember", rs, err)
		}
	})

	t.Run("only current members send", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a", "b")
		mustAppend(t, s, post("a", "g:1", "1", "x"))
		if _, err := removeMembers(t, s, "g:1", []string{"b"}); err != nil {
			t.Fatal(err)
		}
		rs, err := s.AppendMessages(t.Context(), []store.NewMessage{post("c", "g:1", "2", "y"), post("b", "g:1", "3", "z"), post("a", "g:1", "4", "w")})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(rs[0].Err, store.ErrNotMember) || !errors.Is(rs[1].Err, store.ErrNotMember) || rs[2].Err != nil || rs[2].Message.Seq != 2 {
			t.Errorf("got %+v, want two ErrNotMember and seq 2 for the member", rs)
		}
	})

	t.Run("join, leave and come back", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a")
		mustAppend(t, s, post("a", "g:1", "1", "one"), post("a", "g:1", "2", "two"))
		added, err := addMembers(t, s, "g:1", []string{"b", "a"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != 2 || added[0].User != "a" || added[0].MinSeq != 1 || added[1].User != "b" || added[1].MinSeq != 3 || added[1].Unread() != 0 {
			t.Errorf("AddMembers = %+v, want a unchanged from seq 1 and b from seq 3 with nothing unread", added)
		}
		checkAudience(t, s, "g:1", "a", "b")
		mustAppend(t, s, post("a", "g:1", "3", "three"), post("b", "g:1", "4", "four"))
		b := mustMember(t, s, "b", "g:1")
		if b.MinSeq != 3 || b.MaxSeq != 4 || b.ReadSeq != 4 || b.Left {
			t.Errorf("b after joining = %+v, want seqs 3..4, read 4", b)
		}
		removed, err := removeMembers(t, s, "g:1", []string{"b", "c"})
		if err != nil {
			t.Fatal(err)
		}
		if len(removed) != 1 || removed[0].User != "b" || !removed[0].Left || removed[0].MaxSeq != 4 {
			t.Errorf("RemoveMembers = %+v, want b alone, left at seq 4", removed)
		}
		checkAudience(t, s, "g:1", "a")
		mustAppend(t, s, post("a", "g:1", "5", "five"))
		b = mustMember(t, s, "b", "g:1")
		if !b.Left || b.MaxSeq != 4 || b.LastMessage == nil || b.LastMessage.Seq != 4 {
			t.Errorf("b after leaving = %+v, want left with max seq 4 and last message 4", b)
		}
		if a := mustMember(t, s, "a", "g:1"); a.MaxSeq != 5 || a.Left {
			t.Errorf("a = %+v, want max seq 5", a)
		}
		if c, _ := s.Conversation(t.Context(), "g:1"); c.Members != 1 {
			t.Errorf("Conversation.Members = %d, want 1", c.Members)
		}
		// Back with the full history this time.
		back, err := addMembers(t, s, "g:1", []string{"b"}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != 1 || back[0].Left || back[0].MinSeq != 1 || back[0].MaxSeq != 5 || back[0].ReadSeq != 5 {
			t.Errorf("b back = %+v, want a member again, seeing 1..5 with 5 read", back)
		}
		checkAudience(t, s, "g:1", "a", "b")
	})

	t.Run("versions of joining and leaving", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a")
		_, v0, _, err := s.Members(t.Context(), "b", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := addMembers(t, s, "g:1", []string{"b"}, false); err != nil {
			t.Fatal(err)
		}
		ms, v1, _, err := s.Members(t.Context(), "b", v0, 0)
		if err != nil || len(ms) != 1 || ms[0].Conversation != "g:1" || v1 <= v0 {
			t.Fatalf("Members(b) after joining = %+v, %d, %v; want g:1 at a new version", ms, v1, err)
		}
		if _, err := removeMembers(t, s, "g:1", []string{"b"}); err != nil {
			t.Fatal(err)
		}
		ms, v2, _, err := s.Members(t.Context(), "b", v1, 0)
		if err != nil || len(ms) != 1 || !ms[0].Left || v2 <= v1 {
			t.Fatalf("Members(b) after leaving = %+v, %d, %v; want g:1, left, at a new version", ms, v2, err)
		}
		// Messages after b left are no change for b.
		mustAppend(t, s, post("a", "g:1", "1", "x"))
		if ms, _, _, err := s.Members(t.Context(), "b", v2, 0); err != nil || len(ms) != 0 {
			t.Errorf("Members(b) after a message b cannot see = %+v, %v; want nothing", ms, err)
		}
		if ms, _, _, err := s.Members(t.Context(), "a", v2, 0); err != nil || len(ms) != 1 {
			t.Errorf("Members(a) after a message = %+v, %v; want g:1", ms, err)
		}
	})

	t.Run("a group message writes no member's state", func(t *testing.T) {
		s := open(t)
		users := make([]string, 200)
		for i := range users {
			users[i] = fmt.Sprintf("u%03d", i)
		}
		mustCreate(t, s, "g:big", users...)
		rs := mustAppend(t, s, post("u000", "g:big", "1", "hello"))
		for _, u := range []string{"u001", "u199"} {
			want := store.Member{User: u, Conversation: "g:big", Kind: conversation.Group, MaxSeq: 1, MinSeq: 1, LastMessage: &rs[0].Message}
			if d := diffMember(mustMember(t, s, u, "g:big"), want); d != "" {
				t.Errorf("Member(%s): %s", u, d)
			}
		}
	})
}

// checkAudience checks the current members of conv.
func checkAudience(t *testing.T, s store.Store, conv string, want ...string) {
	t.Helper()
	got, err := s.ConversationMembers(t.Context(), conv)
	if err != nil {
		t.Fatalf("ConversationMembers(%s): %v", conv, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ConversationMembers(%s) = %q, want %q", conv, got, want)
	}
}

// testMemberPages checks Members with a limit: pages never split a version,
// and following them visits every change once.
func testMemberPages(t *testing.T, open opener) {
	s := open(t)
	// Conversations 0..9 each get a message in its own batch; 10..14 share
	// one batch, so they share a version.
	for i := range 10 {
		mustAppend(t, s, send("a", fmt.Sprint("p", i), fmt.Sprint(i), "x"))
	}
	var shared []store.NewMessage
	for i := 10; i < 15; i++ {
		shared = append(shared, send("a", fmt.Sprint("p", i), fmt.Sprint(i), "x"))
	}
	mustAppend(t, s, shared...)

	var since int64
	seen := map[string]bool{}
	for page := 0; ; page++ {
		ms, version, more, err := s.Members(t.Context(), "a", since, 4)
		if err != nil {
			t.Fatal(err)
		}
		if page > 10 {
			t.Fatal("paging does not end")
		}
		for _, m := range ms {
			if seen[m.Conversation] {
				t.Errorf("page %d repeats %s", page, m.Conversation)
			}
			seen[m.Conversation] = true
		}
		if len(ms) > 4 && ms[3].Version != ms[len(ms)-1].Version {
			t.Errorf("page %d has %d conversations over the limit of 4 that do not share the 4th's version", page, len(ms))
		}
		if more && version != ms[len(ms)-1].Version {
			t.Errorf("page %d: version %d, want the last conversation's %d", page, version, ms[len(ms)-1].Version)
		}
		since = version
		if !more {
			break
		}
	}
	if len(seen) != 15 {
		t.Errorf("pages visited %d conversations, want 15", len(seen))
	}
}

// testVersionOrder checks the promise that versions become visible in
// order: a reader that sees a change stamped v also sees every change
// stamped below v, while a writer keeps changing things.
func testVersionOrder(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, "g:1", "a", "b")
	const rounds = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range rounds {
			// Alternate between two conversations of b's.
			if i%2 == 0 {
				mustAppendAsync(t, s, post("a", "g:1", fmt.Sprint(i), "x"))
			} else {
				mustAppendAsync(t, s, send("b", "c", fmt.Sprint(i), "y"))
			}
		}
	}()
	// An incremental reader that missed a change (because a higher version
	// became visible before a lower one) ends with a stale seq.
	var since int64
	seqs := map[string]int64{}
	read := func() {
		ms, version, _, err := s.Members(t.Context(), "b", since, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Version <= since || m.Version > version {
				t.Errorf("Members(b, %d) returned %s at version %d, outside (%d, %d]", since, m.Conversation, m.Version, since, version)
			}
			seqs[m.Conversation] = m.MaxSeq
		}
		since = version
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read()
	}
	read()
	for _, conv := range []string{"g:1", directID("b", "c")} {
		if seqs[conv] != rounds/2 {
			t.Errorf("incremental reads end with %s at seq %d, want %d", conv, seqs[conv], rounds/2)
		}
	}
}

// mustAppendAsync is mustAppend for use off the test's goroutine.
func mustAppendAsync(t *testing.T, s store.Store, batch ...store.NewMessage) {
	rs, err := s.AppendMessages(t.Context(), batch)
	if err != nil {
		t.Errorf("AppendMessages: %v", err)
		return
	}
	for _, r := range rs {
		if r.Err != nil {
			t.Errorf("AppendMessages: %v", r.Err)
		}
	}
}
