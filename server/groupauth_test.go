package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"

	"github.com/parleyim/parley/parleytest"
)

// The roles of the permission table, as the columns of docs/protocol.md's
// table in "Groups".
const (
	asOutsider = iota
	asMember
	asAdmin
	asOwner
	asApp
)

var roleNames = []string{"outsider", "member", "admin", "owner", "app admin"}

// TestGroupPermissionTable tries every action that changes a group or reads
// its members or history as each role, on a fresh group each time, and
// checks the status against the table in docs/protocol.md: users over
// their WebSocket connections, the app server over REST. In every group
// olga owns, adam and ada are admins, mia and max are members, otto is an
// outsider and nina has asked to join. The member actor is max, the admin
// actor adam.
func TestGroupPermissionTable(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	tok := map[string]string{}
	for _, u := range []string{"olga", "adam", "ada", "mia", "max", "otto", "nina"} {
		tok[u] = s.User(t, u, "web", "w1")
	}
	// Users act over their WebSocket connections with call frames; the
	// app server over REST with the admin key.
	conns := map[int]*parleytest.Conn{}
	for role, u := range []string{"otto", "max", "adam", "olga"} {
		conns[role], _ = parleytest.Dial(t, s.WSURL, tok[u])
	}
	do := func(t *testing.T, role int, method, path, body string) (int, []byte) {
		if role == asApp {
			return doHTTP(t, s, method, path, parleytest.AdminKey, body)
		}
		c := protocol.Call{Method: method, Path: path}
		if body != "" {
			c.Body = json.RawMessage(body)
		}
		conn := conns[role]
		conn.Request(t, protocol.TypeCall, "t", c)
		f := reply(t, conn)
		if f.Error != nil {
			return f.Error.Code.HTTPStatus(), []byte(f.Error.Error())
		}
		var res protocol.CallResult
		if err := json.Unmarshal(f.Data, &res); err != nil {
			t.Fatal(err)
		}
		return res.Status, res.Body
	}

	n := 0
	newGroup := func(t *testing.T) string {
		n++
		id := fmt.Sprintf("t%d", n)
		mustDo(t, s, "POST", "/v1/groups", tok["olga"], fmt.Sprintf(`{"id":%q,"members":["adam","ada","mia","max"]}`, id), 201)
		for _, a := range []string{"adam", "ada"} {
			mustDo(t, s, "PATCH", "/v1/groups/"+id+"/members/"+a, tok["olga"], `{"role":"admin"}`, 200)
		}
		mustDo(t, s, "POST", "/v1/groups/"+id+"/join", tok["nina"], `{"message":"hi"}`, 200)
		return id
	}
	future := time.Now().Add(time.Hour).UnixMilli()

	for _, row := range []struct {
		action string
		method string
		path   string // %s is the group id
		body   string
		want   [5]int // status by role; 0: not applicable
	}{
		{"view info", "GET", "/v1/groups/%s", "", [5]int{200, 200, 200, 200, 200}},
		{"sync members", "GET", "/v1/groups/%s/members?since=0", "", [5]int{403, 200, 200, 200, 200}},
		{"read history", "GET", "/v1/conversations/g:%s/messages", "", [5]int{404, 200, 200, 200, 0}},
		{"send", "POST", "/v1/messages", `{"conv":"g:%s","cid":"x","ctype":"text","content":{}}`, [5]int{404, 200, 200, 200, 0}},
		{"update info", "PATCH", "/v1/groups/%s", `{"name":"New","announcement":"read me"}`, [5]int{403, 403, 200, 200, 200}},
		{"change policies", "PATCH", "/v1/groups/%s", `{"join_policy":"free"}`, [5]int{403, 403, 403, 200, 200}},
		{"change max size", "PATCH", "/v1/groups/%s", `{"max_members":50}`, [5]int{403, 403, 403, 403, 200}},
		{"mute the group", "PATCH", "/v1/groups/%s", `{"mute_all":true}`, [5]int{403, 403, 200, 200, 200}},
		{"invite", "POST", "/v1/groups/%s/members", `{"users":["otto"]}`, [5]int{403, 200, 200, 200, 200}},
		{"join", "POST", "/v1/groups/%s/join", `{}`, [5]int{200, 409, 409, 409, 400}},
		{"list join requests (others see their own)", "GET", "/v1/groups/%s/requests", "", [5]int{200, 200, 200, 200, 200}},
		{"accept a join request", "POST", "/v1/groups/%s/requests/nina/accept", "", [5]int{403, 403, 200, 200, 200}},
		{"refuse a join request", "POST", "/v1/groups/%s/requests/nina/refuse", "", [5]int{403, 403, 200, 200, 200}},
		{"remove a member", "DELETE", "/v1/groups/%s/members/mia", "", [5]int{403, 403, 204, 204, 204}},
		{"remove an admin", "DELETE", "/v1/groups/%s/members/ada", "", [5]int{403, 403, 403, 204, 204}},
		{"remove the owner", "DELETE", "/v1/groups/%s/members/olga", "", [5]int{403, 403, 403, 0, 403}},
		{"make an admin", "PATCH", "/v1/groups/%s/members/mia", `{"role":"admin"}`, [5]int{403, 403, 403, 200, 200}},
		{"transfer ownership", "POST", "/v1/groups/%s/transfer", `{"to":"mia"}`, [5]int{403, 403, 403, 200, 200}},
		{"mute a member", "PATCH", "/v1/groups/%s/members/mia", fmt.Sprintf(`{"muted_until":%d}`, future), [5]int{403, 403, 200, 200, 200}},
		{"mute an admin", "PATCH", "/v1/groups/%s/members/ada", `{"muted_until":-1}`, [5]int{403, 403, 403, 200, 200}},
		{"set another's nickname", "PATCH", "/v1/groups/%s/members/mia", `{"nickname":"M"}`, [5]int{403, 403, 200, 200, 200}},
		{"dismiss", "DELETE", "/v1/groups/%s", "", [5]int{403, 403, 403, 204, 204}},
	} {
		for role, want := range row.want {
			if want == 0 {
				continue
			}
			t.Run(row.action+"/"+roleNames[role], func(t *testing.T) {
				id := newGroup(t)
				path, body := row.path, row.body
				if strings.Contains(path, "%s") {
					path = fmt.Sprintf(path, id)
				}
				if strings.Contains(body, "%s") {
					body = fmt.Sprintf(body, id)
				}
				status, resp := do(t, role, row.method, path, body)
				if status != want {
					t.Errorf("%s %s as %s: %d %s, want %d", row.method, path, roleNames[role], status, resp, want)
				}
				if role == asOutsider && row.action == "view info" {
					var g map[string]any
					json.Unmarshal(resp, &g)
					for _, private := range []string{"announcement", "owner", "max_seq", "role"} {
						if _, ok := g[private]; ok {
							t.Errorf("an outsider sees %q: %s", private, resp)
						}
					}
				}
			})
		}
	}

	// Acting on oneself.
	id := newGroup(t)
	mustDo(t, s, "PATCH", "/v1/groups/"+id+"/members/max", tok["max"], `{"nickname":"Maxi"}`, 200)
	mustDo(t, s, "PATCH", "/v1/groups/"+id+"/members/max", tok["max"], `{"muted_until":-1}`, 403)
	mustDo(t, s, "PATCH", "/v1/groups/"+id+"/members/adam", tok["adam"], `{"role":"member"}`, 403)
	mustDo(t, s, "DELETE", "/v1/groups/"+id+"/members/olga", tok["olga"], "", 403) // the owner cannot quit
	mustDo(t, s, "DELETE", "/v1/groups/"+id+"/members/otto", tok["otto"], "", 404) // not a member
	mustDo(t, s, "DELETE", "/v1/groups/"+id+"/members/max", tok["max"], "", 204)   // a member quits
	// A departed member reads nothing after leaving, and nothing of the roster.
	mustDo(t, s, "GET", "/v1/groups/"+id+"/members", tok["max"], "", 403)
	mustDo(t, s, "POST", "/v1/messages", tok["max"], `{"conv":"g:`+id+`","cid":"y","ctype":"text","content":{}}`, 403)
}

// mustDo makes a REST request and checks its status.
func mustDo(t *testing.T, s *parleytest.Server, method, path, cred, body string, want int) []byte {
	t.Helper()
	status, resp := doHTTP(t, s, method, path, cred, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, resp, want)
	}
	return resp
}
