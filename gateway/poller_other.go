//go:build !linux

package gateway

import "net"

// poller, where epoll is missing, serves each connection with a goroutine
// that blocks reading it: rearm dispatches again at once, and the new
// dispatch waits in its read for the next frame.
type poller struct {
	dispatch func(*conn)
}

func newPoller(dispatch func(*conn)) (*poller, error) { return &poller{dispatch: dispatch}, nil }

func socketFD(net.Conn) (int, error) { return -1, nil }

func (p *poller) add(c *conn) error   { go p.dispatch(c); return nil }
func (p *poller) rearm(c *conn) error { go p.dispatch(c); return nil }
func (p *poller) remove(*conn)        {}
func (p *poller) close()              {}
