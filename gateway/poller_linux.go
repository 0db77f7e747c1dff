//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller watches idle connections with one epoll instance, so that an idle
// connection needs no goroutine: when a socket becomes readable, the poller
// calls dispatch, which starts a short-lived goroutine to read and answer
// what arrived. Sockets are registered EPOLLONESHOT: after an event the
// socket stays disarmed until rearm, so at most one goroutine serves a
// connection at a time.
//
// The Go runtime's own poller keeps watching the same sockets (it needs to,
// for deadlines and blocking reads); epoll allows both.
type poller struct {
	dispatch func(*conn)
	epfd     int
	wakefd   int // an eventfd that interrupts epoll_wait at close

	mu    sync.Mutex
	conns map[int32]*conn // by file descriptor; guarded by mu
	done  chan struct{}
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller(dispatch func(*conn)) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll_create: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("gateway: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("gateway: epoll_ctl wake: %w", err)
	}
	p := &poller{dispatch: dispatch, epfd: epfd, wakefd: wakefd, conns: make(map[int32]*conn), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// socketFD returns the file descriptor of a connection's socket.
func socketFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("gateway: connection has no socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	err = raw.Control(func(f uintptr) { fd = int(f) })
	return fd, err
}

// add starts watching c, armed.
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.conns[int32(c.fd)] = c
	p.mu.Unlock()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: pollEvents, Fd: int32(c.fd)}); err != nil {
		p.mu.Lock()
		delete(p.conns, int32(c.fd))
		p.mu.Unlock()
		return fmt.Errorf("gateway: epoll_ctl add: %w", err)
	}
	return nil
}

// rearm watches c again after an event.
func (p *poller) rearm(c *conn) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: pollEvents, Fd: int32(c.fd)})
}

// remove stops watching c. Callers remove a connection before closing its
// socket, so a reused descriptor number never reaches the wrong connection.
func (p *poller) remove(c *conn) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	p.mu.Lock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
	p.mu.Unlock()
}

// run waits for events until close, calling dispatch for each readable
// connection.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == p.wakefd {
				return
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil {
				p.dispatch(c)
			}
		}
	}
}

// close stops run and releases the epoll instance.
func (p *poller) close() {
	var one = [8]byte{1}
	unix.Write(p.wakefd, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
