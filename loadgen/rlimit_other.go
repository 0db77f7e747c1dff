//go:build !unix

package loadgen

// openFileLimit returns 0: the limit is unknown on this system.
func openFileLimit() int { return 0 }
