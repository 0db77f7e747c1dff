// Package lsm is store.Messages on Pebble, a log-structured merge tree: the
// message log, conversation heads, per-member state and the client-id index
// of de-duplication. An LSM turns the random page writes a B-tree pays per
// message (one page of the message table and one of the client-id index, in
// conversations spread over the whole key space) into sequential writes: a
// group commit is one write-ahead-log record and one fsync, whatever
// conversations it touches (docs/benchmarks.md has the measurements).
//
// # Layout
//
// Keys start with a one-byte tag (see codec.go). A conversation has a head
// (kind, max seq, version, the two members of a direct conversation and the
// seq each last sent), its messages under (conv, seq) and, for kinds other
// than direct, an audience index of current members. A user has one member
// record per conversation (read seq, min seq, version, whether they left,
// and their settings: pinned, muted, hidden, draft).
// A message writes its own key, its client-id key and its conversation's
// head; a group message also writes its sender's member record. Nothing is
// written per other member: their view follows from the head.
//
// # Concurrency model
//
// Every write (AppendMessages, membership changes, MarkRead, ClearHistory,
// UpdateSettings) runs under one mutex, takes its version, builds one
// Pebble batch and applies it before releasing the mutex: versions become
// visible in the order they were taken. When Options.NoSync is false it
// then waits for the batch's sync outside the mutex, so that writes
// applied meanwhile share one fsync. The writer keeps conversation heads in a bounded cache,
// valid because it is the only writer (the data directory is locked by the
// server), and an in-memory Bloom filter of client ids in front of the
// dedupe lookup (filter.go), filled from a snapshot by a background
// goroutine at open and when it is outgrown. Reads take a Pebble snapshot or iterator and never wait for the
// writer.
//
// # Lifecycle
//
// Open opens or creates the database and starts the filter's fill; Close
// stops the fill, waits for it, flushes and closes the database, and is
// idempotent. Pebble runs its own flush and compaction goroutines, which
// Close stops.
package lsm

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleyim/parley/store"
)

var _ store.Messages = (*Log)(nil)

// Options configures a Log. The zero value is the durable default.
type Options struct {
	// NoSync commits without waiting for the write-ahead log to reach the
	// disk: faster, but a crash of the process or the machine may lose the
	// last acknowledged commits.
	NoSync bool
	// CacheBytes is the block cache size; 0 means 64 MiB.
	CacheBytes int64
	// HeadCache is how many conversation heads the writer keeps in memory;
	// 0 means 1<<18.
	HeadCache int

	fs vfs.FS // the file system, for tests; nil means the operating system's
}

// Log is the message log. Its methods are safe for concurrent use.
type Log struct {
	db    *pebble.DB
	write *pebble.WriteOptions

	mu       sync.Mutex // serialises writes; guards the fields below
	version  int64      // the last version taken
	heads    map[string]*head
	maxHead  int
	appender appender      // the state of AppendMessages, kept for the next call
	filter   *clientFilter // replaced, when it is full, by a bigger one
	outgrown *clientFilter // the filter replaced, until its successor is filled
	closed   bool

	stopFill chan struct{}  // closed by Close: background filter fills end
	fills    sync.WaitGroup // the filter fills running
}

// Open opens the log in dir, creating it if needed.
func Open(dir string, opts Options) (*Log, error) {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 64 << 20
	}
	if opts.HeadCache <= 0 {
		opts.HeadCache = 1 << 18
	}
	po := &pebble.Options{
		// A cache of our own (Options.Cache) stayed empty in Pebble
		// v2.1.7, and every lookup decompressed its blocks again; the
		// one Pebble makes from CacheSize works.
		CacheSize:    opts.CacheBytes,
		MemTableSize: 32 << 20,
		// Two compactions at once: with one, the backlog grew under
		// sustained writes on a two-core machine.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
		Logger:                     quietLogger{},
		FS:                         opts.fs,
	}
	// Bloom filters make the client-id lookup of a new message, which finds
	// nothing, cost no block reads in most levels.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.EnsureDefaults()
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("lsm: open %s: %w", dir, err)
	}
	l := &Log{db: db, write: pebble.Sync, heads: make(map[string]*head), maxHead: opts.HeadCache, stopFill: make(chan struct{})}
	if opts.NoSync {
		l.write = pebble.NoSync
	}
	v, err := l.readVersion(db)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.version = v
	l.mu.Lock()
	err = l.upgradeRosters()
	l.startFilterLocked(minCapacity)
	l.mu.Unlock()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("lsm: give old groups a roster: %w", err)
	}
	return l, nil
}

// startFilterLocked puts a new, empty filter for capacity keys in front of
// the dedupe lookup and fills it in the background from a snapshot; the
// writer adds what it writes from now on. The caller holds l.mu.
func (l *Log) startFilterLocked(capacity int) {
	f := newClientFilter(capacity)
	snap := l.db.NewSnapshot()
	if l.filter != nil && l.filter.ready.Load() {
		l.outgrown = l.filter
	}
	l.filter = f
	l.fills.Go(func() {
		if err := f.fill(snap, l.stopFill); err != nil {
			// The filter stays unready: every lookup goes to Pebble.
			quietLogger{}.Errorf("lsm: fill the client-id filter: %v", err)
		}
	})
}

// rememberClientKey adds a client-id key the writer stores to the filters.
// The caller holds l.mu.
func (l *Log) rememberClientKey(key []byte) {
	l.filter.add(key)
	if l.outgrown != nil {
		l.outgrown.add(key)
	}
}

// clientKeyAbsent reports whether a client-id key is surely not stored.
// The caller holds l.mu.
func (l *Log) clientKeyAbsent(key []byte) bool {
	if l.filter.ready.Load() {
		l.outgrown = nil // its successor is filled
		return l.filter.absent(key)
	}
	return l.outgrown != nil && l.outgrown.absent(key)
}

// Close flushes the memtable and closes the database. It is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.stopFill)
	l.fills.Wait()
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("lsm: close: %w", err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the log into dir, which must not
// exist. Files are hard-linked where the file system allows.
func (l *Log) Checkpoint(dir string) error {
	if err := l.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("lsm: checkpoint: %w", err)
	}
	return nil
}

// Empty reports whether the log holds no conversation yet.
func (l *Log) Empty() (bool, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagHead}, UpperBound: []byte{tagHead + 1}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return !it.First(), it.Error()
}

// getter is *pebble.DB, *pebble.Snapshot or *pebble.Batch.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get decodes the value at key with decode; found is false if there is none.
func get(g getter, key []byte, decode func(*dec)) (found bool, err error) {
	v, closer, err := g.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	d := &dec{b: v}
	decode(d)
	if d.err != nil {
		return false, fmt.Errorf("%w at key %q", d.err, key)
	}
	return true, nil
}

func (l *Log) readVersion(g getter) (int64, error) {
	var v int64
	_, err := get(g, versionKey, func(d *dec) { v = d.int() })
	return v, err
}

// head is what the log keeps per conversation.
type head struct {
	kind    string
	maxSeq  int64
	version int64 // of the last commit that stored a message, or created it
	created int64 // unix ms
	members int   // current members
	// For a direct conversation: its members, lo < hi (or both the same
	// user), and the seq each of them last sent.
	lo, hi                 string
	lastSentLo, lastSentHi int64
}

func (h *head) encode() []byte {
	return enc(make([]byte, 0, 64+len(h.lo)+len(h.hi))).str(h.kind).int(h.maxSeq).int(h.version).int(h.created).int(int64(h.members)).
		str(h.lo).str(h.hi).int(h.lastSentLo).int(h.lastSentHi)
}

func (h *head) decode(d *dec) {
	h.kind, h.maxSeq, h.version, h.created, h.members = d.str(), d.int(), d.int(), d.int(), int(d.int())
	h.lo, h.hi, h.lastSentLo, h.lastSentHi = d.str(), d.str(), d.int(), d.int()
}

// lastSent is the seq of the last message user sent in a direct
// conversation, which counts as read by them.
func (h *head) lastSent(user string) int64 {
	switch user {
	case h.lo:
		return h.lastSentLo
	case h.hi:
		return h.lastSentHi
	}
	return 0
}

// member is one user's record in one conversation.
type member struct {
	readSeq  int64
	minSeq   int64
	version  int64
	left     bool
	leftSeq  int64 // the conversation's max seq when the user left
	settings store.Settings
}

// encode writes the settings after the fields records had before settings
// existed, and only when there are any: such a record is what it was.
func (m *member) encode() []byte {
	e := enc(make([]byte, 0, 32)).int(m.readSeq).int(m.minSeq).int(m.version).bool(m.left).int(m.leftSeq)
	if s := &m.settings; *s != (store.Settings{}) {
		e = e.bool(s.Pinned).int(s.MutedUntil).int(s.UnhideSeq).str(s.Draft).int(s.DraftTime)
	}
	return e
}

func (m *member) decode(d *dec) {
	m.readSeq, m.minSeq, m.version, m.left, m.leftSeq = d.int(), d.int(), d.int(), d.bool(), d.int()
	if s := &m.settings; d.err == nil && len(d.b) > 0 {
		s.Pinned, s.MutedUntil, s.UnhideSeq, s.Draft, s.DraftTime = d.bool(), d.int(), d.int(), d.str(), d.int()
	}
}

func encodeMessage(m *store.Message) []byte {
	size := 32 + len(m.ServerID) + len(m.ClientID) + len(m.Sender) + len(m.Recipient) + len(m.ContentType) + len(m.Content)
	return appendMessage(make([]byte, 0, size), m)
}

func appendMessage(dst []byte, m *store.Message) []byte {
	return enc(dst).str(m.ServerID).str(m.ClientID).str(m.Sender).str(m.Recipient).str(m.ContentType).
		int(m.Time.UnixMilli()).bytes(m.Content)
}

func decodeMessage(d *dec, conv string, seq int64) store.Message {
	m := store.Message{Conversation: conv, Seq: seq}
	m.ServerID, m.ClientID, m.Sender, m.Recipient, m.ContentType = d.str(), d.str(), d.str(), d.str(), d.str()
	m.Time = time.UnixMilli(d.int()).UTC()
	m.Content = d.bytes()
	return m
}

// headLocked returns the head of conv from the cache or the database, or
// nil if the conversation does not exist. The caller holds l.mu and must not
// modify the result: it copies it, and puts the copy back with cacheHead once
// its batch committed.
func (l *Log) headLocked(conv string) (*head, error) {
	if h, ok := l.heads[conv]; ok {
		return h, nil
	}
	h := new(head)
	found, err := get(l.db, headKey(conv), h.decode)
	if err != nil || !found {
		return nil, err
	}
	l.cacheHead(conv, h)
	return h, nil
}

// cacheHead stores h, dropping an arbitrary part of the cache when it is
// full: the cache only saves reads, and Go's map iteration order is random.
func (l *Log) cacheHead(conv string, h *head) {
	if len(l.heads) >= l.maxHead {
		n := 0
		for k := range l.heads {
			delete(l.heads, k)
			if n++; n >= l.maxHead/4 {
				break
			}
		}
	}
	l.heads[conv] = h
}

// memberOf reads a member record; found is false if there is none.
func memberOf(g getter, user, conv string) (m member, found bool, err error) {
	found, err = get(g, memberKey(user, conv), m.decode)
	return m, found, err
}

// quietLogger drops Pebble's informational logs and keeps its errors on
// standard error through the default logger.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
