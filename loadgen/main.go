package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
)

// Main runs the load generator with command-line arguments args (without
// the program and subcommand names) and returns the process exit code: 0
// on success, 1 if the test failed, 2 for bad arguments. The summary goes
// to stdout, progress and errors to stderr; -help prints the flags.
//
// With more than one process, Main starts children by running os.Args
// again with the hidden -child flag in place of args, so args must be the
// tail of os.Args, as it is when cmd/parley passes os.Args[2:].
func Main(args []string, stdout, stderr io.Writer) int {
	l, err := parseFlags(args, stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if l.child {
		// The parent tells its children when to stop, so that they
		// report what they measured; an interrupt is for the parent.
		signal.Ignore(os.Interrupt, syscall.SIGTERM)
		if err := serveShard(context.Background(), os.Stdin, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if l.cpuProfile != "" {
		f, err := os.Create(l.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "loadgen: cpu profile:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	l.cfg.Command = childCommand(os.Args, args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := Run(ctx, l.cfg, stderr)
	if sum != nil {
		if l.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(sum)
		} else {
			sum.WriteText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// childCommand returns the argv prefix that precedes args in argv, which
// starts this subcommand again, or nil if args is not the tail of argv.
func childCommand(argv, args []string) []string {
	n := len(argv) - len(args)
	if n < 1 || !slices.Equal(argv[n:], args) {
		return nil
	}
	return slices.Clone(argv[:n])
}
