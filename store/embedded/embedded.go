// Package embedded is Parley's store with no external service: accounts,
// token revocations, server metadata and the social graph (friends, friend
// requests, blocks) in a SQLite file (store/sqlite), and
// the message log in a Pebble LSM (store/lsm), side by side in one data
// directory. Each part sits on the engine that measured best for it: users
// are few, searched and updated in place; messages arrive fast, spread over
// many conversations, and are read back in ranges.
//
// # Layout of a data directory
//
//	parley.db, parley.db-wal   accounts, revocations, metadata, friends, blocks (SQLite, WAL)
//	messages/                  conversations, messages, member state (Pebble)
//
// A data directory written before the message log moved holds its messages
// in parley.db; Open copies them into messages/ once, with a progress line,
// and then drops the old tables.
//
// # Concurrency model
//
// A Store is safe for concurrent use; its parts are (see their packages).
// It starts no goroutines of its own.
//
// # Lifecycle
//
// Open opens both parts and upgrades an old directory; Close closes both and
// is idempotent. One process at a time may open a data directory.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parleyim/parley/store"
	"github.com/parleyim/parley/store/lsm"
	"github.com/parleyim/parley/store/sqlite"
)

var _ store.Store = (*Store)(nil)

// File and directory names inside a data directory.
const (
	AccountsFile = "parley.db"
	MessagesDir  = "messages"
)

// Values of Options.Sync.
const (
	SyncFull   = "full"
	SyncNormal = "normal"
)

// Options configures a Store.
type Options struct {
	// Sync is SyncFull (the default when empty): every commit is synced to
	// disk before it returns and survives a power loss; or SyncNormal:
	// commits are not synced, and a crash of the machine, or of the
	// process, may lose the last ones.
	Sync string
	// Progress, if set, receives a line now and then while an old data
	// directory is upgraded.
	Progress func(msg string, args ...any)
}

// Store is store.Store on a data directory.
type Store struct {
	*sqlite.Store
	*lsm.Log

	closeOnce sync.Once
	closeErr  error
}

// Open opens the store in dir, creating the directory if needed.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Sync != "" && opts.Sync != SyncFull && opts.Sync != SyncNormal {
		return nil, fmt.Errorf("embedded: unknown sync mode %q, want %q or %q", opts.Sync, SyncFull, SyncNormal)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	sqlSync := sqlite.SyncFull
	if opts.Sync == SyncNormal {
		sqlSync = sqlite.SyncNormal
	}
	accounts, err := sqlite.Open(ctx, filepath.Join(dir, AccountsFile), sqlite.Options{Sync: sqlSync})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	log, err := lsm.Open(filepath.Join(dir, MessagesDir), lsm.Options{NoSync: opts.Sync == SyncNormal})
	if err != nil {
		accounts.Close()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	s := &Store{Store: accounts, Log: log}
	if err := s.upgrade(ctx, opts.Progress); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded: upgrade %s: %w", dir, err)
	}
	return s, nil
}

// Close closes both parts. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.Log.Close(), s.Store.Close())
	})
	return s.closeErr
}

// Backup writes a consistent copy of the store into dir, which must not
// exist, while the store is in use: the accounts file by SQLite's VACUUM
// INTO and the message log by a Pebble checkpoint. The two are each
// consistent; an account created while the backup runs may be in one and
// not the other's messages.
func (s *Store) Backup(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("embedded: backup: %s already exists", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded: backup: %w", err)
	}
	if err := s.Store.Backup(ctx, filepath.Join(dir, AccountsFile)); err != nil {
		return fmt.Errorf("embedded: backup: %w", err)
	}
	if err := s.Log.Checkpoint(filepath.Join(dir, MessagesDir)); err != nil {
		return fmt.Errorf("embedded: backup: %w", err)
	}
	return nil
}

// upgrade copies the message tables of an old data directory into the log,
// then drops them. A copy cut short is redone from the start on the next
// Open: the old tables go only after the log synced everything.
func (s *Store) upgrade(ctx context.Context, progress func(string, ...any)) error {
	exists, total, err := s.Store.LegacyMessages(ctx)
	if err != nil || !exists {
		return err
	}
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if total > 0 {
		progress("upgrading the data directory: copying messages into the message log", "messages", total)
	}
	start := time.Now()
	im := s.Log.NewImporter()
	kinds := make(map[string]string)
	var copied int64
	version, err := s.Store.ReadLegacy(ctx, sqlite.Legacy{
		Conversation: func(c sqlite.LegacyConversation) error {
			kinds[c.ID] = c.Kind
			return im.Conversation(lsm.ImportedConversation{ID: c.ID, Kind: c.Kind, MaxSeq: c.MaxSeq, Version: c.Version,
				Created: c.CreatedAt, LastSentLo: c.LastSentLo, LastSentHi: c.LastSentHi})
		},
		Member: func(m sqlite.LegacyMember) error {
			kind, ok := kinds[m.Conversation]
			if !ok {
				return nil // a member row of a conversation with no message: nothing to see
			}
			return im.Member(lsm.ImportedMember{User: m.User, Conversation: m.Conversation, ReadSeq: m.ReadSeq, MinSeq: m.MinSeq, Version: m.Version}, kind)
		},
		Message: func(m store.Message) error {
			copied++
			if copied%500_000 == 0 {
				progress("upgrading the data directory", "copied", copied, "of", total)
			}
			return im.Message(m)
		},
	})
	if err != nil {
		return err
	}
	if err := im.Finish(version); err != nil {
		return err
	}
	if err := s.Store.DropLegacy(ctx); err != nil {
		return err
	}
	if total > 0 {
		progress("upgraded the data directory", "messages", copied, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
