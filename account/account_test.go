package account

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := s.hashPassword(context.Background(), "long enough"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestProfileValidation(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{})
	long := strings.Repeat("é", MaxNicknameRunes+1)
	for name, in := range map[string]NewUser{
		"bad id":        {ID: "no:colons"},
		"long nickname": {ID: "a", Nickname: long},
		"bad extra":     {ID: "b", Extra: json.RawMessage(`{`)},
		"huge extra":    {ID: "c", Extra: json.RawMessage(`"` + strings.Repeat("x", MaxExtraBytes) + `"`)},
		"invalid utf-8": {ID: "d", Nickname: "\xff"},
	} {
		if _, err := s.CreateUser(ctx, in); err == nil {
			t.Errorf("%s: created", name)
		}
	}
	if _, err := s.CreateUser(ctx, NewUser{ID: "ok", Nickname: strings.Repeat("é", MaxNicknameRunes)}); err != nil {
		t.Fatalf("a nickname of exactly the limit: %v", err)
	}
	if _, err := s.CreateUser(ctx, NewUser{ID: "ok"}); code(err) != protocol.CodeAlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	nick := "New"
	if u, err := s.UpdateUser(ctx, "ok", UserUpdate{Nickname: &nick}); err != nil || u.Nickname != "New" {
		t.Fatalf("update = %+v, %v", u, err)
	}
	if _, err := s.UpdateUser(ctx, "missing", UserUpdate{Nickname: &nick}); code(err) != protocol.CodeNotFound {
		t.Fatalf("update missing: %v", err)
	}
}
