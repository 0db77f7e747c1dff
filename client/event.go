package client

import (
	"errors"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Errors returned by Client methods; test them with errors.Is. Errors the
// server reports are *protocol.Error values, found with errors.As.
var (
	// ErrClosed is returned by methods called after Close, and by requests
	// that Close interrupted.
	ErrClosed = errors.New("client: closed")

	// ErrDisconnected is returned by a request (other than a send, which is
	// retransmitted) issued while no connection is up, or outstanding when
	// the connection dropped. The request may or may not have taken effect.
	ErrDisconnected = errors.New("client: disconnected")

	// errHeartbeat is the cause of a connection the client gave up on because
	// the server stayed silent for two heartbeat intervals.
	errHeartbeat = errors.New("client: heartbeat timeout")

	// errConnLost completes a send whose connection ended before its
	// answer: it goes out again on the next one.
	errConnLost = errors.New("client: connection lost before the answer")

	// errAckTimeout is the cause of a connection the client gave up on
	// because nothing arrived for two of the checks Options.AckTimeout
	// apart while a send waited, the second after a ping.
	errAckTimeout = errors.New("client: the server stayed silent after a send and a ping")
)

// Event is a connection lifecycle event passed to Options.OnEvent. It is one
// of Connected, Disconnected, Reconnecting, Kicked and TokenRejected.
type Event interface {
	event()
}

// Connected reports a connection that completed its upgrade; Hello is the
// server's first frame on it.
type Connected struct {
	Hello protocol.Hello
}

// Disconnected reports the loss of a connection and why.
type Disconnected struct {
	Err error
}

// Reconnecting reports that attempt number Attempt (from 1) to reconnect
// will start after Delay. Err is why the previous attempt failed, or the
// cause of the disconnection for the first attempt.
type Reconnecting struct {
	Attempt int
	Delay   time.Duration
	Err     error
}

// Kicked reports a kick frame. If the code is replaced, policy,
// forced_offline, token_revoked or user_deactivated the client stops;
// otherwise it reconnects.
type Kicked struct {
	Kick protocol.Kick
}

// TokenRejected reports that the server refused the token at upgrade with
// HTTP 401 (Code is token_expired, token_revoked or unauthenticated) or 403
// (user_deactivated). The client stops.
type TokenRejected struct {
	Code    protocol.Code
	Message string
}

func (Connected) event()     {}
func (Disconnected) event()  {}
func (Reconnecting) event()  {}
func (Kicked) event()        {}
func (TokenRejected) event() {}

// terminalKick reports whether a kick with code ends the client instead of
// prompting a reconnection: reconnecting would only take the slot back from
// the device that replaced this one, or fail.
func terminalKick(code protocol.Code) bool {
	switch code {
	case protocol.CodeKickReplaced, protocol.CodeKickPolicy, protocol.CodeKickAdmin, protocol.CodeKickRevoked, protocol.CodeKickDeactivated:
		return true
	}
	return false
}

// retryableCode reports whether a send refused with code may succeed if
// repeated with the same client message id.
func retryableCode(code protocol.Code) bool {
	return code == protocol.CodeUnavailable || code == protocol.CodeInternal
}

// Stats are counters of a Client since Dial.
type Stats struct {
	Connects      uint64 // successful connections, the first included
	Sends         uint64 // send frames written, retransmissions included
	Retransmits   uint64 // send frames written again for the same call
	Pulls         uint64 // pull requests the sequencer issued
	Duplicates    uint64 // messages dropped because they were already delivered
	Overflows     uint64 // messages left to a later pull because the dispatch queue was full
	DroppedEvents uint64 // receipts and presence updates dropped because the queue was full
}
