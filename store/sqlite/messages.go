package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleyim/parley/store"
)

const (
	messageColumns = `conv_id, seq, server_id, client_id, sender, recipient, content_type, content, created_at`

	// insertMessageSQL stores a message unless its sender already used its
	// client ID; a clash on (conv_id, seq) is an error.
	insertMessageSQL = `
INSERT INTO messages (` + messageColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sender, client_id) WHERE client_id <> '' DO NOTHING`

	// messageByClientIDSQL repeats the partial index's condition so that
	// the planner may use the index.
	messageByClientIDSQL = `
SELECT ` + messageColumns + ` FROM messages
WHERE sender = ? AND client_id = ? AND client_id <> ''`

	// conversationSQL reads what a batch needs of a conversation.
	conversationSQL = `
SELECT max_seq, member_lo, member_hi, last_sent_lo, last_sent_hi FROM conversations WHERE id = ?`
	insertConversationSQL = `
INSERT INTO conversations (id, kind, max_seq, version, member_lo, member_hi, last_sent_lo, last_sent_hi, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateConversationSQL = `
UPDATE conversations SET max_seq = ?, version = ?, member_lo = ?, member_hi = ?, last_sent_lo = ?, last_sent_hi = ?
WHERE id = ?`

	nextVersionSQL    = `UPDATE version_counter SET value = value + 1 WHERE id = 0 RETURNING value`
	currentVersionSQL = `SELECT value FROM version_counter WHERE id = 0`

	// upsertMemberSQL creates a member row or, for a conversation without
	// member_lo and member_hi, records a new message in it.
	upsertMemberSQL = `
INSERT INTO members (user_id, conv_id, peer, read_seq, version) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (user_id, conv_id) DO UPDATE SET
	read_seq = max(read_seq, excluded.read_seq),
	version = excluded.version`
	// insertMemberSQL creates the member row of a user of a direct pair;
	// the row may exist already, written by messages before the pair was
	// recorded, or by another process.
	insertMemberSQL = `
INSERT INTO members (user_id, conv_id, peer, read_seq, version) VALUES (?, ?, ?, 0, ?)
ON CONFLICT (user_id, conv_id) DO NOTHING`

	// memberSelect reads member rows with their conversation and, unless the
	// member cleared it, the conversation's last message. The read seq and
	// version are the member's effective ones: see migrations/0001_init.sql.
	memberSelect = `
SELECT m.user_id, m.conv_id, c.kind, m.peer, c.max_seq,
	max(m.read_seq, CASE m.user_id WHEN c.member_lo THEN c.last_sent_lo WHEN c.member_hi THEN c.last_sent_hi ELSE 0 END),
	m.min_seq, max(m.version, c.version),
	max(coalesce(p.read_seq, 0), CASE m.peer WHEN c.member_lo THEN c.last_sent_lo WHEN c.member_hi THEN c.last_sent_hi ELSE 0 END),
	l.conv_id, l.seq, l.server_id, l.client_id, l.sender, l.recipient, l.content_type, l.content, l.created_at
FROM members m
JOIN conversations c ON c.id = m.conv_id
LEFT JOIN members p ON p.user_id = m.peer AND p.conv_id = m.conv_id AND m.peer <> m.user_id
LEFT JOIN messages l ON l.conv_id = m.conv_id AND l.seq = c.max_seq AND c.max_seq >= m.min_seq`

	memberSQL = memberSelect + ` WHERE m.user_id = ? AND m.conv_id = ?`
	// membersSinceSQL walks the user's rows by primary key, reading each
	// conversation by its primary key.
	membersSinceSQL = memberSelect + `
WHERE m.user_id = ?1 AND max(m.version, c.version) > ?2
ORDER BY max(m.version, c.version), m.conv_id`

	setMemberSeqsSQL = `UPDATE members SET read_seq = ?, min_seq = ?, version = ? WHERE user_id = ? AND conv_id = ?`
	touchMemberSQL   = `UPDATE members SET version = ? WHERE user_id = ? AND conv_id = ?`

	messagesForwardSQL = `
SELECT ` + messageColumns + ` FROM messages
WHERE conv_id = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?`
	messagesBackwardSQL = `
SELECT ` + messageColumns + ` FROM messages
WHERE conv_id = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?`
)

// AppendMessages commits the batch in one transaction on the writer.
//
// It runs, per conversation in the batch, a read of its row and, if the
// batch stored anything in it, one write of the row (max seq, version and,
// for a direct conversation, each member's last sent seq); per message, one
// insert, which the database skips when the sender used the client ID
// before (the original is then looked up); per batch, one bump of the
// version. Member rows are written only when a direct conversation gets
// its pair recorded (two inserts, once per conversation), and for messages
// outside that scheme (see directPair): one upsert per (member,
// conversation) in the batch.
func (s *Store) AppendMessages(ctx context.Context, batch []store.NewMessage) ([]store.AppendResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: append messages: %w", err)
	}
	defer tx.Rollback()
	// The statements run without ctx's cancellation: with it, the driver
	// starts a goroutine per statement to watch ctx, a sixth of the cost of
	// a message. The transaction still watches ctx: once ctx is done, it
	// rolls back and the remaining statements and Commit fail.
	results, err := s.appendMessages(context.WithoutCancel(ctx), tx, batch)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: append messages: %w", err)
	}
	return results, nil
}

// clientKey identifies a message for de-duplication.
type clientKey struct{ sender, clientID string }

// convAppend is what one batch does to one conversation.
type convAppend struct {
	id      string
	kind    string // from the batch's first message to the conversation
	created int64  // its time, in unix ms
	exists  bool   // the conversation has a row
	maxSeq  int64  // the seq of its last message, stored or not by this batch
	stored  bool   // the batch stored a message in it

	// The direct pair, lo < hi, if recorded; newPair is set when this batch
	// records it and must create the member rows.
	lo, hi                 sql.Null[string]
	newPair                bool
	lastSentLo, lastSentHi int64
}

// memberKey identifies a member row.
type memberKey struct{ user, conv string }

// memberAppend is what one batch does to one member row outside the direct
// pair scheme.
type memberAppend struct {
	memberKey
	peer    string
	readSeq int64 // the highest seq the user sent in this batch, or 0
}

// directPair returns the two members of m, lower first, if m is a message
// of a direct conversation between two distinct users; those messages
// track their senders' read seqs in the conversation row.
func directPair(m store.NewMessage) (lo, hi string, ok bool) {
	if m.Kind != store.KindDirect || len(m.Members) != 2 || m.Members[0] == m.Members[1] {
		return "", "", false
	}
	lo, hi = m.Members[0], m.Members[1]
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi, true
}

func (s *Store) appendMessages(ctx context.Context, tx *sql.Tx, batch []store.NewMessage) ([]store.AppendResult, error) {
	readConv := tx.StmtContext(ctx, s.conversation)
	insert := tx.StmtContext(ctx, s.insertMessage)
	lookup := tx.StmtContext(ctx, s.messageByClientID)
	results := make([]store.AppendResult, len(batch))
	originals := make(map[clientKey]store.Message) // non-empty client IDs seen: committed before or stored by this batch
	convs := make(map[string]*convAppend)
	var convOrder []*convAppend
	members := make(map[memberKey]*memberAppend)
	var memberOrder []*memberAppend
	for i, m := range batch {
		k := clientKey{m.Sender, m.ClientID}
		if orig, ok := originals[k]; ok {
			results[i] = compareOriginal(orig, m)
			continue
		}
		c := convs[m.Conversation]
		if c == nil {
			c = &convAppend{id: m.Conversation, kind: m.Kind, created: m.Time.UnixMilli(), exists: true}
			err := readConv.QueryRowContext(ctx, c.id).Scan(&c.maxSeq, &c.lo, &c.hi, &c.lastSentLo, &c.lastSentHi)
			if errors.Is(err, sql.ErrNoRows) {
				c.exists, err = false, nil
			}
			if err != nil {
				return nil, err
			}
			convs[c.id] = c
			convOrder = append(convOrder, c)
		}
		msg := store.Message{
			Conversation: m.Conversation,
			Seq:          c.maxSeq + 1,
			ServerID:     m.ServerID,
			ClientID:     m.ClientID,
			Sender:       m.Sender,
			Recipient:    m.Recipient,
			ContentType:  m.ContentType,
			Content:      m.Content,
			Time:         timeOf(m.Time.UnixMilli()),
		}
		res, err := insert.ExecContext(ctx, msg.Conversation, msg.Seq, msg.ServerID, msg.ClientID,
			msg.Sender, msg.Recipient, msg.ContentType, []byte(msg.Content), msg.Time.UnixMilli())
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 0 { // the client ID was used before this batch
			orig, err := scanMessage(lookup.QueryRowContext(ctx, m.Sender, m.ClientID))
			if err != nil {
				return nil, fmt.Errorf("client id %q of %q: %w", m.ClientID, m.Sender, err)
			}
			originals[k] = orig
			results[i] = compareOriginal(orig, m)
			continue
		}
		c.maxSeq, c.stored = msg.Seq, true
		if m.ClientID != "" {
			originals[k] = msg
		}
		results[i] = store.AppendResult{Message: msg}

		if lo, hi, ok := directPair(m); ok && (!c.lo.Valid || c.lo.V == lo && c.hi.V == hi) {
			if !c.lo.Valid {
				c.lo, c.hi, c.newPair = sql.Null[string]{V: lo, Valid: true}, sql.Null[string]{V: hi, Valid: true}, true
			}
			switch m.Sender {
			case lo:
				c.lastSentLo = msg.Seq
			case hi:
				c.lastSentHi = msg.Seq
			}
			continue
		}
		for _, u := range m.Members {
			mk := memberKey{u, m.Conversation}
			ma := members[mk]
			if ma == nil {
				ma = &memberAppend{memberKey: mk, peer: peerOf(m, u)}
				members[mk] = ma
				memberOrder = append(memberOrder, ma)
			}
			if u == m.Sender {
				ma.readSeq = msg.Seq
			}
		}
	}

	// A conversation that only got duplicates and conflicts is left alone:
	// if it had no row, it gets none, and the version does not move.
	var version int64
	updateConv := tx.StmtContext(ctx, s.updateConversation)
	insertConv := tx.StmtContext(ctx, s.insertConversation)
	insertMember := tx.StmtContext(ctx, s.insertMember)
	for _, c := range convOrder {
		if !c.stored {
			continue
		}
		if version == 0 {
			if err := tx.StmtContext(ctx, s.nextVersion).QueryRowContext(ctx).Scan(&version); err != nil {
				return nil, err
			}
		}
		var err error
		if c.exists {
			_, err = updateConv.ExecContext(ctx,
				c.maxSeq, version, c.lo, c.hi, c.lastSentLo, c.lastSentHi, c.id)
		} else {
			_, err = insertConv.ExecContext(ctx,
				c.id, c.kind, c.maxSeq, version, c.lo, c.hi, c.lastSentLo, c.lastSentHi, c.created)
		}
		if err != nil {
			return nil, err
		}
		if c.newPair {
			for _, p := range [][2]string{{c.lo.V, c.hi.V}, {c.hi.V, c.lo.V}} {
				if _, err := insertMember.ExecContext(ctx, p[0], c.id, p[1], version); err != nil {
					return nil, err
				}
			}
		}
	}

	if len(memberOrder) == 0 {
		return results, nil
	}
	upsert := tx.StmtContext(ctx, s.upsertMember)
	for _, ma := range memberOrder {
		if _, err := upsert.ExecContext(ctx, ma.user, ma.conv, ma.peer, ma.readSeq, version); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// compareOriginal is the result for m, whose sender already used its client
// ID for orig.
func compareOriginal(orig store.Message, m store.NewMessage) store.AppendResult {
	if orig.Recipient != m.Recipient || orig.ContentType != m.ContentType || !bytes.Equal(orig.Content, m.Content) {
		return store.AppendResult{Err: store.ErrClientIDConflict}
	}
	return store.AppendResult{Message: orig, Duplicate: true}
}

// peerOf is the peer of user in m's conversation: for a direct conversation
// the other member, or user itself when it talks to itself; otherwise empty.
func peerOf(m store.NewMessage, user string) string {
	if m.Kind != store.KindDirect {
		return ""
	}
	for _, u := range m.Members {
		if u != user {
			return u
		}
	}
	return user
}

// Member returns the user's state in the conversation, or ErrNotFound.
func (s *Store) Member(ctx context.Context, user, conversation string) (store.Member, error) {
	m, err := scanMember(s.member.QueryRowContext(ctx, user, conversation))
	if err != nil {
		return store.Member{}, fmt.Errorf("sqlite: member: %w", err)
	}
	return m, nil
}

// Members returns the user's member rows changed after version since, in
// version order, and the store's current version, both from one snapshot.
func (s *Store) Members(ctx context.Context, user string, since int64) ([]store.Member, int64, error) {
	ms, version, err := s.members(ctx, user, since)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: members: %w", err)
	}
	return ms, version, nil
}

func (s *Store) members(ctx context.Context, user string, since int64) ([]store.Member, int64, error) {
	// One read transaction, so that no change can fall between the rows
	// and the version the caller will pass next time.
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var version int64
	if err := tx.StmtContext(ctx, s.currentVersion).QueryRowContext(ctx).Scan(&version); err != nil {
		return nil, 0, err
	}
	rows, err := tx.StmtContext(ctx, s.membersSince).QueryContext(ctx, user, since)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var ms []store.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, 0, err
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return ms, version, nil
}

// MessageRange returns up to limit messages of the conversation in ascending
// seq order. Forward reads from max(from, minSeq) up to maxSeq; Backward reads
// the newest messages from min(from, maxSeq), or from maxSeq when from is 0,
// down to minSeq. A limit of 0 or less returns no messages.
func (s *Store) MessageRange(ctx context.Context, conversation string, from, minSeq, maxSeq int64, dir store.Direction, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows *sql.Rows
	var err error
	switch dir {
	case store.Forward:
		rows, err = s.messagesForward.QueryContext(ctx, conversation, max(from, minSeq), maxSeq, limit)
	case store.Backward:
		hi := maxSeq
		if from != 0 {
			hi = min(from, maxSeq)
		}
		rows, err = s.messagesBackward.QueryContext(ctx, conversation, minSeq, hi, limit)
	default:
		return nil, fmt.Errorf("sqlite: message range: unknown direction %d", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: message range: %w", err)
	}
	defer rows.Close()
	var msgs []store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: message range: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: message range: %w", err)
	}
	if dir == store.Backward {
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	return msgs, nil
}

// MarkRead raises the user's read seq to seq, clamped to the conversation's
// max seq, and returns the member state. The row gets a new version only if
// its read seq rose.
func (s *Store) MarkRead(ctx context.Context, user, conversation string, seq int64) (store.Member, error) {
	m, err := s.updateMember(ctx, user, conversation, true, func(m store.Member) (readSeq, minSeq int64) {
		return max(m.ReadSeq, min(seq, m.MaxSeq)), m.MinSeq
	})
	if err != nil {
		return store.Member{}, fmt.Errorf("sqlite: mark read: %w", err)
	}
	return m, nil
}

// ClearHistory hides the conversation's current messages from the user and
// returns the member state. The row gets a new version only if it changed.
func (s *Store) ClearHistory(ctx context.Context, user, conversation string) (store.Member, error) {
	m, err := s.updateMember(ctx, user, conversation, false, func(m store.Member) (readSeq, minSeq int64) {
		return max(m.ReadSeq, m.MaxSeq), m.MaxSeq + 1
	})
	if err != nil {
		return store.Member{}, fmt.Errorf("sqlite: clear history: %w", err)
	}
	return m, nil
}

// updateMember sets the member's read and min seqs to what change computes
// from its current state and, if they changed, stamps the row with a new
// version; with toPeer, it stamps the peer's row too (the peer sees the new
// read seq as its PeerReadSeq). The writer's transaction holds the write
// lock, so the state cannot change between the read and the update.
func (s *Store) updateMember(ctx context.Context, user, conversation string, toPeer bool, change func(store.Member) (readSeq, minSeq int64)) (store.Member, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return store.Member{}, err
	}
	defer tx.Rollback()
	m, err := scanMember(tx.StmtContext(ctx, s.writerMember).QueryRowContext(ctx, user, conversation))
	if err != nil {
		return store.Member{}, err
	}
	readSeq, minSeq := change(m)
	if readSeq == m.ReadSeq && minSeq == m.MinSeq {
		return m, nil
	}
	var version int64
	if err := tx.StmtContext(ctx, s.nextVersion).QueryRowContext(ctx).Scan(&version); err != nil {
		return store.Member{}, err
	}
	if _, err := tx.StmtContext(ctx, s.setMemberSeqs).ExecContext(ctx, readSeq, minSeq, version, user, conversation); err != nil {
		return store.Member{}, err
	}
	if toPeer && readSeq != m.ReadSeq && m.Peer != "" && m.Peer != user {
		if _, err := tx.ExecContext(ctx, touchMemberSQL, version, m.Peer, conversation); err != nil {
			return store.Member{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return store.Member{}, err
	}
	m.ReadSeq, m.MinSeq, m.Version = readSeq, minSeq, version
	if m.MaxSeq < m.MinSeq {
		m.LastMessage = nil
	}
	return m, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanMessage reads the columns of messageColumns; sql.ErrNoRows becomes
// store.ErrNotFound.
func scanMessage(row scanner) (store.Message, error) {
	var m store.Message
	var content []byte
	var ms int64
	err := row.Scan(&m.Conversation, &m.Seq, &m.ServerID, &m.ClientID, &m.Sender, &m.Recipient, &m.ContentType, &content, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, store.ErrNotFound
	}
	if err != nil {
		return store.Message{}, err
	}
	m.Content = content
	m.Time = timeOf(ms)
	return m, nil
}

// scanMember reads the columns of memberSelect; sql.ErrNoRows becomes
// store.ErrNotFound.
func scanMember(row scanner) (store.Member, error) {
	var m store.Member
	var conv, serverID, clientID, sender, recipient, contentType sql.Null[string]
	var seq, ms sql.Null[int64]
	var content []byte
	err := row.Scan(&m.User, &m.Conversation, &m.Kind, &m.Peer, &m.MaxSeq, &m.ReadSeq, &m.MinSeq, &m.Version, &m.PeerReadSeq,
		&conv, &seq, &serverID, &clientID, &sender, &recipient, &contentType, &content, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Member{}, store.ErrNotFound
	}
	if err != nil {
		return store.Member{}, err
	}
	if seq.Valid {
		m.LastMessage = &store.Message{
			Conversation: conv.V,
			Seq:          seq.V,
			ServerID:     serverID.V,
			ClientID:     clientID.V,
			Sender:       sender.V,
			Recipient:    recipient.V,
			ContentType:  contentType.V,
			Content:      content,
			Time:         timeOf(ms.V),
		}
	}
	return m, nil
}
