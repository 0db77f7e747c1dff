//go:build unix

package loadgen

import (
	"math"
	"syscall"
)

// openFileLimit returns how many files this process may have open. The Go
// runtime has already raised the soft limit to the hard one.
func openFileLimit() int {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return int(min(rl.Cur, math.MaxInt32))
}
