package server_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// TestSDKGroups drives group management from the Go SDK: typed calls, and
// typed group events delivered in order beside the messages.
func TestSDKGroups(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	ctx := t.Context()
	var mu sync.Mutex
	var events []client.GroupEvent
	onEvent := func(o *client.Options) {
		o.OnGroupEvent = func(ev client.GroupEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	}
	olga := dialSDK(t, s, s.User(t, "olga", "web", "o1"), newInbox(t), nil)
	mia := dialSDK(t, s, s.User(t, "mia", "web", "m1"), newInbox(t), onEvent)
	max := dialSDK(t, s, s.User(t, "max", "web", "x1"), newInbox(t), nil)

	g, err := olga.CreateGroup(ctx, protocol.NewGroup{ID: "club", Name: "Book club", Members: []string{"mia"}, JoinPolicy: protocol.JoinFree})
	if err != nil || g.Owner != "olga" {
		t.Fatalf("CreateGroup = %+v, %v", g, err)
	}
	if j, err := max.JoinGroup(ctx, "club", ""); err != nil || !j.Joined {
		t.Fatalf("JoinGroup = %+v, %v", j, err)
	}
	if _, err := olga.UpdateGroupMember(ctx, "club", "mia", protocol.MemberUpdate{Role: ptr(protocol.RoleAdmin)}); err != nil {
		t.Fatal(err)
	}
	if _, err := mia.UpdateGroupMember(ctx, "club", "max", protocol.MemberUpdate{MutedUntil: ptr(time.Now().Add(time.Hour).UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	var pe *protocol.Error
	if _, err := max.SendTo(ctx, "g:club", "text", []byte(`{"text":"hi"}`)); !errors.As(err, &pe) || pe.Code != protocol.CodeMuted {
		t.Fatalf("muted send = %v", err)
	}
	if err := max.LeaveGroup(ctx, "club"); err != nil {
		t.Fatal(err)
	}
	members, err := mia.GroupMembers(ctx, "club", 0)
	if err != nil || len(members.Items) != 2 {
		t.Fatalf("GroupMembers = %+v, %v", members, err)
	}
	mine, err := mia.MyGroups(ctx, 0)
	if err != nil || len(mine.Items) != 1 || mine.Items[0].Member.Role != protocol.RoleAdmin {
		t.Fatalf("MyGroups = %+v, %v", mine, err)
	}
	if err := mia.DismissGroup(ctx, "club"); !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("an admin dismissing = %v, want forbidden", err)
	}

	want := []string{protocol.EventCreated, protocol.EventJoined, protocol.EventRoleChanged, protocol.EventMuted, protocol.EventLeft}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != len(want) {
		t.Fatalf("got %d events %+v, want %v", len(events), events, want)
	}
	for i, ev := range events {
		if ev.Event != want[i] || ev.Seq != int64(i+1) || ev.Conversation != "g:club" {
			t.Errorf("event %d = %+v (%s), want %s at seq %d", i, ev, ev.GroupEvent, want[i], i+1)
		}
	}
	if s := events[3].String(); s != "mia muted max until "+time.UnixMilli(events[3].MutedUntil).UTC().Format(time.RFC3339) {
		t.Errorf("muted event reads %q", s)
	}
}
