package main

import (
	"io"

	"github.com/parleyim/parley/loadgen"
)

// loadgenMain runs the load generator. Its child processes re-run this same
// command line, so args must be the tail of os.Args.
func loadgenMain(args []string, stdout, stderr io.Writer) int {
	return loadgen.Main(args, stdout, stderr)
}
