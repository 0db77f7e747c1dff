// Package sqlite is Parley's embedded storage: store.Store on one SQLite
// database file, through the pure-Go driver modernc.org/sqlite.
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
// before they read, so that what they read (a conversation's max seq) cannot
// change under them even when another process appends to the same file. The
// reader pool has several query-only connections; in WAL mode they read a
// consistent snapshot while the writer commits, so reads never wait for
// writes. A busy timeout covers the remaining contention: another process
// holding the write lock, and WAL checkpoints.
//
// The writer has a 64 MiB page cache and lets the WAL grow to 64 MiB
// before a commit checkpoints it into the database file: measured with
// BenchmarkAppendMessages, the two more than double the messages appended
// per second over SQLite's defaults.
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
