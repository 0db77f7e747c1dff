package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// TestCallFrame checks that a call frame is the REST API as the
// connection's user: same answers, same checks, errors as error frames.
func TestCallFrame(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	s.User(t, "bob", "web", "b1")

	// A send over REST through the tunnel, then the conversation list.
	a.Request(t, protocol.TypeCall, "1", protocol.Call{Method: "POST", Path: "/v1/messages",
		Body: json.RawMessage(`{"to":"bob","cid":"c1","ctype":"text","content":{"text":"hi"}}`)})
	// As with REST, every device of the sender gets the message pushed,
	// before or after the result.
	var res protocol.CallResult
	for range 2 {
		f := a.Next(t, 5*time.Second)
		if f.Type == protocol.TypeResult {
			if err := json.Unmarshal(f.Data, &res); err != nil || f.ID != "1" {
				t.Fatalf("result %s %v", f.Data, err)
			}
		} else if f.Type != protocol.TypeMessage {
			t.Fatalf("got %s frame", f.Type)
		}
	}
	var ack protocol.Ack
	if err := json.Unmarshal(res.Body, &ack); err != nil || res.Status != http.StatusOK || ack.Seq != 1 || ack.Conversation != "d:alice:bob" {
		t.Fatalf("send by call = %d %s (%v)", res.Status, res.Body, err)
	}
	a.Request(t, protocol.TypeCall, "2", protocol.Call{Method: "GET", Path: "/v1/conversations?limit=5"})
	a.Expect(t, protocol.TypeResult, &res)
	var list protocol.Conversations
	if err := json.Unmarshal(res.Body, &list); err != nil || len(list.Conversations) != 1 || list.Conversations[0].Peer != "bob" {
		t.Fatalf("conversations by call = %s (%v)", res.Body, err)
	}

	for _, tc := range []struct {
		call protocol.Call
		code protocol.Code
	}{
		{protocol.Call{Method: "GET", Path: "/v1/users"}, protocol.CodeForbidden},                                                  // admin only
		{protocol.Call{Method: "POST", Path: "/v1/users/bob/kick"}, protocol.CodeForbidden},                                        // admin only
		{protocol.Call{Method: "PATCH", Path: "/v1/users/bob", Body: json.RawMessage(`{"nickname":"x"}`)}, protocol.CodeForbidden}, // someone else
		{protocol.Call{Method: "GET", Path: "/v1/nowhere"}, protocol.CodeNotFound},
		{protocol.Call{Method: "DELETE", Path: "/v1/conversations"}, protocol.CodeMethodNotAllowed},
		{protocol.Call{Method: "GET", Path: "/metrics"}, protocol.CodeInvalidArgument},
		{protocol.Call{Method: "GET", Path: "/v1/ws"}, protocol.CodeInvalidArgument},
		{protocol.Call{Method: "TRACE", Path: "/v1/conversations"}, protocol.CodeInvalidArgument},
		{protocol.Call{Method: "POST", Path: "/v1/messages", Body: json.RawMessage(`{"to":"bob"}`)}, protocol.CodeInvalidArgument},
	} {
		a.Request(t, protocol.TypeCall, "x", tc.call)
		f := a.ExpectError(t, tc.code)
		if f.ID != "x" {
			t.Errorf("%s %s: error frame id %q", tc.call.Method, tc.call.Path, f.ID)
		}
	}
	// The connection is still good.
	a.Request(t, protocol.TypePing, "p", nil)
	a.Expect(t, protocol.TypePong, nil)
}

// TestSDKCall checks the Go SDK's Call: a route's reply decoded, a refusal
// returned as the server's error.
func TestSDKCall(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "bob", "web", "b1")
	c := dialSDK(t, s, s.User(t, "alice", "web", "a1"), newInbox(t), nil)
	ctx := t.Context()
	if _, err := c.Send(ctx, "bob", "text", json.RawMessage(`{"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	var list protocol.Conversations
	if err := c.Call(ctx, "GET", "/v1/conversations", nil, &list); err != nil || len(list.Conversations) != 1 {
		t.Fatalf("Call conversations = %+v, %v", list, err)
	}
	var pe *protocol.Error
	if err := c.Call(ctx, "GET", "/v1/users", nil, nil); !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("Call admin route = %v, want forbidden", err)
	}
}
