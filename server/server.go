// Package server wires Parley's services into one process: the embedded
// store, accounts, the message service, presence, the WebSocket gateway and
// the REST API, served on one listener (and /metrics with the profiler on a
// second one when Config.AdminAddr is set).
//
// # Lifecycle
//
// New takes the data directory's lock, opens the store and builds
// everything; Start listens and serves in the background; Shutdown turns
// /readyz to 503 and keeps serving for Config.ShutdownDrain (or until
// EndDrain), then stops accepting, tells every client, drains the send
// queue, flushes presence, closes the store and releases the lock, in that
// order. Shutdown is idempotent and safe to call from a signal handler
// goroutine.
//
// # Concurrency model
//
// The HTTP servers serve each request on its own goroutine; the services
// own their goroutines (see their packages). The Server itself holds no
// goroutine but those of http.Server.Serve, which Shutdown waits for.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/api"
	"github.com/parleyim/parley/gateway"
	"github.com/parleyim/parley/group"
	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/presence"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/social"
	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/embedded"
	"github.com/parleyim/parley/web"
)

// Server is one Parley process.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	accounts *account.Service
	messages *message.Service
	groups   *group.Service
	presence *presence.Registry
	gateway  *gateway.Gateway
	http     *http.Server
	admin    *http.Server // nil unless cfg.AdminAddr is set
	ready    atomic.Bool
	lock     *os.File // the data directory's lock, held until Shutdown

	listener      net.Listener
	adminListener net.Listener
	serveErr      chan error
	started       bool
	shutdown      sync.Once
	drainEnd      chan struct{} // closed by EndDrain
	endDrain      sync.Once
	done          chan struct{}
	err           error
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
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	st, err := embedded.Open(ctx, cfg.DataDir, embedded.Options{Sync: cfg.StoreSync, Progress: log.Info})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("server: open store: %w", err)
	}
	accounts, adminKey, err := account.New(ctx, st, account.Config{
		AdminKey:          cfg.AdminKey,
		TokenTTL:          cfg.TokenTTL,
		AllowRegistration: cfg.AllowRegistration,
	})
	if err != nil {
		st.Close()
		lock.Close()
		return nil, err
	}
	switch {
	case adminKey != "":
		fmt.Fprintf(out, "\nParley generated an admin key for this data directory. It is shown only this once:\n\n    %s\n\nPass it as \"Authorization: Bearer <key>\" to the REST API. It stays in force on every start\nthat configures no admin_key (PARLEY_ADMIN_KEY); a configured key replaces it while it is set.\n\n", adminKey)
		log.Info("admin key in force", "source", "generated now and stored in the data directory")
	case cfg.AdminKey != "":
		from := cfg.AdminKeyFrom
		if from == "" {
			from = "configuration"
		}
		log.Info("admin key in force", "source", from, "note", "the stored generated key, if any, is not accepted while a key is configured")
	default:
		log.Info("admin key in force", "source", "the key generated on first start, stored in the data directory")
	}
	s := &Server{cfg: cfg, log: log, store: st, accounts: accounts, lock: lock, drainEnd: make(chan struct{}), done: make(chan struct{})}
	hub := gateway.NewHub(cfg.LoginPolicy)
	friends, err := social.New(ctx, social.Config{FriendRequired: cfg.FriendRequired, AutoAccept: cfg.FriendAutoAccept}, st, accounts, hub, log)
	if err != nil {
		st.Close()
		lock.Close()
		return nil, err
	}
	s.messages = message.New(message.Config{MaxContentBytes: cfg.MaxContentBytes, MaxBatch: cfg.CommitBatch, DirectPolicy: friends}, st, accounts, hub, log)
	s.groups = group.New(group.Config{MaxMembers: cfg.GroupMaxMembers}, st, s.messages, accounts, hub, log)
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
		s.presence.Close(ctx)
		st.Close()
		lock.Close()
		return nil, err
	}
	accounts.OnRevoke(s.gateway.KickDevice)

	mux := http.NewServeMux()
	(&api.API{Accounts: accounts, Messages: s.messages, Groups: s.groups, Social: friends, Gateway: s.gateway, Presence: s.presence, Backup: st.Backup, Log: log}).Routes(mux)
	mux.Handle("GET /v1/ws", s.gateway)
	s.gateway.ServeCalls(api.Calls(api.Handler(mux)))
	ops := mux // where /metrics and the profiler are served
	if cfg.AdminAddr != "" {
		ops = http.NewServeMux()
		s.admin = &http.Server{
			Handler:           ops,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	if cfg.Pprof {
		ops.Handle("/debug/pprof/", adminOnly(accounts, http.HandlerFunc(pprof.Index)))
		ops.Handle("/debug/pprof/profile", adminOnly(accounts, http.HandlerFunc(pprof.Profile)))
		ops.Handle("/debug/pprof/trace", adminOnly(accounts, http.HandlerFunc(pprof.Trace)))
	}
	ops.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	s.http = &http.Server{
		Handler:           logRequests(log, web.Handler(api.Handler(mux))), // the web client at /, then the API
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

// Start listens on cfg.Listen (and cfg.AdminAddr) and serves in the
// background. If it fails, nothing listens; call Shutdown to close the store.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	var adminLn net.Listener
	if s.admin != nil {
		if adminLn, err = net.Listen("tcp", s.cfg.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("server: listen (admin_addr): %w", err)
		}
	}
	s.listener, s.adminListener = ln, adminLn
	s.serveErr = make(chan error, 2)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	attrs := []any{"addr", ln.Addr().String()}
	if adminLn != nil {
		go func() { s.serveErr <- s.admin.Serve(adminLn) }()
		attrs = append(attrs, "admin_addr", adminLn.Addr().String())
	}
	s.started = true
	s.ready.Store(true)
	s.log.Info("parley serving", append(attrs, "data_dir", s.cfg.DataDir, "store_sync", s.cfg.StoreSync, "login_policy", s.cfg.LoginPolicy)...)
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// AdminAddr is the address serving /metrics and the profiler once started:
// Config.AdminAddr's listener, or Addr when that is empty.
func (s *Server) AdminAddr() string {
	if s.adminListener == nil {
		return s.Addr()
	}
	return s.adminListener.Addr().String()
}

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

// EndDrain ends the drain period of a Shutdown in progress at once (an
// operator's second signal); called earlier, it makes a later Shutdown skip
// its drain. It is idempotent.
func (s *Server) EndDrain() {
	s.endDrain.Do(func() { close(s.drainEnd) })
}

// Shutdown stops the server gracefully. It first answers /readyz with 503
// for Config.ShutdownDrain while serving everything as before, so that load
// balancers take the server out of rotation (EndDrain or the end of ctx cut
// the drain short). Then, within ctx, it stops accepting, waits for REST
// requests, kicks every WebSocket client with a shutdown frame, commits and
// delivers queued sends, flushes presence, closes the store and releases
// the data directory's lock.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		defer close(s.done)
		s.ready.Store(false)
		if s.started && s.cfg.ShutdownDrain > 0 {
			s.log.Info("draining: /readyz answers 503", "for", s.cfg.ShutdownDrain)
			t := time.NewTimer(s.cfg.ShutdownDrain)
			select {
			case <-t.C:
			case <-s.drainEnd:
			case <-ctx.Done():
			}
			t.Stop()
		}
		var errs []error
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: http shutdown: %w", err))
		}
		if s.admin != nil {
			if err := s.admin.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("server: admin http shutdown: %w", err))
			}
		}
		if err := s.gateway.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		s.messages.Close()
		if err := s.presence.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("server: flush last seen: %w", err))
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close store: %w", err))
		}
		s.lock.Close() // releases the lock
		s.err = errors.Join(errs...)
		switch {
		case s.err != nil:
			s.log.Error("parley stopped with errors", "err", s.err)
		case s.started:
			s.log.Info("parley stopped")
		}
	})
	<-s.done
	return s.err
}
