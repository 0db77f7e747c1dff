package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// rest makes a REST request with cred and decodes a successful reply into
// out (when not nil). It fails the test unless the status is want.
func restWant(t *testing.T, s *parleytest.Server, cred, method, path, body string, want int, out any) {
	t.Helper()
	status, raw := doHTTP(t, s, method, path, cred, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// restError makes a REST request that must fail with code.
func restError(t *testing.T, s *parleytest.Server, cred, method, path, body string, code protocol.Code) {
	t.Helper()
	status, raw := doHTTP(t, s, method, path, cred, body)
	var eb protocol.ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil || eb.Error.Code != code || status != code.HTTPStatus() {
		t.Fatalf("%s %s %s: %d %s, want %d %s", method, path, body, status, raw, code.HTTPStatus(), code)
	}
}

// expectChanged reads the next frame of c, which must be a changed push
// of scope, and returns it.
func expectChanged(t *testing.T, c *parleytest.Conn, scope string) protocol.Changed {
	t.Helper()
	var ch protocol.Changed
	c.Expect(t, protocol.TypeChanged, &ch)
	if ch.Scope != scope || ch.Version <= 0 {
		t.Fatalf("changed push %+v, want scope %s", ch, scope)
	}
	return ch
}

// expectScopes reads as many changed pushes as scopes and checks that they
// are those scopes, in any order.
func expectScopes(t *testing.T, c *parleytest.Conn, scopes ...string) {
	t.Helper()
	var got []string
	for range scopes {
		var ch protocol.Changed
		c.Expect(t, protocol.TypeChanged, &ch)
		got = append(got, ch.Scope)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(scopes))
	if !slices.Equal(got, want) {
		t.Fatalf("changed pushes for %v, want %v", got, want)
	}
}

func TestFriendRequestAcceptAndDelete(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice, bob := s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	a, _ := parleytest.Dial(t, s.WSURL, alice)
	b, _ := parleytest.Dial(t, s.WSURL, bob)
	b2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "ios", "b2"))

	var req protocol.FriendRequest
	restWant(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob","message":"hi, it's Alice"}`, http.StatusCreated, &req)
	if req.From != "alice" || req.To != "bob" || req.State != protocol.RequestPending || req.Message != "hi, it's Alice" || req.Version <= 0 {
		t.Fatalf("request = %+v", req)
	}
	// Both sides' devices hear, each with the new version.
	for _, c := range []*parleytest.Conn{a, b, b2} {
		if ch := expectChanged(t, c, protocol.ScopeFriendRequests); ch.Version != req.Version {
			t.Fatalf("pushed version %d, want %d", ch.Version, req.Version)
		}
	}
	restError(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, protocol.CodeAlreadyExists)

	var incoming protocol.Delta[protocol.FriendRequest]
	restWant(t, s, bob, "GET", "/v1/friends/requests", "", http.StatusOK, &incoming)
	if len(incoming.Items) != 1 || incoming.Items[0].From != "alice" || incoming.Items[0].State != protocol.RequestPending || incoming.Version != req.Version {
		t.Fatalf("bob's requests = %+v", incoming)
	}
	var friends protocol.Delta[protocol.Friend]
	restWant(t, s, alice, "GET", "/v1/friends", "", http.StatusOK, &friends)
	if len(friends.Items) != 0 {
		t.Fatalf("alice has friends before accepting: %+v", friends)
	}
	before := friends.Version

	var f protocol.Friend
	restWant(t, s, bob, "POST", "/v1/friends/requests/alice/accept", "", http.StatusOK, &f)
	if f.User != "alice" {
		t.Fatalf("accept = %+v", f)
	}
	for _, c := range []*parleytest.Conn{a, b, b2} {
		expectScopes(t, c, protocol.ScopeFriendRequests, protocol.ScopeFriends)
	}
	restError(t, s, bob, "POST", "/v1/friends/requests/alice/accept", "", protocol.CodeNotFound) // accepted already
	restError(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, protocol.CodeAlreadyExists)
	restWant(t, s, alice, "GET", "/v1/friends/bob", "", http.StatusOK, &f)
	restWant(t, s, bob, "GET", "/v1/friends/alice", "", http.StatusOK, &f)
	restWant(t, s, alice, "GET", fmt.Sprintf("/v1/friends?since=%d", before), "", http.StatusOK, &friends)
	if len(friends.Items) != 1 || friends.Items[0].User != "bob" || len(friends.Deleted) != 0 {
		t.Fatalf("alice's friends since %d = %+v", before, friends)
	}
	restWant(t, s, alice, "GET", "/v1/friends/requests", "", http.StatusOK, &incoming)
	if len(incoming.Items) != 1 || incoming.Items[0].State != protocol.RequestAccepted {
		t.Fatalf("alice's requests after the accept = %+v", incoming)
	}

	// A remark and extra are alice's alone: only her devices hear.
	restWant(t, s, alice, "PATCH", "/v1/friends/bob", `{"remark":"Bobby","extra":{"met": "2019"}}`, http.StatusOK, &f)
	if f.Remark != "Bobby" || string(f.Extra) != `{"met":"2019"}` {
		t.Fatalf("PATCH = %+v", f)
	}
	expectChanged(t, a, protocol.ScopeFriends)
	b.Quiet(t, 100*time.Millisecond)
	var bobs protocol.Friend
	restWant(t, s, bob, "GET", "/v1/friends/alice", "", http.StatusOK, &bobs)
	if bobs.Remark != "" || bobs.Extra != nil {
		t.Fatalf("bob's entry changed with alice's remark: %+v", bobs)
	}
	restWant(t, s, alice, "PATCH", "/v1/friends/bob", `{"remark":"B"}`, http.StatusOK, &f)
	if f.Remark != "B" || string(f.Extra) != `{"met":"2019"}` {
		t.Fatalf("a PATCH of the remark alone = %+v", f)
	}
	expectChanged(t, a, protocol.ScopeFriends)

	// Deleting ends it on both sides, and an incremental sync reports it.
	restWant(t, s, alice, "GET", "/v1/friends", "", http.StatusOK, &friends)
	held := friends.Version
	restWant(t, s, bob, "DELETE", "/v1/friends/alice", "", http.StatusNoContent, nil)
	for _, c := range []*parleytest.Conn{a, b, b2} {
		expectChanged(t, c, protocol.ScopeFriends)
	}
	restError(t, s, alice, "GET", "/v1/friends/bob", "", protocol.CodeNotFound)
	restError(t, s, bob, "GET", "/v1/friends/alice", "", protocol.CodeNotFound)
	restError(t, s, bob, "DELETE", "/v1/friends/alice", "", protocol.CodeNotFound)
	restWant(t, s, alice, "GET", fmt.Sprintf("/v1/friends?since=%d", held), "", http.StatusOK, &friends)
	if len(friends.Items) != 0 || !slices.Equal(friends.Deleted, []string{"bob"}) || friends.Version <= held {
		t.Fatalf("alice's friends since %d = %+v, want bob deleted", held, friends)
	}
	var full protocol.Delta[protocol.Friend]
	restWant(t, s, alice, "GET", "/v1/friends?since=0", "", http.StatusOK, &full)
	if len(full.Items) != 0 || len(full.Deleted) != 0 {
		t.Fatalf("a full sync = %+v, want nothing and no deleted", full)
	}
	// They may ask again.
	restWant(t, s, bob, "POST", "/v1/friends/requests", `{"to":"alice"}`, http.StatusCreated, &req)
	if req.State != protocol.RequestPending {
		t.Fatalf("a new request after a delete = %+v", req)
	}
}

func TestMutualRequestsMakeFriends(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice, bob := s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	var req protocol.FriendRequest
	restWant(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, http.StatusCreated, &req)
	restWant(t, s, bob, "POST", "/v1/friends/requests", `{"to":"alice","message":"you too"}`, http.StatusCreated, &req)
	if req.State != protocol.RequestAccepted {
		t.Fatalf("the second request = %+v, want accepted", req)
	}
	var f protocol.Friend
	restWant(t, s, alice, "GET", "/v1/friends/bob", "", http.StatusOK, &f)
	restWant(t, s, bob, "GET", "/v1/friends/alice", "", http.StatusOK, &f)
	var reqs protocol.Delta[protocol.FriendRequest]
	restWant(t, s, alice, "GET", "/v1/friends/requests", "", http.StatusOK, &reqs)
	if len(reqs.Items) != 2 || reqs.Items[0].State != protocol.RequestAccepted || reqs.Items[1].State != protocol.RequestAccepted {
		t.Fatalf("requests = %+v, want both accepted", reqs)
	}
}

func TestRefusedRequest(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	carol, dave := s.User(t, "carol", "web", "c1"), s.User(t, "dave", "web", "d1")
	c, _ := parleytest.Dial(t, s.WSURL, carol)
	restWant(t, s, carol, "POST", "/v1/friends/requests", `{"to":"dave","message":"hello"}`, http.StatusCreated, nil)
	expectChanged(t, c, protocol.ScopeFriendRequests)
	restWant(t, s, dave, "POST", "/v1/friends/requests/carol/refuse", "", http.StatusNoContent, nil)
	expectChanged(t, c, protocol.ScopeFriendRequests) // the requester learns of it
	var reqs protocol.Delta[protocol.FriendRequest]
	restWant(t, s, carol, "GET", "/v1/friends/requests", "", http.StatusOK, &reqs)
	if len(reqs.Items) != 1 || reqs.Items[0].State != protocol.RequestRefused {
		t.Fatalf("requests = %+v, want refused", reqs)
	}
	restError(t, s, dave, "POST", "/v1/friends/requests/carol/accept", "", protocol.CodeNotFound)
	restError(t, s, dave, "GET", "/v1/friends/carol", "", protocol.CodeNotFound)
	// The requester may try again; the request is pending once more.
	var req protocol.FriendRequest
	restWant(t, s, carol, "POST", "/v1/friends/requests", `{"to":"dave","message":"again"}`, http.StatusCreated, &req)
	if req.State != protocol.RequestPending || req.Message != "again" {
		t.Fatalf("request again = %+v", req)
	}
}

func TestBlocks(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice, bob := s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	a, _ := parleytest.Dial(t, s.WSURL, alice)
	b, _ := parleytest.Dial(t, s.WSURL, bob)

	var blocks protocol.Delta[protocol.Block]
	restWant(t, s, bob, "GET", "/v1/blocks", "", http.StatusOK, &blocks)
	held := blocks.Version
	var bl protocol.Block
	restWant(t, s, bob, "PUT", "/v1/blocks/alice", "", http.StatusOK, &bl)
	if bl.User != "alice" || bl.Version <= held {
		t.Fatalf("block = %+v", bl)
	}
	expectChanged(t, b, protocol.ScopeBlocks)
	a.Quiet(t, 100*time.Millisecond) // the blocked user is not told

	// Blocking again changes nothing.
	var again protocol.Block
	restWant(t, s, bob, "PUT", "/v1/blocks/alice", "", http.StatusOK, &again)
	if again.Version != bl.Version {
		t.Fatalf("second block = %+v, want the first %+v", again, bl)
	}
	b.Quiet(t, 100*time.Millisecond)

	// alice can neither message bob (by to or by conv) nor ask him.
	a.Request(t, protocol.TypeSend, "1", send("bob", "m1", "hi"))
	a.ExpectError(t, protocol.CodeBlocked)
	a.Request(t, protocol.TypeSend, "2", protocol.Send{ClientID: "m2", Conversation: "d:alice:bob", ContentType: "text", Content: json.RawMessage(`{}`)})
	a.ExpectError(t, protocol.CodeBlocked)
	restError(t, s, alice, "POST", "/v1/messages", `{"to":"bob","ctype":"text","content":{}}`, protocol.CodeBlocked)
	restError(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, protocol.CodeBlocked)
	// Only the direction blocked: bob may message alice, and the system
	// account reaches bob.
	b.Request(t, protocol.TypeSend, "3", send("alice", "m3", "hi"))
	b.Expect(t, protocol.TypeAck, nil)
	a.Expect(t, protocol.TypeMessage, nil)
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/messages", `{"to":"bob","ctype":"text","content":{"text":"notice"}}`, http.StatusOK, nil)
	b.Expect(t, protocol.TypeMessage, nil)
	b.Quiet(t, 100*time.Millisecond) // nothing of alice's came through
	// A block is about one-to-one messages: in a group they share, alice
	// still talks.
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/groups", `{"id":"team","members":["alice","bob"]}`, http.StatusCreated, nil)
	for _, conn := range []*parleytest.Conn{a, b} {
		conn.Expect(t, protocol.TypeConversation, nil)
		conn.Expect(t, protocol.TypeChanged, nil)
		expectEvent(t, conn, 1, protocol.EventCreated)
	}
	a.Request(t, protocol.TypeSend, "g", protocol.Send{ClientID: "g1", Conversation: "g:team", ContentType: "text", Content: json.RawMessage(`{}`)})
	a.Expect(t, protocol.TypeAck, nil)
	b.Expect(t, protocol.TypeMessage, nil)

	restWant(t, s, bob, "GET", fmt.Sprintf("/v1/blocks?since=%d", held), "", http.StatusOK, &blocks)
	if len(blocks.Items) != 1 || blocks.Items[0].User != "alice" || len(blocks.Deleted) != 0 {
		t.Fatalf("blocks = %+v", blocks)
	}
	held = blocks.Version
	restWant(t, s, bob, "DELETE", "/v1/blocks/alice", "", http.StatusNoContent, nil)
	expectChanged(t, b, protocol.ScopeBlocks)
	a.Quiet(t, 100*time.Millisecond)
	restError(t, s, bob, "DELETE", "/v1/blocks/alice", "", protocol.CodeNotFound)
	restWant(t, s, bob, "GET", fmt.Sprintf("/v1/blocks?since=%d", held), "", http.StatusOK, &blocks)
	if len(blocks.Items) != 0 || !slices.Equal(blocks.Deleted, []string{"alice"}) {
		t.Fatalf("blocks after unblocking = %+v, want alice deleted", blocks)
	}
	a.Request(t, protocol.TypeSend, "4", send("bob", "m4", "hi again"))
	a.Expect(t, protocol.TypeAck, nil)
	restWant(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, http.StatusCreated, nil)
}

// TestPoliciesAndRestart checks friend_required and friend_auto_accept,
// and that blocks and friendships kept in memory come back after a
// restart.
func TestPoliciesAndRestart(t *testing.T) {
	cfg := server.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminKey = parleytest.AdminKey
	cfg.StoreSync = "normal"
	cfg.ShutdownDrain = 0
	cfg.FriendRequired = true
	s := parleytest.Start(t, cfg)
	alice, bob := s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	s.User(t, "carol", "web", "c1")
	msg := `{"to":"bob","ctype":"text","content":{"text":"hi"}}`

	restError(t, s, alice, "POST", "/v1/messages", msg, protocol.CodeNotFriends)
	restError(t, s, alice, "POST", "/v1/messages", `{"conv":"d:alice:bob","ctype":"text","content":{}}`, protocol.CodeNotFriends)
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/messages", msg, http.StatusOK, nil) // from system: exempt
	restWant(t, s, bob, "POST", "/v1/messages", `{"to":"system","ctype":"text","content":{}}`, http.StatusOK, nil)
	restWant(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, http.StatusCreated, nil)
	restError(t, s, alice, "POST", "/v1/messages", msg, protocol.CodeNotFriends) // pending is not friends
	restWant(t, s, bob, "POST", "/v1/friends/requests/alice/accept", "", http.StatusOK, nil)
	restWant(t, s, alice, "POST", "/v1/messages", msg, http.StatusOK, nil)
	restWant(t, s, bob, "POST", "/v1/messages", `{"to":"alice","ctype":"text","content":{}}`, http.StatusOK, nil)
	restWant(t, s, bob, "PUT", "/v1/blocks/carol", "", http.StatusOK, nil)

	// After a restart the sets are loaded from the store.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s = parleytest.Start(t, cfg)
	alice, bob = s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	carol := s.User(t, "carol", "web", "c1")
	restWant(t, s, alice, "POST", "/v1/messages", msg, http.StatusOK, nil)
	restError(t, s, carol, "POST", "/v1/messages", msg, protocol.CodeBlocked) // blocked comes before not_friends
	restWant(t, s, alice, "DELETE", "/v1/friends/bob", "", http.StatusNoContent, nil)
	restError(t, s, alice, "POST", "/v1/messages", msg, protocol.CodeNotFriends)
	restError(t, s, bob, "POST", "/v1/messages", `{"to":"alice","ctype":"text","content":{}}`, protocol.CodeNotFriends)

	// Auto-accept: a request is a friendship at once.
	auto := parleytest.NewServer(t, func(c *server.Config) { c.FriendAutoAccept = true })
	alice, bob = auto.User(t, "alice", "web", "a1"), auto.User(t, "bob", "web", "b1")
	b, _ := parleytest.Dial(t, auto.WSURL, bob)
	var req protocol.FriendRequest
	restWant(t, auto, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, http.StatusCreated, &req)
	if req.State != protocol.RequestAccepted {
		t.Fatalf("request with auto-accept = %+v", req)
	}
	expectScopes(t, b, protocol.ScopeFriendRequests, protocol.ScopeFriends)
	var f protocol.Friend
	restWant(t, auto, bob, "GET", "/v1/friends/alice", "", http.StatusOK, &f)

	// Without friend_required (the default) strangers message each other.
	restWant(t, auto, auto.User(t, "carol", "web", "c1"), "POST", "/v1/messages", `{"to":"alice","ctype":"text","content":{}}`, http.StatusOK, nil)
}

func TestFriendImport(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := s.User(t, "alice", "web", "a1")
	a, _ := parleytest.Dial(t, s.WSURL, alice)
	bob := s.User(t, "bob", "web", "b1")
	s.User(t, "carol", "web", "c1")
	restWant(t, s, bob, "POST", "/v1/friends/requests", `{"to":"alice"}`, http.StatusCreated, nil)
	expectChanged(t, a, protocol.ScopeFriendRequests)

	body := `{"friendships":[{"user":"alice","friend":"bob"},{"user":"alice","friend":"carol"}]}`
	var res protocol.FriendImportResult
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/friends/import", body, http.StatusOK, &res)
	if res.Added != 2 || res.Existing != 0 {
		t.Fatalf("import = %+v", res)
	}
	expectScopes(t, a, protocol.ScopeFriendRequests, protocol.ScopeFriends)
	var friends protocol.Delta[protocol.Friend]
	restWant(t, s, alice, "GET", "/v1/friends", "", http.StatusOK, &friends)
	if len(friends.Items) != 2 {
		t.Fatalf("alice's friends = %+v", friends)
	}
	var reqs protocol.Delta[protocol.FriendRequest]
	restWant(t, s, alice, "GET", "/v1/friends/requests", "", http.StatusOK, &reqs)
	if len(reqs.Items) != 1 || reqs.Items[0].State != protocol.RequestAccepted {
		t.Fatalf("bob's pending request after the import = %+v, want accepted", reqs)
	}
	// Again: idempotent, nothing changes.
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/friends/import", body, http.StatusOK, &res)
	if res.Added != 0 || res.Existing != 2 {
		t.Fatalf("import again = %+v", res)
	}
	a.Quiet(t, 100*time.Millisecond)

	var pairs []string
	for i := range protocol.MaxFriendImport + 1 {
		pairs = append(pairs, fmt.Sprintf(`{"user":"alice","friend":"u%d"}`, i))
	}
	for _, tc := range []struct {
		name, cred, body string
		code             protocol.Code
	}{
		{"user token", alice, body, protocol.CodeForbidden},
		{"unknown user", parleytest.AdminKey, `{"friendships":[{"user":"bob","friend":"carol"},{"user":"bob","friend":"nobody"}]}`, protocol.CodeNotFound},
		{"self", parleytest.AdminKey, `{"friendships":[{"user":"bob","friend":"bob"}]}`, protocol.CodeInvalidArgument},
		{"invalid id", parleytest.AdminKey, `{"friendships":[{"user":"b:b","friend":"carol"}]}`, protocol.CodeInvalidArgument},
		{"empty", parleytest.AdminKey, `{"friendships":[]}`, protocol.CodeInvalidArgument},
		{"too many", parleytest.AdminKey, `{"friendships":[` + strings.Join(pairs, ",") + `]}`, protocol.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restError(t, s, tc.cred, "POST", "/v1/friends/import", tc.body, tc.code)
		})
	}
	// The refused imports changed nothing: bob and carol are no friends.
	restError(t, s, bob, "GET", "/v1/friends/carol", "", protocol.CodeNotFound)
}

// TestSocialBadInput checks every refused request: its code, and that
// nothing changed.
func TestSocialBadInput(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice, bob := s.User(t, "alice", "web", "a1"), s.User(t, "bob", "web", "b1")
	s.User(t, "carol", "web", "c1")
	restWant(t, s, alice, "POST", "/v1/friends/requests", `{"to":"bob"}`, http.StatusCreated, nil)
	restWant(t, s, bob, "POST", "/v1/friends/requests/alice/accept", "", http.StatusOK, nil)
	restWant(t, s, alice, "PUT", "/v1/blocks/carol", "", http.StatusOK, nil)
	versions := func() [3]int64 {
		var r protocol.Delta[protocol.FriendRequest]
		var f protocol.Delta[protocol.Friend]
		var b protocol.Delta[protocol.Block]
		restWant(t, s, alice, "GET", "/v1/friends/requests", "", http.StatusOK, &r)
		restWant(t, s, alice, "GET", "/v1/friends", "", http.StatusOK, &f)
		restWant(t, s, alice, "GET", "/v1/blocks", "", http.StatusOK, &b)
		return [3]int64{r.Version, f.Version, b.Version}
	}
	before := versions()

	long := func(n int) string { return strings.Repeat("é", n) }
	for _, tc := range []struct {
		name, method, path, body string
		code                     protocol.Code
	}{
		{"request to self", "POST", "/v1/friends/requests", `{"to":"alice"}`, protocol.CodeInvalidArgument},
		{"request to unknown", "POST", "/v1/friends/requests", `{"to":"nobody"}`, protocol.CodeNotFound},
		{"request to invalid id", "POST", "/v1/friends/requests", `{"to":"no body"}`, protocol.CodeInvalidArgument},
		{"request without to", "POST", "/v1/friends/requests", `{"message":"hi"}`, protocol.CodeInvalidArgument},
		{"request to system", "POST", "/v1/friends/requests", `{"to":"system"}`, protocol.CodeReservedUser},
		{"request to a friend", "POST", "/v1/friends/requests", `{"to":"bob"}`, protocol.CodeAlreadyExists},
		{"request message too long", "POST", "/v1/friends/requests", `{"to":"carol","message":"` + long(257) + `"}`, protocol.CodeInvalidArgument},
		{"request unknown field", "POST", "/v1/friends/requests", `{"to":"carol","note":"x"}`, protocol.CodeInvalidArgument},
		{"accept no request", "POST", "/v1/friends/requests/carol/accept", "", protocol.CodeNotFound},
		{"refuse no request", "POST", "/v1/friends/requests/carol/refuse", "", protocol.CodeNotFound},
		{"accept invalid id", "POST", "/v1/friends/requests/a:b/accept", "", protocol.CodeInvalidArgument},
		{"accept own", "POST", "/v1/friends/requests/alice/accept", "", protocol.CodeInvalidArgument},
		{"check a stranger", "GET", "/v1/friends/carol", "", protocol.CodeNotFound},
		{"check self", "GET", "/v1/friends/alice", "", protocol.CodeInvalidArgument},
		{"remark too long", "PATCH", "/v1/friends/bob", `{"remark":"` + long(65) + `"}`, protocol.CodeInvalidArgument},
		{"extra too large", "PATCH", "/v1/friends/bob", `{"extra":{"x":"` + strings.Repeat("x", 4100) + `"}}`, protocol.CodeInvalidArgument},
		{"empty update", "PATCH", "/v1/friends/bob", `{}`, protocol.CodeInvalidArgument},
		{"update a stranger", "PATCH", "/v1/friends/carol", `{"remark":"c"}`, protocol.CodeNotFound},
		{"delete a stranger", "DELETE", "/v1/friends/carol", "", protocol.CodeNotFound},
		{"delete invalid id", "DELETE", "/v1/friends/a:b", "", protocol.CodeInvalidArgument},
		{"block self", "PUT", "/v1/blocks/alice", "", protocol.CodeInvalidArgument},
		{"block unknown", "PUT", "/v1/blocks/nobody", "", protocol.CodeNotFound},
		{"block invalid id", "PUT", "/v1/blocks/a:b", "", protocol.CodeInvalidArgument},
		{"block system", "PUT", "/v1/blocks/system", "", protocol.CodeReservedUser},
		{"unblock not blocked", "DELETE", "/v1/blocks/bob", "", protocol.CodeNotFound},
		{"negative since", "GET", "/v1/friends?since=-1", "", protocol.CodeInvalidArgument},
		{"since not a number", "GET", "/v1/blocks?since=x", "", protocol.CodeInvalidArgument},
		{"negative limit", "GET", "/v1/friends/requests?limit=-1", "", protocol.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restError(t, s, alice, tc.method, tc.path, tc.body, tc.code)
		})
	}
	if after := versions(); after != before {
		t.Fatalf("versions went from %v to %v: a refused request changed something", before, after)
	}
	// The admin acts for a user it names, and must name one.
	restError(t, s, parleytest.AdminKey, "GET", "/v1/friends", "", protocol.CodeInvalidArgument)
	var friends protocol.Delta[protocol.Friend]
	restWant(t, s, parleytest.AdminKey, "GET", "/v1/friends?user=bob", "", http.StatusOK, &friends)
	if len(friends.Items) != 1 || friends.Items[0].User != "alice" {
		t.Fatalf("bob's friends for the admin = %+v", friends)
	}
}

func TestSocialSyncPagesAndResync(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := s.User(t, "alice", "web", "a1")
	var body []string
	for i := range 5 {
		s.User(t, fmt.Sprintf("u%d", i), "web", "d")
		body = append(body, fmt.Sprintf(`{"user":"alice","friend":"u%d"}`, i))
	}
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/friends/import", `{"friendships":[`+strings.Join(body, ",")+`]}`, http.StatusOK, nil)
	var got []string
	since, pages := int64(0), 0
	for {
		var d protocol.Delta[protocol.Friend]
		restWant(t, s, alice, "GET", fmt.Sprintf("/v1/friends?since=%d&limit=2", since), "", http.StatusOK, &d)
		pages++
		for _, f := range d.Items {
			got = append(got, f.User)
		}
		since = d.Version
		if !d.More {
			break
		}
	}
	if slices.Sort(got); !slices.Equal(got, []string{"u0", "u1", "u2", "u3", "u4"}) || pages != 3 {
		t.Fatalf("paged friends = %v in %d pages", got, pages)
	}
	// A version from the future (a device that synced before a restore)
	// gets everything, marked resync.
	var d protocol.Delta[protocol.Friend]
	restWant(t, s, alice, "GET", fmt.Sprintf("/v1/friends?since=%d", since+1000), "", http.StatusOK, &d)
	if !d.Resync || len(d.Items) != 5 || d.Version != since {
		t.Fatalf("sync from the future = %+v", d)
	}
	var now protocol.Delta[protocol.Friend]
	restWant(t, s, alice, "GET", fmt.Sprintf("/v1/friends?since=%d", since), "", http.StatusOK, &now)
	if now.Resync || len(now.Items) != 0 || now.Version != since {
		t.Fatalf("sync at the current version = %+v", now)
	}
}

// TestSocialOverCall checks that the routes work over the call frame as
// the connection's user, and that the import is the admin's alone.
func TestSocialOverCall(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	s.User(t, "bob", "web", "b1")
	a.Request(t, protocol.TypeCall, "1", protocol.Call{Method: "PUT", Path: "/v1/blocks/bob"})
	// The push to alice's devices and the result may come in either order.
	var res protocol.CallResult
	for range 2 {
		f := a.Next(t, wait)
		switch f.Type {
		case protocol.TypeResult:
			if err := json.Unmarshal(f.Data, &res); err != nil {
				t.Fatal(err)
			}
		case protocol.TypeChanged:
		default:
			t.Fatalf("got a %s frame", f.Type)
		}
	}
	var bl protocol.Block
	if err := json.Unmarshal(res.Body, &bl); err != nil || res.Status != http.StatusOK || bl.User != "bob" {
		t.Fatalf("block by call = %d %s", res.Status, res.Body)
	}
	a.Request(t, protocol.TypeCall, "2", protocol.Call{Method: "POST", Path: "/v1/friends/import", Body: json.RawMessage(`{"friendships":[{"user":"alice","friend":"bob"}]}`)})
	a.ExpectError(t, protocol.CodeForbidden)
}

// friendEvents records an SDK client's friend events.
type friendEvents chan client.FriendEvent

// expect reads len(want) events, each "kind user", and checks that they
// are want in any order (events of different scopes may interleave), then
// that no other event follows at once.
func (ch friendEvents) expect(t *testing.T, want ...string) []client.FriendEvent {
	t.Helper()
	var got []string
	var evs []client.FriendEvent
	for range want {
		select {
		case ev := <-ch:
			got = append(got, string(ev.Kind)+" "+ev.User)
			evs = append(evs, ev)
		case <-time.After(wait):
			t.Fatalf("friend events %v, want %v", got, want)
		}
	}
	slices.Sort(got)
	if w := slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Fatalf("friend events %v, want %v", got, w)
	}
	ch.quiet(t)
	return evs
}

func (ch friendEvents) quiet(t *testing.T) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected friend event %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func dialFriends(t *testing.T, s *parleytest.Server, token string, dial func(context.Context, string, string) (net.Conn, error)) (*client.Client, friendEvents) {
	t.Helper()
	ch := make(friendEvents, 100)
	c := dialSDK(t, s, token, nil, func(o *client.Options) {
		o.OnFriendEvent = func(ev client.FriendEvent) { ch <- ev }
		if dial != nil {
			o.NetDial = dial
		}
	})
	return c, ch
}

// TestSDKFriends checks the Go SDK's friend methods and the typed events
// its friend sync reports: the state at connection, each change, and what
// changed while the device was offline.
func TestSDKFriends(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	for _, u := range []string{"alice", "carol", "dave"} {
		s.User(t, u, "web", "x")
	}
	restWant(t, s, parleytest.AdminKey, "POST", "/v1/friends/import", `{"friendships":[{"user":"alice","friend":"carol"}]}`, http.StatusOK, nil)
	var sw switchableDialer
	alice, aev := dialFriends(t, s, s.User(t, "alice", "web", "a1"), sw.dial)
	bob, bev := dialFriends(t, s, s.User(t, "bob", "web", "b1"), nil)
	dave, dev := dialFriends(t, s, s.User(t, "dave", "web", "d1"), nil)
	ctx := t.Context()

	// The first sync reports the state there is.
	evs := aev.expect(t, "friend_added carol")
	if evs[0].Friend.User != "carol" {
		t.Fatalf("event %+v", evs[0])
	}
	bev.quiet(t)

	req, err := bob.RequestFriend(ctx, "alice", "hi Alice")
	if err != nil || req.State != protocol.RequestPending {
		t.Fatalf("RequestFriend = %+v, %v", req, err)
	}
	evs = aev.expect(t, "request_received bob")
	if evs[0].Request.Message != "hi Alice" {
		t.Fatalf("event %+v", evs[0])
	}
	bev.expect(t, "request_sent alice")

	f, err := alice.AcceptFriend(ctx, "bob")
	if err != nil || f.User != "bob" {
		t.Fatalf("AcceptFriend = %+v, %v", f, err)
	}
	aev.expect(t, "request_accepted bob", "friend_added bob")
	bev.expect(t, "request_accepted alice", "friend_added alice")

	if f, err = alice.SetFriendRemark(ctx, "bob", "Bobby"); err != nil || f.Remark != "Bobby" {
		t.Fatalf("SetFriendRemark = %+v, %v", f, err)
	}
	evs = aev.expect(t, "friend_updated bob")
	if evs[0].Friend.Remark != "Bobby" {
		t.Fatalf("event %+v", evs[0])
	}
	bev.quiet(t)
	if f, err = alice.Friend(ctx, "bob"); err != nil || f.Remark != "Bobby" {
		t.Fatalf("Friend = %+v, %v", f, err)
	}
	if fs, err := alice.Friends(ctx, 0); err != nil || len(fs.Items) != 2 {
		t.Fatalf("Friends = %+v, %v", fs, err)
	}

	// A block is the blocker's news alone, and refuses the blocked user.
	if b, err := alice.Block(ctx, "dave"); err != nil || b.User != "dave" {
		t.Fatalf("Block = %+v, %v", b, err)
	}
	aev.expect(t, "blocked dave")
	dev.quiet(t)
	var pe *protocol.Error
	if _, err := dave.Send(ctx, "alice", "text", json.RawMessage(`{}`)); !errors.As(err, &pe) || pe.Code != protocol.CodeBlocked {
		t.Fatalf("send from a blocked user = %v", err)
	}
	if _, err := dave.RequestFriend(ctx, "alice", ""); !errors.As(err, &pe) || pe.Code != protocol.CodeBlocked {
		t.Fatalf("request from a blocked user = %v", err)
	}
	if bs, err := alice.Blocks(ctx, 0); err != nil || len(bs.Items) != 1 {
		t.Fatalf("Blocks = %+v, %v", bs, err)
	}
	if err := alice.Unblock(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	aev.expect(t, "unblocked dave")

	if _, err := dave.RequestFriend(ctx, "alice", "now?"); err != nil {
		t.Fatal(err)
	}
	aev.expect(t, "request_received dave")
	dev.expect(t, "request_sent alice")
	if err := alice.RefuseFriend(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	aev.expect(t, "request_refused dave")
	dev.expect(t, "request_refused alice")
	if rs, err := alice.FriendRequests(ctx, 0); err != nil || len(rs.Items) != 2 {
		t.Fatalf("FriendRequests = %+v, %v", rs, err)
	}

	// Offline, alice misses the pushes; she catches up when she is back.
	sw.cut()
	if err := bob.DeleteFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bev.expect(t, "friend_removed alice")
	if _, err := dave.RequestFriend(ctx, "alice", "please"); err != nil {
		t.Fatal(err)
	}
	dev.expect(t, "request_sent alice")
	aev.quiet(t)
	sw.restore()
	aev.expect(t, "friend_removed bob", "request_received dave")
	if _, err := alice.Friend(ctx, "bob"); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("Friend after the delete = %v, want not_found", err)
	}
}
