-- 0001: users, token revocations, server metadata, conversations, messages
-- and per-member state. Times are unix milliseconds.
--
-- No foreign keys from messages and members to conversations: AppendMessages
-- writes a new conversation's row after its messages, once it knows their
-- last seq, and it is the only writer of these tables.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	nickname      TEXT NOT NULL,
	avatar_url    TEXT NOT NULL,
	extra         TEXT,            -- JSON, NULL when unset
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	last_seen     INTEGER,         -- NULL when never connected
	-- Lower-cased copies of id and nickname, folded in Go so that search is
	-- case-insensitive beyond ASCII (SQLite's lower() and LIKE fold ASCII only).
	id_fold       TEXT NOT NULL,
	nickname_fold TEXT NOT NULL
);

-- device_id is '' for a revocation of every device of the user.
CREATE TABLE revocations (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL DEFAULT '',
	before    INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

-- The store-wide member version counter: one row, only ever incremented.
CREATE TABLE version_counter (
	id    INTEGER PRIMARY KEY CHECK (id = 0),
	value INTEGER NOT NULL
);
INSERT INTO version_counter (id, value) VALUES (0, 0);

-- version is the version of the last batch that stored a message in the
-- conversation: a new message changes every member's state without writing
-- their member rows (see members).
--
-- A direct conversation between two distinct users records them as
-- member_lo < member_hi once both have member rows, and the seq of the last
-- message each of them sent in last_sent_lo and last_sent_hi: a sender has
-- read what it sent, so its read seq is the greater of its member row's
-- read_seq and its last_sent. Other conversations leave these NULL and 0.
CREATE TABLE conversations (
	id           TEXT PRIMARY KEY,
	kind         TEXT NOT NULL,
	max_seq      INTEGER NOT NULL,
	version      INTEGER NOT NULL,
	member_lo    TEXT,
	member_hi    TEXT,
	last_sent_lo INTEGER NOT NULL DEFAULT 0,
	last_sent_hi INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
	conv_id      TEXT NOT NULL,
	seq          INTEGER NOT NULL,
	server_id    TEXT NOT NULL,
	client_id    TEXT NOT NULL,
	sender       TEXT NOT NULL,
	recipient    TEXT NOT NULL,
	content_type TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	content      BLOB,             -- last: the large column
	PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;

-- De-duplication of client retries. An empty client ID opts out.
CREATE UNIQUE INDEX messages_client_id ON messages (sender, client_id) WHERE client_id <> '';

-- A member row is written when it is created and when the member alone
-- changes (read, clear), each time with a new version; messages in a direct
-- conversation with member_lo and member_hi set do not write it. A member's
-- version is the greater of its row's and its conversation's, and
-- Members(user, since) reads the user's rows by primary key and checks both:
-- a user has a modest number of conversations.
CREATE TABLE members (
	user_id  TEXT NOT NULL,
	conv_id  TEXT NOT NULL,
	peer     TEXT NOT NULL,
	read_seq INTEGER NOT NULL,
	min_seq  INTEGER NOT NULL DEFAULT 1,
	version  INTEGER NOT NULL,
	PRIMARY KEY (user_id, conv_id)
) WITHOUT ROWID;
