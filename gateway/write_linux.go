//go:build linux

package gateway

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxIovecs is how many buffers one writev takes (IOV_MAX).
const maxIovecs = 1024

// writeNow writes bufs to nc's socket without waiting for room in it, and
// returns a copy of what the socket did not take (nil if it took
// everything); with a write deadline passed, it takes nothing. A
// connection without a socket is written in full.
func writeNow(nc net.Conn, bufs net.Buffers) ([]byte, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_, err := bufs.WriteTo(nc)
		return nil, err
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), maxIovecs)]
		var n int
		var werr error
		// Write holds the descriptor against a concurrent close; the
		// function returns true so that Write never waits for room.
		if err := raw.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.Writev(int(fd), chunk)
				if !errors.Is(werr, unix.EINTR) {
					return true
				}
			}
		}); errors.Is(err, os.ErrDeadlineExceeded) {
			return unsent(bufs), nil // the caller's wait sets a deadline of its own
		} else if err != nil {
			return nil, err
		}
		if errors.Is(werr, unix.EAGAIN) {
			n, werr = 0, nil
		}
		if werr != nil {
			return nil, werr
		}
		size := 0
		for _, b := range chunk {
			size += len(b)
		}
		bufs = consume(bufs, n)
		if n < size {
			return unsent(bufs), nil
		}
	}
	return nil, nil
}

// consume drops the first n bytes of bufs.
func consume(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// unsent copies bufs into one slice: the payloads they point into are
// shared with other connections, or reused for the next batch.
func unsent(bufs net.Buffers) []byte {
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	rest := make([]byte, 0, size)
	for _, b := range bufs {
		rest = append(rest, b...)
	}
	return rest
}
