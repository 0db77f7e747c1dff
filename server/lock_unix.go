//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is the name, in the data directory, of the file whose lock a
// running server holds.
const lockFile = "parley.lock"

// ErrDataDirInUse is returned by New when another process holds the data
// directory's lock.
var ErrDataDirInUse = errors.New("server: data directory in use")

// lockDataDir takes an exclusive lock on the data directory, held until the
// returned file is closed (or the process ends, however it ends).
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("server: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another parley process serves %s (it holds the lock on %s); stop it or choose another data_dir", ErrDataDirInUse, dir, path)
		}
		return nil, fmt.Errorf("server: lock data dir: %w", err)
	}
	return f, nil
}
