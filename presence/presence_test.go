package presence

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

type memStore struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (m *memStore) SetLastSeen(_ context.Context, ids []string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.seen[id] = t
	}
	return nil
}

func (m *memStore) LastSeen(_ context.Context, id string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[id], nil
}

type sink struct {
	mu     sync.Mutex
	frames []string
}

func (s *sink) Push(frame []byte) {
	s.mu.Lock()
	s.frames = append(s.frames, string(frame))
	s.mu.Unlock()
}

func newRegistry(t *testing.T, st *memStore) *Registry {
	r := New(st, func(p protocol.Presence) ([]byte, error) {
		if p.Online {
			return []byte(p.User + " online"), nil
		}
		return []byte(p.User + " offline"), nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(r.Close)
	return r
}

func TestSubscribeShowsStoredLastSeen(t *testing.T) {
	earlier := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	r := newRegistry(t, &memStore{seen: map[string]time.Time{"bob": earlier}})
	got := r.Subscribe(context.Background(), &sink{}, []string{"bob"})
	if got[0].Online || got[0].LastSeen != earlier.UnixMilli() {
		t.Fatalf("subscribe = %+v, want offline, last seen %v", got[0], earlier)
	}
	if again := r.Get(context.Background(), []string{"bob"}); again[0].LastSeen != earlier.UnixMilli() {
		t.Fatalf("get after subscribe = %+v", again[0])
	}
}

func TestOnlineAggregatesDevicesAndNotifiesOnTransitions(t *testing.T) {
	st := &memStore{seen: map[string]time.Time{}}
	r := newRegistry(t, st)
	s := &sink{}
	r.Subscribe(context.Background(), s, []string{"bob"})
	r.Connected("bob")
	r.Connected("bob") // a second device: no change to announce
	if p := r.Get(context.Background(), []string{"bob"})[0]; !p.Online || p.Devices != 2 {
		t.Fatalf("presence = %+v", p)
	}
	r.Disconnected("bob")
	r.Disconnected("bob")
	s.mu.Lock()
	frames := append([]string(nil), s.frames...)
	s.mu.Unlock()
	if len(frames) != 2 || frames[0] != "bob online" || frames[1] != "bob offline" {
		t.Fatalf("notifications = %q", frames)
	}
	if online := r.Online(); len(online) != 0 {
		t.Fatalf("online = %v", online)
	}
	r.Close() // flushes last seen
	if st.seen["bob"].IsZero() {
		t.Fatal("last seen was not persisted")
	}
}
