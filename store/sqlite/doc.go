// Package sqlite is the embedded store of accounts and of the social graph:
// store.Users, store.Tokens, store.Meta and store.Social (friend requests,
// friendships, blocks) on one SQLite database file, through the
// pure-Go driver modernc.org/sqlite. The message log lives in store/lsm;
// store/embedded joins the two. legacy.go reads the message tables of data
// directories written before the log moved, so that they can be copied
// over once.
//
// # Durability
//
// The database runs in WAL mode. Options.Sync picks what a commit survives:
//
//   - "full" (the default): synchronous=FULL. The WAL is fsynced at every
//     commit, so a commit that returned survives a power loss.
//   - "normal": synchronous=NORMAL. The WAL is fsynced only at checkpoints.
//     A commit survives a crash of the process, but the last commits before
//     a power loss or kernel crash may be lost. The database is never
//     corrupted either way.
//
// # Two pools
//
// A Store holds two database/sql pools on the same file. The writer pool has
// exactly one connection, so writes are serialised in Go, on that pool's
// queue, instead of contending for SQLite's write lock and spinning on
// SQLITE_BUSY; its transactions begin IMMEDIATE, taking the write lock
// before they read, so that what they read cannot change under them. The
// reader pool has several query-only connections; in WAL mode they read a
// consistent snapshot while the writer commits, so reads never wait for
// writes. A busy timeout covers the remaining contention: another process
// holding the write lock, and WAL checkpoints.
//
// # Concurrency model
//
// All methods of Store are safe for concurrent use. A Store starts no
// goroutines of its own; the pools' connections are owned by database/sql.
//
// # Lifecycle
//
// Open creates the file if needed, applies the numbered migrations embedded
// from migrations/ in one transaction and refuses a database whose schema is
// newer than the binary (ErrSchemaTooNew). Close closes both pools; the last
// connection to close checkpoints the WAL into the database file.
package sqlite
