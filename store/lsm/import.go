package lsm

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// importBatchBytes is the size at which an Importer commits what it has.
const importBatchBytes = 16 << 20

// Importer writes records of another store's message log into an empty Log,
// for upgrading a data directory. It writes without syncing until Finish,
// which syncs; an import that stops half way is simply run again, since it
// writes the same keys. It is not safe for concurrent use, and nothing else
// may write to the Log while it runs.
type Importer struct {
	l      *Log
	b      *pebble.Batch
	filter *clientFilter // the dedupe filter, whose snapshot predates the import
}

// NewImporter returns an Importer.
func (l *Log) NewImporter() *Importer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &Importer{l: l, b: l.db.NewBatch(), filter: l.filter}
}

// ImportedConversation is a conversation to import: its head as the other
// store kept it.
type ImportedConversation struct {
	ID                     string
	Kind                   string
	MaxSeq, Version        int64
	Created                int64 // unix ms
	LastSentLo, LastSentHi int64 // of a direct conversation's lower and higher user
}

// ImportedMember is a member record to import.
type ImportedMember struct {
	User, Conversation       string
	ReadSeq, MinSeq, Version int64
}

// Conversation imports a conversation's head. A direct conversation's
// members come from its id; both get a member record, which Member may
// replace with the imported one.
func (im *Importer) Conversation(c ImportedConversation) error {
	h := head{kind: c.Kind, maxSeq: c.MaxSeq, version: c.Version, created: c.Created}
	if c.Kind == conversation.Direct {
		lo, hi, ok := conversation.Pair(c.ID)
		if !ok {
			return fmt.Errorf("lsm: import: direct conversation with id %q", c.ID)
		}
		h.lo, h.hi, h.lastSentLo, h.lastSentHi = lo, hi, c.LastSentLo, c.LastSentHi
		h.members = 2
		if lo == hi {
			h.members = 1
		}
		for _, u := range []string{lo, hi} {
			rec := member{minSeq: 1, version: c.Version}
			im.b.Set(memberKey(u, c.ID), rec.encode(), nil)
		}
	}
	im.b.Set(headKey(c.ID), h.encode(), nil)
	return im.flushIfFull()
}

// Member imports a member record; for a kind other than direct it also
// makes the user a current member.
func (im *Importer) Member(m ImportedMember, kind string) error {
	rec := member{readSeq: m.ReadSeq, minSeq: m.MinSeq, version: m.Version}
	im.b.Set(memberKey(m.User, m.Conversation), rec.encode(), nil)
	if kind != conversation.Direct {
		im.b.Set(audienceKey(m.Conversation, m.User), nil, nil)
	}
	return im.flushIfFull()
}

// Message imports a message and its client-id key.
func (im *Importer) Message(m store.Message) error {
	im.b.Set(messageKey(m.Conversation, m.Seq), encodeMessage(&m), nil)
	if m.ClientID != "" {
		key := clientKey(m.Sender, m.ClientID)
		im.b.Set(key, enc(nil).str(m.Conversation).int(m.Seq), nil)
		im.filter.add(key)
	}
	return im.flushIfFull()
}

// Finish sets the version counter, commits with a sync and makes the Log
// see what was imported.
func (im *Importer) Finish(version int64) error {
	defer im.b.Close()
	im.b.Set(versionKey, enc(nil).int(version), nil)
	if err := im.b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("lsm: import: %w", err)
	}
	l := im.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.version = max(l.version, version)
	clear(l.heads)
	return nil
}

func (im *Importer) flushIfFull() error {
	if im.b.Len() < importBatchBytes {
		return nil
	}
	if err := im.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("lsm: import: %w", err)
	}
	im.b.Close()
	im.b = im.l.db.NewBatch()
	return nil
}
