package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Defaults for the zero values of Options.
const (
	DefaultAckTimeout   = 5 * time.Second
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultGapWait      = 200 * time.Millisecond
	DefaultQueueSize    = 8192
	DefaultMaxFrameSize = 16 << 20

	// defaultHeartbeat is used when neither Options.Heartbeat nor the
	// server's hello sets an interval.
	defaultHeartbeat = 30 * time.Second
)

// Options configures a Client. URL and one of Token or TokenSource are
// required; every other field has a working zero value.
type Options struct {
	// URL is the WebSocket endpoint, for example ws://127.0.0.1:8080/v1/ws.
	URL string

	// Token is the bearer token sent at upgrade when TokenSource is nil.
	Token string

	// TokenSource, if set, is called before every connection attempt, so an
	// application can refresh an expiring token. An error from it counts as
	// a failed attempt.
	TokenSource func(ctx context.Context) (string, error)

	// OnMessage receives every message of every conversation of the user
	// exactly once, in seq order per conversation: messages from others,
	// this device's own sends once acknowledged, and sends from the user's
	// other devices.
	OnMessage func(protocol.Message)

	// OnReceipt receives read receipts pushed by the server.
	OnReceipt func(protocol.Receipt)

	// OnConversation receives conversations changed on another of the
	// user's devices (history cleared: hide messages below MinSeq).
	OnConversation func(protocol.Conversation)

	// OnGroupEvent receives the group event messages (members joined or
	// left, roles, mutes, info, dismissal), decoded, in the same order and
	// exactly once as OnMessage receives them. Sync a group's members
	// (GroupMembers with the version you hold) when one arrives.
	OnGroupEvent func(GroupEvent)

	// OnChanged receives changed pushes: something the user keeps in step
	// by version (friends, requests, blocks, groups, a group's members)
	// changed; fetch what changed since the version you hold. After every
	// Connected event, sync the scopes you keep: pushes are hints and are
	// not replayed.
	OnChanged func(protocol.Changed)

	// OnFriendEvent, if set, receives one FriendEvent per change to the
	// user's friend requests, friends and blocks. The client then keeps
	// those lists in step by itself: it syncs them after every connection
	// and whenever a changed push names a newer version, so the first
	// connection reports the whole current state (every request, friend
	// and block) and later ones what changed meanwhile. Friend events are
	// never dropped for a full queue.
	OnFriendEvent func(FriendEvent)

	// OnPresence receives presence changes of subscribed users, and their
	// state again after each reconnection.
	OnPresence func(protocol.Presence)

	// OnEvent receives connection lifecycle events: Connected, Disconnected,
	// Reconnecting, Kicked and TokenRejected.
	OnEvent func(Event)

	// Heartbeat overrides the ping interval the server announces in hello.
	// The connection is considered dead when nothing arrives from the server
	// for two intervals.
	Heartbeat time.Duration

	// AckTimeout is how often a connection with sends waiting for their
	// acks is checked: if anything arrived from the server since the last
	// check, the sends wait on (the server is slow, not gone); if nothing
	// did, the client sends a ping, and if nothing arrives by the next check
	// either, the connection is closed and the sends are retransmitted with
	// the same client message ids on the next one. A send is never written
	// twice on one connection, except after the server answered unavailable
	// or internal. Zero means DefaultAckTimeout.
	AckTimeout time.Duration

	// BackoffMin and BackoffMax bound the delay between reconnection
	// attempts: attempt n waits a uniformly random duration in
	// [0, min(BackoffMax, BackoffMin·2^(n-1))]. Zero means DefaultBackoffMin
	// and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// DialTimeout bounds each connection attempt, hello included. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration

	// NetDial, if set, opens the TCP connection, for example to choose the
	// source address or to go through a proxy. LocalAddr is the simpler
	// way to pick only the source address; it is ignored when NetDial is set.
	NetDial   func(ctx context.Context, network, addr string) (net.Conn, error)
	LocalAddr *net.TCPAddr

	// Positions maps conversation ids to the seq of the last message the
	// application already has, so a restarted application resumes where it
	// stopped instead of receiving the history again.
	Positions map[string]int64

	// StartAtLatest treats every conversation that exists at the first
	// connection as delivered up to its latest message. Load generators and
	// bots that only care about new messages set it.
	StartAtLatest bool

	// GapWait is how long a gap in a conversation may stay open before the
	// client pulls the missing messages; pushes and acks can overtake one
	// another, so most gaps close by themselves. Zero means DefaultGapWait;
	// a negative value pulls at once.
	GapWait time.Duration

	// QueueSize bounds the number of messages, receipts and presence updates
	// waiting for the handlers. Zero means DefaultQueueSize.
	QueueSize int

	// MaxFrameSize bounds an incoming WebSocket message. Zero means
	// DefaultMaxFrameSize.
	MaxFrameSize int64
}

// withDefaults returns o with zero values replaced by defaults, or an error
// if o cannot work.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return o, fmt.Errorf("client: options: url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return o, fmt.Errorf("client: options: url scheme %q: want ws or wss", u.Scheme)
	}
	if o.Token == "" && o.TokenSource == nil {
		return o, errors.New("client: options: no Token or TokenSource")
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.GapWait == 0 {
		o.GapWait = DefaultGapWait
	}
	if o.GapWait < 0 {
		o.GapWait = 0
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	return o, nil
}
