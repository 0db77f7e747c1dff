package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// post is a send to a conversation.
func post(conv, cid, text string) protocol.Send {
	return protocol.Send{ClientID: cid, Conversation: conv, ContentType: "text", Content: json.RawMessage(`{"text":"` + text + `"}`)}
}

// TestGroupConversation walks a group through its life over real
// connections: created with members, a message reaches every member's
// devices, a late joiner sees only what follows, a removed member stops
// receiving and cannot read past where they left, outsiders get nothing.
func TestGroupConversation(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	ctx := t.Context()
	a1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	b, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))
	c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "carol", "web", "c1"))
	d, _ := parleytest.Dial(t, s.WSURL, s.User(t, "dave", "web", "d1"))

	g, err := s.Admin.CreateGroup(ctx, "team", []string{"alice", "bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Conversation != "g:team" || g.Members != 3 {
		t.Fatalf("CreateGroup = %+v", g)
	}
	for name, conn := range map[string]*parleytest.Conn{"a1": a1, "a2": a2, "b": b, "c": c} {
		var cv protocol.Conversation
		conn.Expect(t, protocol.TypeConversation, &cv)
		if cv.ID != "g:team" || cv.Kind != "group" || cv.MinSeq != 1 || cv.Peer != "" {
			t.Errorf("%s: creation push %+v", name, cv)
		}
		var ch protocol.Changed
		conn.Expect(t, protocol.TypeChanged, &ch)
		if ch.Scope != protocol.ScopeGroups || ch.Version == 0 {
			t.Errorf("%s: changed push %+v, want scope groups at the creation's version", name, ch)
		}
		expectEvent(t, conn, 1, protocol.EventCreated)
	}

	// A message goes to every member's devices but the sending one.
	a1.Request(t, protocol.TypeSend, "s1", post("g:team", "m1", "hello team"))
	var ack protocol.Ack
	a1.Expect(t, protocol.TypeAck, &ack)
	if ack.Conversation != "g:team" || ack.Seq != 2 {
		t.Fatalf("ack %+v", ack)
	}
	for name, conn := range map[string]*parleytest.Conn{"a2": a2, "b": b, "c": c} {
		var m protocol.Message
		conn.Expect(t, protocol.TypeMessage, &m)
		if m.Conversation != "g:team" || m.Seq != 2 || m.From != "alice" || m.To != "" {
			t.Errorf("%s got %+v", name, m)
		}
	}
	a1.Quiet(t, 50*time.Millisecond)
	d.Quiet(t, 50*time.Millisecond)

	// An outsider can neither send nor read.
	d.Request(t, protocol.TypeSend, "x1", post("g:team", "x1", "let me in"))
	d.ExpectError(t, protocol.CodeNotFound)
	d.Request(t, protocol.TypePull, "x2", protocol.Pull{Conversation: "g:team"})
	d.ExpectError(t, protocol.CodeNotFound)

	// Dave joins late: he sees from seq 3 on (the event of his joining),
	// nothing unread.
	if _, err := s.Admin.AddMembers(ctx, "team", []string{"dave"}, false); err != nil {
		t.Fatal(err)
	}
	var joined protocol.Conversation
	d.Expect(t, protocol.TypeConversation, &joined)
	if joined.MinSeq != 3 || joined.MaxSeq != 2 || joined.Unread != 0 {
		t.Errorf("join push %+v, want min seq 3 and nothing unread", joined)
	}
	d.Expect(t, protocol.TypeChanged, nil)
	for _, conn := range []*parleytest.Conn{a1, a2, b, c, d} {
		expectEvent(t, conn, 3, protocol.EventJoined)
	}
	b.Request(t, protocol.TypeSend, "s2", post("g:team", "m2", "welcome dave"))
	b.Expect(t, protocol.TypeAck, &ack)
	for _, conn := range []*parleytest.Conn{a1, a2, c, d} {
		var m protocol.Message
		conn.Expect(t, protocol.TypeMessage, &m)
		if m.Seq != 4 || m.From != "bob" {
			t.Errorf("got %+v, want bob's seq 4", m)
		}
	}
	d.Request(t, protocol.TypePull, "p1", protocol.Pull{Conversation: "g:team"})
	var page protocol.Messages
	d.Expect(t, protocol.TypeMessages, &page)
	if page.MinSeq != 3 || len(page.Messages) != 2 || page.Messages[0].Seq != 3 || page.Messages[1].Seq != 4 {
		t.Errorf("dave's pull %+v, want seqs 3 and 4", page)
	}
	d.Request(t, protocol.TypePull, "p2", protocol.Pull{Conversation: "g:team", From: 2})
	d.ExpectError(t, protocol.CodeOutOfRange)

	// Carol is removed: she is told (the event is the last thing she
	// sees), gets nothing new, keeps what she saw.
	if err := s.Admin.RemoveMember(ctx, "team", "carol"); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*parleytest.Conn{a1, a2, b, d} {
		expectEvent(t, conn, 5, protocol.EventKicked)
	}
	// Carol's devices get the event and the leave push, in either order:
	// the event is fanned out while the removal is pushed directly.
	var left protocol.Conversation
	for range 3 {
		f := c.Next(t, 5*time.Second)
		switch f.Type {
		case protocol.TypeConversation:
			json.Unmarshal(f.Data, &left)
		case protocol.TypeMessage:
			var m protocol.Message
			json.Unmarshal(f.Data, &m)
			if m.Seq != 5 || m.ContentType != protocol.GroupEventType {
				t.Errorf("carol got %+v, want the kicked event at seq 5", m)
			}
		case protocol.TypeChanged:
		default:
			t.Fatalf("carol got a %s frame", f.Type)
		}
	}
	if !left.Left || left.MaxSeq != 5 {
		t.Errorf("leave push %+v, want left at seq 5", left)
	}
	a1.Request(t, protocol.TypeSend, "s3", post("g:team", "m3", "carol is gone"))
	a1.Expect(t, protocol.TypeAck, &ack)
	for _, conn := range []*parleytest.Conn{a2, b, d} {
		conn.Expect(t, protocol.TypeMessage, nil)
	}
	c.Quiet(t, 100*time.Millisecond)
	c.Request(t, protocol.TypePull, "p3", protocol.Pull{Conversation: "g:team"})
	c.Expect(t, protocol.TypeMessages, &page)
	if page.MaxSeq != 5 || len(page.Messages) != 5 {
		t.Errorf("carol's pull after leaving %+v, want seqs 1-5", page)
	}
	c.Request(t, protocol.TypePull, "p4", protocol.Pull{Conversation: "g:team", From: 6})
	c.Expect(t, protocol.TypeMessages, &page)
	if len(page.Messages) != 0 || page.More {
		t.Errorf("carol's pull past where she left %+v, want nothing", page)
	}
	c.Request(t, protocol.TypePull, "p5", protocol.Pull{Conversation: "g:team", From: 7})
	c.ExpectError(t, protocol.CodeOutOfRange)
	c.Request(t, protocol.TypeSend, "s4", post("g:team", "m4", "wait"))
	c.ExpectError(t, protocol.CodeForbidden)
	if err := s.Admin.RemoveMember(ctx, "team", "carol"); protocolCode(err) != protocol.CodeNotFound {
		t.Errorf("removing carol twice: %v, want not_found", err)
	}

	// Conversation lists: unread per member, left for carol.
	var list protocol.Conversations
	getJSON(t, s, "/v1/conversations?user=dave", &list)
	if len(list.Conversations) != 1 || list.Conversations[0].Unread != 4 || list.Conversations[0].MaxSeq != 6 {
		t.Errorf("dave's conversations %+v, want g:team with 4 unread of 6", list.Conversations)
	}
	getJSON(t, s, "/v1/conversations?user=carol", &list)
	if len(list.Conversations) != 1 || !list.Conversations[0].Left || list.Conversations[0].MaxSeq != 5 {
		t.Errorf("carol's conversations %+v, want g:team left at 5", list.Conversations)
	}
	members, err := s.Admin.GroupMembers(ctx, "team")
	var names []string
	for _, m := range members {
		names = append(names, m.User)
	}
	if err != nil || strings.Join(names, ",") != "alice,bob,dave" {
		t.Errorf("members = %q, %v", names, err)
	}

	// Reading in a group tells one's own devices only.
	b2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "ios", "b2"))
	b.Request(t, protocol.TypeRead, "r1", protocol.Read{Conversation: "g:team", Seq: 5})
	b.Expect(t, protocol.TypeOK, nil)
	var rc protocol.Receipt
	b2.Expect(t, protocol.TypeReceipt, &rc)
	if rc.Reader != "bob" || rc.Seq != 5 {
		t.Errorf("receipt %+v", rc)
	}
	a1.Quiet(t, 100*time.Millisecond)
}

// TestSendByDirectConversationChecksThePeer sends with conv to a direct
// conversation whose other user does not exist, or was deactivated: the
// same not_found as a send with to.
func TestSendByDirectConversationChecksThePeer(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	s.User(t, "carol", "web", "c1")
	if _, err := s.Admin.Deactivate(t.Context(), "carol"); err != nil {
		t.Fatal(err)
	}
	for _, conv := range []string{"d:alice:zed", "d:alice:carol"} {
		a.Request(t, protocol.TypeSend, conv, post(conv, conv, "hi"))
		a.ExpectError(t, protocol.CodeNotFound)
	}
}

func TestGroupBadInput(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "alice", "web", "a1")
	tok := s.User(t, "bob", "web", "b1")
	for _, tt := range []struct {
		name, method, path, cred, body string
		status                         int
		code                           protocol.Code
	}{
		{"user names another owner", "POST", "/v1/groups", tok, `{"id":"g","owner":"alice"}`, 403, protocol.CodeForbidden},
		{"bad id", "POST", "/v1/groups", parleytest.AdminKey, `{"id":"a:b","members":["alice"]}`, 400, protocol.CodeInvalidArgument},
		{"unknown member", "POST", "/v1/groups", parleytest.AdminKey, `{"id":"g","members":["alice","nobody"]}`, 404, protocol.CodeNotFound},
		{"unknown field", "POST", "/v1/groups", parleytest.AdminKey, `{"id":"g","members":[],"x":1}`, 400, protocol.CodeInvalidArgument},
		{"no group", "GET", "/v1/groups/none", parleytest.AdminKey, "", 404, protocol.CodeNotFound},
		{"add to no group", "POST", "/v1/groups/none/members", parleytest.AdminKey, `{"users":["alice"]}`, 404, protocol.CodeNotFound},
		{"add nobody", "POST", "/v1/groups/g1/members", parleytest.AdminKey, `{"users":[]}`, 400, protocol.CodeInvalidArgument},
		{"add unknown user", "POST", "/v1/groups/g1/members", parleytest.AdminKey, `{"users":["nobody"]}`, 404, protocol.CodeNotFound},
		{"remove a non-member", "DELETE", "/v1/groups/g1/members/bob", parleytest.AdminKey, "", 404, protocol.CodeNotFound},
		{"create twice", "POST", "/v1/groups", parleytest.AdminKey, `{"id":"g1","members":["alice"]}`, 409, protocol.CodeAlreadyExists},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Admin.Group(t.Context(), "g1"); err != nil {
				if _, err := s.Admin.CreateGroup(t.Context(), "g1", []string{"alice"}); err != nil {
					t.Fatal(err)
				}
			}
			status, body := doHTTP(t, s, tt.method, tt.path, tt.cred, tt.body)
			var e protocol.ErrorBody
			if status != tt.status || json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Code != tt.code {
				t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, status, body, tt.status, tt.code)
			}
		})
	}
	if status, _ := doHTTP(t, s, "GET", "/v1/groups/g1/members", parleytest.AdminKey, ""); status != http.StatusOK {
		t.Errorf("members of g1: %d", status)
	}
}

// expectEvent reads a group event message at seq from conn.
func expectEvent(t *testing.T, conn *parleytest.Conn, seq int64, event string) protocol.GroupEvent {
	t.Helper()
	var m protocol.Message
	conn.Expect(t, protocol.TypeMessage, &m)
	var ev protocol.GroupEvent
	if err := json.Unmarshal(m.Content, &ev); err != nil || m.Seq != seq || m.From != "system" || m.ContentType != protocol.GroupEventType || ev.Event != event {
		t.Fatalf("got %+v (%v), want the %s event at seq %d", m, err, event, seq)
	}
	return ev
}

func protocolCode(err error) protocol.Code {
	if err == nil {
		return ""
	}
	return protocol.AsError(err).Code
}

func TestBackupOverREST(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	s.User(t, "bob", "web", "b1")
	a.Request(t, protocol.TypeSend, "s1", send("bob", "c1", "kept"))
	a.Expect(t, protocol.TypeAck, nil)
	dir := t.TempDir() + "/backup"
	if err := s.Admin.Backup(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Admin.Backup(t.Context(), dir); protocolCode(err) != protocol.CodeAlreadyExists {
		t.Errorf("second backup into %s: %v, want already_exists", dir, err)
	}
	if status, _ := doHTTP(t, s, "POST", "/v1/backup", parleytest.AdminKey, `{"dir":"relative"}`); status != http.StatusBadRequest {
		t.Errorf("relative dir: %d, want 400", status)
	}
	// The copy is a data directory a server starts on, with the message.
	c := parleytest.NewServer(t, func(cfg *server.Config) { cfg.DataDir = dir })
	var page protocol.Messages
	getJSON(t, c, "/v1/conversations/d:alice:bob/messages?user=bob", &page)
	if len(page.Messages) != 1 || string(page.Messages[0].Content) != `{"text":"kept"}` {
		t.Errorf("messages in the backup: %+v", page)
	}
}

// TestLargePullFitsTheConnection pulls a page whose messages are as large
// as content may be: the page ends at 1 MiB of content with more set, and
// the connection stays up (it used to overflow the outbound queue and be
// closed as a slow consumer).
func TestLargePullFitsTheConnection(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	b, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))
	big := strings.Repeat("x", 30_000)
	const n = 60 // 1.8 MB of content
	for i := range n {
		a.Request(t, protocol.TypeSend, fmt.Sprint("s", i), send("bob", fmt.Sprint("c", i), big))
		a.Expect(t, protocol.TypeAck, nil)
		b.Expect(t, protocol.TypeMessage, nil)
	}
	var got []protocol.Message
	from := int64(1)
	for page := 0; ; page++ {
		b.Request(t, protocol.TypePull, fmt.Sprint("p", page), protocol.Pull{Conversation: "d:alice:bob", From: from, Limit: 200})
		var m protocol.Messages
		b.Expect(t, protocol.TypeMessages, &m)
		size := 0
		for _, msg := range m.Messages {
			size += len(msg.Content)
		}
		if size > 1<<20+32<<10 {
			t.Fatalf("page %d holds %d bytes of content", page, size)
		}
		got = append(got, m.Messages...)
		if !m.More {
			break
		}
		if page == 0 && len(m.Messages) >= n {
			t.Fatal("the first page was not cut at 1 MiB")
		}
		from = m.Messages[len(m.Messages)-1].Seq + 1
	}
	if len(got) != n || got[n-1].Seq != n {
		t.Fatalf("pulled %d messages, want %d in order", len(got), n)
	}
	b.Request(t, protocol.TypePing, "ping", nil)
	b.Expect(t, protocol.TypePong, nil) // still connected
}

// TestContentComesBackCompact sends content with whitespace between its
// tokens and characters encoding/json would escape by default: the push, the
// WebSocket pull, the conversation list and the REST pull all return its
// compact form, nothing escaped, and a resend that differs only in that whitespace is the
// same message.
func TestContentComesBackCompact(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	b, _ := parleytest.Dial(t, s.WSURL, s.User(t, "bob", "web", "b1"))
	const sent, compact = "{ \"text\" : \"hello <b> & there\",\n  \"n\": 1.50 }", `{"text":"hello <b> & there","n":1.50}`
	// Written by hand: encoding/json on this side would escape < and & itself.
	a.WriteRaw(t, []byte(`{"type":"send","id":"s1","data":{"cid":"c1","to":"bob","ctype":"text","content":`+sent+`}}`))
	a.Expect(t, protocol.TypeAck, nil)
	var m protocol.Message
	b.Expect(t, protocol.TypeMessage, &m)
	if string(m.Content) != compact {
		t.Errorf("push content %s, want %s", m.Content, compact)
	}
	b.Request(t, protocol.TypePull, "p1", protocol.Pull{Conversation: "d:alice:bob"})
	var page protocol.Messages
	b.Expect(t, protocol.TypeMessages, &page)
	if len(page.Messages) != 1 || string(page.Messages[0].Content) != compact {
		t.Errorf("pulled %+v, want %s", page.Messages, compact)
	}
	_, body := doHTTP(t, s, "GET", "/v1/conversations/d:alice:bob/messages?user=bob", parleytest.AdminKey, "")
	if !strings.Contains(string(body), `"content":`+compact) {
		t.Errorf("REST pull %s, want content %s", body, compact)
	}
	b.Request(t, protocol.TypeConversations, "c1", nil)
	f := b.Expect(t, protocol.TypeConversations, nil)
	if !strings.Contains(string(f.Data), `"content":`+compact) {
		t.Errorf("conversations %s, want last message content %s", f.Data, compact)
	}
	a.WriteRaw(t, []byte(`{"type":"send","id":"s2","data":{"cid":"c1","to":"bob","ctype":"text","content":`+compact+`}}`))
	var ack protocol.Ack
	a.Expect(t, protocol.TypeAck, &ack)
	if !ack.Duplicate || ack.Seq != 1 {
		t.Errorf("resend in compact form: %+v, want the original, marked dup", ack)
	}
}

// TestSendFramesInAnyKeyOrder sends the same kind of frame with its type
// first (the one-pass path) and last (the general path), and a send whose
// data does not decode: both are acked, the bad one is a bad_frame.
func TestSendFramesInAnyKeyOrder(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	s.User(t, "bob", "web", "b1")
	for i, frame := range []string{
		`{"type":"send","id":"f1","data":{"cid":"k1","to":"bob","ctype":"text","content":{"n":1}}}`,
		`{"id":"f2","data":{"cid":"k2","to":"bob","ctype":"text","content":{"n":2}},"type":"send"}`,
	} {
		a.WriteRaw(t, []byte(frame))
		var ack protocol.Ack
		f := a.Expect(t, protocol.TypeAck, &ack)
		if f.ID != fmt.Sprint("f", i+1) || ack.Seq != int64(i+1) {
			t.Errorf("frame %d: ack %+v (id %q)", i+1, ack, f.ID)
		}
	}
	a.WriteRaw(t, []byte(`{"type":"send","id":"f3","data":{"cid":3,"to":"bob","ctype":"text","content":{}}}`))
	if f := a.ExpectError(t, protocol.CodeBadFrame); f.ID != "f3" {
		t.Errorf("bad send answered with id %q, want f3", f.ID)
	}
}
