//go:build !unix

package server

import (
	"errors"
	"os"
)

// ErrDataDirInUse is returned by New when another process holds the data
// directory's lock. Without flock (this system) the lock is not taken.
var ErrDataDirInUse = errors.New("server: data directory in use")

// lockDataDir opens nothing and locks nothing where flock is missing.
func lockDataDir(string) (*os.File, error) { return nil, nil }
