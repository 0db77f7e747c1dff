package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// call makes a call frame on conn and decodes the result's body into out;
// it fails the test on an error frame.
func call(t *testing.T, conn *parleytest.Conn, method, path string, body any, out any) {
	t.Helper()
	c := protocol.Call{Method: method, Path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		c.Body = b
	}
	conn.Request(t, protocol.TypeCall, "c", c)
	for {
		f := conn.Next(t, 5*time.Second)
		switch f.Type {
		case protocol.TypeResult:
			var res protocol.CallResult
			if err := json.Unmarshal(f.Data, &res); err != nil {
				t.Fatal(err)
			}
			if out != nil {
				if err := json.Unmarshal(res.Body, out); err != nil {
					t.Fatalf("%s %s: %s: %v", method, path, res.Body, err)
				}
			}
			return
		case protocol.TypeError:
			t.Fatalf("%s %s: %s", method, path, f.Error)
		}
		// Pushes meanwhile are not this test's business.
	}
}

// callErr makes a call frame that must fail with code.
func callErr(t *testing.T, conn *parleytest.Conn, method, path string, body any, code protocol.Code) {
	t.Helper()
	c := protocol.Call{Method: method, Path: path}
	if body != nil {
		b, _ := json.Marshal(body)
		c.Body = b
	}
	conn.Request(t, protocol.TypeCall, "e", c)
	for {
		f := conn.Next(t, 5*time.Second)
		switch f.Type {
		case protocol.TypeResult:
			t.Fatalf("%s %s succeeded: %s, want %s", method, path, f.Data, code)
		case protocol.TypeError:
			if f.Error.Code != code {
				t.Fatalf("%s %s: %s, want %s", method, path, f.Error, code)
			}
			return
		}
	}
}

// reply skips pushes until the reply to a request and returns it.
func reply(t *testing.T, conn *parleytest.Conn) protocol.Frame {
	t.Helper()
	for {
		if f := conn.Next(t, 5*time.Second); f.ID != "" {
			return f
		}
	}
}

// replyCode checks that the next reply on conn is an error with code.
func replyCode(t *testing.T, conn *parleytest.Conn, code protocol.Code) {
	t.Helper()
	if f := reply(t, conn); f.Error == nil || f.Error.Code != code {
		t.Fatalf("got %s frame %s %v, want error %s", f.Type, f.Data, f.Error, code)
	}
}

// nextEvent skips frames until a group event message and returns it.
func nextEvent(t *testing.T, conn *parleytest.Conn) (protocol.Message, protocol.GroupEvent) {
	t.Helper()
	for {
		f := conn.Next(t, 5*time.Second)
		if f.Type != protocol.TypeMessage {
			continue
		}
		var m protocol.Message
		var ev protocol.GroupEvent
		if err := json.Unmarshal(f.Data, &m); err != nil {
			t.Fatal(err)
		}
		if m.ContentType != protocol.GroupEventType {
			continue
		}
		if err := json.Unmarshal(m.Content, &ev); err != nil {
			t.Fatal(err)
		}
		return m, ev
	}
}

// TestGroupLifeOverWebSocket runs a group's life from its members' devices,
// with call frames: a user creates it, invites, mutes, hands it over, takes
// join requests and dismisses it; every change is an event message, and the
// roster and the users' group lists sync by version.
func TestGroupLifeOverWebSocket(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	olga, _ := parleytest.Dial(t, s.WSURL, s.User(t, "olga", "web", "o1"))
	mia, _ := parleytest.Dial(t, s.WSURL, s.User(t, "mia", "web", "m1"))
	max, _ := parleytest.Dial(t, s.WSURL, s.User(t, "max", "web", "x1"))
	nina, _ := parleytest.Dial(t, s.WSURL, s.User(t, "nina", "web", "n1"))

	var g protocol.Group
	call(t, olga, "POST", "/v1/groups", protocol.NewGroup{ID: "club", Name: "Book club", Members: []string{"mia"}, Extra: json.RawMessage(`{"topic": "novels"}`)}, &g)
	if g.Owner != "olga" || g.Role != protocol.RoleOwner || g.Members != 2 || g.JoinPolicy != protocol.JoinApproval || string(g.Extra) != `{"topic":"novels"}` {
		t.Fatalf("created %+v", g)
	}
	if m, ev := nextEvent(t, mia); m.Seq != 1 || ev.Event != protocol.EventCreated || ev.Actor != "olga" || ev.Name != "Book club" {
		t.Fatalf("creation event %+v %+v", m, ev)
	}

	// The roster, first in full.
	var roster protocol.Delta[protocol.GroupMember]
	call(t, mia, "GET", "/v1/groups/club/members", nil, &roster)
	if len(roster.Items) != 2 || roster.Items[0].User != "mia" || roster.Items[1].Role != protocol.RoleOwner || roster.Resync {
		t.Fatalf("first member sync %+v", roster)
	}
	v0 := roster.Version

	// Mia, a member, invites max (the invite policy is "members").
	var added protocol.AddedMembers
	call(t, mia, "POST", "/v1/groups/club/members", protocol.MemberChange{Users: []string{"max"}}, &added)
	if len(added.Added) != 1 || added.Added[0].User != "max" || added.Added[0].Role != protocol.RoleMember {
		t.Fatalf("added %+v", added)
	}
	if _, ev := nextEvent(t, max); ev.Event != protocol.EventJoined || ev.Actor != "mia" || !slices.Equal(ev.Users, []string{"max"}) {
		t.Fatalf("join event %+v", ev)
	}

	// Olga makes mia an admin; mia mutes max; max cannot post until unmuted.
	call(t, olga, "PATCH", "/v1/groups/club/members/mia", protocol.MemberUpdate{Role: ptr(protocol.RoleAdmin)}, nil)
	call(t, mia, "PATCH", "/v1/groups/club/members/max", protocol.MemberUpdate{MutedUntil: ptr(int64(-1))}, nil)
	max.Request(t, protocol.TypeSend, "s1", post("g:club", "m1", "hello?"))
	replyCode(t, max, protocol.CodeMuted)
	call(t, mia, "PATCH", "/v1/groups/club/members/max", protocol.MemberUpdate{MutedUntil: ptr(int64(0))}, nil)
	max.Request(t, protocol.TypeSend, "s2", post("g:club", "m2", "hello!"))
	if f := reply(t, max); f.Type != protocol.TypeAck {
		t.Fatalf("max unmuted: %s %v", f.Type, f.Error)
	}

	// The whole group muted: members are silent, admins and the owner not.
	call(t, olga, "PATCH", "/v1/groups/club", protocol.GroupUpdate{MuteAll: ptr(true)}, nil)
	max.Request(t, protocol.TypeSend, "s3", post("g:club", "m3", "still here"))
	replyCode(t, max, protocol.CodeMuted)
	mia.Request(t, protocol.TypeSend, "s4", post("g:club", "m4", "admins may"))
	if f := reply(t, mia); f.Type != protocol.TypeAck {
		t.Fatalf("an admin in a muted group: %s %v", f.Type, f.Error)
	}
	call(t, olga, "PATCH", "/v1/groups/club", protocol.GroupUpdate{MuteAll: ptr(false), Name: ptr("Readers")}, nil)

	// Incremental roster sync: only what changed since v0.
	call(t, max, "GET", fmt.Sprintf("/v1/groups/club/members?since=%d", v0), nil, &roster)
	var changed []string
	for _, m := range roster.Items {
		changed = append(changed, m.User+":"+m.Role)
	}
	if strings.Join(changed, ",") != "mia:admin,max:member" || len(roster.Deleted) != 0 {
		t.Fatalf("members since %d: %+v", v0, roster)
	}
	v1 := roster.Version

	// Join requests: nina asks, the managers are told, mia accepts.
	var joined protocol.Joined
	call(t, nina, "POST", "/v1/groups/club/join", protocol.JoinGroup{Message: "may I?"}, &joined)
	if joined.Joined || joined.Request == nil || joined.Request.State != "pending" {
		t.Fatalf("join %+v", joined)
	}
	callErr(t, nina, "POST", "/v1/groups/club/join", protocol.JoinGroup{}, protocol.CodeAlreadyExists)
	var ch protocol.Changed
	for f := olga.Next(t, 5*time.Second); ; f = olga.Next(t, 5*time.Second) {
		if f.Type == protocol.TypeChanged {
			json.Unmarshal(f.Data, &ch)
			if ch.Scope == protocol.ScopeGroupRequests {
				break
			}
		}
	}
	if ch.ID != "club" || ch.Version == 0 {
		t.Fatalf("changed push %+v", ch)
	}
	var reqs protocol.JoinRequests
	call(t, mia, "GET", "/v1/groups/club/requests", nil, &reqs)
	if len(reqs.Requests) != 1 || reqs.Requests[0].User != "nina" || reqs.Requests[0].Message != "may I?" {
		t.Fatalf("requests %+v", reqs)
	}
	call(t, mia, "POST", "/v1/groups/club/requests/nina/accept", nil, nil)
	var cv protocol.Conversation
	nina.Expect(t, protocol.TypeConversation, &cv)
	if cv.ID != "g:club" || cv.Left {
		t.Fatalf("nina's conversation push %+v", cv)
	}
	if _, ev := nextEvent(t, nina); ev.Event != protocol.EventJoined || ev.Actor != "mia" {
		t.Fatalf("nina's first message %+v", ev)
	}

	// Ownership to mia; olga is an admin now and may leave.
	call(t, olga, "POST", "/v1/groups/club/transfer", protocol.Transfer{To: "mia"}, &g)
	if g.Owner != "mia" || g.Role != protocol.RoleAdmin {
		t.Fatalf("after transfer %+v", g)
	}
	call(t, olga, "DELETE", "/v1/groups/club/members/olga", nil, nil)
	call(t, max, "GET", fmt.Sprintf("/v1/groups/club/members?since=%d", v1), nil, &roster)
	if !slices.Equal(roster.Deleted, []string{"olga"}) || len(roster.Items) != 2 { // mia the owner, nina
		t.Fatalf("members since %d: %+v", v1, roster)
	}
	if roster.Resync {
		t.Fatal("resync without cause")
	}
	var gs protocol.Delta[protocol.UserGroup]
	call(t, olga, "GET", "/v1/me/groups?since=0", nil, &gs)
	if len(gs.Items) != 0 {
		t.Fatalf("olga's groups after leaving %+v", gs)
	}
	call(t, max, "GET", "/v1/me/groups", nil, &gs)
	if len(gs.Items) != 1 || gs.Items[0].Group.Name != "Readers" || gs.Items[0].Member.Role != protocol.RoleMember {
		t.Fatalf("max's groups %+v", gs)
	}
	vMax := gs.Version

	// A version from the future: resync.
	call(t, max, "GET", "/v1/groups/club/members?since=999999", nil, &roster)
	if !roster.Resync || len(roster.Items) != 3 {
		t.Fatalf("resync %+v", roster)
	}

	// Mia dismisses it: the event is everyone's last message, and the
	// group is gone from their lists.
	call(t, mia, "DELETE", "/v1/groups/club", nil, nil)
	if _, ev := nextEvent(t, max); ev.Event != protocol.EventDismissed {
		t.Fatalf("max's last event %+v", ev)
	}
	call(t, max, "GET", fmt.Sprintf("/v1/me/groups?since=%d", vMax), nil, &gs)
	if !slices.Equal(gs.Deleted, []string{"club"}) {
		t.Fatalf("max's groups after the dismissal %+v", gs)
	}
	max.Request(t, protocol.TypeSend, "s5", post("g:club", "m5", "anyone?"))
	replyCode(t, max, protocol.CodeForbidden)
	if st, body := doHTTP(t, s, "POST", "/v1/messages", parleytest.AdminKey, `{"conv":"g:club","ctype":"text","content":{"text":"notice"}}`); st != 403 {
		t.Errorf("system posting to a dismissed group: %d %s, want 403", st, body)
	}
	call(t, max, "GET", "/v1/groups/club", nil, &g)
	if !g.Dismissed {
		t.Fatalf("a former member's view of the dismissed group %+v", g)
	}
	status, _ := doHTTP(t, s, "GET", "/v1/groups/club", s.User(t, "zed", "web", "z1"), "")
	if status != 404 {
		t.Errorf("a stranger's view of a dismissed group: %d, want 404", status)
	}
}

// TestGroupManagementBadInput checks every refusal a group change can meet,
// over REST and, for users, over their WebSocket connections: a stable
// code, and nothing changed.
func TestGroupManagementBadInput(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	olga := s.User(t, "olga", "web", "w1")
	mia := s.User(t, "mia", "web", "w1")
	s.User(t, "max", "web", "w1")
	s.User(t, "otto", "web", "w1")
	mustDo(t, s, "POST", "/v1/groups", parleytest.AdminKey, `{"id":"small","owner":"olga","members":["mia"],"max_members":2,"join_policy":"free"}`, 201)
	mustDo(t, s, "POST", "/v1/groups", olga, `{"id":"closed","members":["mia"],"join_policy":"invite"}`, 201)
	long := strings.Repeat("x", 200)
	for _, tt := range []struct {
		name, method, path, cred, body string
		status                         int
		code                           protocol.Code
	}{
		{"invalid group id", "GET", "/v1/groups/a:b", olga, "", 400, protocol.CodeInvalidArgument},
		{"unknown group", "PATCH", "/v1/groups/none", olga, `{"name":"x"}`, 404, protocol.CodeNotFound},
		{"name too long", "PATCH", "/v1/groups/small", olga, `{"name":"` + long + `"}`, 400, protocol.CodeInvalidArgument},
		{"extra too large", "PATCH", "/v1/groups/small", olga, `{"extra":"` + strings.Repeat("x", 5000) + `"}`, 400, protocol.CodeInvalidArgument},
		{"bad join policy", "PATCH", "/v1/groups/small", olga, `{"join_policy":"maybe"}`, 400, protocol.CodeInvalidArgument},
		{"unknown field", "PATCH", "/v1/groups/small", olga, `{"colour":"red"}`, 400, protocol.CodeInvalidArgument},
		{"invite an unknown user", "POST", "/v1/groups/small/members", olga, `{"users":["nobody"]}`, 404, protocol.CodeNotFound},
		{"invite an invalid id", "POST", "/v1/groups/small/members", olga, `{"users":["a b"]}`, 400, protocol.CodeInvalidArgument},
		{"invite nobody", "POST", "/v1/groups/small/members", olga, `{"users":[]}`, 400, protocol.CodeInvalidArgument},
		{"invite into a full group", "POST", "/v1/groups/small/members", olga, `{"users":["max"]}`, 409, protocol.CodeGroupFull},
		{"join a full group", "POST", "/v1/groups/small/join", s.User(t, "max", "web", "w2"), `{}`, 409, protocol.CodeGroupFull},
		{"join an invite-only group", "POST", "/v1/groups/closed/join", s.User(t, "otto", "web", "w2"), `{}`, 403, protocol.CodeForbidden},
		{"create a group larger than its maximum", "POST", "/v1/groups", olga, `{"id":"big","members":["mia","max"],"max_members":2}`, 409, protocol.CodeGroupFull},
		{"max_members above the server's", "POST", "/v1/groups", olga, `{"id":"huge","max_members":20000}`, 400, protocol.CodeInvalidArgument},
		{"create an existing group", "POST", "/v1/groups", olga, `{"id":"small"}`, 409, protocol.CodeAlreadyExists},
		{"kick the owner", "DELETE", "/v1/groups/small/members/olga", parleytest.AdminKey, "", 403, protocol.CodeForbidden},
		{"kick a non-member", "DELETE", "/v1/groups/small/members/otto", olga, "", 404, protocol.CodeNotFound},
		{"transfer to a non-member", "POST", "/v1/groups/small/transfer", olga, `{"to":"otto"}`, 404, protocol.CodeNotFound},
		{"transfer to oneself", "POST", "/v1/groups/small/transfer", olga, `{"to":"olga"}`, 400, protocol.CodeInvalidArgument},
		{"make someone owner by role", "PATCH", "/v1/groups/small/members/mia", olga, `{"role":"owner"}`, 400, protocol.CodeInvalidArgument},
		{"mute until the past", "PATCH", "/v1/groups/small/members/mia", olga, `{"muted_until":1000}`, 400, protocol.CodeInvalidArgument},
		{"nickname too long", "PATCH", "/v1/groups/small/members/mia", mia, `{"nickname":"` + long + `"}`, 400, protocol.CodeInvalidArgument},
		{"join message too long", "POST", "/v1/groups/closed/join", s.User(t, "max", "web", "w3"), `{"message":"` + strings.Repeat("y", 300) + `"}`, 400, protocol.CodeInvalidArgument},
		{"answer a request nobody made", "POST", "/v1/groups/small/requests/otto/accept", olga, "", 404, protocol.CodeNotFound},
		{"negative since", "GET", "/v1/groups/small/members?since=-1", olga, "", 400, protocol.CodeInvalidArgument},
		{"negative limit", "GET", "/v1/groups/small/members?since=1&limit=-1", olga, "", 400, protocol.CodeInvalidArgument},
		{"negative since of one's groups", "GET", "/v1/me/groups?since=-1", olga, "", 400, protocol.CodeInvalidArgument},
		{"a forged group event", "POST", "/v1/messages", olga, `{"conv":"g:small","cid":"f","ctype":"group.event","content":{"event":"dismissed","actor":"system"}}`, 400, protocol.CodeInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before protocol.Group
			getJSON(t, s, "/v1/groups/small", &before)
			status, body := doHTTP(t, s, tt.method, tt.path, tt.cred, tt.body)
			var e protocol.ErrorBody
			if status != tt.status || json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Code != tt.code {
				t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, status, body, tt.status, tt.code)
			}
			if tt.cred != parleytest.AdminKey {
				// The same from the user's device, with a call frame.
				conn, _ := parleytest.Dial(t, s.WSURL, tt.cred)
				c := protocol.Call{Method: tt.method, Path: tt.path}
				if tt.body != "" {
					c.Body = json.RawMessage(tt.body)
				}
				conn.Request(t, protocol.TypeCall, "bad", c)
				if f := reply(t, conn); f.Error == nil || f.Error.Code != tt.code {
					t.Errorf("call %s %s: %s %s %v, want %s", tt.method, tt.path, f.Type, f.Data, f.Error, tt.code)
				}
				conn.Close()
			}
			var after protocol.Group
			getJSON(t, s, "/v1/groups/small", &after)
			if after.Version != before.Version || after.Members != before.Members || after.MaxSeq != before.MaxSeq {
				t.Errorf("a refused request changed the group: %+v, then %+v", before, after)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestJoinRequestAnswerReachesRequester: a requester is told when their
// request is answered, and may read their own request (and no one else's).
func TestJoinRequestAnswerReachesRequester(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	olga, _ := parleytest.Dial(t, s.WSURL, s.User(t, "olga", "web", "o1"))
	nina, _ := parleytest.Dial(t, s.WSURL, s.User(t, "nina", "web", "n1"))
	ninaPhone, _ := parleytest.Dial(t, s.WSURL, s.User(t, "nina", "ios", "n2"))
	otto, _ := parleytest.Dial(t, s.WSURL, s.User(t, "otto", "web", "t1"))
	call(t, olga, "POST", "/v1/groups", protocol.NewGroup{ID: "door", Name: "Door"}, nil)

	waitRequestsChanged := func(who *parleytest.Conn) {
		t.Helper()
		if ch := expectChanged(t, who, protocol.ScopeGroupRequests); ch.ID != "door" {
			t.Fatalf("changed push %+v", ch)
		}
	}
	own := func(who *parleytest.Conn) []protocol.JoinRequest {
		t.Helper()
		var reqs protocol.JoinRequests
		call(t, who, "GET", "/v1/groups/door/requests", nil, &reqs)
		return reqs.Requests
	}

	call(t, nina, "POST", "/v1/groups/door/join", protocol.JoinGroup{Message: "knock"}, nil)
	waitRequestsChanged(ninaPhone) // her other devices learn of it too
	if rs := own(nina); len(rs) != 1 || rs[0].User != "nina" || rs[0].State != "pending" || rs[0].Message != "knock" {
		t.Fatalf("nina's own requests %+v", rs)
	}
	if rs := own(otto); rs == nil || len(rs) != 0 {
		t.Fatalf("an outsider who asked nothing sees %+v, want an empty list", rs)
	}
	call(t, otto, "POST", "/v1/groups/door/join", protocol.JoinGroup{}, nil)
	if rs := own(otto); len(rs) != 1 || rs[0].User != "otto" {
		t.Fatalf("otto sees %+v, want his request alone", rs)
	}
	if rs := own(olga); len(rs) != 2 {
		t.Fatalf("the owner sees %+v, want both requests", rs)
	}

	call(t, olga, "POST", "/v1/groups/door/requests/nina/refuse", nil, nil)
	waitRequestsChanged(ninaPhone)
	if rs := own(nina); len(rs) != 1 || rs[0].State != "refused" {
		t.Fatalf("nina's request after the refusal %+v", rs)
	}
	call(t, nina, "POST", "/v1/groups/door/join", protocol.JoinGroup{Message: "again"}, nil)
	if rs := own(nina); len(rs) != 1 || rs[0].State != "pending" || rs[0].Message != "again" {
		t.Fatalf("nina's request after asking again %+v", rs)
	}
}
