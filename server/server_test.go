package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

const wait = 5 * time.Second

func send(to, cid, text string) protocol.Send {
	return protocol.Send{ClientID: cid, To: to, ContentType: "text", Content: json.RawMessage(fmt.Sprintf(`{"text":%q}`, text))}
}

func TestSendIsAckedThenDeliveredToEveryDevice(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	b1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "android", "b1"))
	b2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "macos", "b2"))

	a1.Request(t, protocol.TypeSend, "r1", send("bob", "c1", "hello"))
	var ack protocol.Ack
	f := a1.Expect(t, protocol.TypeAck, &ack)
	if f.ID != "r1" || ack.Seq != 1 || ack.ClientID != "c1" || ack.ServerID == "" || ack.Time == 0 || ack.Duplicate {
		t.Fatalf("ack = %+v (id %q)", ack, f.ID)
	}
	for name, c := range map[string]*parleytest.Conn{"a2": a2, "b1": b1, "b2": b2} {
		var m protocol.Message
		c.Expect(t, protocol.TypeMessage, &m)
		if m.Seq != 1 || m.From != "alice" || m.To != "bob" || m.ServerID != ack.ServerID || m.Conversation != ack.Conversation {
			t.Errorf("%s got %+v", name, m)
		}
	}
	a1.Quiet(t, 100*time.Millisecond) // the sending connection has its ack, not a copy

	// The acknowledged message is committed: a pull over REST sees it.
	var page protocol.Messages
	getJSON(t, s, "/v1/conversations/"+ack.Conversation+"/messages?user=bob", &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != 1 || string(page.Messages[0].Content) != `{"text":"hello"}` {
		t.Fatalf("pull = %+v", page)
	}
}

func TestResendWithSameClientIDIsDeduplicated(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	b, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))

	var first, again protocol.Ack
	a.Request(t, protocol.TypeSend, "1", send("bob", "same", "hi"))
	a.Expect(t, protocol.TypeAck, &first)
	a.Request(t, protocol.TypeSend, "2", send("bob", "same", "hi"))
	a.Expect(t, protocol.TypeAck, &again)
	if !again.Duplicate || again.Seq != first.Seq || again.ServerID != first.ServerID || again.Time != first.Time {
		t.Fatalf("resend ack = %+v, first = %+v", again, first)
	}
	b.Expect(t, protocol.TypeMessage, nil)
	b.Quiet(t, 100*time.Millisecond) // delivered once

	a.Request(t, protocol.TypeSend, "3", send("bob", "same", "something else"))
	a.ExpectError(t, protocol.CodeClientIDConflict)

	var convs protocol.Conversations
	a.Request(t, protocol.TypeConversations, "4", protocol.ConversationsRequest{})
	a.Expect(t, protocol.TypeConversations, &convs)
	if len(convs.Conversations) != 1 || convs.Conversations[0].MaxSeq != 1 {
		t.Fatalf("conversations = %+v; a rejected resend must store nothing", convs)
	}
}

func TestReadReceiptsReachPeerAndOwnDevices(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	b1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))
	b2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "ios", "b2"))
	var ack protocol.Ack
	for i := range 3 {
		a1.Request(t, protocol.TypeSend, "s", send("bob", fmt.Sprint("c", i), "m"))
		a1.Expect(t, protocol.TypeAck, &ack)
	}
	for _, c := range []*parleytest.Conn{a2, b1, b2} {
		for range 3 {
			c.Expect(t, protocol.TypeMessage, nil)
		}
	}

	b1.Request(t, protocol.TypeRead, "r", protocol.Read{Conversation: ack.Conversation, Seq: 2})
	var ok protocol.Receipt
	b1.Expect(t, protocol.TypeOK, &ok)
	if ok.Reader != "bob" || ok.Seq != 2 {
		t.Fatalf("read reply = %+v", ok)
	}
	for name, c := range map[string]*parleytest.Conn{"a1": a1, "a2": a2, "b2": b2} {
		var r protocol.Receipt
		c.Expect(t, protocol.TypeReceipt, &r)
		if r.Reader != "bob" || r.Seq != 2 || r.Conversation != ack.Conversation {
			t.Errorf("%s receipt = %+v", name, r)
		}
	}
	b1.Quiet(t, 100*time.Millisecond)

	var convs protocol.Conversations
	b2.Request(t, protocol.TypeConversations, "c", protocol.ConversationsRequest{})
	b2.Expect(t, protocol.TypeConversations, &convs)
	if c := convs.Conversations[0]; c.ReadSeq != 2 || c.Unread != 1 || c.LastMessage == nil || c.LastMessage.Seq != 3 {
		t.Fatalf("bob's conversation = %+v", c)
	}
	// A device that was away when the receipt went out learns it from the
	// conversation list.
	late, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "macos", "a3"))
	late.Request(t, protocol.TypeConversations, "c", protocol.ConversationsRequest{})
	late.Expect(t, protocol.TypeConversations, &convs)
	if c := convs.Conversations[0]; c.PeerReadSeq != 2 || c.ReadSeq != 3 {
		t.Fatalf("alice's conversation = %+v, want peer_read_seq 2", c)
	}
	// Reading an older seq never lowers the read seq, and tells no one.
	b1.Request(t, protocol.TypeRead, "r2", protocol.Read{Conversation: ack.Conversation, Seq: 1})
	b1.Expect(t, protocol.TypeOK, &ok)
	if ok.Seq != 2 {
		t.Fatalf("read seq lowered to %d", ok.Seq)
	}
	// Reading past the last message is refused, and changes nothing.
	b1.Request(t, protocol.TypeRead, "r3", protocol.Read{Conversation: ack.Conversation, Seq: 4})
	if f := b1.ExpectError(t, protocol.CodeOutOfRange); !strings.Contains(f.Error.Message, "last seq 3") {
		t.Errorf("read past the end: %q", f.Error.Message)
	}
	b1.Request(t, protocol.TypeRead, "r4", protocol.Read{Conversation: ack.Conversation, Seq: 2})
	b1.Expect(t, protocol.TypeOK, &ok)
	if ok.Seq != 2 {
		t.Fatalf("read seq after a refused read = %d, want 2", ok.Seq)
	}
	// A conversation the reader is not in is not found.
	b1.Request(t, protocol.TypeRead, "r5", protocol.Read{Conversation: "d:alice:carol", Seq: 1})
	b1.ExpectError(t, protocol.CodeNotFound)
	a1.Quiet(t, 100*time.Millisecond)
}

func TestLoginPolicies(t *testing.T) {
	type device struct{ platform, id string }
	tests := []struct {
		policy   string
		old, new device
		kick     protocol.Code // "" if the old connection stays
	}{
		{"all", device{"ios", "d1"}, device{"ios", "d2"}, ""},
		{"all", device{"ios", "d1"}, device{"ios", "d1"}, protocol.CodeKickReplaced},
		{"platform", device{"ios", "d1"}, device{"ios", "d2"}, protocol.CodeKickPolicy},
		{"platform", device{"ios", "d1"}, device{"android", "d2"}, ""},
		{"class", device{"ios", "d1"}, device{"android", "d2"}, protocol.CodeKickPolicy},
		{"class", device{"ios", "d1"}, device{"web", "d2"}, ""},
		{"class", device{"windows", "d1"}, device{"macos", "d2"}, protocol.CodeKickPolicy},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s-%s_then_%s-%s", tt.policy, tt.old.platform, tt.old.id, tt.new.platform, tt.new.id)
		t.Run(name, func(t *testing.T) {
			s := parleytest.NewServer(t, func(c *server.Config) { c.LoginPolicy = tt.policy })
			old, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", tt.old.platform, tt.old.id))
			parleytest.Dial(t, s.WSURL, s.User(t, "alice", tt.new.platform, tt.new.id))
			if tt.kick == "" {
				old.Quiet(t, 150*time.Millisecond)
				return
			}
			var k protocol.Kick
			old.Expect(t, protocol.TypeKick, &k)
			if k.Code != tt.kick || k.Message == "" {
				t.Fatalf("kick = %+v, want code %s", k, tt.kick)
			}
			old.Closed(t, wait)
		})
	}
}

func TestBadFramesGetErrorsAndTheConnectionSurvives(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) { c.MaxFrameBytes = 4096; c.MaxContentBytes = 1024 })
	s.User(t, "bob", "web", "b1")
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name  string
		frame string
		code  protocol.Code
	}{
		{"not json", `{"type":`, protocol.CodeBadFrame},
		{"no type", `{"id":"1"}`, protocol.CodeBadFrame},
		{"unknown type", `{"type":"fly","id":"1"}`, protocol.CodeUnknownType},
		{"data does not decode", `{"type":"send","id":"1","data":{"cid":5}}`, protocol.CodeBadFrame},
		{"invalid utf-8", "{\"type\":\"send\",\"id\":\"1\",\"data\":{\"cid\":\"\xff\xfe\"}}", protocol.CodeInvalidUTF8},
		{"frame too large", `{"type":"send","data":"` + strings.Repeat("y", 5000) + `"}`, protocol.CodeFrameTooLarge},
		{"content too large", `{"type":"send","id":"1","data":{"cid":"c","to":"bob","ctype":"text","content":"` + big + `"}}`, protocol.CodeContentTooLarge},
		{"missing cid", `{"type":"send","id":"1","data":{"to":"bob","ctype":"text","content":{}}}`, protocol.CodeInvalidArgument},
		{"bad ctype", `{"type":"send","id":"1","data":{"cid":"c","to":"bob","ctype":"Text!","content":{}}}`, protocol.CodeInvalidArgument},
		{"unknown recipient", `{"type":"send","id":"1","data":{"cid":"c","to":"nobody","ctype":"text","content":{}}}`, protocol.CodeNotFound},
		{"send to self", `{"type":"send","id":"1","data":{"cid":"c","to":"alice","ctype":"text","content":{}}}`, protocol.CodeInvalidArgument},
		{"pull unknown conversation", `{"type":"pull","id":"1","data":{"conv":"d:alice:zed"}}`, protocol.CodeNotFound},
		{"pull malformed conversation id", `{"type":"pull","id":"1","data":{"conv":"alice-bob"}}`, protocol.CodeInvalidArgument},
		{"read malformed conversation id", `{"type":"read","id":"1","data":{"conv":"d:bob:alice","seq":1}}`, protocol.CodeInvalidArgument},
		{"clear malformed conversation id", `{"type":"clear","id":"1","data":{"conv":"g:"}}`, protocol.CodeInvalidArgument},
		{"pull bad direction", `{"type":"pull","id":"1","data":{"conv":"d:alice:bob","dir":"sideways"}}`, protocol.CodeInvalidArgument},
		{"read negative", `{"type":"read","id":"1","data":{"conv":"d:alice:bob","seq":-1}}`, protocol.CodeInvalidArgument},
		{"subscribe bad id", `{"type":"presence.subscribe","id":"1","data":{"users":["no spaces"]}}`, protocol.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.WriteRaw(t, []byte(tt.frame))
			a.ExpectError(t, tt.code)
		})
	}
	a.Request(t, protocol.TypePing, "p", nil)
	a.Expect(t, protocol.TypePong, nil)

	// Nothing was stored by any rejected send.
	var convs protocol.Conversations
	a.Request(t, protocol.TypeConversations, "c", protocol.ConversationsRequest{})
	a.Expect(t, protocol.TypeConversations, &convs)
	if len(convs.Conversations) != 0 {
		t.Fatalf("rejected sends stored %+v", convs.Conversations)
	}
}

func TestPullOutsideVisibleRange(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "bob", "web", "b1")
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	var ack protocol.Ack
	for i := range 5 {
		a.Request(t, protocol.TypeSend, "s", send("bob", fmt.Sprint(i), "m"))
		a.Expect(t, protocol.TypeAck, &ack)
	}
	conv := ack.Conversation
	var page protocol.Messages
	a.Request(t, protocol.TypePull, "p", protocol.Pull{Conversation: conv, From: 2, Limit: 2})
	a.Expect(t, protocol.TypeMessages, &page)
	if len(page.Messages) != 2 || page.Messages[0].Seq != 2 || page.Messages[1].Seq != 3 || !page.More {
		t.Fatalf("forward page = %+v", page)
	}
	a.Request(t, protocol.TypePull, "p", protocol.Pull{Conversation: conv, Direction: protocol.Backward, Limit: 2})
	a.Expect(t, protocol.TypeMessages, &page)
	if len(page.Messages) != 2 || page.Messages[0].Seq != 4 || page.Messages[1].Seq != 5 || !page.More {
		t.Fatalf("backward page = %+v", page)
	}
	a.Request(t, protocol.TypePull, "p", protocol.Pull{Conversation: conv, From: 9})
	a.ExpectError(t, protocol.CodeOutOfRange)

	// After clearing, history before the clear is out of range for alice alone.
	var cleared protocol.Conversation
	a.Request(t, protocol.TypeClear, "c", protocol.Clear{Conversation: conv})
	a.Expect(t, protocol.TypeOK, &cleared)
	if cleared.MinSeq != 6 || cleared.Unread != 0 || cleared.LastMessage != nil {
		t.Fatalf("cleared = %+v", cleared)
	}
	a.Request(t, protocol.TypePull, "p", protocol.Pull{Conversation: conv, From: 1})
	a.ExpectError(t, protocol.CodeOutOfRange)
	a.Request(t, protocol.TypePull, "p", protocol.Pull{Conversation: conv})
	a.Expect(t, protocol.TypeMessages, &page)
	if len(page.Messages) != 0 {
		t.Fatalf("cleared pull = %+v", page)
	}
	getJSON(t, s, "/v1/conversations/"+conv+"/messages?user=bob", &page)
	if len(page.Messages) != 5 {
		t.Fatalf("bob lost history to alice's clear: %d messages", len(page.Messages))
	}
}

func TestTokens(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	ctx := context.Background()
	tok := s.User(t, "alice", "web", "a1")

	t.Run("missing", func(t *testing.T) {
		_, err := parleytest.DialErr(s.WSURL, "")
		wantCode(t, err, protocol.CodeUnauthenticated)
	})
	t.Run("forged", func(t *testing.T) {
		_, err := parleytest.DialErr(s.WSURL, tok[:len(tok)-4]+"AAAA")
		wantCode(t, err, protocol.CodeUnauthenticated)
	})
	t.Run("expired", func(t *testing.T) {
		short, err := s.Admin.IssueToken(ctx, "alice", "ios", "short", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(wait)
		for {
			_, err = parleytest.DialErr(s.WSURL, short.Token)
			var pe *protocol.Error
			if errors.As(err, &pe) && pe.Code == protocol.CodeTokenExpired {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("token still accepted after expiry: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("revoked, and live connections kicked", func(t *testing.T) {
		c, _ := parleytest.Dial(t, s.WSURL, tok)
		if err := s.Admin.Revoke(ctx, "alice", ""); err != nil {
			t.Fatal(err)
		}
		var k protocol.Kick
		c.Expect(t, protocol.TypeKick, &k)
		if k.Code != protocol.CodeKickRevoked {
			t.Fatalf("kick = %+v", k)
		}
		_, err := parleytest.DialErr(s.WSURL, tok)
		wantCode(t, err, protocol.CodeTokenRevoked)
		// A token minted after the revocation works.
		parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	})
	t.Run("forced offline", func(t *testing.T) {
		c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "phone"))
		n, err := s.Admin.Kick(ctx, "alice", "phone")
		if err != nil || n != 1 {
			t.Fatalf("kick = %d, %v", n, err)
		}
		var k protocol.Kick
		c.Expect(t, protocol.TypeKick, &k)
		if k.Code != protocol.CodeKickAdmin {
			t.Fatalf("kick = %+v", k)
		}
	})
}

func TestRESTBadInput(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := s.User(t, "alice", "web", "a1")
	s.User(t, "bob", "web", "b1")
	tests := []struct {
		name, method, path, cred, body string
		status                         int
		code                           protocol.Code
	}{
		{"no credential", "GET", "/v1/users", "", "", 401, protocol.CodeUnauthenticated},
		{"user token on admin route", "GET", "/v1/users", alice, "", 403, protocol.CodeForbidden},
		{"bad json", "POST", "/v1/users", parleytest.AdminKey, `{"id":`, 400, protocol.CodeInvalidArgument},
		{"unknown field", "POST", "/v1/users", parleytest.AdminKey, `{"id":"x","age":3}`, 400, protocol.CodeInvalidArgument},
		{"bad user id", "POST", "/v1/users", parleytest.AdminKey, `{"id":"a b"}`, 400, protocol.CodeInvalidArgument},
		{"duplicate user", "POST", "/v1/users", parleytest.AdminKey, `{"id":"alice"}`, 409, protocol.CodeAlreadyExists},
		{"bad extra", "POST", "/v1/users", parleytest.AdminKey, `{"id":"c","extra":"x`, 400, protocol.CodeInvalidArgument},
		{"unknown user", "GET", "/v1/users/nobody", parleytest.AdminKey, "", 404, protocol.CodeNotFound},
		{"token for unknown platform", "POST", "/v1/users/alice/tokens", parleytest.AdminKey, `{"platform":"toaster","device":"d"}`, 400, protocol.CodeInvalidArgument},
		{"send as someone else", "POST", "/v1/messages", alice, `{"from":"bob","to":"alice","ctype":"text","content":{}}`, 403, protocol.CodeForbidden},
		{"update someone else", "PATCH", "/v1/users/bob", alice, `{"nickname":"x"}`, 403, protocol.CodeForbidden},
		{"registration disabled", "POST", "/v1/auth/register", "", `{"id":"z","password":"longenough"}`, 403, protocol.CodeDisabled},
		{"wrong password", "POST", "/v1/auth/login", "", `{"id":"alice","password":"wrongwrong","platform":"web","device":"d"}`, 401, protocol.CodeUnauthenticated},
		{"admin without user", "GET", "/v1/conversations", parleytest.AdminKey, "", 400, protocol.CodeInvalidArgument},
		{"presence without users", "GET", "/v1/presence", alice, "", 400, protocol.CodeInvalidArgument},
		{"pull a malformed conversation id", "GET", "/v1/conversations/alice-bob/messages", alice, "", 400, protocol.CodeInvalidArgument},
		{"pull another's conversation", "GET", "/v1/conversations/d:bob:carol/messages", alice, "", 404, protocol.CodeNotFound},
		{"read a malformed conversation id", "POST", "/v1/conversations/d:bob:alice/read", alice, `{"seq":1}`, 400, protocol.CodeInvalidArgument},
		{"user sets own password", "PATCH", "/v1/users/alice", alice, `{"password":"newpassword"}`, 403, protocol.CodeForbidden},
		{"no such route", "GET", "/v1/nope", alice, "", 404, protocol.CodeNotFound},
		{"other auth scheme", "GET", "/v1/users", "Basic " + parleytest.AdminKey, "", 401, protocol.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := doHTTP(t, s, tt.method, tt.path, tt.cred, tt.body)
			var e struct{ Error protocol.Error }
			json.Unmarshal(body, &e)
			if status != tt.status || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
}

func TestUsersAndSystemMessages(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) { c.AllowRegistration = true })
	ctx := context.Background()
	u, err := s.Admin.CreateUser(ctx, admin.NewUser{ID: "carol", Nickname: "Carol", Extra: json.RawMessage(`{"vip":true}`)})
	if err != nil || u.Nickname != "Carol" || string(u.Extra) != `{"vip":true}` {
		t.Fatalf("create = %+v, %v", u, err)
	}
	gen, err := s.Admin.CreateUser(ctx, admin.NewUser{Nickname: "Anon"})
	if err != nil || gen.ID == "" {
		t.Fatalf("generated id: %+v, %v", gen, err)
	}
	users, _, err := s.Admin.ListUsers(ctx, "caro", "", 10)
	if err != nil || len(users) != 1 || users[0].ID != "carol" {
		t.Fatalf("search = %+v, %v", users, err)
	}
	// Paging: the cursor walks every user once and ends empty.
	var seen []string
	for after := ""; ; {
		page, next, err := s.Admin.ListUsers(ctx, "", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page {
			seen = append(seen, u.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if want := sortedCopy([]string{"carol", gen.ID, "system"}); fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("paged users = %v, want %v", seen, want)
	}
	if status, body := doHTTP(t, s, "GET", "/v1/users", "bearer "+parleytest.AdminKey, ""); status != 200 {
		t.Fatalf("lower-case bearer scheme: %d %s", status, body)
	}

	// Self-registration and password login mint a working token.
	status, body := doHTTP(t, s, "POST", "/v1/auth/register", "", `{"id":"dave","password":"correct horse"}`)
	if status != 201 {
		t.Fatalf("register: %d %s", status, body)
	}
	status, body = doHTTP(t, s, "POST", "/v1/auth/login", "", `{"id":"dave","password":"correct horse","platform":"web","device":"browser"}`)
	var tok protocol.Token
	if status != 200 || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	d, _ := parleytest.Dial(t, s.WSURL, tok.Token)

	// The app server sends a notification as the system account.
	ack, err := s.Admin.Send(ctx, admin.Message{To: "dave", ContentType: "notice", Content: json.RawMessage(`{"text":"welcome"}`)})
	if err != nil || ack.Seq != 1 {
		t.Fatalf("system send = %+v, %v", ack, err)
	}
	var m protocol.Message
	d.Expect(t, protocol.TypeMessage, &m)
	if m.From != "system" || m.ContentType != "notice" {
		t.Fatalf("message = %+v", m)
	}
}

func TestPresence(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	watcher, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	bobTok := s.User(t, "bob", "ios", "b1")
	var list protocol.PresenceList
	watcher.Request(t, protocol.TypeSubscribe, "s", protocol.Subscribe{Users: []string{"bob"}})
	watcher.Expect(t, protocol.TypeOK, &list)
	if len(list.Presence) != 1 || list.Presence[0].Online {
		t.Fatalf("initial presence = %+v", list)
	}
	b, _ := parleytest.Dial(t, s.WSURL, bobTok)
	var p protocol.Presence
	watcher.Expect(t, protocol.TypePresence, &p)
	if p.User != "bob" || !p.Online || p.Devices != 1 {
		t.Fatalf("online presence = %+v", p)
	}
	got, err := s.Admin.Presence(context.Background(), "bob", "alice")
	if err != nil || !got[0].Online || !got[1].Online {
		t.Fatalf("REST presence = %+v, %v", got, err)
	}
	b.Close()
	watcher.Expect(t, protocol.TypePresence, &p)
	if p.Online || p.LastSeen == 0 {
		t.Fatalf("offline presence = %+v", p)
	}
	sessions, err := s.Admin.Sessions(context.Background(), "")
	if err != nil || len(sessions) != 1 || sessions[0].User != "alice" {
		t.Fatalf("sessions = %+v, %v", sessions, err)
	}
}

func TestHeartbeatTimeoutClosesSilentConnections(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
	})
	c, hello := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	if hello.HeartbeatMS != 100 {
		t.Fatalf("hello = %+v", hello)
	}
	var k protocol.Kick
	c.Expect(t, protocol.TypeKick, &k)
	if k.Code != protocol.CodeKickIdle {
		t.Fatalf("kick = %+v", k)
	}
	c.Closed(t, wait)
}

func TestShutdownKicksClients(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	go s.Shutdown(context.Background())
	var k protocol.Kick
	c.Expect(t, protocol.TypeKick, &k)
	if k.Code != protocol.CodeKickShutdown {
		t.Fatalf("kick = %+v", k)
	}
	c.Closed(t, wait)
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func TestCompressionIsNegotiated(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) { c.Compression = true })
	tok := s.User(t, "alice", "web", "a1")
	d := ws.Dialer{
		Header:     ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + tok}}),
		Extensions: []httphead.Option{wsflate.DefaultParameters.Option()},
	}
	nc, _, hs, err := d.Dial(context.Background(), s.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if len(hs.Extensions) != 1 || string(hs.Extensions[0].Name) != wsflate.ExtensionName {
		t.Fatalf("extensions = %v, want permessage-deflate", hs.Extensions)
	}

	// A message fanned out to two compressed connections arrives
	// compressed on both, and inflates to the same frame.
	var conns []net.Conn
	var readers []io.Reader
	for _, device := range []string{"b1", "b2"} {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + s.User(t, "bob", "web", device)}})
		c, br, _, err := d.Dial(context.Background(), s.WSURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var r io.Reader = c
		if br != nil { // bytes that came with the handshake, the hello among them
			r = io.MultiReader(br, c)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		if _, err := readFrame(r); err != nil { // hello
			t.Fatal(err)
		}
		conns, readers = append(conns, c), append(readers, r)
	}
	text := strings.Repeat("compress me ", 100)
	if _, err := s.Admin.Send(t.Context(), admin.Message{From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(fmt.Sprintf(`{"text":%q}`, text))}); err != nil {
		t.Fatal(err)
	}
	var frames []string
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(wait))
		f, err := readFrame(readers[i])
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Rsv != 0b100 || len(f.Payload) > len(text)/2 {
			t.Fatalf("message frame: op %v rsv %b, %d bytes: not compressed: %q", f.Header.OpCode, f.Header.Rsv, len(f.Payload), f.Payload)
		}
		if f, err = wsflate.DecompressFrame(f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, string(f.Payload))
	}
	if frames[0] != frames[1] || !strings.Contains(frames[0], text) {
		t.Errorf("the two connections got %q and %q", frames[0], frames[1])
	}
}

// readFrame reads one server frame of at most 1 MiB.
func readFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, fmt.Errorf("frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

func TestFailedUpgradeClosesTheConnection(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	tok := s.User(t, "alice", "web", "a1")
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A valid token but no upgrade headers: the handshake fails with 400
	// and the server must close the connection it took over.
	fmt.Fprintf(nc, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	nc.SetReadDeadline(time.Now().Add(wait))
	resp, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("connection left open: %v (read %q)", err, resp)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
		t.Fatalf("response %q", resp)
	}
}

func TestProfilerNeedsTheAdminKey(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) { c.Pprof = true })
	if status, _ := doHTTP(t, s, "GET", "/debug/pprof/", s.User(t, "alice", "web", "a1"), ""); status != http.StatusUnauthorized {
		t.Fatalf("user token: %d", status)
	}
	if status, _ := doHTTP(t, s, "GET", "/debug/pprof/", parleytest.AdminKey, ""); status != http.StatusOK {
		t.Fatalf("admin key: %d", status)
	}
}

func TestExpiredTokenEndsTheConnection(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "alice", "web", "a1")
	tok, err := s.Admin.IssueToken(context.Background(), "alice", "web", "short", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := parleytest.Dial(t, s.WSURL, tok.Token)
	var k protocol.Kick
	c.Expect(t, protocol.TypeKick, &k)
	if k.Code != protocol.CodeKickExpired {
		t.Fatalf("kick = %+v, want token_expired", k)
	}
	c.Closed(t, wait)
}
