// Package loadgen is Parley's load generator, run as `parley loadgen`. It
// creates users and tokens over the admin REST API, opens WebSocket
// connections through the Go SDK (package client), has a share of them send
// one-to-one messages to random other users, and measures throughput and
// the send→ack and send→deliver latencies. Message content carries its send
// time, so the recipient's SDK handler measures delivery; latencies across
// processes are comparable because every process reads the same machine
// clock. With Groups, setup creates group conversations and the senders
// send to them; the shards account for each message's deliveries, and the
// parent merges them into the time from send to a message's last member and
// the deliveries that never came. With Read the receiving connections mark
// what they receive read, as clients showing the messages do, and the
// summary reports the read requests and their latency. With Idle it only
// holds the connections
// and reports the server's resident memory per connection, read from its
// /metrics.
//
// Run performs a test from a Config and returns a Summary; Main is the
// command-line front end.
//
// # Concurrency model
//
// The connections are dealt out to shards. A shard runs in this process
// when there is one, and otherwise each runs in a child process started from
// the same binary with the hidden -child flag, since a process may only
// have so many files open. Parent and shard talk in JSON lines: the parent
// writes the job, then start or stop commands; the shard writes ready, one
// tick per second and a final result. In the parent, one goroutine per
// shard decodes its reports onto a channel that the coordinator (Run's
// goroutine) consumes; it prints progress from the ticks and folds the
// results into the Summary.
//
// Within a shard, a goroutine reads commands, another emits ticks, dials run
// a bounded number at a time, and each sending connection runs Inflight
// send slots, each with one send outstanding; with Read each connection
// also runs a marker goroutine with one read request outstanding, for the
// newest seq of each conversation received since its last. Counters are atomics and
// latencies go to lock-free histograms, so that the handlers of thousands
// of clients never contend on a lock or allocate to record a message; in
// group runs each delivery also updates its message's entry in a map split
// over striped locks.
//
// # Lifecycle
//
// Setup (users, groups, tokens) → connect (at ConnectRate) → every shard ready →
// start: Warmup, then the measured Duration → stop sending, wait for sends
// in flight, then for deliveries until none came for a second (at most
// ten) → close the connections →
// results. Messages count when sent within the measured window, whenever
// they are acked or delivered. In idle mode the parent reads the server's
// memory Settle after every shard is ready and then stops them. An ended
// context (Ctrl-C in Main) stops the shards early; they still report.
// Every goroutine is waited for before Run returns.
package loadgen
