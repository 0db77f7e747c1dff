-- 0003: friend requests, friendships and blocks (store.Social), with a
-- version counter of their own. Times are unix milliseconds.
--
-- Every row written takes the next value of social_version, so a user's
-- changes since V are a range read on an (owner, version) index. Deleting a
-- friend or lifting a block keeps the row as a tombstone (deleted = 1, with
-- the version of the delete), so that a sync from before learns of it.

CREATE TABLE social_version (
	id    INTEGER PRIMARY KEY CHECK (id = 0),
	value INTEGER NOT NULL
);
INSERT INTO social_version (id, value) VALUES (0, 0);

-- One row per (from, to): a new request after a refusal reuses it. It
-- shows in the lists of both users, through one index each.
CREATE TABLE friend_requests (
	from_user  TEXT NOT NULL,
	to_user    TEXT NOT NULL,
	message    TEXT NOT NULL,
	state      TEXT NOT NULL, -- pending, accepted or refused
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	PRIMARY KEY (from_user, to_user)
) WITHOUT ROWID;
CREATE INDEX friend_requests_from_version ON friend_requests (from_user, version);
CREATE INDEX friend_requests_to_version ON friend_requests (to_user, version);

-- Two rows per friendship, one per owner, each with the owner's remark and
-- extra (JSON, NULL when unset).
CREATE TABLE friends (
	owner      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	remark     TEXT NOT NULL,
	extra      TEXT,
	created_at INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	PRIMARY KEY (owner, user_id)
) WITHOUT ROWID;
CREATE INDEX friends_owner_version ON friends (owner, version);

CREATE TABLE blocks (
	owner      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	version    INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	PRIMARY KEY (owner, user_id)
) WITHOUT ROWID;
CREATE INDEX blocks_owner_version ON blocks (owner, version);
