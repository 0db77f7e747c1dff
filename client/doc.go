// Package client is the Go SDK for Parley: a WebSocket client that keeps one
// device connected, delivers every message of every conversation to the
// application exactly once and in order, and retransmits sends until the
// server acknowledges them.
//
// A Client is created with Dial and released with Close:
//
//	c, err := client.Dial(ctx, client.Options{
//		URL:       "ws://127.0.0.1:8080/v1/ws",
//		Token:     token,
//		OnMessage: func(m protocol.Message) { ... },
//	})
//	...
//	ack, err := c.Send(ctx, "bob", "text", json.RawMessage(`{"text":"hi"}`))
//	...
//	c.Close()
//
// # Delivery
//
// The client keeps, per conversation, the seq of the last message it handed
// to OnMessage. Messages pushed by the server, acknowledgements of this
// device's own sends and pages pulled from the server all pass through the
// same sequencer: a seq at or below the last delivered one is a duplicate and
// is dropped; the next seq is delivered; a higher one is held while the
// missing range is pulled (after Options.GapWait, since the missing message is
// usually still in flight). After every connection the client asks for the
// conversations changed since its last sync and pulls whatever each has beyond
// the last delivered seq, skipping history the user cleared. Options.Positions
// resumes from positions the application stored; Options.StartAtLatest skips
// the history that exists when the client first connects.
//
// # Concurrency model
//
// A Client runs these goroutines, all owned by it and waited for by
// Close:
//
//   - the manager: connects and reconnects with backoff, sends heartbeats,
//     detects dead connections (silent for two heartbeats, or, while sends
//     wait for acks, for two checks Options.AckTimeout apart, the second
//     after a ping), and runs the sync requests (conversations, pulls,
//     presence re-subscription) one at a time without blocking on them;
//   - one reader per connection: decodes frames, completes waiting requests,
//     feeds pushed messages and acknowledged sends to the sequencer, and
//     when the connection ends completes its waiting sends, which are then
//     written again on the next connection (never twice on one);
//   - the dispatcher: calls OnMessage, OnReceipt, OnPresence, OnConversation,
//     OnChanged, OnFriendEvent and OnEvent from a single goroutine, in the
//     order the events were queued. Handlers may call any Client method
//     except Close, which waits for the dispatcher;
//   - with Options.OnFriendEvent, the friend sync: after every connection,
//     and when a changed push names a newer version, it fetches what changed
//     in the user's friend requests, friends and blocks (one Call at a time)
//     and queues one FriendEvent per change.
//
// Each frame is encoded by the calling goroutine, so many sends can be in
// flight at once. Writes are combined per connection: a frame written while
// another goroutine is writing is queued, and that writer sends everything
// queued in its next system call. A request sent while others await their
// replies first lets other runnable goroutines queue their frames, so sends
// woken together by one read of several acks go out in one write instead of
// one each. All exported methods are safe for concurrent use.
//
// The dispatch queue is bounded (Options.QueueSize). When it is full, pushed
// messages are not queued; the client remembers that they exist and pulls
// them once the handlers have caught up, so a slow handler costs pulls, never
// messages. Receipts and presence updates that do not fit are dropped and
// counted in Stats.
//
// # Lifecycle
//
// Dial connects, waits for the server's hello and for the first sync of the
// conversation list, then returns a running Client. When the connection drops
// the client reconnects with exponential backoff and full jitter, and reports
// Disconnected, Reconnecting and Connected events. It stops for good, closing
// Done and reporting the cause through Err, when the server kicks it with
// replaced, policy, forced_offline or token_revoked, or refuses its token at
// upgrade; Close must still be called to release it. Close is idempotent: it
// closes the connection, fails waiting requests with ErrClosed and returns
// once every goroutine of the client has exited.
package client
