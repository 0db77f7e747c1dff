package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/parleytest"
)

// lockedBuffer collects output written from several goroutines.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // guarded by mu: closed at the next write
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.b.Write(p)
}

// next returns a channel closed at the next write.
func (b *lockedBuffer) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until out contains want.
func waitFor(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := out.next()
		if strings.Contains(out.String(), want) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}

// listen runs Bob's client with a standard input that stays open, as on a
// terminal, until the returned stop (Ctrl-C) is called.
func listen(t *testing.T, cfg config) (out *lockedBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdin, stdinW := io.Pipe()
	t.Cleanup(func() { stdinW.Close() })
	out = &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- chat(ctx, cfg, stdin, out, io.Discard) }()
	return out, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("bob: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the client did not stop on Ctrl-C while reading standard input")
		}
	}
}

// send runs Alice's client with lines on standard input; it must return
// once the lines are sent and echoed.
func send(t *testing.T, cfg config, lines string) string {
	t.Helper()
	var out lockedBuffer
	cfg.to, cfg.echoWait = "bob", 10*time.Second
	if err := chat(context.Background(), cfg, strings.NewReader(lines), &out, io.Discard); err != nil {
		t.Fatalf("alice: %v", err)
	}
	return out.String()
}

// TestWalkThrough is the README's walk-through: Bob listens, Alice sends,
// Bob stops with Ctrl-C, Alice sends more, and the restarted Bob prints only
// what he missed.
func TestWalkThrough(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	dir := t.TempDir()
	alice := config{url: s.WSURL, token: s.User(t, "alice", "linux", "laptop"), state: filepath.Join(dir, "alice.json")}
	bob := config{url: s.WSURL, token: s.User(t, "bob", "ios", "phone"), state: filepath.Join(dir, "bob.json")}

	out, stop := listen(t, bob)
	echo := send(t, alice, "hi Bob\nare you there?\n")
	for _, want := range []string{"d:alice:bob #1] alice: hi Bob", "d:alice:bob #2] alice: are you there?"} {
		if !strings.Contains(echo, want) {
			t.Fatalf("alice exited before her echo %q:\n%s", want, echo)
		}
		waitFor(t, out, want)
	}
	stop()

	send(t, alice, "still there?\n")
	out, stop = listen(t, bob)
	waitFor(t, out, "d:alice:bob #3] alice: still there?")
	stop()
	if strings.Contains(out.String(), "#1]") || strings.Contains(out.String(), "#2]") {
		t.Fatalf("restarted client printed history it had already shown:\n%s", out)
	}
}

// TestDefaultStateIsPerUserAndDevice checks the default state file's name,
// which the client learns from the server.
func TestDefaultStateIsPerUserAndDevice(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	hello, _, err := probe(context.Background(), config{url: s.WSURL, token: s.User(t, "bob", "ios", "phone")})
	if err != nil {
		t.Fatal(err)
	}
	path := defaultStatePath(s.WSURL, hello)
	if want := strings.ReplaceAll(strings.TrimPrefix(s.URL, "http://"), ":", "-") + "_bob_phone.json"; filepath.Base(path) != want {
		t.Fatalf("state file %s, want %s", path, want)
	}
}

// TestStateFromAnotherServerIsDropped: positions beyond what the server has
// (its data directory was replaced) must not hide new messages.
func TestStateFromAnotherServerIsDropped(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	state := filepath.Join(t.TempDir(), "bob.json")
	if err := os.WriteFile(state, []byte(`{"positions":{"d:alice:bob":7}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := config{url: s.WSURL, token: s.User(t, "alice", "linux", "laptop"), state: filepath.Join(t.TempDir(), "alice.json")}
	bob := config{url: s.WSURL, token: s.User(t, "bob", "ios", "phone"), state: state}
	send(t, alice, "hello again\n")
	out, stop := listen(t, bob)
	waitFor(t, out, "d:alice:bob #1] alice: hello again")
	stop()
}

// TestGroupWalkThrough is the README's group chat: the app server makes a
// group, one member writes into it with -conv, the others see it.
func TestGroupWalkThrough(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	dir := t.TempDir()
	alice := config{url: s.WSURL, token: s.User(t, "alice", "linux", "laptop"), state: filepath.Join(dir, "alice.json")}
	bob := config{url: s.WSURL, token: s.User(t, "bob", "ios", "phone"), state: filepath.Join(dir, "bob.json")}
	s.User(t, "carol", "web", "w1")
	if _, err := s.Admin.CreateGroup(t.Context(), "team", []string{"alice", "bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	out, stop := listen(t, bob)
	defer stop()
	var echo lockedBuffer
	alice.conv, alice.echoWait = "g:team", 10*time.Second
	if err := chat(context.Background(), alice, strings.NewReader("hello team\n"), &echo, io.Discard); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if !strings.Contains(echo.String(), "g:team #2] alice: hello team") {
		t.Fatalf("alice exited before her echo:\n%s", echo.String())
	}
	waitFor(t, out, "g:team #1] * system created the group")
	waitFor(t, out, "g:team #2] alice: hello team")
}
