// Command parley is the Parley instant-messaging server and its operator
// tools, in one binary. Run "parley help" for the commands.
package main

import (
	"context"
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

	"github.com/parleyim/parley/server"
)

// usage is the top-level help; the operator commands are listed from adminCmds.
func usage(w io.Writer) {
	fmt.Fprint(w, `parley: an instant-messaging server in one binary.

Usage:
  parley serve [flags]            run the server (embedded store, no setup)
  parley version                  print the version
  parley loadgen [flags]          run the load generator against a server
  parley help COMMAND             show a command's help (also: COMMAND --help)

Operator commands (over the REST API at --url, env PARLEY_URL, with
--admin-key, env PARLEY_ADMIN_KEY):
`)
	for _, c := range adminCmds {
		fmt.Fprintf(w, "  %-31s %s\n", strings.TrimSpace("parley "+c.name+" "+strings.Join(c.args, " ")), c.summary)
	}
	fmt.Fprint(w, `
Flags may come before or after the arguments. Examples:
  parley serve --data-dir /var/lib/parley --listen :8080
  parley token alice --platform ios --device iphone-1
  parley messages --user bob --with alice
`)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "loadgen":
		return loadgenMain(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && cmd == "help" {
			return run(append(rest, "--help"), stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	if c, rest, ok := findAdminCmd(args); ok {
		return runAdmin(c, rest, stdout, stderr)
	}
	if cmd == "user" {
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help") {
			groupHelp(stdout, cmd)
			return 0
		}
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "parley: unknown command \"user %s\"\n\n", rest[0])
		}
		groupHelp(stderr, cmd)
		return 2
	}
	fmt.Fprintf(stderr, "parley: unknown command %q\n\n", cmd)
	usage(stderr)
	return 2
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
	const name = "parley serve"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	help := func(w io.Writer) {
		fmt.Fprint(w, `Usage: parley serve [flags]

Runs the server. Each setting comes from its flag, else its PARLEY_*
environment variable, else the YAML file (--config), else its default;
docs/operations.md describes them.

Flags:
`)
		printFlags(w, fs)
		fmt.Fprint(w, `
Examples:
  parley serve
  parley serve --listen :8080 --data-dir /var/lib/parley --admin-addr 127.0.0.1:9090
  PARLEY_LOG_LEVEL=debug parley serve --config /etc/parley.yaml
`)
	}
	cfg, err := server.LoadConfig(fs, args, os.Environ())
	if err != nil && (errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(err.Error(), "config:")) {
		return flagFailure(err, name, help, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
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
