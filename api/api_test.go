package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// call performs a REST request with the Authorization header auth (none if
// empty) and returns the status, headers and body.
func call(t *testing.T, s *parleytest.Server, method, path, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

const adminAuth = "Bearer " + parleytest.AdminKey

// wantError checks that a response is the JSON error body with code and its status.
func wantError(t *testing.T, status int, body []byte, code protocol.Code) {
	t.Helper()
	var e protocol.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Code != code || e.Error.Message == "" || status != code.HTTPStatus() {
		t.Fatalf("got %d %s, want %d with code %s", status, body, code.HTTPStatus(), code)
	}
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func TestProfileFieldsMustBeValidUTF8(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "alice", "web", "a1")
	tests := []struct{ name, method, path, body string }{
		{"create, nickname", "POST", "/v1/users", "{\"id\":\"u1\",\"nickname\":\"bad \xff\xfe\"}"},
		{"create, avatar_url", "POST", "/v1/users", "{\"id\":\"u2\",\"avatar_url\":\"https://x/\xc3\"}"},
		{"update, nickname", "PATCH", "/v1/users/alice", "{\"nickname\":\"bad \xff\"}"},
		{"update, avatar_url", "PATCH", "/v1/users/alice", "{\"avatar_url\":\"\xed\xa0\x80\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, s, tt.method, tt.path, adminAuth, tt.body)
			wantError(t, status, body, protocol.CodeInvalidUTF8)
		})
	}
	for _, id := range []string{"u1", "u2"} {
		if _, err := s.Admin.User(context.Background(), id); err == nil {
			t.Errorf("user %s was created from an invalid body", id)
		}
	}
	u, err := s.Admin.User(context.Background(), "alice")
	if err != nil || u.Nickname != "alice" || u.AvatarURL != "" {
		t.Fatalf("alice = %+v, %v; want her profile unchanged", u, err)
	}
}

func TestHugeTTLMeansTheConfiguredTTL(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	s.User(t, "alice", "web", "a1")
	mint := func(ttl string) protocol.Token {
		t.Helper()
		status, _, body := call(t, s, "POST", "/v1/users/alice/tokens", adminAuth, `{"platform":"ios","device":"d","ttl_seconds":`+ttl+`}`)
		var tok protocol.Token
		if status != http.StatusOK || json.Unmarshal(body, &tok) != nil {
			t.Fatalf("ttl_seconds %s: %d %s", ttl, status, body)
		}
		return tok
	}
	def := mint("0")
	for _, ttl := range []string{"10000000000", "9223372036854775807"} {
		got := mint(ttl)
		// Both are the configured TTL after their issue times, which are
		// at most a moment apart.
		if d := got.ExpiresAt.Sub(def.ExpiresAt); d < 0 || d > time.Minute {
			t.Errorf("ttl_seconds %s: expires %v, ttl_seconds 0: %v", ttl, got.ExpiresAt, def.ExpiresAt)
		}
	}
	status, _, body := call(t, s, "POST", "/v1/users/alice/tokens", adminAuth, `{"platform":"ios","device":"d","ttl_seconds":-9223372036854775808}`)
	wantError(t, status, body, protocol.CodeInvalidArgument)
}

func TestWrongMethodIs405(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	tests := []struct{ method, path, allow string }{
		{"DELETE", "/v1/presence", "GET"},
		{"PUT", "/v1/users", "GET"},
		{"POST", "/healthz", "GET"},
		{"GET", "/v1/users/alice/deactivate", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, h, body := call(t, s, tt.method, tt.path, adminAuth, "")
			wantError(t, status, body, protocol.CodeMethodNotAllowed)
			if !strings.Contains(h.Get("Allow"), tt.allow) || h.Get("Content-Type") != "application/json" {
				t.Fatalf("Allow = %q, Content-Type = %q", h.Get("Allow"), h.Get("Content-Type"))
			}
		})
	}
	t.Run("unknown path", func(t *testing.T) {
		status, _, body := call(t, s, "GET", "/v1/nope", adminAuth, "")
		wantError(t, status, body, protocol.CodeNotFound)
	})
}

func TestAuthorizationScheme(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	tests := []struct {
		auth string
		ok   bool
	}{
		{"Bearer " + parleytest.AdminKey, true},
		{"bearer " + parleytest.AdminKey, true},
		{"BEARER " + parleytest.AdminKey, true},
		{"Bearer   " + parleytest.AdminKey, true}, // RFC 9110: 1*SP
		{"Basic " + parleytest.AdminKey, false},
		{"Bearer", false},
		{"Bearer " + parleytest.AdminKey + " x", false},
		{"Bearer\t" + parleytest.AdminKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.auth, func(t *testing.T) {
			status, _, body := call(t, s, "GET", "/v1/users", tt.auth, "")
			if tt.ok {
				if status != http.StatusOK {
					t.Fatalf("got %d %s, want 200", status, body)
				}
				return
			}
			wantError(t, status, body, protocol.CodeUnauthenticated)
		})
	}
}

func TestNoTokenForTheSystemAccount(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	status, _, body := call(t, s, "POST", "/v1/users/system/tokens", adminAuth, `{"platform":"server","device":"d"}`)
	wantError(t, status, body, protocol.CodeReservedUser)
	status, _, body = call(t, s, "POST", "/v1/users/system/deactivate", adminAuth, "")
	wantError(t, status, body, protocol.CodeReservedUser)
}

func TestDeactivate(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	ctx := context.Background()
	alice := s.User(t, "alice", "web", "a1")
	bob := s.User(t, "bob", "web", "b1")
	if _, err := s.Admin.Send(ctx, adminMessage("alice", "bob", "before")); err != nil {
		t.Fatal(err)
	}
	c, _ := parleytest.Dial(t, s.WSURL, alice)
	sessions, err := s.Admin.UserSessions(ctx, "alice")
	if err != nil || len(sessions) != 1 || sessions[0].Device != "a1" {
		t.Fatalf("sessions = %+v, %v", sessions, err)
	}

	n, err := s.Admin.Deactivate(ctx, "alice")
	if err != nil || n != 1 {
		t.Fatalf("deactivate = %d, %v", n, err)
	}
	// The push of the message sent before may come first.
	f := c.Next(t, 10*time.Second)
	for f.Type == protocol.TypeMessage {
		f = c.Next(t, 10*time.Second)
	}
	var k protocol.Kick
	if f.Type != protocol.TypeKick || json.Unmarshal(f.Data, &k) != nil || k.Code != protocol.CodeKickDeactivated {
		t.Fatalf("kick = %+v", k)
	}
	_, err = parleytest.DialErr(s.WSURL, alice)
	wantCode(t, err, protocol.CodeUserDeactivated)
	_, err = s.Admin.IssueToken(ctx, "alice", "ios", "new", 0)
	wantCode(t, err, protocol.CodeUserDeactivated)
	status, _, body := call(t, s, "GET", "/v1/users/alice", "Bearer "+alice, "")
	wantError(t, status, body, protocol.CodeUserDeactivated)
	u, err := s.Admin.User(ctx, "alice")
	if err != nil || !u.Deactivated {
		t.Fatalf("user = %+v, %v; want deactivated", u, err)
	}
	_, err = s.Admin.Send(ctx, adminMessage("bob", "alice", "after"))
	wantCode(t, err, protocol.CodeNotFound)
	_, err = s.Admin.Send(ctx, adminMessage("alice", "bob", "after"))
	wantCode(t, err, protocol.CodeUserDeactivated)

	// The conversation's history stays with bob.
	status, _, body = call(t, s, "GET", "/v1/conversations/d:alice:bob/messages", "Bearer "+bob, "")
	var page protocol.Messages
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Messages) != 1 {
		t.Fatalf("bob's history: %d %s", status, body)
	}

	if n, err := s.Admin.Deactivate(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("second deactivate = %d, %v", n, err)
	}
	_, err = s.Admin.Deactivate(ctx, "nobody")
	wantCode(t, err, protocol.CodeNotFound)
	_, err = s.Admin.UserSessions(ctx, "nobody")
	wantCode(t, err, protocol.CodeNotFound)
}

func adminMessage(from, to, text string) admin.Message {
	return admin.Message{From: from, To: to, ContentType: "text", Content: json.RawMessage(`{"text":"` + text + `"}`)}
}

func TestAdminCredentials(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := s.User(t, "alice", "web", "a1")
	tests := []struct {
		name, method, path, auth string
		code                     protocol.Code
	}{
		{"no credential", "GET", "/v1/users", "", protocol.CodeUnauthenticated},
		{"wrong admin key", "GET", "/v1/users", "Bearer not-the-key", protocol.CodeUnauthenticated},
		{"user token", "GET", "/v1/users", "Bearer " + alice, protocol.CodeForbidden},
		{"malformed device to kick", "POST", "/v1/users/alice/kick?device=a%20b", adminAuth, protocol.CodeInvalidArgument},
		{"malformed device to revoke", "DELETE", "/v1/users/alice/tokens?device=a%2Fb", adminAuth, protocol.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, s, tt.method, tt.path, tt.auth, "")
			wantError(t, status, body, tt.code)
		})
	}
}
