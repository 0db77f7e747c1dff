// Package server wires Parley's services into one process: the embedded
// store, accounts, the message service, presence, the WebSocket gateway and
// the REST API, all served on one listener.
//
// # Lifecycle
//
// New opens the store and builds everything; Start listens and serves in the
// background; Shutdown stops accepting, tells every client, drains the send
// queue, flushes presence and closes the store, in that order. Shutdown is
// idempotent and safe to call from a signal handler goroutine.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/api"
	"github.com/parleyim/parley/gateway"
	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/presence"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/sqlite"
	"github.com/parleyim/parley/web"
)

// Server is one Parley process.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	accounts *account.Service
	messages *message.Service
	presence *presence.Registry
	gateway  *gateway.Gateway
	http     *http.Server
	ready    atomic.Bool

	listener net.Listener
	serveErr chan error
	shutdown sync.Once
	done     chan struct{}
	err      error
}

// New opens the store in cfg.DataDir and builds a server. If the store had no
// admin key yet, a new one is generated and written to out once.
func New(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "parley.db"), sqlite.Options{Sync: cfg.StoreSync})
	if err != nil {
		return nil, fmt.Errorf("server: open store: %w", err)
	}
	accounts, adminKey, err := account.New(ctx, st, account.Config{
		AdminKey:          cfg.AdminKey,
		TokenTTL:          cfg.TokenTTL,
		AllowRegistration: cfg.AllowRegistration,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	if adminKey != "" {
		fmt.Fprintf(out, "\nParley generated an admin key for this data directory. It is shown only this once:\n\n    %s\n\nPass it as \"Authorization: Bearer <key>\" to the REST API. To replace it, set PARLEY_ADMIN_KEY.\n\n", adminKey)
	}
	s := &Server{cfg: cfg, log: log, store: st, accounts: accounts, done: make(chan struct{})}
	hub := gateway.NewHub(cfg.LoginPolicy)
	s.messages = message.New(message.Config{MaxContentBytes: cfg.MaxContentBytes, MaxBatch: cfg.CommitBatch}, st, accounts, hub, log)
	s.presence = presence.New(lastSeenStore{st}, func(p protocol.Presence) ([]byte, error) {
		return message.EncodePush(protocol.TypePresence, p)
	}, log)
	s.gateway, err = gateway.New(gateway.Config{
		Heartbeat:     cfg.Heartbeat,
		IdleTimeout:   cfg.IdleTimeout,
		MaxFrameBytes: cfg.MaxFrameBytes,
		QueueFrames:   cfg.QueueFrames,
		QueueBytes:    cfg.QueueBytes,
		Compression:   cfg.Compression,
	}, accounts, hub, s.messages, s.presence, log)
	if err != nil {
		s.messages.Close()
		s.presence.Close()
		st.Close()
		return nil, err
	}
	accounts.OnRevoke(s.gateway.KickDevice)

	mux := http.NewServeMux()
	(&api.API{Accounts: accounts, Messages: s.messages, Gateway: s.gateway, Presence: s.presence, Log: log}).Routes(mux)
	mux.Handle("GET /v1/ws", s.gateway)
	mux.Handle("/", web.Handler(http.HandlerFunc(api.NotFound))) // the web client; anything else is a JSON not_found
	if cfg.Pprof {
		mux.Handle("/debug/pprof/", adminOnly(accounts, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", adminOnly(accounts, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/trace", adminOnly(accounts, http.HandlerFunc(pprof.Trace)))
	}
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// adminOnly serves h to requests bearing the admin key and 401 to others.
func adminOnly(accounts *account.Service, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !accounts.IsAdmin(account.BearerToken(r.Header.Get("Authorization"))) {
			http.Error(w, "admin key required\n", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// lastSeenStore adapts the store to presence.Store.
type lastSeenStore struct{ store.Store }

func (l lastSeenStore) LastSeen(ctx context.Context, id string) (time.Time, error) {
	u, err := l.User(ctx, id)
	return u.LastSeen, err
}

// Start listens on cfg.Listen and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.listener = ln
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	s.ready.Store(true)
	s.log.Info("parley serving", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir, "store_sync", s.cfg.StoreSync, "login_policy", s.cfg.LoginPolicy)
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Wait blocks until the server stops serving on its own (a listener error)
// or Shutdown completes, and returns the cause.
func (s *Server) Wait() error {
	select {
	case err := <-s.serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			<-s.done
			return s.err
		}
		return fmt.Errorf("server: serve: %w", err)
	case <-s.done:
		return s.err
	}
}

// Shutdown stops the server gracefully within ctx: it stops accepting, waits
// for REST requests, kicks every WebSocket client with a shutdown frame,
// commits and delivers queued sends, flushes presence and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		defer close(s.done)
		s.ready.Store(false)
		var errs []error
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: http shutdown: %w", err))
		}
		if err := s.gateway.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		s.messages.Close()
		s.presence.Close()
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close store: %w", err))
		}
		s.err = errors.Join(errs...)
		s.log.Info("parley stopped", "err", s.err)
	})
	<-s.done
	return s.err
}
