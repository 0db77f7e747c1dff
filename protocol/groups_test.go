package protocol

import "testing"

func TestGroupEventString(t *testing.T) {
	yes := true
	for _, tt := range []struct {
		ev   GroupEvent
		want string
	}{
		{GroupEvent{Event: EventCreated, Actor: "alice", Name: "Team"}, `alice created the group "Team"`},
		{GroupEvent{Event: EventCreated, Actor: "system"}, "system created the group"},
		{GroupEvent{Event: EventJoined, Actor: "alice", Users: []string{"bob"}}, "alice added bob"},
		{GroupEvent{Event: EventJoined, Actor: "alice", Users: []string{"bob", "carol"}}, "alice added bob and carol"},
		{GroupEvent{Event: EventJoined, Actor: "alice", Users: []string{"bob", "carol", "dave"}, Count: 5}, "alice added bob, carol, dave and 2 more"},
		{GroupEvent{Event: EventJoined, Actor: "bob", Users: []string{"bob"}}, "bob joined"},
		{GroupEvent{Event: EventKicked, Actor: "alice", Users: []string{"bob"}}, "alice removed bob"},
		{GroupEvent{Event: EventMuteAll, Actor: "alice", MuteAll: &yes}, "alice muted the group"},
		{GroupEvent{Event: EventMuted, Actor: "alice", Users: []string{"bob"}, MutedUntil: -1}, "alice muted bob"},
		{GroupEvent{Event: EventInfoChanged, Actor: "alice", Fields: []string{"announcement", "extra"}}, "alice changed the group's announcement, extra"},
		{GroupEvent{Event: EventOwnerChanged, Actor: "alice", Users: []string{"bob"}}, "alice made bob the owner"},
		{GroupEvent{Event: "future", Actor: "alice"}, "alice: future"},
	} {
		if got := tt.ev.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.ev, got, tt.want)
		}
	}
}
