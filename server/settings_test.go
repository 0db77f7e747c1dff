package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// rest makes a REST request as cred and decodes a success into out. It
// returns the error code of a failure, checked against its HTTP status, or
// "".
func rest(t *testing.T, s *parleytest.Server, method, path, cred, body string, out any) protocol.Code {
	t.Helper()
	status, raw := doHTTP(t, s, method, path, cred, body)
	if status >= 400 {
		var eb protocol.ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s %s: %d %s", method, path, status, raw)
		}
		if eb.Error.Code.HTTPStatus() != status {
			t.Errorf("%s %s: status %d for %s", method, path, status, eb.Error.Code)
		}
		return eb.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return ""
}

// mustREST is rest that fails t on an error.
func mustREST(t *testing.T, s *parleytest.Server, method, path, cred, body string, out any) {
	t.Helper()
	if code := rest(t, s, method, path, cred, body, out); code != "" {
		t.Fatalf("%s %s: %s", method, path, code)
	}
}

// callOn makes a call frame on c and returns its result and the
// conversation pushes that came with it (before or after the result; wantPushes
// of them are waited for).
func callOn(t *testing.T, c *parleytest.Conn, id string, call protocol.Call, wantPushes int) (protocol.CallResult, []protocol.Conversation) {
	t.Helper()
	c.Request(t, protocol.TypeCall, id, call)
	var res protocol.CallResult
	var pushes []protocol.Conversation
	gotResult := false
	for !gotResult || len(pushes) < wantPushes {
		f := c.Next(t, wait)
		switch {
		case f.Type == protocol.TypeResult && f.ID == id:
			if err := json.Unmarshal(f.Data, &res); err != nil {
				t.Fatal(err)
			}
			gotResult = true
		case f.Type == protocol.TypeConversation:
			var cv protocol.Conversation
			if err := json.Unmarshal(f.Data, &cv); err != nil {
				t.Fatal(err)
			}
			pushes = append(pushes, cv)
		case f.Type == protocol.TypeChanged || f.Type == protocol.TypeMessage && strings.Contains(string(f.Data), `"ctype":"group.event"`):
			// A group's own news, not this test's business.
		default:
			t.Fatalf("%s %s: got %s frame %s %v", call.Method, call.Path, f.Type, f.Data, f.Error)
		}
	}
	return res, pushes
}

// conversationOf returns the user's conversation conv as the sync lists it.
func conversationOf(t *testing.T, s *parleytest.Server, cred, conv string) protocol.Conversation {
	t.Helper()
	var list protocol.Conversations
	mustREST(t, s, "GET", "/v1/conversations", cred, "", &list)
	for _, c := range list.Conversations {
		if c.ID == conv {
			return c
		}
	}
	t.Fatalf("%s is not in the list", conv)
	return protocol.Conversation{}
}

// TestSettingsReachTheUsersOtherDevices changes settings over a call frame
// and checks that the user's other devices get them pushed, that a device
// that was offline gets them by since-sync, and that other members see
// nothing of them.
func TestSettingsReachTheUsersOtherDevices(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a1, _ := parleytest.Dial(t, s.WSURL, aliceTok)
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	bobTok := s.User(t, "bob", "web", "b1")
	b, _ := parleytest.Dial(t, s.WSURL, bobTok)
	b.Request(t, protocol.TypeSend, "s", send("alice", "m1", "hi"))
	b.Expect(t, protocol.TypeAck, nil)
	a1.Expect(t, protocol.TypeMessage, nil)
	a2.Expect(t, protocol.TypeMessage, nil)
	const conv = "d:alice:bob"
	before := conversationOf(t, s, aliceTok, conv)
	var bobBefore protocol.Conversations
	mustREST(t, s, "GET", "/v1/conversations", bobTok, "", &bobBefore)

	res, pushes := callOn(t, a1, "p", protocol.Call{Method: "PATCH", Path: "/v1/conversations/" + conv + "/settings",
		Body: json.RawMessage(`{"pinned":true,"muted_until":-1,"draft":"see you at"}`)}, 1)
	var got protocol.Conversation
	if err := json.Unmarshal(res.Body, &got); err != nil || res.Status != http.StatusOK {
		t.Fatalf("result %d %s", res.Status, res.Body)
	}
	if !got.Pinned || got.MutedUntil != protocol.MuteForever || got.Draft != "see you at" || got.DraftTime == 0 || got.Hidden ||
		got.Version <= before.Version || got.MaxSeq != 1 || got.Unread != 1 {
		t.Errorf("updated = %+v, want pinned, muted for good, the draft, a new version, the rest as before", got)
	}
	if len(pushes) != 1 || !sameConv(pushes[0], got) {
		t.Errorf("pushes to the calling connection = %+v, want the result", pushes)
	}
	var pushed protocol.Conversation
	a2.Expect(t, protocol.TypeConversation, &pushed)
	if !sameConv(pushed, got) {
		t.Errorf("pushed to the other device = %+v, want %+v", pushed, got)
	}
	b.Quiet(t, 50*time.Millisecond)

	// A device that was offline syncs from the version it had.
	a3, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "macos", "a3"))
	a3.Request(t, protocol.TypeConversations, "c", protocol.ConversationsRequest{Since: before.Version})
	var list protocol.Conversations
	a3.Expect(t, protocol.TypeConversations, &list)
	if len(list.Conversations) != 1 || !sameConv(list.Conversations[0], got) {
		t.Errorf("sync since %d = %+v, want the changed conversation", before.Version, list.Conversations)
	}
	// Bob's view did not change.
	var bobAfter protocol.Conversations
	mustREST(t, s, "GET", fmt.Sprint("/v1/conversations?since=", bobBefore.Version), bobTok, "", &bobAfter)
	if len(bobAfter.Conversations) != 0 {
		t.Errorf("bob's changes since %d = %+v, want none", bobBefore.Version, bobAfter.Conversations)
	}

	// Undone over REST with the admin key acting for alice; every device
	// gets the push.
	var undone protocol.Conversation
	mustREST(t, s, "PATCH", "/v1/conversations/"+conv+"/settings?user=alice", parleytest.AdminKey,
		`{"pinned":false,"muted_until":0,"draft":""}`, &undone)
	if undone.Pinned || undone.MutedUntil != 0 || undone.Draft != "" || undone.DraftTime != 0 || undone.Version <= got.Version {
		t.Errorf("undone = %+v", undone)
	}
	for _, c := range []*parleytest.Conn{a1, a2, a3} {
		var p protocol.Conversation
		c.Expect(t, protocol.TypeConversation, &p)
		if !sameConv(p, undone) {
			t.Errorf("pushed %+v, want %+v", p, undone)
		}
	}
	// The same again changes nothing: same version, no push.
	var again protocol.Conversation
	mustREST(t, s, "PATCH", "/v1/conversations/"+conv+"/settings", aliceTok, `{"pinned":false}`, &again)
	if again.Version != undone.Version {
		t.Errorf("a change to the same value: version %d, want %d", again.Version, undone.Version)
	}
	a2.Quiet(t, 50*time.Millisecond)
}

// TestHiddenConversationComesBack hides a conversation and checks it leaves
// the list and the unread total until a newer message, which brings it back
// with no request.
func TestHiddenConversationComesBack(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a1, _ := parleytest.Dial(t, s.WSURL, aliceTok)
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	b, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))
	c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "carol", "web", "c1"))
	for i, conn := range []*parleytest.Conn{b, c} {
		conn.Request(t, protocol.TypeSend, "s", send("alice", fmt.Sprint("m", i), "hi"))
		conn.Expect(t, protocol.TypeAck, nil)
		a1.Expect(t, protocol.TypeMessage, nil)
		a2.Expect(t, protocol.TypeMessage, nil)
	}

	var hidden protocol.Conversation
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:bob/settings", aliceTok, `{"hidden":true}`, &hidden)
	if !hidden.Hidden || hidden.Unread != 1 || hidden.LastMessage == nil || hidden.MinSeq != 1 {
		t.Errorf("hidden = %+v, want hidden with its history and unread count", hidden)
	}
	a2.Expect(t, protocol.TypeConversation, nil)
	checkRecent(t, s, aliceTok, "d:alice:carol")
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 1, Conversations: 1})

	b.Request(t, protocol.TypeSend, "s", send("alice", "m2", "back"))
	b.Expect(t, protocol.TypeAck, nil)
	var m protocol.Message
	a2.Expect(t, protocol.TypeMessage, &m)
	if m.Conversation != "d:alice:bob" || m.Seq != 2 {
		t.Fatalf("pushed %+v", m)
	}
	back := conversationOf(t, s, aliceTok, "d:alice:bob")
	if back.Hidden || back.Unread != 2 || back.Version <= hidden.Version {
		t.Errorf("after a new message: %+v, want shown with 2 unread and a new version", back)
	}
	checkRecent(t, s, aliceTok, "d:alice:bob", "d:alice:carol")
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 3, Conversations: 2})

	// Shown again by hand, before any message.
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:carol/settings", aliceTok, `{"hidden":true}`, nil)
	checkRecent(t, s, aliceTok, "d:alice:bob")
	var shown protocol.Conversation
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:carol/settings", aliceTok, `{"hidden":false}`, &shown)
	if shown.Hidden {
		t.Errorf("unhidden = %+v", shown)
	}
	checkRecent(t, s, aliceTok, "d:alice:bob", "d:alice:carol")
}

// TestDeleteConversation checks that deleting is hiding and clearing, for
// the user alone, and that a new message brings the conversation back with
// only itself to read.
func TestDeleteConversation(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	bobTok := s.User(t, "bob", "web", "b1")
	b, _ := parleytest.Dial(t, s.WSURL, bobTok)
	for i := range 2 {
		b.Request(t, protocol.TypeSend, "s", send("alice", fmt.Sprint("m", i), "hi"))
		b.Expect(t, protocol.TypeAck, nil)
		a2.Expect(t, protocol.TypeMessage, nil)
	}

	var del protocol.Conversation
	mustREST(t, s, "DELETE", "/v1/conversations/d:alice:bob", aliceTok, "", &del)
	if !del.Hidden || del.MinSeq != 3 || del.ReadSeq != 2 || del.Unread != 0 || del.LastMessage != nil {
		t.Errorf("deleted = %+v, want hidden, cleared to seq 3, nothing unread", del)
	}
	var pushed protocol.Conversation
	a2.Expect(t, protocol.TypeConversation, &pushed)
	if !sameConv(pushed, del) {
		t.Errorf("pushed %+v, want %+v", pushed, del)
	}
	var msgs protocol.Messages
	mustREST(t, s, "GET", "/v1/conversations/d:alice:bob/messages", aliceTok, "", &msgs)
	if len(msgs.Messages) != 0 {
		t.Errorf("alice's history after delete = %+v, want none", msgs.Messages)
	}
	checkRecent(t, s, aliceTok)
	mustREST(t, s, "GET", "/v1/conversations/d:alice:bob/messages", bobTok, "", &msgs)
	if len(msgs.Messages) != 2 {
		t.Errorf("bob's history after alice's delete = %d messages, want 2", len(msgs.Messages))
	}
	if bob := conversationOf(t, s, bobTok, "d:alice:bob"); bob.Hidden || bob.MinSeq != 1 {
		t.Errorf("bob's view = %+v, want untouched", bob)
	}
	b.Quiet(t, 50*time.Millisecond)

	b.Request(t, protocol.TypeSend, "s", send("alice", "m3", "still there?"))
	b.Expect(t, protocol.TypeAck, nil)
	a2.Expect(t, protocol.TypeMessage, nil)
	mustREST(t, s, "GET", "/v1/conversations/d:alice:bob/messages", aliceTok, "", &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Seq != 3 {
		t.Errorf("alice's history after a new message = %+v, want seq 3 alone", msgs.Messages)
	}
	checkRecent(t, s, aliceTok, "d:alice:bob")
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 1, Conversations: 1})
}

// TestConversationListOrder checks the display list over a real server:
// pinned first, then by last activity, hidden ones out, and pages that
// join into the whole list.
func TestConversationListOrder(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a, _ := parleytest.Dial(t, s.WSURL, aliceTok)
	for i, peer := range []string{"bob", "carol", "dave", "erin", "frank"} {
		s.User(t, peer, "web", peer)
		a.Request(t, protocol.TypeSend, "s", send(peer, fmt.Sprint("m", i), "hi"))
		a.Expect(t, protocol.TypeAck, nil)
	}
	if _, err := s.Admin.CreateGroup(t.Context(), "team", []string{"alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	a.Expect(t, protocol.TypeConversation, nil)
	// bob, the oldest, pinned; dave hidden; carol with a draft, newer than
	// every message.
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:bob/settings", aliceTok, `{"pinned":true}`, nil)
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:dave/settings", aliceTok, `{"hidden":true}`, nil)
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:carol/settings", aliceTok, `{"draft":"later"}`, nil)

	var page protocol.ConversationPage
	mustREST(t, s, "GET", "/v1/conversations/recent", aliceTok, "", &page)
	got := page.Conversations
	if len(got) != 5 || got[0].ID != "d:alice:bob" || got[1].ID != "d:alice:carol" || !slices.Contains(convIDs(got), "g:team") {
		t.Fatalf("list = %v, want bob (pinned), carol (draft), then the rest with the group (its creation event is a message)", convIDs(got))
	}
	if slices.Contains(convIDs(got), "d:alice:dave") {
		t.Errorf("list %v holds the hidden conversation", convIDs(got))
	}
	for i := 2; i+1 < len(got); i++ { // newest first by last message, then by id
		x, y := got[i].LastMessage.Time, got[i+1].LastMessage.Time
		if x < y || x == y && got[i].ID > got[i+1].ID {
			t.Errorf("list %v: %s before %s", convIDs(got), got[i].ID, got[i+1].ID)
		}
	}
	// The SDK's sort of the synced list agrees.
	var all protocol.Conversations
	mustREST(t, s, "GET", "/v1/conversations", aliceTok, "", &all)
	if sorted := client.DisplayOrder(all.Conversations); !slices.Equal(convIDs(sorted), convIDs(got)) {
		t.Errorf("DisplayOrder of the sync = %v, want %v", convIDs(sorted), convIDs(got))
	}
	// Pages of two, over call frames, join into the same list.
	var paged []string
	after := ""
	for range 5 {
		path := "/v1/conversations/recent?limit=2"
		if after != "" {
			path += "&after=" + after
		}
		res, _ := callOn(t, a, "r", protocol.Call{Method: "GET", Path: path}, 0)
		var p protocol.ConversationPage
		if err := json.Unmarshal(res.Body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Conversations) > 2 {
			t.Fatalf("a page of %d", len(p.Conversations))
		}
		paged = append(paged, convIDs(p.Conversations)...)
		if after = p.Next; after == "" {
			break
		}
	}
	if !slices.Equal(paged, convIDs(got)) {
		t.Errorf("pages = %v, want %v", paged, convIDs(got))
	}
	// A message moves a conversation up to the first place after the pins.
	a.Request(t, protocol.TypeSend, "s", post("g:team", "g1", "hello team"))
	a.Expect(t, protocol.TypeAck, nil)
	mustREST(t, s, "GET", "/v1/conversations/recent", aliceTok, "", &page)
	if ids := convIDs(page.Conversations); len(ids) != 5 || ids[0] != "d:alice:bob" || ids[1] != "g:team" && ids[2] != "g:team" {
		t.Errorf("after a group message: %v, want the group right after the pinned one (or after the draft, in the same millisecond)", ids)
	}
}

// TestUnreadTotalRespectsMute checks the total over real conversations,
// one-to-one and group: one's own messages never count, muted ones count
// apart, hidden ones not at all.
func TestUnreadTotalRespectsMute(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a, _ := parleytest.Dial(t, s.WSURL, aliceTok)
	bobTok := s.User(t, "bob", "web", "b1")
	b, _ := parleytest.Dial(t, s.WSURL, bobTok)
	c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "carol", "web", "c1"))
	if _, err := s.Admin.CreateGroup(t.Context(), "team", []string{"alice", "bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*parleytest.Conn{a, b, c} {
		conn.Expect(t, protocol.TypeConversation, nil)
	}
	sends := []struct {
		from *parleytest.Conn
		s    protocol.Send
	}{
		// alice: her own message, then 2 from bob; 3 from carol.
		{a, send("bob", "a1", "mine")}, {b, send("alice", "b1", "1")}, {b, send("alice", "b2", "2")},
		{c, send("alice", "c1", "1")}, {c, send("alice", "c2", "2")}, {c, send("alice", "c3", "3")},
		// The group (its creation is seq 1, an event from system): 2 from
		// alice, then 1 from bob; carol reads nothing.
		{a, post("g:team", "g1", "mine")}, {a, post("g:team", "g2", "mine too")}, {b, post("g:team", "g3", "bob's")},
	}
	for i, x := range sends {
		x.from.Request(t, protocol.TypeSend, fmt.Sprint(i), x.s)
		for {
			if f := x.from.Next(t, wait); f.Type == protocol.TypeAck {
				break
			}
		}
	}
	// In the group, a member's own messages are never unread (and sending
	// reads what came before).
	for _, tt := range []struct {
		user, cred string
		want       int64
	}{{"alice", aliceTok, 1}, {"bob", bobTok, 0}, {"carol", parleytest.AdminKey, 4}} {
		var list protocol.Conversations
		mustREST(t, s, "GET", "/v1/conversations?user="+tt.user, tt.cred, "", &list)
		for _, c := range list.Conversations {
			if c.ID == "g:team" && c.Unread != tt.want {
				t.Errorf("%s's unread in the group = %d, want %d", tt.user, c.Unread, tt.want)
			}
		}
	}
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 6, Conversations: 3})
	checkUnread(t, s, bobTok, protocol.UnreadTotal{})

	later := time.Now().Add(time.Hour).UnixMilli()
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:carol/settings", aliceTok, fmt.Sprintf(`{"muted_until":%d}`, later), nil)
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 3, Conversations: 2, Muted: 3})
	mustREST(t, s, "PATCH", "/v1/conversations/g:team/settings", aliceTok, `{"muted_until":-1}`, nil)
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 2, Conversations: 1, Muted: 4})
	mustREST(t, s, "PATCH", "/v1/conversations/d:alice:bob/settings", aliceTok, `{"hidden":true}`, nil)
	checkUnread(t, s, aliceTok, protocol.UnreadTotal{Total: 0, Conversations: 0, Muted: 4})
	// The admin asks for a user.
	checkUnread(t, s, parleytest.AdminKey+"?user=carol", protocol.UnreadTotal{Total: 4, Conversations: 1})
}

// TestSettingsBadInput checks every refusal: its stable code, and that
// nothing changed.
func TestSettingsBadInput(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	aliceTok := s.User(t, "alice", "web", "a1")
	a, _ := parleytest.Dial(t, s.WSURL, aliceTok)
	s.User(t, "bob", "web", "b1")
	s.User(t, "carol", "web", "c1")
	a.Request(t, protocol.TypeSend, "s", send("bob", "m1", "hi"))
	a.Expect(t, protocol.TypeAck, nil)
	if _, err := s.Admin.CreateGroup(t.Context(), "others", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	if code := rest(t, s, "POST", "/v1/messages", parleytest.AdminKey, `{"from":"bob","to":"carol","ctype":"text","content":{}}`, nil); code != "" {
		t.Fatal(code)
	}
	before := conversationOf(t, s, aliceTok, "d:alice:bob")
	const settings = "/v1/conversations/d:alice:bob/settings"
	long := `{"draft":"` + strings.Repeat("x", protocol.MaxDraftBytes+1) + `"}`
	for _, tt := range []struct {
		name, method, path, cred, body string
		want                           protocol.Code
	}{
		{"no field", "PATCH", settings, aliceTok, `{}`, protocol.CodeInvalidArgument},
		{"no body", "PATCH", settings, aliceTok, ``, protocol.CodeInvalidArgument},
		{"unknown field", "PATCH", settings, aliceTok, `{"pin":true}`, protocol.CodeInvalidArgument},
		{"wrong type", "PATCH", settings, aliceTok, `{"pinned":"yes"}`, protocol.CodeInvalidArgument},
		{"muted until the past", "PATCH", settings, aliceTok, `{"muted_until":1}`, protocol.CodeInvalidArgument},
		{"muted until -2", "PATCH", settings, aliceTok, `{"muted_until":-2}`, protocol.CodeInvalidArgument},
		{"draft too long", "PATCH", settings, aliceTok, long, protocol.CodeInvalidArgument},
		{"draft not UTF-8", "PATCH", settings, aliceTok, "{\"draft\":\"\xff\"}", protocol.CodeInvalidUTF8},
		{"a valid field with a bad one", "PATCH", settings, aliceTok, `{"pinned":true,"muted_until":5}`, protocol.CodeInvalidArgument},
		{"malformed conv", "PATCH", "/v1/conversations/nope/settings", aliceTok, `{"pinned":true}`, protocol.CodeInvalidArgument},
		{"unknown conv", "PATCH", "/v1/conversations/d:alice:zed/settings", aliceTok, `{"pinned":true}`, protocol.CodeNotFound},
		{"someone else's direct", "PATCH", "/v1/conversations/d:bob:carol/settings", aliceTok, `{"pinned":true}`, protocol.CodeNotFound},
		{"a group one is not in", "PATCH", "/v1/conversations/g:others/settings", aliceTok, `{"pinned":true}`, protocol.CodeNotFound},
		{"admin without user", "PATCH", settings, parleytest.AdminKey, `{"pinned":true}`, protocol.CodeInvalidArgument},
		{"no credential", "PATCH", settings, "", `{"pinned":true}`, protocol.CodeUnauthenticated},
		{"delete malformed conv", "DELETE", "/v1/conversations/nope", aliceTok, ``, protocol.CodeInvalidArgument},
		{"delete someone else's", "DELETE", "/v1/conversations/d:bob:carol", aliceTok, ``, protocol.CodeNotFound},
		{"delete a group one is not in", "DELETE", "/v1/conversations/g:others", aliceTok, ``, protocol.CodeNotFound},
		{"recent with a bad cursor", "GET", "/v1/conversations/recent?after=zzz", aliceTok, ``, protocol.CodeInvalidArgument},
		{"recent with a negative limit", "GET", "/v1/conversations/recent?limit=-1", aliceTok, ``, protocol.CodeInvalidArgument},
		{"unread, admin without user", "GET", "/v1/conversations/unread", parleytest.AdminKey, ``, protocol.CodeInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := rest(t, s, tt.method, tt.path, tt.cred, tt.body, nil); code != tt.want {
				t.Errorf("got %q, want %s", code, tt.want)
			}
		})
	}
	// The same refusals over call frames.
	for _, tt := range []struct {
		call protocol.Call
		want protocol.Code
	}{
		{protocol.Call{Method: "PATCH", Path: settings, Body: json.RawMessage(`{"muted_until":1}`)}, protocol.CodeInvalidArgument},
		{protocol.Call{Method: "PATCH", Path: settings, Body: json.RawMessage(long)}, protocol.CodeInvalidArgument},
		{protocol.Call{Method: "PATCH", Path: "/v1/conversations/g:others/settings", Body: json.RawMessage(`{"hidden":true}`)}, protocol.CodeNotFound},
		{protocol.Call{Method: "DELETE", Path: "/v1/conversations/d:bob:carol"}, protocol.CodeNotFound},
		{protocol.Call{Method: "DELETE", Path: "/v1/conversations/nope"}, protocol.CodeInvalidArgument},
	} {
		a.Request(t, protocol.TypeCall, "x", tt.call)
		a.ExpectError(t, tt.want)
	}
	a.Quiet(t, 50*time.Millisecond) // no push: nothing changed
	if after := conversationOf(t, s, aliceTok, "d:alice:bob"); !sameConv(after, before) {
		t.Errorf("after the refusals: %+v, want %+v", after, before)
	}
	// bob and carol's views are untouched by alice's attempts.
	var bc protocol.Conversations
	mustREST(t, s, "GET", "/v1/conversations?user=bob", parleytest.AdminKey, "", &bc)
	for _, c := range bc.Conversations {
		if c.Pinned || c.Hidden || c.MutedUntil != 0 {
			t.Errorf("bob's %s has settings: %+v", c.ID, c)
		}
	}
}

// TestSDKSettings drives the settings through the Go SDK and checks that
// another device of the user hears of each by OnConversation.
func TestSDKSettings(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "bob", "web", "b1")
	changed := make(chan protocol.Conversation, 16)
	other := dialSDK(t, s, s.User(t, "alice", "ios", "a2"), nil, func(o *client.Options) {
		o.OnConversation = func(c protocol.Conversation) { changed <- c }
	})
	c := dialSDK(t, s, s.User(t, "alice", "web", "a1"), nil, nil)
	ctx := t.Context()
	ack, err := c.Send(ctx, "bob", "text", json.RawMessage(`{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	conv := ack.Conversation
	next := func(what string) protocol.Conversation {
		t.Helper()
		select {
		case cv := <-changed:
			return cv
		case <-time.After(wait):
			t.Fatalf("%s: no conversation push on the other device", what)
		}
		return protocol.Conversation{}
	}
	if cv, err := c.Pin(ctx, conv, true); err != nil || !cv.Pinned {
		t.Fatalf("Pin = %+v, %v", cv, err)
	}
	if cv := next("pin"); !cv.Pinned {
		t.Errorf("pin pushed %+v", cv)
	}
	until := time.Now().Add(time.Hour)
	if cv, err := c.Mute(ctx, conv, until); err != nil || cv.MutedUntil != until.UnixMilli() {
		t.Fatalf("Mute = %+v, %v", cv, err)
	}
	next("mute")
	if cv, err := c.Mute(ctx, conv, time.Time{}); err != nil || cv.MutedUntil != protocol.MuteForever {
		t.Fatalf("Mute forever = %+v, %v", cv, err)
	}
	next("mute forever")
	if total, err := c.UnreadTotal(ctx); err != nil || total != (protocol.UnreadTotal{}) {
		t.Errorf("UnreadTotal = %+v, %v; want nothing (own message)", total, err)
	}
	if cv, err := c.Unmute(ctx, conv); err != nil || cv.MutedUntil != 0 {
		t.Fatalf("Unmute = %+v, %v", cv, err)
	}
	next("unmute")
	if cv, err := c.SetDraft(ctx, conv, "so…"); err != nil || cv.Draft != "so…" || cv.DraftTime == 0 {
		t.Fatalf("SetDraft = %+v, %v", cv, err)
	}
	if cv := next("draft"); cv.Draft != "so…" {
		t.Errorf("draft pushed %+v", cv)
	}
	if cv, err := c.Hide(ctx, conv, true); err != nil || !cv.Hidden {
		t.Fatalf("Hide = %+v, %v", cv, err)
	}
	next("hide")
	if page, err := c.RecentConversations(ctx, "", 0); err != nil || len(page.Conversations) != 0 {
		t.Errorf("RecentConversations while hidden = %+v, %v", page, err)
	}
	if cv, err := c.DeleteConversation(ctx, conv); err != nil || !cv.Hidden || cv.MinSeq != 2 {
		t.Fatalf("DeleteConversation = %+v, %v", cv, err)
	}
	if cv := next("delete"); cv.MinSeq != 2 {
		t.Errorf("delete pushed %+v", cv)
	}
	var pe *protocol.Error
	if _, err := c.Mute(ctx, conv, time.Unix(1, 0)); !errors.As(err, &pe) || pe.Code != protocol.CodeInvalidArgument {
		t.Errorf("Mute in the past = %v, want invalid_argument", err)
	}
	if _, err := other.Pin(ctx, "d:alice:nobody", true); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Errorf("Pin of an unknown conversation = %v, want not_found", err)
	}
}

// sameConv reports whether two conversations read the same on the wire.
func sameConv(a, b protocol.Conversation) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// checkRecent checks the user's display list, all of it on one page.
func checkRecent(t *testing.T, s *parleytest.Server, cred string, want ...string) {
	t.Helper()
	var page protocol.ConversationPage
	mustREST(t, s, "GET", "/v1/conversations/recent", cred, "", &page)
	if got := convIDs(page.Conversations); !slices.Equal(got, want) {
		t.Errorf("recent = %v, want %v", got, want)
	}
}

// checkUnread checks the user's unread total; cred may carry ?user=.
func checkUnread(t *testing.T, s *parleytest.Server, cred string, want protocol.UnreadTotal) {
	t.Helper()
	path := "/v1/conversations/unread"
	if key, q, ok := strings.Cut(cred, "?"); ok {
		cred, path = key, path+"?"+q
	}
	var got protocol.UnreadTotal
	mustREST(t, s, "GET", path, cred, "", &got)
	if got != want {
		t.Errorf("unread total = %+v, want %+v", got, want)
	}
}

func convIDs(cs []protocol.Conversation) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
