package client

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

const (
	// pullLimit is the page size of the pulls the sequencer issues; the
	// server caps pulls at 200.
	pullLimit = 200

	// maxHeld bounds the messages held above a gap in one conversation.
	// Messages beyond it are not kept: the pull fetches them again.
	maxHeld = 1024

	// keepItems is the largest dispatch batch whose slice is kept for reuse.
	keepItems = 1024
)

// counters are the atomic counters behind Stats.
type counters struct {
	connects, sends, retransmits, pulls, duplicates, overflows, droppedEvents atomic.Uint64
}

// convState is the delivery state of one conversation.
type convState struct {
	id       string
	last     int64              // seq of the last message queued for OnMessage (or skipped)
	target   int64              // highest seq known to exist; a pull is due while last < target
	held     []protocol.Message // received above last+1, ascending, no duplicates, at most maxHeld
	dueAt    time.Time          // earliest start of the next pull; zero when none is scheduled
	fromZero bool               // the next pull starts at the lowest visible seq: last+1 was out of range
	pulling  bool               // a pull is in flight
	pullNext int64              // last+1 when the pull in flight started
}

type itemKind uint8

const (
	itemMessage itemKind = iota
	itemReceipt
	itemPresence
	itemConversation
	itemChanged
	itemFriend
	itemEvent
)

// item is one entry of the dispatch queue: a message, or in other the
// value of a rarer kind (a protocol.Receipt, protocol.Presence,
// protocol.Conversation, protocol.Changed, FriendEvent or Event). Messages
// are most of the queue, and the queue is copied as it grows: the other
// kinds inline made an item 584 bytes, a quarter of a busy client's CPU.
type item struct {
	kind  itemKind
	msg   protocol.Message
	other any
}

// delivery is the sequencer and the dispatch queue. The reader goroutine
// offers pushed messages and acknowledged sends; the manager schedules and
// applies pulls; the dispatcher drains the queue into the handlers.
type delivery struct {
	gapWait   time.Duration
	queueSize int
	messages  bool // OnMessage is set; otherwise messages are sequenced but not queued
	now       func() time.Time
	stats     *counters

	wakeSync     chan struct{} // cap 1: a pull became due, or the queue drained while pulls are due
	wakeDispatch chan struct{} // cap 1: the queue became non-empty

	mu    sync.Mutex
	convs map[string]*convState   // guarded by mu
	due   map[*convState]struct{} // guarded by mu: states with a scheduled pull
	queue []item                  // guarded by mu: waiting for the dispatcher
	spare []item                  // guarded by mu: the dispatcher's last batch, emptied for reuse
}

func newDelivery(o *Options, stats *counters) *delivery {
	d := &delivery{
		gapWait:      o.GapWait,
		queueSize:    o.QueueSize,
		messages:     o.OnMessage != nil,
		now:          time.Now,
		stats:        stats,
		wakeSync:     make(chan struct{}, 1),
		wakeDispatch: make(chan struct{}, 1),
		convs:        make(map[string]*convState, len(o.Positions)),
		due:          make(map[*convState]struct{}),
	}
	for id, seq := range o.Positions {
		d.convs[id] = &convState{id: id, last: seq, target: seq}
	}
	return d
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// state returns the conversation's state, creating it at seq 0. d.mu must
// be held.
func (d *delivery) state(conv string) *convState {
	st := d.convs[conv]
	if st == nil {
		st = &convState{id: conv}
		d.convs[conv] = st
	}
	return st
}

// offer passes a message through the sequencer: a duplicate is dropped, the
// next seq is queued with whatever it unblocks, and a message beyond a gap
// is held while the gap is pulled.
func (d *delivery) offer(m protocol.Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.offerLocked(d.state(m.Conversation), m)
}

func (d *delivery) offerLocked(st *convState, m protocol.Message) {
	if m.Seq <= st.last {
		d.stats.duplicates.Add(1)
		return
	}
	st.target = max(st.target, m.Seq)
	if m.Seq == st.last+1 {
		if !d.queueMessage(m) {
			d.reschedule(st, 0)
			return
		}
		st.last = m.Seq
		d.drain(st)
		return
	}
	d.hold(st, m)
	d.reschedule(st, d.gapWait)
}

// hold keeps m, which lies beyond a gap, in seq order.
func (d *delivery) hold(st *convState, m protocol.Message) {
	i, found := slices.BinarySearchFunc(st.held, m.Seq, func(h protocol.Message, seq int64) int {
		return cmp.Compare(h.Seq, seq)
	})
	switch {
	case found:
		d.stats.duplicates.Add(1)
	case len(st.held) < maxHeld:
		st.held = slices.Insert(st.held, i, m)
	}
}

// drain queues the held messages that follow st.last without a gap and
// forgets those at or below it, then settles the pull schedule.
func (d *delivery) drain(st *convState) {
	i := 0
	for ; i < len(st.held); i++ {
		m := st.held[i]
		if m.Seq <= st.last {
			d.stats.duplicates.Add(1)
			continue
		}
		if m.Seq != st.last+1 || !d.queueMessage(m) {
			break
		}
		st.last = m.Seq
	}
	if i > 0 {
		n := copy(st.held, st.held[i:])
		clear(st.held[n:])
		st.held = st.held[:n]
	}
	d.reschedule(st, 0)
}

// reschedule unschedules st if nothing is missing, and otherwise makes sure
// a pull is scheduled no later than after delay.
func (d *delivery) reschedule(st *convState, delay time.Duration) {
	st.target = max(st.target, st.last)
	if st.last == st.target {
		if len(st.held) == 0 {
			st.held = nil
		}
		if !st.dueAt.IsZero() {
			st.dueAt = time.Time{}
			delete(d.due, st)
		}
		return
	}
	at := d.now().Add(delay)
	if st.dueAt.IsZero() || at.Before(st.dueAt) {
		if st.dueAt.IsZero() {
			d.due[st] = struct{}{}
		}
		st.dueAt = at
		signal(d.wakeSync)
	}
}

// skipTo treats everything up to seq as delivered, for history the user may
// no longer see or chose to skip.
func (d *delivery) skipTo(st *convState, seq int64) {
	if seq > st.last {
		st.last = seq
	}
	d.drain(st)
}

// queueMessage appends m to the dispatch queue, or reports false if the
// queue is full. d.mu must be held.
func (d *delivery) queueMessage(m protocol.Message) bool {
	if !d.messages {
		return true
	}
	if d.full() {
		d.stats.overflows.Add(1)
		return false
	}
	d.push(item{kind: itemMessage, msg: m})
	return true
}

// queueItem appends a receipt or presence update, dropping it if the queue
// is full, or an event, which is never dropped.
func (d *delivery) queueItem(it item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if it.kind != itemEvent && it.kind != itemFriend && len(d.queue) >= d.queueSize {
		d.stats.droppedEvents.Add(1)
		return
	}
	d.push(it)
}

func (d *delivery) push(it item) {
	d.queue = append(d.queue, it)
	if len(d.queue) == 1 {
		signal(d.wakeDispatch)
	}
}

// applyConversation brings a conversation's state in line with the server's
// view of it: history below MinSeq is skipped, anything up to MaxSeq not yet
// delivered is scheduled for a pull, and with atLatest everything up to
// MaxSeq counts as delivered.
func (d *delivery) applyConversation(c protocol.Conversation, atLatest bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state(c.ID)
	st.target = max(st.target, c.MaxSeq)
	skip := c.MinSeq - 1
	if atLatest {
		skip = max(skip, c.MaxSeq)
	}
	d.skipTo(st, skip)
}

// nextPull picks the conversation whose pull is due first and marks it in
// flight. If none is due yet it returns the time the next one is (zero if
// none is scheduled, or if pulls wait for the dispatcher to make room).
func (d *delivery) nextPull() (p protocol.Pull, ok bool, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.messages && len(d.queue) >= d.queueSize/2 {
		return p, false, next // the dispatcher wakes the manager when it has drained the queue
	}
	var first *convState
	for st := range d.due {
		if !st.pulling && (first == nil || st.dueAt.Before(first.dueAt)) {
			first = st
		}
	}
	if first == nil {
		return p, false, next
	}
	if first.dueAt.After(d.now()) {
		return p, false, first.dueAt
	}
	first.pulling, first.pullNext = true, first.last+1
	from := first.last + 1
	if first.fromZero {
		from = 0
	}
	d.stats.pulls.Add(1)
	return protocol.Pull{Conversation: first.id, From: from, Direction: protocol.Forward, Limit: pullLimit}, true, next
}

// pulled applies a page the manager pulled for conv.
func (d *delivery) pulled(conv string, r *protocol.Messages) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state(conv)
	// Pushes may have moved the conversation on while the pull was in
	// flight, making the page stale; only a page that starts where the
	// conversation still stands says anything about missing seqs.
	current := st.last+1 == st.pullNext
	st.pulling, st.fromZero = false, false
	st.target = max(st.target, r.MaxSeq)
	d.skipTo(st, r.MinSeq-1)
	for _, m := range r.Messages {
		d.offerLocked(st, m)
	}
	if current {
		d.skipInvisible(st, r)
	}
	st.dueAt = time.Time{}
	delete(d.due, st)
	d.reschedule(st, 0)
}

// skipInvisible skips the seqs a current page lacks. The page holds every
// message the user may see from where the pull started up to its last
// message (or up to MaxSeq if there are no more), so the seqs it lacks in
// that range are not visible, and waiting for them would stall the
// conversation for good.
func (d *delivery) skipInvisible(st *convState, r *protocol.Messages) {
	covered := r.MaxSeq
	if r.More {
		if len(r.Messages) == 0 {
			return
		}
		covered = r.Messages[len(r.Messages)-1].Seq
	}
	for st.last < covered && !d.full() {
		next := covered
		if len(st.held) > 0 {
			next = min(next, st.held[0].Seq-1)
		}
		if next <= st.last {
			break // the held message that follows could not be queued
		}
		d.skipTo(st, next)
	}
	if !r.More && st.last >= r.MaxSeq && len(st.held) == 0 {
		st.target = st.last // nothing beyond the page exists after all
	}
}

// full reports whether the dispatch queue has no room for a message.
func (d *delivery) full() bool {
	return d.messages && len(d.queue) >= d.queueSize
}

// pullFailed reschedules a pull the server refused. A pull from a seq out
// of range is retried from the lowest visible seq; one that the server will
// keep refusing is given up; anything else is retried after retry.
func (d *delivery) pullFailed(conv string, code protocol.Code, retry time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state(conv)
	st.pulling = false
	st.dueAt = time.Time{}
	delete(d.due, st)
	switch {
	case code == protocol.CodeOutOfRange && !st.fromZero:
		st.fromZero = true
		retry = 0
	case code == protocol.CodeNotFound || code == protocol.CodeForbidden:
		st.fromZero = false
		st.held = nil
		st.target = st.last
	}
	d.reschedule(st, retry)
}

// pullAbandoned reschedules a pull whose connection dropped.
func (d *delivery) pullAbandoned(conv string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state(conv)
	st.pulling = false
	d.reschedule(st, 0)
}

// positions returns the last delivered seq of every known conversation.
func (d *delivery) positions() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.convs))
	for id, st := range d.convs {
		out[id] = st.last
	}
	return out
}

// dispatch calls the handlers for queued items, in order, until closing is
// closed. It runs on the dispatcher goroutine.
func (d *delivery) dispatch(o *Options, closing <-chan struct{}) {
	for {
		select {
		case <-closing:
			return
		case <-d.wakeDispatch:
		}
		for {
			d.mu.Lock()
			batch := d.queue
			d.queue, d.spare = d.spare, nil
			d.mu.Unlock()
			if len(batch) == 0 {
				d.recycle(batch)
				break
			}
			for i := range batch {
				select {
				case <-closing:
					return
				default:
				}
				deliver(o, &batch[i])
				batch[i] = item{}
			}
			d.recycle(batch)
		}
	}
}

// recycle keeps an emptied batch for reuse and wakes the manager if pulls
// were waiting for room in the queue.
func (d *delivery) recycle(batch []item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cap(batch) <= keepItems {
		d.spare = batch[:0]
	}
	if len(d.due) > 0 {
		signal(d.wakeSync)
	}
}

func deliver(o *Options, it *item) {
	switch it.kind {
	case itemMessage:
		o.OnMessage(it.msg)
		if o.OnGroupEvent != nil && it.msg.ContentType == protocol.GroupEventType {
			ev := GroupEvent{Conversation: it.msg.Conversation, Seq: it.msg.Seq, Time: it.msg.Time}
			if json.Unmarshal(it.msg.Content, &ev.GroupEvent) == nil {
				o.OnGroupEvent(ev)
			}
		}
	case itemReceipt:
		if o.OnReceipt != nil {
			o.OnReceipt(it.other.(protocol.Receipt))
		}
	case itemPresence:
		if o.OnPresence != nil {
			o.OnPresence(it.other.(protocol.Presence))
		}
	case itemConversation:
		if o.OnConversation != nil {
			o.OnConversation(it.other.(protocol.Conversation))
		}
	case itemChanged:
		if o.OnChanged != nil {
			o.OnChanged(it.other.(protocol.Changed))
		}
	case itemFriend:
		if o.OnFriendEvent != nil {
			o.OnFriendEvent(it.other.(FriendEvent))
		}
	case itemEvent:
		if o.OnEvent != nil {
			o.OnEvent(it.other.(Event))
		}
	}
}
