package message

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// audienceRecorder is an audience whose sends record, by seq, the users a
// message went to.
type audienceRecorder struct {
	*audience
	got map[int64][]string
}

func newAudienceRecorder(users ...string) *audienceRecorder {
	r := &audienceRecorder{got: map[int64][]string{}}
	load := func(context.Context, string) (*members, error) {
		return &members{sorted: slices.Sorted(slices.Values(users))}, nil
	}
	r.audience = newAudience(load, func(m *members, p groupPush) {
		for i := range m.parts {
			r.got[p.seq] = append(r.got[p.seq], m.at(i, p.seq)...)
		}
		slices.Sort(r.got[p.seq])
	}, 3, 10)
	return r
}

// change writes a change at head: joiners join, leavers leave.
func (r *audienceRecorder) change(t *testing.T, head int64, joiners, leavers []string, between func()) {
	t.Helper()
	old, err := r.changing(t.Context(), "g:x")
	if err != nil {
		t.Fatal(err)
	}
	if between != nil {
		between()
	}
	var entries []store.GroupMember
	for _, u := range joiners {
		entries = append(entries, store.GroupMember{User: u, Role: RoleMember})
	}
	for _, u := range leavers {
		entries = append(entries, store.GroupMember{User: u, Left: true})
	}
	next, joined, left := r.apply(old, store.GroupInfo{MaxSeq: head}, entries)
	r.changed("g:x", old, next, joined, left, head)
}

func (r *audienceRecorder) dispatch(t *testing.T, seq int64) {
	t.Helper()
	if !r.audience.dispatch(groupPush{conv: "g:x", seq: seq}) {
		t.Fatalf("seq %d: members not cached", seq)
	}
}

func (r *audienceRecorder) want(t *testing.T, seq int64, users ...string) {
	t.Helper()
	if got := r.got[seq]; !slices.Equal(got, users) {
		t.Errorf("seq %d went to %v, want %v", seq, got, users)
	}
}

// TestAudienceSendsEachMessageToTheMembersOfItsSeq drives the audience
// through membership changes that race the messages around them: a message
// committed before a change goes to the members before it, whether it goes
// out while the change is written or after; one committed after goes to the
// members after it, even if it comes while the change is still written.
func TestAudienceSendsEachMessageToTheMembersOfItsSeq(t *testing.T) {
	r := newAudienceRecorder("a", "b", "c")
	if _, err := r.get(t.Context(), "g:x"); err != nil {
		t.Fatal(err)
	}
	r.dispatch(t, 1)
	r.want(t, 1, "a", "b", "c")

	// d joins and b leaves when the last seq is 2; seq 2 (before) and 3
	// (after) come while the change is written.
	r.change(t, 2, []string{"d"}, []string{"b"}, func() {
		r.dispatch(t, 2)
		r.dispatch(t, 3)
		if len(r.got) != 1 {
			t.Errorf("messages went out while a change was written: %v", r.got)
		}
	})
	r.want(t, 2, "a", "b", "c")
	r.want(t, 3, "a", "c", "d")

	// e joins and c leaves at 4; seq 4, from before, goes out after.
	r.change(t, 4, []string{"e"}, []string{"c"}, nil)
	r.dispatch(t, 4)
	r.dispatch(t, 5)
	r.want(t, 4, "a", "c", "d")
	r.want(t, 5, "a", "d", "e")

	// A catch-up is told who was there only while nothing later went out.
	if _, ok := r.late("g:x", 0, 4); ok {
		t.Error("late answered for seq 4 after seq 5 went out")
	}
	var late []string
	for part := range 3 {
		users, ok := r.late("g:x", part, 5)
		if !ok {
			t.Fatalf("late did not answer for the last seq sent")
		}
		late = append(late, users...)
	}
	if slices.Sort(late); !slices.Equal(late, []string{"a", "d", "e"}) {
		t.Errorf("late members at 5: %v", late)
	}

	// b rejoins at 5: what the members remember of the changes no message
	// still to send needs is let go.
	r.change(t, 5, []string{"b"}, nil, nil)
	m, _ := r.get(t.Context(), "g:x")
	if len(m.departed) != 0 || len(m.joinedAt) != 1 || m.joinedAt["b"] != 6 {
		t.Errorf("after seq 5 went out the members remember departed %v, joined %v; want only b joined at 6", m.departed, m.joinedAt)
	}
	r.dispatch(t, 6)
	r.want(t, 6, "a", "b", "d", "e")
}

// TestGroupMessagesGoToTheMembersOfTheirSeq runs the race through the
// service: a message committed while a member is removed and another
// added is fanned out to the members the group had at its seq.
func TestGroupMessagesGoToTheMembersOfTheirSeq(t *testing.T) {
	st := &groupStore{gatedStore: &gatedStore{gate: make(chan struct{}), seq: map[string]int64{}}, members: []string{"a", "b", "c"}}
	fan := &recordingFanout{}
	s := New(Config{}, st, everyoneExists{}, fan, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	send := func(id string) { // commits one message from a
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := s.Send(context.Background(), SendRequest{From: "a", Conversation: "g:team", ClientID: id, ContentType: "text", Content: json.RawMessage(`{}`)})
			done <- err
		}()
		st.gate <- struct{}{}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	send("m1")
	// m1 is acked before it is fanned out: let it go out before the
	// change, or it would wait for the change too.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, users, _ := fan.delivered(); len(users) == 1 && len(users[0]) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("m1 was not fanned out")
		}
	}
	err := s.ChangeGroup(t.Context(), "g:team", func() (store.GroupInfo, []store.GroupMember, bool, error) {
		send("m2") // seq 2: the last before the change
		send("m3") // seq 3: after it, acked before the change is done
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			s.audience.mu.Lock()
			held := len(s.audience.convs["g:team"].held)
			s.audience.mu.Unlock()
			if held == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d messages wait for the change, want 2", held)
			}
		}
		return store.GroupInfo{Conversation: "g:team", MaxSeq: 2}, []store.GroupMember{{User: "d", Role: RoleMember}, {User: "b", Left: true}}, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	send("m4")
	// Each fan-out worker delivers its share of a message's members: a
	// message's audience is the union of its deliveries.
	want := map[int64][]string{1: {"a", "b", "c"}, 2: {"a", "b", "c"}, 3: {"a", "c", "d"}, 4: {"a", "c", "d"}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		frames, users, _ := fan.delivered()
		got := map[int64][]string{}
		for i, f := range frames {
			var push struct{ Data protocol.Message }
			if err := json.Unmarshal(f, &push); err != nil {
				t.Fatal(err)
			}
			got[push.Data.Seq] = slices.Sorted(slices.Values(append(got[push.Data.Seq], users[i]...)))
		}
		if maps.EqualFunc(got, want, slices.Equal) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pushed to %v, want %v", got, want)
		}
	}
}
