package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// TestReadyzTurns503WhileDraining polls /readyz through a shutdown: it must
// answer 503 while the server still serves REST and WebSocket clients, and
// the shutdown must proceed once the drain ends.
func TestReadyzTurns503WhileDraining(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) { c.ShutdownDrain = time.Hour })
	c, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	if status, _ := doHTTP(t, s, "GET", "/readyz", "", ""); status != http.StatusOK {
		t.Fatalf("readyz before shutdown: %d", status)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatalf("readyz while stopping: %v (the listener closed before readiness turned 503)", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz while stopping: %d", resp.StatusCode)
		}
	}
	// Draining: everything is still served.
	if status, body := doHTTP(t, s, "GET", "/v1/users/alice", parleytest.AdminKey, ""); status != http.StatusOK {
		t.Fatalf("REST while draining: %d %s", status, body)
	}
	c.Request(t, protocol.TypePing, "p1", struct{}{})
	c.Expect(t, protocol.TypePong, nil)
	select {
	case err := <-stopped:
		t.Fatalf("shutdown ended during the drain: %v", err)
	default:
	}
	s.EndDrain()
	var k protocol.Kick
	c.Expect(t, protocol.TypeKick, &k)
	if k.Code != protocol.CodeKickShutdown {
		t.Fatalf("kick = %+v", k)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get(s.URL + "/readyz"); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

// TestSecondServerOnOneDataDirIsRefused checks the data directory's lock,
// and that it is released by Shutdown.
func TestSecondServerOnOneDataDirIsRefused(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := server.New(context.Background(), s.Config, log, io.Discard)
	if !errors.Is(err, server.ErrDataDirInUse) {
		t.Fatalf("second server: err = %v, want ErrDataDirInUse", err)
	}
	if !strings.Contains(err.Error(), s.Config.DataDir) {
		t.Fatalf("error %q does not name the data directory", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := server.New(context.Background(), s.Config, log, io.Discard)
	if err != nil {
		t.Fatalf("after shutdown: %v", err)
	}
	again.Shutdown(context.Background())
}

func TestAdminListenerServesMetricsAndProfiler(t *testing.T) {
	s := parleytest.NewServer(t, func(c *server.Config) {
		c.AdminAddr = "127.0.0.1:0"
		c.Pprof = true
	})
	if s.AdminAddr() == s.Addr() {
		t.Fatalf("admin address %s is the public one", s.AdminAddr())
	}
	get := func(base, path string, key bool) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if key {
			req.Header.Set("Authorization", "Bearer "+parleytest.AdminKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	admin := "http://" + s.AdminAddr()
	for _, tc := range []struct {
		name, base, path string
		key              bool
		want             int
	}{
		{"metrics on admin", admin, "/metrics", false, http.StatusOK},
		{"profiler on admin", admin, "/debug/pprof/", true, http.StatusOK},
		{"profiler on admin without key", admin, "/debug/pprof/", false, http.StatusUnauthorized},
		{"metrics not public", s.URL, "/metrics", false, http.StatusNotFound},
		{"profiler not public", s.URL, "/debug/pprof/", true, http.StatusNotFound},
		{"API not on admin", admin, "/v1/sessions", true, http.StatusNotFound},
		{"health public", s.URL, "/healthz", false, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(tc.base, tc.path, tc.key); got != tc.want {
				t.Fatalf("GET %s%s: %d, want %d", tc.base, tc.path, got, tc.want)
			}
		})
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startLogged starts a server whose debug log goes to the returned buffer.
func startLogged(t *testing.T, configure func(*server.Config)) (*server.Server, *syncBuffer) {
	t.Helper()
	cfg := server.Defaults()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.StoreSync = "normal"
	cfg.ShutdownDrain = 0
	if configure != nil {
		configure(&cfg)
	}
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, &buf
}

func TestRequestsAreLoggedAtDebugWithAnID(t *testing.T) {
	srv, logs := startLogged(t, func(c *server.Config) { c.AdminKey = "k" })
	req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/v1/users/nobody", nil)
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set(server.RequestIDHeader, "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(server.RequestIDHeader); got != "req-42" {
		t.Fatalf("response request id = %q", got)
	}
	resp, err = http.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get(server.RequestIDHeader) == "" {
		t.Fatal("no request id generated")
	}
	srv.Shutdown(context.Background()) // the log is complete once the handlers returned
	out := logs.String()
	for _, want := range []string{
		`msg="http request" id=req-42 method=GET path=/v1/users/nobody status=404`,
		"code=not_found",
		"path=/healthz status=200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestAdminKeySourceIsLoggedNeverTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, key, from, want string
	}{
		{"generated", "", "", "source=\"generated now and stored in the data directory\""},
		{"configured", "secret-key-1", "environment PARLEY_ADMIN_KEY", "source=\"environment PARLEY_ADMIN_KEY\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, logs := startLogged(t, func(c *server.Config) { c.AdminKey, c.AdminKeyFrom = tc.key, tc.from })
			out := logs.String()
			if !strings.Contains(out, `msg="admin key in force" `+tc.want) {
				t.Fatalf("log lacks the key's source %s:\n%s", tc.want, out)
			}
			if tc.key != "" && strings.Contains(out, tc.key) {
				t.Fatalf("log shows the key:\n%s", out)
			}
		})
	}
}

func TestConnectionsAndKicksAreLoggedAtDebug(t *testing.T) {
	srv, logs := startLogged(t, func(c *server.Config) { c.AdminKey = "k" })
	ts := &parleytest.Server{Server: srv, URL: "http://" + srv.Addr(), WSURL: "ws://" + srv.Addr() + "/v1/ws"}
	ts.Admin = &admin.Client{BaseURL: ts.URL, Key: "k"}
	c, _ := parleytest.Dial(t, ts.WSURL, ts.User(t, "alice", "web", "a1"))
	c.Request(t, protocol.TypePull, "r1", protocol.Pull{Conversation: "d:alice:nobody"})
	c.ExpectError(t, protocol.CodeNotFound)
	if _, err := ts.Admin.Kick(context.Background(), "alice", "a1"); err != nil {
		t.Fatal(err)
	}
	c.Closed(t, 5*time.Second)
	srv.Shutdown(context.Background()) // the gateway has logged everything once it stopped
	out := logs.String()
	for _, want := range []string{
		`msg="connection opened" conn=1 user=alice device=a1 platform=web`,
		`msg="request refused" conn=1 user=alice device=a1 id=r1 code=not_found`,
		`msg=kick conn=1 user=alice device=a1 code=forced_offline`,
		`msg="connection closed" conn=1 user=alice device=a1`,
		`path=/v1/ws status=upgraded`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
