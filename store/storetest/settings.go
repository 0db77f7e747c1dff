package storetest

import (
	"errors"
	"testing"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// testSettings checks a member's own settings of a conversation: part of
// their view, stamped with a version, kept through every other write to
// the member record, invisible to the other members.
func testSettings(t *testing.T, open opener) {
	yes, no := true, false
	forever, later := int64(conversation.MuteForever), int64(1<<50)
	draft, empty := "half a thought", ""

	// update applies c and checks the result against want's settings,
	// returned and stored, and that the version rose by it exactly when
	// changed.
	update := func(t *testing.T, s store.Store, user, conv string, c store.SettingsChange, want store.Settings, changed bool) store.Member {
		t.Helper()
		before := mustMember(t, s, user, conv)
		got, err := s.UpdateSettings(t.Context(), user, conv, c)
		if err != nil {
			t.Fatalf("UpdateSettings: %v", err)
		}
		if got.Settings != want {
			t.Errorf("UpdateSettings: settings %+v, want %+v", got.Settings, want)
		}
		if changed != (got.Version > before.Version) {
			t.Errorf("UpdateSettings: version %d after %d; want a new one: %v", got.Version, before.Version, changed)
		}
		stored := mustMember(t, s, user, conv)
		if d := diffMember(stored, got); d != "" || stored.Version != got.Version {
			t.Errorf("Member after UpdateSettings differs from its result: %s (version %d, %d)", d, stored.Version, got.Version)
		}
		return got
	}

	t.Run("each setting", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		mustAppend(t, s, send("a", "b", "1", "x"))
		if got := mustMember(t, s, "b", conv).Settings; got != (store.Settings{}) {
			t.Fatalf("new member's settings = %+v, want none", got)
		}
		want := store.Settings{Pinned: true}
		update(t, s, "b", conv, store.SettingsChange{Pinned: &yes}, want, true)
		update(t, s, "b", conv, store.SettingsChange{Pinned: &yes}, want, false)
		want.MutedUntil = forever
		update(t, s, "b", conv, store.SettingsChange{MutedUntil: &forever}, want, true)
		want.MutedUntil = later
		update(t, s, "b", conv, store.SettingsChange{MutedUntil: &later}, want, true)
		want.Draft, want.DraftTime = draft, 7
		update(t, s, "b", conv, store.SettingsChange{Draft: &draft, DraftTime: 7}, want, true)
		// The same text again is no change, whatever its time.
		update(t, s, "b", conv, store.SettingsChange{Draft: &draft, DraftTime: 9}, want, false)
		want.Draft, want.DraftTime = "", 0
		want.Pinned = false
		update(t, s, "b", conv, store.SettingsChange{Draft: &empty, DraftTime: 9, Pinned: &no}, want, true)
		if other := mustMember(t, s, "a", conv); other.Settings != (store.Settings{}) {
			t.Errorf("the peer's settings = %+v, want none", other.Settings)
		}
		before := mustMember(t, s, "b", conv)
		want.Pinned = true
		update(t, s, "b", conv, store.SettingsChange{Pinned: &yes}, want, true)
		ms, _, _, err := s.Members(t.Context(), "b", before.Version, 0)
		if err != nil || len(ms) != 1 || ms[0].Settings != want {
			t.Errorf("Members since %d = %+v, %v; want the conversation with settings %+v", before.Version, ms, err, want)
		}
		if ms, _, _, _ := s.Members(t.Context(), "a", before.Version, 0); len(ms) != 0 {
			t.Errorf("the peer's Members since %d = %+v, want none", before.Version, ms)
		}
	})

	t.Run("kept by other writes", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		mustAppend(t, s, send("a", "b", "1", "x"))
		mustCreate(t, s, "g:1", "a", "b")
		want := store.Settings{Pinned: true, MutedUntil: forever, Draft: draft, DraftTime: 7}
		for _, c := range []string{conv, "g:1"} {
			update(t, s, "a", c, store.SettingsChange{Pinned: &yes, MutedUntil: &forever, Draft: &draft, DraftTime: 7}, want, true)
		}
		// The peer's read stamps a's record; a's own group message rewrites it.
		if _, _, err := s.MarkRead(t.Context(), "b", conv, 1); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, post("a", "g:1", "2", "y"), send("a", "b", "3", "z"))
		if _, _, err := s.MarkRead(t.Context(), "a", conv, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClearHistory(t.Context(), "a", "g:1"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{conv, "g:1"} {
			if got := mustMember(t, s, "a", c).Settings; got != want {
				t.Errorf("%s: settings after reads, sends and a clear = %+v, want %+v", c, got, want)
			}
		}
		if _, err := removeMembers(t, s, "g:1", []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if got := mustMember(t, s, "a", "g:1"); !got.Left || got.Settings != want {
			t.Errorf("after leaving: %+v, want left with settings %+v", got, want)
		}
		// Added again, a member starts afresh.
		if _, err := addMembers(t, s, "g:1", []string{"a"}, false); err != nil {
			t.Fatal(err)
		}
		if got := mustMember(t, s, "a", "g:1"); got.Left || got.Settings != (store.Settings{}) {
			t.Errorf("added again: %+v, want a member without settings", got)
		}
	})

	t.Run("hidden until a newer message", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a", "b")
		mustAppend(t, s, post("a", "g:1", "1", "x"), post("a", "g:1", "2", "y"))
		got := update(t, s, "b", "g:1", store.SettingsChange{Hidden: &yes}, store.Settings{UnhideSeq: 3}, true)
		if !got.Hidden() || got.MaxSeq != 2 || got.Unread() != 2 || got.LastMessage == nil {
			t.Errorf("hidden: %+v, want hidden, history and unread kept", got)
		}
		update(t, s, "b", "g:1", store.SettingsChange{Hidden: &yes}, store.Settings{UnhideSeq: 3}, false)
		// Only a new message shows it again, to b alone, through its version.
		if _, _, err := s.MarkRead(t.Context(), "b", "g:1", 2); err != nil {
			t.Fatal(err)
		}
		if m := mustMember(t, s, "b", "g:1"); !m.Hidden() {
			t.Errorf("hidden after a read: %+v, want hidden", m)
		}
		if m := mustMember(t, s, "a", "g:1"); m.Hidden() {
			t.Errorf("the other member's view is hidden: %+v", m)
		}
		before := mustMember(t, s, "b", "g:1")
		mustAppend(t, s, post("a", "g:1", "3", "z"))
		ms, _, _, err := s.Members(t.Context(), "b", before.Version, 0)
		if err != nil || len(ms) != 1 || ms[0].Hidden() || ms[0].MaxSeq != 3 {
			t.Errorf("Members since %d after a new message = %+v, %v; want it shown again", before.Version, ms, err)
		}
		// Hiding again waits for the next one; unhiding shows it at once.
		update(t, s, "b", "g:1", store.SettingsChange{Hidden: &yes}, store.Settings{UnhideSeq: 4}, true)
		if got := update(t, s, "b", "g:1", store.SettingsChange{Hidden: &no}, store.Settings{}, true); got.Hidden() {
			t.Errorf("unhidden: %+v", got)
		}
		// An empty group hidden stays hidden until its first message.
		mustCreate(t, s, "g:2", "a", "b")
		if got := update(t, s, "b", "g:2", store.SettingsChange{Hidden: &yes}, store.Settings{UnhideSeq: 1}, true); !got.Hidden() {
			t.Errorf("empty group hidden: %+v", got)
		}
		mustAppend(t, s, post("a", "g:2", "4", "w"))
		if m := mustMember(t, s, "b", "g:2"); m.Hidden() {
			t.Errorf("empty group after its first message: %+v, want shown", m)
		}
	})

	t.Run("delete: hide and clear", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		rs := mustAppend(t, s, send("a", "b", "1", "x"), send("b", "a", "2", "y"), send("a", "b", "3", "z"))
		got := update(t, s, "b", conv, store.SettingsChange{Hidden: &yes, Clear: true}, store.Settings{UnhideSeq: 4}, true)
		want := store.Member{User: "b", Conversation: conv, Kind: conversation.Direct, Peer: "a", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 3, MinSeq: 4,
			Settings: store.Settings{UnhideSeq: 4}}
		if d := diffMember(got, want); d != "" || !got.Hidden() || got.Unread() != 0 {
			t.Errorf("deleted: %s", d)
		}
		update(t, s, "b", conv, store.SettingsChange{Hidden: &yes, Clear: true}, store.Settings{UnhideSeq: 4}, false)
		// As with ClearHistory, b's read seq rose to 3: the peer sees it.
		other := store.Member{User: "a", Conversation: conv, Kind: conversation.Direct, Peer: "b", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 3, MinSeq: 1, LastMessage: &rs[2].Message}
		if d := diffMember(mustMember(t, s, "a", conv), other); d != "" {
			t.Errorf("the peer's view changed: %s", d)
		}
		next := mustAppend(t, s, send("a", "b", "4", "back"))[0].Message
		want.MaxSeq, want.PeerReadSeq, want.LastMessage = 4, 4, &next
		if d := diffMember(mustMember(t, s, "b", conv), want); d != "" || mustMember(t, s, "b", conv).Unread() != 1 {
			t.Errorf("after a new message: %s", d)
		}
	})

	t.Run("not a member", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, send("a", "b", "1", "x"))
		mustCreate(t, s, "g:1", "a")
		for _, tt := range []struct{ user, conv string }{{"c", directID("a", "b")}, {"b", "g:1"}, {"a", "g:none"}, {"a", directID("a", "c")}} {
			if _, err := s.UpdateSettings(t.Context(), tt.user, tt.conv, store.SettingsChange{Pinned: &yes}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UpdateSettings(%s, %s): got %v, want ErrNotFound", tt.user, tt.conv, err)
			}
		}
		if _, err := s.Member(t.Context(), "b", "g:1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Member after a refused update: %v, want ErrNotFound", err)
		}
	})
}
