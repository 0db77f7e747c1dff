package social

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/store/sqlite"
)

// everyone says every user exists.
type everyone struct{}

func (everyone) UserExists(context.Context, string) (bool, error) { return true, nil }

// pushes records the changed pushes delivered.
type pushes struct {
	mu  sync.Mutex
	got map[string][]protocol.Changed // by user
}

func (p *pushes) DeliverBulk(users []string, frame []byte, except router.Device) {
	p.Deliver(users, frame, except)
}

func (p *pushes) Deliver(users []string, frame []byte, _ router.Device) {
	var f struct {
		Type string           `json:"type"`
		Data protocol.Changed `json:"data"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.Type != protocol.TypeChanged {
		panic("unexpected frame " + string(frame))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range users {
		p.got[u] = append(p.got[u], f.Data)
	}
}

func (p *pushes) Kick(string, string, protocol.Code, string) int { return 0 }

func newService(t *testing.T, cfg Config) (*Service, *sqlite.Store, *pushes) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "parley.db"), sqlite.Options{Sync: sqlite.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &pushes{got: map[string][]protocol.Changed{}}
	s, err := New(t.Context(), cfg, st, everyone{}, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, st, p
}

func code(err error) protocol.Code {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "other: " + protocol.Code(err.Error())
	}
	return ""
}

func TestCheckDirect(t *testing.T) {
	ctx := t.Context()
	for _, required := range []bool{false, true} {
		s, st, _ := newService(t, Config{FriendRequired: required})
		strangers := protocol.Code("")
		if required {
			strangers = protocol.CodeNotFriends
		}
		for _, tc := range []struct{ from, to string }{{"a", "b"}, {"b", "a"}} {
			if got := code(s.CheckDirect(ctx, tc.from, tc.to)); got != strangers {
				t.Errorf("required=%v %s→%s strangers: %q, want %q", required, tc.from, tc.to, got, strangers)
			}
		}
		if _, err := s.Block(ctx, "b", "a"); err != nil {
			t.Fatal(err)
		}
		if got := code(s.CheckDirect(ctx, "a", "b")); got != protocol.CodeBlocked {
			t.Errorf("required=%v a→b blocked: %q", required, got)
		}
		for _, tc := range []struct{ from, to string }{{"system", "b"}, {"b", "system"}} {
			if got := code(s.CheckDirect(ctx, tc.from, tc.to)); got != "" {
				t.Errorf("required=%v %s→%s: %q, want allowed", required, tc.from, tc.to, got)
			}
		}
		if _, err := s.Import(ctx, protocol.FriendImport{Friendships: []protocol.Friendship{{User: "a", Friend: "b"}}}); err != nil {
			t.Fatal(err)
		}
		if got := code(s.CheckDirect(ctx, "b", "a")); got != "" {
			t.Errorf("required=%v b→a friends: %q", required, got)
		}
		if got := code(s.CheckDirect(ctx, "a", "b")); got != protocol.CodeBlocked {
			t.Errorf("required=%v a→b friends but blocked: %q", required, got)
		}
		// A new service on the same store loads the same sets.
		again, err := New(ctx, Config{FriendRequired: required}, st, everyone{}, &pushes{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := code(again.CheckDirect(ctx, "a", "b")); got != protocol.CodeBlocked {
			t.Errorf("required=%v after reload a→b: %q", required, got)
		}
		if got := code(again.CheckDirect(ctx, "b", "a")); got != "" {
			t.Errorf("required=%v after reload b→a: %q", required, got)
		}
	}
}

// TestConcurrentMutualRequests checks that two users asking each other at
// the same moment end up friends once, whichever commits first.
func TestConcurrentMutualRequests(t *testing.T) {
	ctx := t.Context()
	s, _, p := newService(t, Config{FriendRequired: true})
	for i := range 20 {
		a, b := "a"+string(rune('a'+i)), "b"+string(rune('a'+i))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { _, errs[0] = s.RequestFriend(ctx, a, protocol.NewFriendRequest{To: b}) })
		wg.Go(func() { _, errs[1] = s.RequestFriend(ctx, b, protocol.NewFriendRequest{To: a}) })
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("requests: %v, %v", errs[0], errs[1])
		}
		for _, pr := range [][2]string{{a, b}, {b, a}} {
			if _, err := s.Friend(ctx, pr[0], pr[1]); err != nil {
				t.Fatalf("%s and %s are not friends: %v", pr[0], pr[1], err)
			}
			if err := s.CheckDirect(ctx, pr[0], pr[1]); err != nil {
				t.Fatalf("CheckDirect(%s, %s) = %v", pr[0], pr[1], err)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got["aa"]) == 0 {
		t.Fatal("no changed push")
	}
}

// TestCheckDirectDuringWrites runs sends' checks while blocks come and go,
// for the race detector.
func TestCheckDirectDuringWrites(t *testing.T) {
	ctx := t.Context()
	s, _, _ := newService(t, Config{FriendRequired: true})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = s.CheckDirect(ctx, "a", "b")
				}
			}
		})
	}
	for range 20 {
		if _, err := s.Block(ctx, "b", "a"); err != nil {
			t.Error(err)
		}
		if err := s.Unblock(ctx, "b", "a"); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := code(s.CheckDirect(ctx, "a", "b")); got != protocol.CodeNotFriends {
		t.Fatalf("after the last unblock: %q, want not_friends", got)
	}
}
