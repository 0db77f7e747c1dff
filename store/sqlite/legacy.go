package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/parleyim/parley/store"
)

// The message tables of data directories written before the message log
// moved to store/lsm, renamed by migration 0002.
const (
	legacyExistsSQL = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'legacy_messages'`
	legacyCountSQL  = `SELECT count(*) FROM legacy_messages`

	legacyConversationsSQL = `
SELECT id, kind, max_seq, version, coalesce(member_lo, ''), coalesce(member_hi, ''), last_sent_lo, last_sent_hi, created_at
FROM legacy_conversations ORDER BY id`
	legacyMembersSQL = `
SELECT user_id, conv_id, read_seq, min_seq, version FROM legacy_members ORDER BY user_id, conv_id`
	legacyMessagesSQL = `
SELECT conv_id, seq, server_id, client_id, sender, recipient, content_type, content, created_at
FROM legacy_messages ORDER BY conv_id, seq`
	legacyVersionSQL = `SELECT value FROM legacy_version_counter WHERE id = 0`

	dropLegacySQL = `
DROP TABLE legacy_messages;
DROP TABLE legacy_members;
DROP TABLE legacy_conversations;
DROP TABLE legacy_version_counter;`
)

// LegacyConversation is a conversation row of the old message tables.
type LegacyConversation struct {
	ID                     string
	Kind                   string
	MaxSeq                 int64
	Version                int64
	MemberLo, MemberHi     string // empty when the pair was not recorded
	LastSentLo, LastSentHi int64
	CreatedAt              int64 // unix ms
}

// LegacyMember is a member row of the old message tables.
type LegacyMember struct {
	User, Conversation string
	ReadSeq, MinSeq    int64
	Version            int64
}

// Legacy is what a reader of the old message tables is given, table by
// table; a callback's error stops the reading.
type Legacy struct {
	Conversation func(LegacyConversation) error
	Member       func(LegacyMember) error
	Message      func(store.Message) error
}

// LegacyMessages reports whether the database still holds the old message
// tables, and how many messages they hold.
func (s *Store) LegacyMessages(ctx context.Context) (exists bool, messages int64, err error) {
	var n int
	if err := s.reader.QueryRowContext(ctx, legacyExistsSQL).Scan(&n); err != nil {
		return false, 0, fmt.Errorf("sqlite: legacy messages: %w", err)
	}
	if n == 0 {
		return false, 0, nil
	}
	if err := s.reader.QueryRowContext(ctx, legacyCountSQL).Scan(&messages); err != nil {
		return false, 0, fmt.Errorf("sqlite: legacy messages: %w", err)
	}
	return true, messages, nil
}

// ReadLegacy reads the old message tables from one snapshot: conversations,
// then members, then messages in (conversation, seq) order; it returns the
// old version counter.
func (s *Store) ReadLegacy(ctx context.Context, to Legacy) (version int64, err error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("sqlite: read legacy: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, legacyVersionSQL).Scan(&version); err != nil {
		return 0, fmt.Errorf("sqlite: read legacy: %w", err)
	}
	err = eachRow(ctx, tx, legacyConversationsSQL, func(r *sql.Rows) error {
		var c LegacyConversation
		if err := r.Scan(&c.ID, &c.Kind, &c.MaxSeq, &c.Version, &c.MemberLo, &c.MemberHi, &c.LastSentLo, &c.LastSentHi, &c.CreatedAt); err != nil {
			return err
		}
		return to.Conversation(c)
	})
	if err == nil {
		err = eachRow(ctx, tx, legacyMembersSQL, func(r *sql.Rows) error {
			var m LegacyMember
			if err := r.Scan(&m.User, &m.Conversation, &m.ReadSeq, &m.MinSeq, &m.Version); err != nil {
				return err
			}
			return to.Member(m)
		})
	}
	if err == nil {
		err = eachRow(ctx, tx, legacyMessagesSQL, func(r *sql.Rows) error {
			var m store.Message
			var content []byte
			var ms int64
			if err := r.Scan(&m.Conversation, &m.Seq, &m.ServerID, &m.ClientID, &m.Sender, &m.Recipient, &m.ContentType, &content, &ms); err != nil {
				return err
			}
			m.Content, m.Time = content, timeOf(ms)
			return to.Message(m)
		})
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read legacy: %w", err)
	}
	return version, nil
}

// DropLegacy drops the old message tables, once their content is safely
// elsewhere.
func (s *Store) DropLegacy(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, dropLegacySQL); err != nil {
		return fmt.Errorf("sqlite: drop legacy: %w", err)
	}
	return nil
}

func eachRow(ctx context.Context, tx *sql.Tx, query string, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
