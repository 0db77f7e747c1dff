// Package router is the seam between the services that produce events for
// users (new messages, receipts, conversation changes, kicks) and the
// connections that carry them. On one node the gateway's Hub is the Router:
// it delivers to the connections of this process. A cluster puts a Router
// in front of it that also publishes each event to the other nodes, through
// Redis or NATS, whose own Hubs deliver it; nothing that crosses the seam
// names a connection of one process, only users and their devices.
//
// # Concurrency model
//
// Implementations are safe for concurrent use and never block the caller
// of Deliver; DeliverBulk, for the fan-out workers of group messages, may
// wait for room to write.
//
// # Lifecycle
//
// A Router lives as long as the server that owns it; this package holds no
// state.
package router

import "github.com/parleyim/parley/protocol"

// Device names one device of one user: the unit a login holds a connection
// for. A device has at most one connection at a time, on any node.
type Device struct {
	User   string
	Device string
}

// Router carries frames and kicks to users' connections.
type Router interface {
	// Deliver queues frame, an encoded server frame that must not be
	// modified afterwards, on every connection of every user in users
	// except the connection of device except (the zero Device for none).
	// It never blocks: a connection that cannot take the frame is closed
	// as a slow consumer, and its device catches up by sync.
	Deliver(users []string, frame []byte, except Device)
	// DeliverBulk is Deliver for a frame going to many users at once (a
	// group message): the writes it causes run a bounded number at a time,
	// so that a large fan-out cannot crowd out everything else, and it may
	// block the caller until there is room for them; a recipient that does
	// not read holds up no other. Frames delivered meanwhile with Deliver
	// (acks, one-to-one messages) are written at once.
	DeliverBulk(users []string, frame []byte, except Device)
	// Kick closes the user's connections (of one device if device is not
	// empty) after a kick frame with code and message, and returns how many
	// it closed.
	Kick(user, device string, code protocol.Code, message string) int
}
