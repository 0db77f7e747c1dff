package message

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store"
)

// listStore is a store.Messages holding one user's members as given.
type listStore struct {
	Store   // unused methods panic
	members []store.Member
	updates int
}

func (l *listStore) Members(context.Context, string, int64, int) ([]store.Member, int64, bool, error) {
	return slices.Clone(l.members), 99, false, nil
}

func (l *listStore) Member(_ context.Context, user, conv string) (store.Member, error) {
	for _, m := range l.members {
		if m.Conversation == conv {
			return m, nil
		}
	}
	return store.Member{}, store.ErrNotFound
}

func (l *listStore) UpdateSettings(_ context.Context, user, conv string, c store.SettingsChange) (store.Member, error) {
	l.updates++
	m, err := l.Member(context.Background(), user, conv)
	m.Version++
	return m, err
}

func newListService(t *testing.T, st *listStore, now time.Time) (*Service, *recordingFanout) {
	fan := &recordingFanout{}
	s := New(Config{}, st, everyoneExists{}, fan, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = func() time.Time { return now }
	t.Cleanup(func() { s.Close() })
	return s, fan
}

// at is a member of conv whose last visible message was sent at ms.
func at(conv string, ms int64, s store.Settings) store.Member {
	m := store.Member{User: "a", Conversation: conv, Kind: conversation.KindOf(conv), MaxSeq: 3, MinSeq: 1, Settings: s}
	if ms != 0 {
		m.LastMessage = &store.Message{Conversation: conv, Seq: 3, Time: time.UnixMilli(ms)}
	}
	return m
}

func TestRecentConversationsOrderAndPages(t *testing.T) {
	st := &listStore{members: []store.Member{
		at("d:a:b", 100, store.Settings{}),
		at("d:a:c", 300, store.Settings{}),
		at("g:old", 50, store.Settings{Pinned: true}),
		at("g:hidden", 900, store.Settings{UnhideSeq: 4}),              // hidden at seq 3, nothing since
		at("g:shown", 200, store.Settings{UnhideSeq: 3}),               // hidden at 2, seq 3 came since
		at("g:draft", 100, store.Settings{Draft: "x", DraftTime: 400}), // a newer draft counts as activity
		at("g:empty", 0, store.Settings{}),
		at("g:tie", 300, store.Settings{}),
	}}
	s, _ := newListService(t, st, time.UnixMilli(1000))
	want := []string{"g:old", "g:draft", "d:a:c", "g:tie", "g:shown", "d:a:b", "g:empty"}
	page, err := s.RecentConversations(t.Context(), "a", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page.Conversations); !slices.Equal(got, want) || page.Next != "" || page.Version != 99 {
		t.Errorf("one page = %v, next %q, version %d; want %v, no next, version 99", got, page.Next, page.Version, want)
	}
	var paged []string
	after := ""
	for range len(want) {
		page, err := s.RecentConversations(t.Context(), "a", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ids(page.Conversations)...)
		if after = page.Next; after == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("pages of 3 = %v, want %v", paged, want)
	}
	for _, bad := range []string{"nonsense", "1.x.g:a", "1.5.notaconv"} {
		if _, err := s.RecentConversations(t.Context(), "a", bad, 0); code(err) != protocol.CodeInvalidArgument {
			t.Errorf("after %q: %v, want invalid_argument", bad, err)
		}
	}
	if _, err := s.RecentConversations(t.Context(), "a", "", -1); code(err) != protocol.CodeInvalidArgument {
		t.Errorf("limit -1: %v, want invalid_argument", err)
	}
}

func TestUnreadTotalRespectsMuteAndHiding(t *testing.T) {
	now := time.UnixMilli(1000)
	unread := func(conv string, n int64, s store.Settings) store.Member {
		m := at(conv, 1, s)
		m.ReadSeq = m.MaxSeq - n
		return m
	}
	st := &listStore{members: []store.Member{
		unread("d:a:b", 2, store.Settings{}),
		unread("d:a:c", 3, store.Settings{MutedUntil: conversation.MuteForever}),
		unread("g:x", 1, store.Settings{MutedUntil: 2000}), // muted until later
		unread("g:y", 1, store.Settings{MutedUntil: 999}),  // the mute has ended
		unread("g:z", 3, store.Settings{UnhideSeq: 4}),     // hidden
		unread("g:w", 2, store.Settings{UnhideSeq: 4, MutedUntil: conversation.MuteForever}),
		unread("g:read", 0, store.Settings{}),
	}}
	s, _ := newListService(t, st, now)
	got, err := s.UnreadTotal(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := (protocol.UnreadTotal{Total: 3, Conversations: 2, Muted: 4}); got != want {
		t.Errorf("UnreadTotal = %+v, want %+v", got, want)
	}
}

func TestSettingsRefusedBeforeAnyChange(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	st := &listStore{members: []store.Member{at("d:a:b", 1, store.Settings{})}}
	s, fan := newListService(t, st, now)
	past, future, below := int64(999_999), int64(1_000_001), int64(-2)
	long, bad := strings.Repeat("é", protocol.MaxDraftBytes/2)+"x", "\xff"
	yes := true
	for _, tt := range []struct {
		name string
		conv string
		u    protocol.SettingsUpdate
		want protocol.Code
	}{
		{"nothing", "d:a:b", protocol.SettingsUpdate{}, protocol.CodeInvalidArgument},
		{"muted until the past", "d:a:b", protocol.SettingsUpdate{MutedUntil: &past}, protocol.CodeInvalidArgument},
		{"muted until -2", "d:a:b", protocol.SettingsUpdate{MutedUntil: &below}, protocol.CodeInvalidArgument},
		{"draft too long", "d:a:b", protocol.SettingsUpdate{Draft: &long, Pinned: &yes}, protocol.CodeInvalidArgument},
		{"draft not UTF-8", "d:a:b", protocol.SettingsUpdate{Draft: &bad}, protocol.CodeInvalidUTF8},
		{"malformed conv", "nope", protocol.SettingsUpdate{Pinned: &yes}, protocol.CodeInvalidArgument},
		{"empty conv", "", protocol.SettingsUpdate{Pinned: &yes}, protocol.CodeInvalidArgument},
		{"not a member", "g:x", protocol.SettingsUpdate{Pinned: &yes}, protocol.CodeNotFound},
	} {
		if _, err := s.UpdateSettings(t.Context(), "a", tt.conv, tt.u, router.Device{}); code(err) != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	if _, err := s.DeleteConversation(t.Context(), "a", "d:a:zz", router.Device{}); code(err) != protocol.CodeNotFound {
		t.Errorf("delete, not a member: %v, want not_found", err)
	}
	if st.updates != 0 {
		t.Errorf("%d updates reached the store", st.updates)
	}
	if frames, _, _ := fan.delivered(); len(frames) != 0 {
		t.Errorf("%d pushes for refused changes", len(frames))
	}
	ok := strings.Repeat("é", protocol.MaxDraftBytes/2)
	if _, err := s.UpdateSettings(t.Context(), "a", "d:a:b", protocol.SettingsUpdate{Draft: &ok, MutedUntil: &future}, router.Device{}); err != nil {
		t.Errorf("a draft of exactly %d bytes and a mute until later: %v", len(ok), err)
	}
	if frames, users, _ := fan.delivered(); len(frames) != 1 || !slices.Equal(users[0], []string{"a"}) {
		t.Errorf("pushes after a change: %d to %v, want one to a", len(frames), users)
	}
}

func ids(cs []protocol.Conversation) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func code(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
