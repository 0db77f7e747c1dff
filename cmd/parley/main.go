// Command parley is the Parley instant-messaging server and its operator
// tools, in one binary. Run "parley help" for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

const usage = `parley: an instant-messaging server in one binary.

Usage:
  parley serve [flags]            run the server (embedded store, no setup)
  parley version                  print the version
  parley user create [flags]      create a user
  parley user get ID              show a user
  parley user list [flags]        list or search users
  parley token [flags] USER       mint a device token for USER
  parley revoke [flags] USER      revoke USER's tokens (of one device with --device)
  parley kick [flags] USER        force USER's devices offline
  parley send [flags]             send a message as a user or as the system account
  parley online [flags]           list the devices online
  parley loadgen [flags]          run the load generator against a server

The admin commands call the REST API at --url (env PARLEY_URL) with
--admin-key (env PARLEY_ADMIN_KEY). Every command takes --help.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "user", "token", "revoke", "kick", "send", "online":
		return adminCommand(cmd, rest, stdout, stderr)
	case "loadgen":
		return loadgenMain(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// version is the module version for release builds, or the VCS revision.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "parley (unknown version)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = "devel-" + s.Value[:min(12, len(s.Value))]
		}
	}
	return fmt.Sprintf("parley %s %s", v, info.GoVersion)
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: parley serve [flags]\n\nRuns the server. Settings come from flags, then PARLEY_* variables, then the YAML file, then defaults.\n\n")
		fs.PrintDefaults()
	}
	cfg, err := server.LoadConfig(fs, args, os.Environ())
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "parley serve: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "parley serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, stdout)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if err := srv.Start(); err != nil {
		log.Error("start failed", "err", err)
		srv.Shutdown(context.Background())
		return 1
	}
	go func() {
		<-ctx.Done()
		stop() // a second signal is ours to handle: it ends the drain
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		finished := make(chan struct{})
		defer func() { signal.Stop(again); close(finished) }()
		go func() {
			select {
			case <-again:
				log.Info("second signal: ending the drain")
				srv.EndDrain()
			case <-finished:
			}
		}()
		log.Info("shutting down", "drain", cfg.ShutdownDrain, "timeout", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownDrain+cfg.ShutdownTimeout)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Wait(); err != nil {
		log.Error("server stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg server.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// adminCommand runs one of the operator commands over the REST API.
func adminCommand(cmd string, args []string, stdout, stderr io.Writer) int {
	sub := ""
	if cmd == "user" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(stderr, "Usage: parley user create|get|list [flags]\n")
			return 2
		}
		sub, args = args[0], args[1:]
	}
	name := strings.TrimSpace("parley " + cmd + " " + sub)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("url", envOr("PARLEY_URL", "http://127.0.0.1:8080"), "server `URL` (env PARLEY_URL)")
	key := fs.String("admin-key", os.Getenv("PARLEY_ADMIN_KEY"), "admin `key` (env PARLEY_ADMIN_KEY)")
	var (
		id, nickname, avatar, password, search, after string
		platform, device, from, to, ctype, content    string
		ttl                                           time.Duration
		limit                                         int
	)
	positional := ""
	switch cmd + " " + sub {
	case "user create":
		fs.StringVar(&id, "id", "", "user id (generated if empty)")
		fs.StringVar(&nickname, "nickname", "", "display name")
		fs.StringVar(&avatar, "avatar-url", "", "avatar URL")
		fs.StringVar(&password, "password", "", "password for password login (optional)")
	case "user get":
		positional = "ID"
	case "user list":
		fs.StringVar(&search, "search", "", "substring of id or nickname")
		fs.StringVar(&after, "after", "", "cursor: list ids after this one")
		fs.IntVar(&limit, "limit", 100, "page size")
	case "token ":
		positional = "USER"
		fs.StringVar(&platform, "platform", "linux", "platform: ios, android, ipad, android_pad, windows, macos, linux, web, mini_program, server")
		fs.StringVar(&device, "device", "cli", "device id")
		fs.DurationVar(&ttl, "ttl", 0, "token lifetime (0: the server's default)")
	case "revoke ", "kick ":
		positional = "USER"
		fs.StringVar(&device, "device", "", "one device id (all devices if empty)")
	case "send ":
		fs.StringVar(&from, "from", "", "sender user id (the system account if empty)")
		fs.StringVar(&to, "to", "", "recipient user id")
		fs.StringVar(&ctype, "ctype", "text", "content type")
		fs.StringVar(&content, "content", "", `content as JSON, e.g. '{"text":"hi"}'`)
	case "online ":
		fs.StringVar(&id, "user", "", "only this user's devices")
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n", name)
		return 2
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags] %s\n\n", name, positional)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if positional != "" {
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		id = fs.Arg(0)
	}
	if *key == "" {
		fmt.Fprintf(stderr, "%s: the admin key is required (--admin-key or PARLEY_ADMIN_KEY)\n", name)
		return 2
	}
	c := &admin.Client{BaseURL: *baseURL, Key: *key}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out any
	var err error
	switch cmd + " " + sub {
	case "user create":
		out, err = c.CreateUser(ctx, admin.NewUser{ID: id, Nickname: nickname, AvatarURL: avatar, Password: password})
	case "user get":
		out, err = c.User(ctx, id)
	case "user list":
		var users []protocol.User
		var next string
		users, next, err = c.ListUsers(ctx, search, after, limit)
		out = map[string]any{"users": users, "next": next}
	case "token ":
		out, err = c.IssueToken(ctx, id, platform, device, ttl)
	case "revoke ":
		err = c.Revoke(ctx, id, device)
		out = map[string]string{"revoked": id}
	case "kick ":
		var n int
		n, err = c.Kick(ctx, id, device)
		out = map[string]int{"kicked": n}
	case "send ":
		if !json.Valid([]byte(content)) {
			fmt.Fprintf(stderr, "%s: --content must be JSON, e.g. '{\"text\":\"hi\"}'\n", name)
			return 2
		}
		out, err = c.Send(ctx, admin.Message{From: from, To: to, ContentType: ctype, Content: json.RawMessage(content)})
	case "online ":
		out, err = c.Sessions(ctx, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
