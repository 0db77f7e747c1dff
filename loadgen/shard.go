package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sync/errgroup"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
)

const (
	dialConcurrency = 128              // connection attempts in flight per shard
	dialTimeout     = 30 * time.Second // per connection attempt, sync included
	drainTimeout    = 10 * time.Second // for sends in flight when sending stops
	deliverGrace    = time.Second      // without deliveries, once the last send is acked, ends a run
	contentType     = "text"
)

// connSpec is one connection of a shard.
type connSpec struct {
	User   int    `json:"user"` // index of the user
	Token  string `json:"token"`
	Source string `json:"source,omitempty"` // source address, or "" for the system's choice
	Sender bool   `json:"sender,omitempty"`
}

// job is the work of one shard: its share of the connections and how to
// drive them. It travels to a child process as the first line of its input.
type job struct {
	WSURL       string        `json:"ws_url"`
	UserPrefix  string        `json:"user_prefix"`
	Users       int           `json:"users"`
	Contacts    int           `json:"contacts"`         // fixed peers per user; 0 means anyone
	Groups      int           `json:"groups,omitempty"` // send to groups instead, see Config.Groups
	GroupSize   int           `json:"group_size,omitempty"`
	Conns       []connSpec    `json:"conns"`
	Interval    time.Duration `json:"interval"` // between the sends of one slot; 0 sends flat out
	Inflight    int           `json:"inflight"` // slots per sending connection
	Size        int           `json:"size"`
	Read        bool          `json:"read,omitempty"`
	Warmup      time.Duration `json:"warmup"`
	Duration    time.Duration `json:"duration"`
	ConnectRate float64       `json:"connect_rate"`
}

// command is a line from the parent to a shard: start sending (Start is
// when warmup begins, in unix nanoseconds) or stop. The end of the input
// means stop too.
type command struct {
	Start int64 `json:"start,omitempty"`
	Stop  bool  `json:"stop,omitempty"`
}

// report is a line from a shard to the parent; one field is set.
type report struct {
	Ready  *ready       `json:"ready,omitempty"`
	Tick   *tick        `json:"tick,omitempty"`
	Result *shardResult `json:"result,omitempty"`
}

// ready reports that the shard has made all its connection attempts.
type ready struct {
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
}

// tick is one second of a shard's activity.
type tick struct {
	Phase     string    `json:"phase"`
	Connected int64     `json:"connected"`
	Sent      uint64    `json:"sent"`
	Acked     uint64    `json:"acked"`
	Delivered uint64    `json:"delivered"`
	Errors    uint64    `json:"errors"`
	Ack       histogram `json:"ack"`
	Deliver   histogram `json:"deliver"`
}

// shardResult is what a shard measured over the measured window, that is
// of the messages sent in it.
type shardResult struct {
	Conns          int               `json:"conns"`
	Connected      int               `json:"connected"`
	ConnectErrors  map[string]int    `json:"connect_errors,omitempty"`
	ConnectSeconds float64           `json:"connect_seconds"`
	Measured       time.Duration     `json:"measured"`
	Sent           uint64            `json:"sent"`
	Acked          uint64            `json:"acked"`
	Delivered      uint64            `json:"delivered"`
	Received       uint64            `json:"received"` // deliveries that arrived in the measured window
	Reads          uint64            `json:"reads,omitempty"`
	Read           histogram         `json:"read"`
	Errors         map[string]uint64 `json:"errors,omitempty"`
	Ack            histogram         `json:"ack"`
	Deliver        histogram         `json:"deliver"`
	Disconnects    uint64            `json:"disconnects"`
	Reconnects     uint64            `json:"reconnects"`
	Kicks          map[string]uint64 `json:"kicks,omitempty"`
	Pulls          uint64            `json:"pulls"`
	Retransmits    uint64            `json:"retransmits"`

	// Group runs: every group message sent in the window that reached a
	// connection of this shard, and those the shard's senders had acked.
	GroupDelivered []deliveredMsg `json:"group_delivered,omitempty"`
	GroupAcked     []ackedMsg     `json:"group_acked,omitempty"`
}

// Phases of a shard, as ticks report them.
const (
	phaseConnect = "connect"
	phaseReady   = "ready"
	phaseWarmup  = "warmup"
	phaseRun     = "run"
	phaseDrain   = "drain"
)

// worker runs one shard. Its counters are updated by the send slots and by
// the clients' handler goroutines, and read by the tick goroutine.
type worker struct {
	job     job
	names   []string         // user ids by index
	convs   []string         // group conversation ids by index
	groupOf map[string]int32 // group index by conversation id; read-only
	clients []*client.Client // by connection; nil where the connection failed
	logw    io.Writer

	phase            atomic.Value // string
	winStart, winEnd atomic.Int64 // unix nanos bounding the send times that count; 0 before the start

	sent, acked, delivered, errs        atomic.Uint64 // this second
	ackNow, deliverNow                  *recorder     // this second
	sentTotal, ackedTotal, deliveredTot atomic.Uint64 // measured window
	ackTotal, deliverTotal              *recorder     // measured window
	receivedTot                         atomic.Uint64 // arrived in the measured window
	readsTot                            atomic.Uint64 // read requests of the measured window, answered
	readTotal                           *recorder     // their latency
	stopReads                           chan struct{} // closed before the clients are: readMarkers end
	readers                             sync.WaitGroup
	fanout                              *fanoutRecorder
	connected                           atomic.Int64
	disconnects                         atomic.Uint64
	connectTime                         time.Duration
	measured                            time.Duration

	mu            sync.Mutex
	errors        map[string]uint64 // guarded by mu
	groupAcked    []ackedMsg        // guarded by mu
	kicks         map[string]uint64 // guarded by mu
	connectErrors map[string]int    // guarded by mu
}

func newWorker(j job, logw io.Writer) *worker {
	w := &worker{
		job:           j,
		names:         make([]string, j.Users),
		clients:       make([]*client.Client, len(j.Conns)),
		logw:          logw,
		ackNow:        newRecorder(),
		deliverNow:    newRecorder(),
		ackTotal:      newRecorder(),
		deliverTotal:  newRecorder(),
		readTotal:     newRecorder(),
		stopReads:     make(chan struct{}),
		fanout:        newFanoutRecorder(),
		convs:         make([]string, j.Groups),
		groupOf:       make(map[string]int32, j.Groups),
		errors:        make(map[string]uint64),
		kicks:         make(map[string]uint64),
		connectErrors: make(map[string]int),
	}
	for i := range w.names {
		w.names[i] = userName(j.UserPrefix, i)
	}
	for k := range w.convs {
		w.convs[k] = conversation.GroupID(groupName(j.UserPrefix, k))
		w.groupOf[w.convs[k]] = int32(k)
	}
	w.phase.Store(phaseConnect)
	return w
}

// serveShard runs a shard: it reads its job and then commands from in, and
// writes reports to out, one JSON value per line. It returns once in ends.
func serveShard(ctx context.Context, in io.Reader, out io.Writer, logw io.Writer) error {
	dec := json.NewDecoder(in)
	var j job
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("loadgen: shard: read job: %w", err)
	}
	w := newWorker(j, logw)
	var (
		outMu  sync.Mutex
		enc    = json.NewEncoder(out)
		outErr error
	)
	emit := func(r report) {
		outMu.Lock()
		defer outMu.Unlock()
		if outErr == nil {
			outErr = enc.Encode(r)
		}
	}

	var g errgroup.Group
	cmds := make(chan command)
	g.Go(func() error {
		defer close(cmds)
		for {
			var c command
			if dec.Decode(&c) != nil {
				return nil // the end of the input, or a broken parent: stop
			}
			cmds <- c
		}
	})
	ticking, stopTicks := context.WithCancel(ctx)
	g.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ticking.Done():
				return nil
			case <-t.C:
				emit(report{Tick: w.tick()})
			}
		}
	})

	w.connect(ctx)
	emit(report{Ready: &ready{Connected: w.connectedCount(), Failed: len(w.clients) - w.connectedCount()}})
	w.phase.Store(phaseReady)
	select {
	case c, ok := <-cmds:
		if ok && c.Start != 0 {
			w.run(ctx, time.Unix(0, c.Start), cmds)
		}
	case <-ctx.Done():
	}
	stopTicks()
	emit(report{Tick: w.tick()})
	w.closeClients()
	emit(report{Result: w.result()})
	for range cmds {
		// Wait for the parent to close the input, which ends the reader.
	}
	g.Wait()
	outMu.Lock()
	defer outMu.Unlock()
	return outErr
}

// connect dials every connection of the job at the job's rate.
func (w *worker) connect(ctx context.Context) {
	start := time.Now()
	defer func() { w.connectTime = time.Since(start) }()
	var pace time.Duration
	if w.job.ConnectRate > 0 {
		pace = time.Duration(float64(time.Second) / w.job.ConnectRate)
	}
	sem := make(chan struct{}, dialConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range w.job.Conns {
		if pace > 0 && sleep(ctx, time.Until(start.Add(time.Duration(i)*pace))) != nil {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			w.dial(ctx, i)
		})
	}
}

func (w *worker) dial(ctx context.Context, i int) {
	spec := w.job.Conns[i]
	self := w.names[spec.User]
	var marker *readMarker
	if w.job.Read {
		marker = &readMarker{w: w, due: make(map[string]int64), wake: make(chan struct{}, 1)}
	}
	o := client.Options{
		URL:           w.job.WSURL,
		Token:         spec.Token,
		StartAtLatest: true,
		OnMessage:     w.onMessage(self, marker),
		OnEvent:       w.onEvent,
	}
	if spec.Source != "" {
		o.LocalAddr = &net.TCPAddr{IP: net.ParseIP(spec.Source)}
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.Dial(dctx, o)
	if err != nil {
		key := dialErrorKey(err)
		w.mu.Lock()
		w.connectErrors[key]++
		first := w.connectErrors[key] == 1
		w.mu.Unlock()
		if first {
			fmt.Fprintf(w.logw, "loadgen: connect %s: %v\n", key, err)
		}
		return
	}
	w.clients[i] = c
	if marker != nil {
		marker.c = c
		w.readers.Go(marker.run)
	}
}

// dialErrorKey names the kind of a failed connection attempt.
func dialErrorKey(err error) string {
	var (
		pe     *protocol.Error
		status ws.StatusError
	)
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.As(err, &status):
		return "http_" + strconv.Itoa(int(status))
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_free_ports"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

// errorKey names the kind of a failed send.
func errorKey(err error) string {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "abandoned"
	case errors.Is(err, client.ErrClosed):
		return "closed"
	}
	return "other"
}

func (w *worker) connectedCount() int {
	n := 0
	for _, c := range w.clients {
		if c != nil {
			n++
		}
	}
	return n
}

// onMessage returns the OnMessage handler of a connection of user self: it
// measures the messages sent to self, or to a group of the run by another
// user, not those self sent from this device or another, and hands them to
// marker, if any, to be marked read.
func (w *worker) onMessage(self string, marker *readMarker) func(protocol.Message) {
	return func(m protocol.Message) {
		g, group := w.groupOf[m.Conversation]
		if group && m.From == self || !group && m.To != self {
			return
		}
		t, ok := sentAt(m.Content)
		if !ok {
			return
		}
		now := time.Now().UnixNano()
		lat := time.Duration(now - t)
		w.delivered.Add(1)
		w.deliverNow.record(lat)
		if w.inWindow(now) {
			w.receivedTot.Add(1)
		}
		if w.inWindow(t) {
			w.deliveredTot.Add(1)
			w.deliverTotal.record(lat)
			if group {
				w.fanout.record(msgKey{Group: g, Seq: m.Seq}, lat)
			}
		}
		if marker != nil {
			marker.mark(m.Conversation, m.Seq)
		}
	}
}

// readMarker marks a connection's conversations read as their messages
// arrive, as a client showing them does: one read request at a time, for
// the newest seq of each conversation received since the last.
type readMarker struct {
	w    *worker
	c    *client.Client // set before run starts
	mu   sync.Mutex
	due  map[string]int64 // guarded by mu: conversation → newest seq not yet marked
	wake chan struct{}    // holds a token while due has entries
}

// mark notes that seq of conv was received.
func (r *readMarker) mark(conv string, seq int64) {
	r.mu.Lock()
	r.due[conv] = max(r.due[conv], seq)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run sends the read requests until the worker stops them.
func (r *readMarker) run() {
	for {
		select {
		case <-r.w.stopReads:
			return
		case <-r.wake:
		}
		r.mu.Lock()
		due := r.due
		r.due = make(map[string]int64, len(due))
		r.mu.Unlock()
		for conv, seq := range due {
			t0 := time.Now()
			_, err := r.c.MarkRead(context.Background(), conv, seq)
			if err != nil {
				if r.c.Err() != nil {
					return // closed: the run is over
				}
				r.w.mu.Lock()
				r.w.errors["read_"+errorKey(err)]++
				r.w.mu.Unlock()
				continue
			}
			if r.w.inWindow(t0.UnixNano()) {
				r.w.readsTot.Add(1)
				r.w.readTotal.record(time.Since(t0))
			}
		}
	}
}

func (w *worker) onEvent(ev client.Event) {
	switch ev := ev.(type) {
	case client.Connected:
		w.connected.Add(1)
	case client.Disconnected:
		w.connected.Add(-1)
		w.disconnects.Add(1)
	case client.Kicked:
		w.mu.Lock()
		w.kicks[string(ev.Kick.Code)]++
		w.mu.Unlock()
	case client.TokenRejected:
		w.mu.Lock()
		w.errors["reconnect_"+string(ev.Code)]++
		w.mu.Unlock()
	}
}

// inWindow reports whether a message sent at t (unix nanos) is measured.
func (w *worker) inWindow(t int64) bool {
	start := w.winStart.Load()
	return start != 0 && t >= start && t < w.winEnd.Load()
}

// run sends from every sending connection: warmup, then the measured
// window, then it waits for the sends and deliveries in flight. A stop
// command or the end of the input ends the sending early.
func (w *worker) run(ctx context.Context, start time.Time, cmds <-chan command) {
	measureAt := start.Add(w.job.Warmup)
	endAt := measureAt.Add(w.job.Duration)
	w.winStart.Store(measureAt.UnixNano())
	w.winEnd.Store(endAt.UnixNano())
	if sleep(ctx, time.Until(start)) != nil {
		return
	}
	w.phase.Store(phaseWarmup)

	sendCtx, cancelSends := context.WithCancel(ctx)
	defer cancelSends()
	stop := make(chan struct{})
	var slots sync.WaitGroup
	for i, spec := range w.job.Conns {
		if c := w.clients[i]; c != nil && spec.Sender {
			for range w.job.Inflight {
				phase := time.Duration(rand.Int64N(int64(max(w.job.Interval, 1))))
				slots.Go(func() { w.sendSlot(sendCtx, c, spec.User, stop, phase) })
			}
		}
	}
	measuring := time.NewTimer(time.Until(measureAt))
	ending := time.NewTimer(time.Until(endAt))
	defer measuring.Stop()
	defer ending.Stop()
	for stopped := false; !stopped; {
		select {
		case <-measuring.C:
			w.phase.Store(phaseRun)
		case <-ending.C:
			stopped = true
		case c, ok := <-cmds:
			stopped = !ok || c.Stop
		case <-ctx.Done():
			stopped = true
		}
	}
	now := time.Now()
	if now.Before(endAt) {
		w.winEnd.Store(now.UnixNano())
		endAt = now
	}
	w.measured = max(0, endAt.Sub(measureAt))
	w.phase.Store(phaseDrain)
	close(stop)
	drained := make(chan struct{})
	go func() {
		slots.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		cancelSends()
		<-drained
	}
	w.awaitDeliveries(ctx)
}

// awaitDeliveries waits until no delivery of a measured message has
// arrived for deliverGrace, or for at most drainTimeout: a big group's
// fan-out may trail its acks by more than the grace period.
func (w *worker) awaitDeliveries(ctx context.Context) {
	const poll = deliverGrace / 10
	deadline := time.Now().Add(drainTimeout)
	last, quietSince := w.deliveredTot.Load(), time.Now()
	for time.Since(quietSince) < deliverGrace && time.Now().Before(deadline) {
		if sleep(ctx, poll) != nil {
			return
		}
		if n := w.deliveredTot.Load(); n != last {
			last, quietSince = n, time.Now()
		}
	}
}

// peer picks the recipient of a message from user self: one of its
// job.Contacts ring neighbours, or any other user.
func (w *worker) peer(self int) int {
	if w.job.Contacts > 0 {
		return (self + 1 + rand.IntN(w.job.Contacts)) % w.job.Users
	}
	to := rand.IntN(w.job.Users - 1)
	if to >= self {
		to++
	}
	return to
}

// sendSlot sends one message at a time from c to random other users, or to
// random groups of self's, every job.Interval (or as fast as acks come
// back), until stop is closed.
func (w *worker) sendSlot(ctx context.Context, c *client.Client, self int, stop <-chan struct{}, phase time.Duration) {
	buf := make([]byte, 0, w.job.Size+64)
	var groups []int
	if w.job.Groups > 0 {
		if groups = groupsOf(self, w.job.Groups, w.job.GroupSize, w.job.Users); len(groups) == 0 {
			return // setup makes only members senders
		}
	}
	interval := w.job.Interval
	next := time.Now().Add(phase)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if interval > 0 {
			timer.Reset(time.Until(next))
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			// Keep the schedule, but do not burst to catch up after a stall.
			next = next.Add(interval)
			if behind := time.Now().Add(-interval); next.Before(behind) {
				next = behind
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		sentAtNS := t0.UnixNano()
		counted := w.inWindow(sentAtNS)
		buf = appendContent(buf[:0], sentAtNS, w.job.Size)
		w.sent.Add(1)
		if counted {
			w.sentTotal.Add(1)
		}
		var (
			ack protocol.Ack
			err error
			g   int
		)
		if groups != nil {
			g = groups[rand.IntN(len(groups))]
			ack, err = c.SendTo(ctx, w.convs[g], contentType, buf)
		} else {
			ack, err = c.Send(ctx, w.names[w.peer(self)], contentType, buf)
		}
		if err != nil {
			w.errs.Add(1)
			w.mu.Lock()
			w.errors[errorKey(err)]++
			w.mu.Unlock()
			if c.Err() != nil || ctx.Err() != nil {
				return
			}
			continue
		}
		lat := time.Since(t0)
		w.acked.Add(1)
		w.ackNow.record(lat)
		if counted {
			w.ackedTotal.Add(1)
			w.ackTotal.record(lat)
			if groups != nil {
				w.mu.Lock()
				w.groupAcked = append(w.groupAcked, ackedMsg{Group: int32(g), Seq: ack.Seq, User: self})
				w.mu.Unlock()
			}
		}
	}
}

// padding fills message content up to the requested size.
var padding = strings.Repeat("x", 1024)

// appendContent appends message content of about size bytes carrying the
// send time: {"t":<unix nanos>,"text":"xxx…"}.
func appendContent(b []byte, t int64, size int) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"text":"`...)
	for n := size - len(b) - 2; n > 0; n -= len(padding) {
		b = append(b, padding[:min(n, len(padding))]...)
	}
	return append(b, `"}`...)
}

// sentAt extracts the send time from content made by appendContent. The
// fast path reads the leading "t"; content the server re-encoded is
// decoded.
func sentAt(content []byte) (int64, bool) {
	if rest, ok := bytes.CutPrefix(content, []byte(`{"t":`)); ok {
		var t int64
		n := 0
		for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
			t = t*10 + int64(rest[n]-'0')
		}
		if n > 0 && n < len(rest) && (rest[n] == ',' || rest[n] == '}') {
			return t, true
		}
	}
	var v struct {
		T int64 `json:"t"`
	}
	if json.Unmarshal(content, &v) != nil || v.T == 0 {
		return 0, false
	}
	return v.T, true
}

// tick takes this second's counters.
func (w *worker) tick() *tick {
	t := &tick{
		Phase:     w.phase.Load().(string),
		Connected: w.connected.Load(),
		Sent:      w.sent.Swap(0),
		Acked:     w.acked.Swap(0),
		Delivered: w.delivered.Swap(0),
		Errors:    w.errs.Swap(0),
	}
	w.ackNow.drain(&t.Ack)
	w.deliverNow.drain(&t.Deliver)
	return t
}

// closeClients closes every connection, a few at a time.
func (w *worker) closeClients() {
	close(w.stopReads)
	var g errgroup.Group
	g.SetLimit(dialConcurrency)
	for _, c := range w.clients {
		if c != nil {
			g.Go(c.Close)
		}
	}
	g.Wait()
	w.readers.Wait()
}

// result gathers what the shard measured; the clients are closed.
func (w *worker) result() *shardResult {
	r := &shardResult{
		Conns:          len(w.clients),
		Connected:      w.connectedCount(),
		ConnectSeconds: w.connectTime.Seconds(),
		Measured:       w.measured,
		Sent:           w.sentTotal.Load(),
		Acked:          w.ackedTotal.Load(),
		Delivered:      w.deliveredTot.Load(),
		Received:       w.receivedTot.Load(),
		Reads:          w.readsTot.Load(),
		GroupDelivered: w.fanout.messages(),
		Disconnects:    w.disconnects.Load(),
	}
	w.ackTotal.drain(&r.Ack)
	w.deliverTotal.drain(&r.Deliver)
	w.readTotal.drain(&r.Read)
	for _, c := range w.clients {
		if c != nil {
			st := c.Stats()
			r.Reconnects += st.Connects - 1
			r.Pulls += st.Pulls
			r.Retransmits += st.Retransmits
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r.ConnectErrors = w.connectErrors
	r.Errors = w.errors
	r.Kicks = w.kicks
	r.GroupAcked = w.groupAcked
	return r
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
