//go:build !linux

package gateway

import "net"

// writeNow writes bufs in full where the non-blocking write of Linux is
// missing: a bulk writer may then wait on a full socket.
func writeNow(nc net.Conn, bufs net.Buffers) ([]byte, error) {
	_, err := bufs.WriteTo(nc)
	return nil, err
}
