package account

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/sqlite"
)

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, _, err := New(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func code(err error) protocol.Code {
	if err == nil {
		return ""
	}
	return protocol.AsError(err).Code
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{TokenTTL: time.Hour})
	if _, err := s.CreateUser(ctx, NewUser{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }

	tok, exp, err := s.IssueToken(ctx, "alice", "ios", "phone", 0)
	if err != nil || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("issue: exp %v, err %v", exp, err)
	}
	c, err := s.Verify(tok)
	if err != nil || c.User != "alice" || c.Platform != "ios" || c.Device != "phone" {
		t.Fatalf("verify = %+v, %v", c, err)
	}

	t.Run("tampered", func(t *testing.T) {
		parts := strings.Split(tok, ".")
		forged := parts[0] + "." + parts[1] + "x." + parts[2]
		if got := code(func() error { _, err := s.Verify(forged); return err }()); got != protocol.CodeUnauthenticated {
			t.Fatalf("code = %s", got)
		}
	})
	t.Run("other key", func(t *testing.T) {
		other := newService(t, Config{})
		if _, err := other.CreateUser(ctx, NewUser{ID: "alice"}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Verify(tok); code(err) != protocol.CodeUnauthenticated {
			t.Fatalf("a token of another server verified: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		s.now = func() time.Time { return now.Add(time.Hour + time.Second) }
		defer func() { s.now = func() time.Time { return now } }()
		if _, err := s.Verify(tok); code(err) != protocol.CodeTokenExpired {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ttl capped", func(t *testing.T) {
		_, exp, err := s.IssueToken(ctx, "alice", "ios", "phone", 100*time.Hour)
		if err != nil || !exp.Equal(now.Add(time.Hour)) {
			t.Fatalf("exp %v, err %v", exp, err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tt := range []struct{ user, platform, device string }{
			{"nobody", "ios", "d"}, {"alice", "toaster", "d"}, {"alice", "ios", ""}, {"alice", "ios", "has space"},
		} {
			if _, _, err := s.IssueToken(ctx, tt.user, tt.platform, tt.device, 0); err == nil {
				t.Errorf("IssueToken(%q, %q, %q) succeeded", tt.user, tt.platform, tt.device)
			}
		}
	})
	t.Run("revoked device, then a new token in the same millisecond", func(t *testing.T) {
		var hooked []string
		s.OnRevoke(func(user, device string, c protocol.Code) int {
			hooked = append(hooked, user+"/"+device+"/"+string(c))
			return 1
		})
		other, _, _ := s.IssueToken(ctx, "alice", "web", "browser", 0)
		n, err := s.Revoke(ctx, "alice", "phone", protocol.CodeKickAdmin)
		if err != nil || n != 1 || len(hooked) != 1 || hooked[0] != "alice/phone/forced_offline" {
			t.Fatalf("revoke = %d, %v; hook saw %v", n, err, hooked)
		}
		if _, err := s.Verify(tok); code(err) != protocol.CodeTokenRevoked {
			t.Fatalf("revoked token: %v", err)
		}
		if _, err := s.Verify(other); err != nil {
			t.Fatalf("another device's token was revoked too: %v", err)
		}
		fresh, _, _ := s.IssueToken(ctx, "alice", "ios", "phone", 0) // same clock reading
		if _, err := s.Verify(fresh); err != nil {
			t.Fatalf("a token minted after the revocation: %v", err)
		}
		if _, err := s.Revoke(ctx, "alice", "", protocol.CodeKickRevoked); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(other); code(err) != protocol.CodeTokenRevoked {
			t.Fatalf("revoking every device left a token valid: %v", err)
		}
	})
}

func TestRevocationsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	open := func() (*Service, func()) {
		st, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := New(ctx, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() { st.Close() }
	}
	s, closeStore := open()
	s.CreateUser(ctx, NewUser{ID: "alice"})
	tok, _, _ := s.IssueToken(ctx, "alice", "web", "b", 0)
	if _, err := s.Revoke(ctx, "alice", "", protocol.CodeKickRevoked); err != nil {
		t.Fatal(err)
	}
	closeStore()
	s, closeStore = open()
	defer closeStore()
	if _, err := s.Verify(tok); code(err) != protocol.CodeTokenRevoked {
		t.Fatalf("after restart: %v", err)
	}
}

func TestAdminKey(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, generated, err := New(ctx, st, Config{})
	if err != nil || generated == "" || !s.IsAdmin(generated) || s.IsAdmin(generated+"x") || s.IsAdmin("") {
		t.Fatalf("first start: key %q, err %v", generated, err)
	}
	again, shown, err := New(ctx, st, Config{})
	if err != nil || shown != "" || !again.IsAdmin(generated) {
		t.Fatalf("second start showed %q (err %v); the stored key must still work", shown, err)
	}
	configured, _, _ := New(ctx, st, Config{AdminKey: "mine"})
	if !configured.IsAdmin("mine") || configured.IsAdmin(generated) {
		t.Fatal("a configured admin key must replace the stored one")
	}
}

func TestPasswords(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{AllowRegistration: true})
	if _, err := s.Register(ctx, NewUser{ID: "dave", Password: "short"}); code(err) != protocol.CodeInvalidArgument {
		t.Fatalf("short password: %v", err)
	}
	if _, err := s.Register(ctx, NewUser{ID: "dave", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.User(ctx, "dave")
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") || strings.Contains(u.PasswordHash, "correct horse") {
		t.Fatalf("stored hash %q", u.PasswordHash)
	}
	if _, _, err := s.Login(ctx, "dave", "correct horse", "web", "b"); err != nil {
		t.Fatalf("login: %v", err)
	}
	for _, tt := range []struct{ user, password string }{{"dave", "wrong horse"}, {"nobody", "correct horse"}, {"system", "anything!"}} {
		if _, _, err := s.Login(ctx, tt.user, tt.password, "web", "b"); code(err) != protocol.CodeUnauthenticated {
			t.Errorf("login %s/%s: %v", tt.user, tt.password, err)
		}
	}
	closed := newService(t, Config{})
	if _, err := closed.CreateUser(ctx, NewUser{ID: "made-by-admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := closed.Register(ctx, NewUser{ID: "eve", Password: "correct horse"}); code(err) != protocol.CodeDisabled {
		t.Fatalf("registration when disabled: %v", err)
	}
}

func TestFirstRunRegistration(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open := func() *Service {
		s, _, err := New(ctx, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if !s.FirstRunRegistration() {
		t.Fatal("a fresh store must allow first-run registration")
	}
	for _, id := range []string{"ann", "ben"} {
		if _, err := s.Register(ctx, NewUser{ID: id, Password: "correct horse"}); err != nil {
			t.Fatalf("first-run register %s: %v", id, err)
		}
	}
	if s = open(); !s.FirstRunRegistration() {
		t.Fatal("self-registered users must not close first-run registration across restarts")
	}
	if _, err := s.CreateUser(ctx, NewUser{ID: "made-by-admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, NewUser{ID: "cat", Password: "correct horse"}); code(err) != protocol.CodeDisabled {
		t.Fatalf("register after an admin-made user: %v", err)
	}
	if s = open(); s.FirstRunRegistration() {
		t.Fatal("an admin-made user must close first-run registration for good")
	}

	// A store that had users before the rule existed counts as set up.
	old, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "old.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.CreateUser(ctx, store.User{ID: "legacy"}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := New(ctx, old, Config{}); s.FirstRunRegistration() {
		t.Fatal("a store with users must not open first-run registration")
	}
}

func TestHashConcurrencyIsCapped(t *testing.T) {
	s := newService(t, Config{HashConcurrency: 1})
	s.hashSlots <- struct{}{} // the only slot is taken
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.hashPassword(ctx, "long enough"); code(err) != protocol.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable while every slot is busy", err)
	}
	<-s.hashSlots

	synctest.Test(t, func(t *testing.T) {
		const slots, callers = 2, 6
		release := make(chan struct{})
		var mu sync.Mutex
		inflight, most := 0, 0
		s := &Service{hashSlots: make(chan struct{}, slots), idKey: func(_, _ []byte, _, _ uint32, _ uint8, n uint32) []byte {
			mu.Lock()
			inflight++
			most = max(most, inflight)
			mu.Unlock()
			<-release
			mu.Lock()
			inflight--
			mu.Unlock()
			return make([]byte, n)
		}}
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				if _, err := s.hashPassword(context.Background(), "long enough"); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // every caller hashes or waits for a slot
		mu.Lock()
		busy := inflight
		mu.Unlock()
		if busy != slots {
			t.Errorf("%d hashes run at once with %d callers, want the cap %d", busy, callers, slots)
		}
		close(release)
		wg.Wait()
		if most != slots {
			t.Errorf("at most %d hashes ran at once, want %d", most, slots)
		}
	})
}

func TestProfileValidation(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{})
	long := strings.Repeat("é", MaxNicknameRunes+1)
	tests := []struct {
		name string
		in   NewUser
		want protocol.Code
	}{
		{"bad id", NewUser{ID: "no:colons"}, protocol.CodeInvalidArgument},
		{"long nickname", NewUser{ID: "a", Nickname: long}, protocol.CodeInvalidArgument},
		{"long avatar_url", NewUser{ID: "a", AvatarURL: strings.Repeat("x", MaxAvatarURLLen+1)}, protocol.CodeInvalidArgument},
		{"bad extra", NewUser{ID: "b", Extra: json.RawMessage(`{`)}, protocol.CodeInvalidArgument},
		{"huge extra", NewUser{ID: "c", Extra: json.RawMessage(`"` + strings.Repeat("x", MaxExtraBytes) + `"`)}, protocol.CodeInvalidArgument},
		{"invalid utf-8 nickname", NewUser{ID: "d", Nickname: "\xff"}, protocol.CodeInvalidUTF8},
		{"invalid utf-8 avatar_url", NewUser{ID: "d", AvatarURL: "\xc3"}, protocol.CodeInvalidUTF8},
		{"short password", NewUser{ID: "e", Password: "short"}, protocol.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.CreateUser(ctx, tt.in); code(err) != tt.want {
				t.Fatalf("err = %v, want code %s", err, tt.want)
			}
			if _, err := s.User(ctx, tt.in.ID); code(err) != protocol.CodeNotFound && tt.in.ID != "no:colons" {
				t.Fatalf("user %q was stored: %v", tt.in.ID, err)
			}
		})
	}
	if _, err := s.CreateUser(ctx, NewUser{ID: "ok", Nickname: strings.Repeat("é", MaxNicknameRunes)}); err != nil {
		t.Fatalf("a nickname of exactly the limit: %v", err)
	}
	if _, err := s.CreateUser(ctx, NewUser{ID: "ok"}); code(err) != protocol.CodeAlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	nick, bad := "New", "\xfe"
	if u, err := s.UpdateUser(ctx, "ok", UserUpdate{Nickname: &nick}); err != nil || u.Nickname != "New" {
		t.Fatalf("update = %+v, %v", u, err)
	}
	if _, err := s.UpdateUser(ctx, "ok", UserUpdate{AvatarURL: &bad}); code(err) != protocol.CodeInvalidUTF8 {
		t.Fatalf("update with invalid UTF-8: %v", err)
	}
	if _, err := s.UpdateUser(ctx, "missing", UserUpdate{Nickname: &nick}); code(err) != protocol.CodeNotFound {
		t.Fatalf("update missing: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER abc", "abc"},
		{"Bearer   abc", "abc"}, // RFC 9110: 1*SP between scheme and credential
		{"Bearer abc def", ""},
		{"Bearer\tabc", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Basic abc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := BearerToken(tt.header); got != tt.want {
			t.Errorf("BearerToken(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestNoTokenForTheSystemAccount(t *testing.T) {
	s := newService(t, Config{})
	if _, _, err := s.IssueToken(context.Background(), SystemUser, "server", "d", 0); code(err) != protocol.CodeReservedUser {
		t.Fatalf("err = %v, want reserved_user", err)
	}
}

func TestDeactivate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	open := func() (*Service, func()) {
		st, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := New(ctx, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() { st.Close() }
	}
	s, closeStore := open()
	s.CreateUser(ctx, NewUser{ID: "alice"})
	var kicked []string
	s.OnRevoke(func(user, device string, c protocol.Code) int {
		kicked = append(kicked, user+"/"+device+"/"+string(c))
		return 1
	})
	tok, _, _ := s.IssueToken(ctx, "alice", "web", "b", 0)
	if ok, err := s.UserExists(ctx, "alice"); !ok || err != nil {
		t.Fatalf("exists before = %v, %v", ok, err)
	}
	if n, err := s.Deactivate(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("deactivate = %d, %v", n, err)
	}
	if len(kicked) != 1 || kicked[0] != "alice//"+string(protocol.CodeKickDeactivated) {
		t.Fatalf("hook calls = %q", kicked)
	}
	if ok, err := s.UserExists(ctx, "alice"); ok || err != nil {
		t.Fatalf("exists after = %v, %v; the cached answer must go", ok, err)
	}
	if _, err := s.Deactivate(ctx, SystemUser); code(err) != protocol.CodeReservedUser {
		t.Fatalf("deactivate system: %v", err)
	}
	if _, err := s.Deactivate(ctx, "nobody"); code(err) != protocol.CodeNotFound {
		t.Fatalf("deactivate nobody: %v", err)
	}
	closeStore()
	s, closeStore = open()
	defer closeStore()
	if _, err := s.Verify(tok); code(err) != protocol.CodeUserDeactivated {
		t.Fatalf("old token after restart: %v", err)
	}
	if _, _, err := s.IssueToken(ctx, "alice", "web", "b", 0); code(err) != protocol.CodeUserDeactivated {
		t.Fatalf("new token after restart: %v", err)
	}
	// A per-device revocation later does not lift the deactivation.
	s.Revoke(ctx, "alice", "b", protocol.CodeKickRevoked)
	if !s.Deactivated("alice") {
		t.Fatal("a device revocation lifted the deactivation")
	}
}

func TestKnownUsersAreBounded(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{})
	s.knownMax = 3
	for i := range 10 {
		id := "u" + strconv.Itoa(i)
		s.CreateUser(ctx, NewUser{ID: id})
		if ok, err := s.UserExists(ctx, id); !ok || err != nil {
			t.Fatalf("%s exists = %v, %v", id, ok, err)
		}
		s.knownMu.Lock()
		n := len(s.known)
		s.knownMu.Unlock()
		if n > s.knownMax {
			t.Fatalf("known holds %d users, above its bound %d", n, s.knownMax)
		}
	}
	if ok, err := s.UserExists(ctx, "nobody"); ok || err != nil {
		t.Fatalf("nobody exists = %v, %v", ok, err)
	}
}
