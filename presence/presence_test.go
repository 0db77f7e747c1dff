package presence

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

type memStore struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	fail  int // fail this many SetLastSeen calls
	reads int // LastSeen calls
	block bool
}

func (m *memStore) SetLastSeen(ctx context.Context, ids []string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.block {
		m.mu.Unlock()
		<-ctx.Done()
		m.mu.Lock()
		return ctx.Err()
	}
	if m.fail > 0 {
		m.fail--
		return errors.New("disk on fire")
	}
	for _, id := range ids {
		m.seen[id] = t
	}
	return nil
}

func (m *memStore) LastSeen(_ context.Context, id string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
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
	t.Cleanup(func() { r.Close(context.Background()) })
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
	if err := r.Close(context.Background()); err != nil { // flushes last seen
		t.Fatal(err)
	}
	if st.seen["bob"].IsZero() {
		t.Fatal("last seen was not persisted")
	}
}

// gate is a Subscriber whose first Push blocks until released.
type gate struct {
	sink
	entered, release chan struct{}
	once             sync.Once
}

func (g *gate) Push(frame []byte) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	g.sink.Push(frame)
}

func TestPushesFollowTheOrderOfChanges(t *testing.T) {
	r := newRegistry(t, &memStore{seen: map[string]time.Time{}})
	s := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	r.Subscribe(context.Background(), s, []string{"bob"})
	go r.Connected("bob") // its push blocks in the subscriber
	<-s.entered
	offline := make(chan struct{})
	go func() { r.Disconnected("bob"); close(offline) }()
	// The later change must wait for the earlier push; before the fix it
	// pushed "offline" first, and "online" arrived last.
	select {
	case <-offline:
	case <-time.After(100 * time.Millisecond):
	}
	close(s.release)
	<-offline
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.frames) != 2 || s.frames[1] != "bob offline" {
		t.Fatalf("pushes = %q, want the offline state last", s.frames)
	}
}

func TestFailedLastSeenWriteIsRetried(t *testing.T) {
	st := &memStore{seen: map[string]time.Time{}, fail: 1}
	r := newRegistry(t, st)
	r.Connected("bob")
	r.Disconnected("bob")
	if err := r.flush(context.Background()); err == nil {
		t.Fatal("the failing write reported no error")
	}
	if err := r.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seen["bob"].IsZero() {
		t.Fatal("the last-seen time was dropped after a failed write")
	}
}

func TestCloseHonoursItsContext(t *testing.T) {
	st := &memStore{seen: map[string]time.Time{}, block: true}
	r := newRegistry(t, st)
	r.Connected("bob")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want the context's error", err)
	}
	if err := r.Close(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Close = %v, want the first one's result", err)
	}
}

func TestSubscribersShareOneStoreRead(t *testing.T) {
	st := &memStore{seen: map[string]time.Time{}}
	r := newRegistry(t, st)
	for range 3 {
		r.Subscribe(context.Background(), &sink{}, []string{"ghost"})
	}
	r.Get(context.Background(), []string{"ghost"})
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reads != 1 {
		t.Fatalf("%d store reads for one unknown user, want 1", st.reads)
	}
}
