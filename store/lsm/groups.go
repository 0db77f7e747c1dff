package lsm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// A group's info lives under its own key, apart from the head that every
// message rewrites. Each roster entry lives under r <conv> 0 <user> and is
// indexed by version under s <conv> 0 <version> <user>, so "members changed
// since V" is one range read however large the group.
const (
	tagInfo        = 'i' // i <conv>                        → group info
	tagRoster      = 'r' // r <conv> 0 <user>               → roster entry
	tagRosterIndex = 's' // s <conv> 0 <version, 8 bytes> <user> → nothing
	tagJoinRequest = 'j' // j <conv> 0 <user>               → join request
)

func infoKey(conv string) []byte { return append([]byte{tagInfo}, conv...) }

func rosterPrefix(conv string) []byte { return append(append([]byte{tagRoster}, conv...), 0) }

func rosterKey(conv, user string) []byte { return append(rosterPrefix(conv), user...) }

func rosterIndexPrefix(conv string) []byte {
	return append(append([]byte{tagRosterIndex}, conv...), 0)
}

func rosterIndexKey(conv string, version int64, user string) []byte {
	return append(binary.BigEndian.AppendUint64(rosterIndexPrefix(conv), uint64(version)), user...)
}

func joinRequestPrefix(conv string) []byte {
	return append(append([]byte{tagJoinRequest}, conv...), 0)
}

func joinRequestKey(conv, user string) []byte { return append(joinRequestPrefix(conv), user...) }

func encodeInfo(g *store.GroupInfo) []byte {
	return enc(nil).str(g.Name).str(g.AvatarURL).str(g.Announcement).str(g.Introduction).bytes(g.Extra).
		str(g.Owner).str(g.JoinPolicy).str(g.InvitePolicy).bool(g.MuteAll).int(int64(g.MaxMembers)).
		bool(g.FullHistory).bool(g.Dismissed).int(g.UpdatedAt.UnixMilli()).int(g.Version)
}

func decodeInfo(d *dec, g *store.GroupInfo) {
	g.Name, g.AvatarURL, g.Announcement, g.Introduction = d.str(), d.str(), d.str(), d.str()
	g.Extra = d.bytes()
	if len(g.Extra) == 0 {
		g.Extra = nil
	}
	g.Owner, g.JoinPolicy, g.InvitePolicy = d.str(), d.str(), d.str()
	g.MuteAll, g.MaxMembers = d.bool(), int(d.int())
	g.FullHistory, g.Dismissed = d.bool(), d.bool()
	g.UpdatedAt = time.UnixMilli(d.int()).UTC()
	g.Version = d.int()
}

func encodeRoster(m *store.GroupMember) []byte {
	return enc(nil).str(m.Role).str(m.Nickname).int(m.MutedUntil).int(m.JoinedAt.UnixMilli()).bool(m.Left).int(m.Version)
}

func decodeRoster(d *dec, user string) store.GroupMember {
	m := store.GroupMember{User: user}
	m.Role, m.Nickname, m.MutedUntil = d.str(), d.str(), d.int()
	m.JoinedAt = time.UnixMilli(d.int()).UTC()
	m.Left, m.Version = d.bool(), d.int()
	return m
}

func encodeJoinRequest(r *store.JoinRequest) []byte {
	return enc(nil).str(r.Message).str(r.State).int(r.CreatedAt.UnixMilli()).int(r.UpdatedAt.UnixMilli()).int(r.Version)
}

func decodeJoinRequest(d *dec, conv, user string) store.JoinRequest {
	r := store.JoinRequest{Conversation: conv, User: user}
	r.Message, r.State = d.str(), d.str()
	r.CreatedAt, r.UpdatedAt = time.UnixMilli(d.int()).UTC(), time.UnixMilli(d.int()).UTC()
	r.Version = d.int()
	return r
}

// upgradeRosters gives the groups of a log written before rosters existed
// a roster: each current member (from the audience keys) as a member who
// joined when the group was created. Such a group has no info record and
// reads as one with default info. The caller holds l.mu.
func (l *Log) upgradeRosters() error {
	prefix := headKey(conversation.GroupPrefix)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	b := l.db.NewBatch()
	defer b.Close()
	for ok := it.First(); ok; ok = it.Next() {
		conv := string(it.Key()[1:])
		var h head
		d := &dec{b: it.Value()}
		h.decode(d)
		if d.err != nil {
			return fmt.Errorf("%w: head of %s", d.err, conv)
		}
		has, err := hasPrefix(l.db, rosterPrefix(conv))
		if err != nil || has {
			if err != nil {
				return err
			}
			continue
		}
		users, err := l.ConversationMembers(context.Background(), conv)
		if err != nil {
			return err
		}
		for _, u := range users {
			m := store.GroupMember{User: u, Role: "member", JoinedAt: time.UnixMilli(h.created).UTC(), Version: l.version}
			b.Set(rosterKey(conv, u), encodeRoster(&m), nil)
			b.Set(rosterIndexKey(conv, m.Version, u), nil, nil)
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(l.write)
}

// hasPrefix reports whether any key begins with prefix.
func hasPrefix(db iterable, prefix []byte) (bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// CreateGroup creates a group conversation with its info and first members.
func (l *Log) CreateGroup(ctx context.Context, info store.GroupInfo, members []store.GroupMember) (int64, error) {
	var out int64
	err := l.commitWrite(ctx, "create group", info.Conversation, func(b *pebble.Batch, version int64) (bool, *head, error) {
		old, err := l.headLocked(info.Conversation)
		if err != nil {
			return false, nil, err
		}
		if old != nil {
			return false, nil, store.ErrExists
		}
		h := &head{kind: conversation.Group, version: version, created: info.CreatedAt.UnixMilli()}
		seen := make(map[string]bool, len(members))
		for _, m := range members {
			if seen[m.User] {
				continue
			}
			seen[m.User] = true
			m.Left, m.Version = false, version
			l.join(b, info.Conversation, h, m, member{minSeq: 1, version: version})
		}
		info.Version = version
		b.Set(infoKey(info.Conversation), encodeInfo(&info), nil)
		b.Set(headKey(info.Conversation), h.encode(), nil)
		out = version
		return true, h, nil
	})
	return out, err
}

// join writes m as a current member of conv: roster entry, index, member
// record rec and audience key.
func (l *Log) join(b *pebble.Batch, conv string, h *head, m store.GroupMember, rec member) {
	b.Set(rosterKey(conv, m.User), encodeRoster(&m), nil)
	b.Set(rosterIndexKey(conv, m.Version, m.User), nil, nil)
	b.Set(memberKey(m.User, conv), rec.encode(), nil)
	b.Set(audienceKey(conv, m.User), nil, nil)
	h.members++
}

// Group returns a group's info.
func (l *Log) Group(ctx context.Context, conv string) (store.GroupInfo, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	g, err := groupInfo(snap, conv)
	if err != nil {
		return store.GroupInfo{}, fmt.Errorf("lsm: group: %w", err)
	}
	return g, nil
}

// groupInfo reads a group's info and head from g; ErrNotFound if conv is no
// group.
func groupInfo(g getter, conv string) (store.GroupInfo, error) {
	var h head
	found, err := get(g, headKey(conv), h.decode)
	if err != nil {
		return store.GroupInfo{}, err
	}
	if !found || h.kind != conversation.Group {
		return store.GroupInfo{}, store.ErrNotFound
	}
	return infoOf(g, conv, &h)
}

// infoOf reads the info of the group whose head is h. A group created as a
// bare conversation has default info.
func infoOf(g getter, conv string, h *head) (store.GroupInfo, error) {
	info := store.GroupInfo{Conversation: conv}
	if _, err := get(g, infoKey(conv), func(d *dec) { decodeInfo(d, &info) }); err != nil {
		return store.GroupInfo{}, err
	}
	info.CreatedAt = time.UnixMilli(h.created).UTC()
	if info.UpdatedAt.UnixMilli() == 0 {
		info.UpdatedAt = info.CreatedAt
	}
	info.Members, info.MaxSeq = h.members, h.maxSeq
	return info, nil
}

// rosterOf reads one roster entry; found is false if there is none.
func rosterOf(g getter, conv, user string) (m store.GroupMember, found bool, err error) {
	found, err = get(g, rosterKey(conv, user), func(d *dec) { m = decodeRoster(d, user) })
	return m, found, err
}

// GroupMember returns one user's roster entry.
func (l *Log) GroupMember(ctx context.Context, conv, user string) (store.GroupMember, error) {
	m, found, err := rosterOf(l.db, conv, user)
	if err != nil {
		return store.GroupMember{}, fmt.Errorf("lsm: group member: %w", err)
	}
	if !found {
		return store.GroupMember{}, store.ErrNotFound
	}
	return m, nil
}

// ChangeGroup applies what decide makes of a group in one write.
func (l *Log) ChangeGroup(ctx context.Context, conv string, users []string, decide store.GroupDecision) (store.GroupInfo, []store.GroupMember, int64, error) {
	var (
		outInfo    store.GroupInfo
		outMembers []store.GroupMember
		outVersion int64
	)
	err := l.commitWrite(ctx, "change group", conv, func(b *pebble.Batch, version int64) (bool, *head, error) {
		outMembers, outVersion = nil, 0
		h, err := l.headLocked(conv)
		if err != nil {
			return false, nil, err
		}
		if h == nil || h.kind != conversation.Group {
			return false, nil, store.ErrNotFound
		}
		nh := *h
		info, err := infoOf(l.db, conv, h)
		if err != nil {
			return false, nil, err
		}
		current := make(map[string]store.GroupMember)
		if users == nil {
			if err := scanRoster(l.db, conv, func(m store.GroupMember) {
				if !m.Left {
					current[m.User] = m
				}
			}); err != nil {
				return false, nil, err
			}
		} else {
			for _, u := range users {
				m, found, err := rosterOf(l.db, conv, u)
				if err != nil {
					return false, nil, err
				}
				if found {
					current[u] = m
				}
			}
		}
		ch, err := decide(info, current)
		if err != nil {
			return false, nil, err
		}
		changed := false
		for _, m := range ch.Members {
			old, found := current[m.User]
			if !found { // absent, or (when users is nil) no current member
				if old, found, err = rosterOf(l.db, conv, m.User); err != nil {
					return false, nil, err
				}
			}
			if found && rosterEqual(&m, &old) {
				continue
			}
			wasIn, isIn := found && !old.Left, !m.Left
			m.Version = version
			if found {
				b.Delete(rosterIndexKey(conv, old.Version, m.User), nil)
			}
			switch {
			case isIn && !wasIn:
				rec := member{minSeq: conversation.JoinSeq(nh.maxSeq, ch.FullHistory), readSeq: nh.maxSeq, version: version}
				l.join(b, conv, &nh, m, rec)
			case wasIn && !isIn:
				rec, _, err := memberOf(l.db, m.User, conv)
				if err != nil {
					return false, nil, err
				}
				rec.left, rec.leftSeq, rec.version = true, nh.maxSeq, version
				b.Set(memberKey(m.User, conv), rec.encode(), nil)
				b.Delete(audienceKey(conv, m.User), nil)
				nh.members--
				fallthrough
			default:
				b.Set(rosterKey(conv, m.User), encodeRoster(&m), nil)
				b.Set(rosterIndexKey(conv, version, m.User), nil, nil)
			}
			outMembers = append(outMembers, m)
			changed = true
		}
		if ch.Info != nil {
			ni := *ch.Info
			ni.Conversation, ni.Version, ni.CreatedAt = conv, info.Version, info.CreatedAt
			ni.Members, ni.MaxSeq = info.Members, info.MaxSeq
			if !infoEqual(&ni, &info) {
				ni.Version = version
				b.Set(infoKey(conv), encodeInfo(&ni), nil)
				info = ni
				changed = true
			}
		}
		info.Members = nh.members
		outInfo = info
		if !changed {
			return false, nil, nil
		}
		// A membership change is a change to every member's view of the
		// group: their conversation versions move with the head's.
		nh.version = version
		b.Set(headKey(conv), nh.encode(), nil)
		outVersion = version
		return true, &nh, nil
	})
	if err != nil {
		return store.GroupInfo{}, nil, 0, err
	}
	return outInfo, outMembers, outVersion, nil
}

func rosterEqual(a, b *store.GroupMember) bool {
	return a.User == b.User && a.Role == b.Role && a.Nickname == b.Nickname && a.MutedUntil == b.MutedUntil &&
		a.JoinedAt.Equal(b.JoinedAt) && a.Left == b.Left
}

func infoEqual(a, b *store.GroupInfo) bool {
	return a.Name == b.Name && a.AvatarURL == b.AvatarURL && a.Announcement == b.Announcement &&
		a.Introduction == b.Introduction && bytes.Equal(a.Extra, b.Extra) && a.Owner == b.Owner &&
		a.JoinPolicy == b.JoinPolicy && a.InvitePolicy == b.InvitePolicy && a.MuteAll == b.MuteAll &&
		a.MaxMembers == b.MaxMembers && a.FullHistory == b.FullHistory && a.Dismissed == b.Dismissed
}

// iterable is a database or one of its snapshots.
type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// scanRoster calls fn with every roster entry of conv, in user order.
func scanRoster(db iterable, conv string, fn func(store.GroupMember)) error {
	prefix := rosterPrefix(conv)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		user := string(it.Key()[len(prefix):])
		d := &dec{b: it.Value()}
		m := decodeRoster(d, user)
		if d.err != nil {
			return fmt.Errorf("%w: roster %s of %s", d.err, user, conv)
		}
		fn(m)
	}
	return it.Error()
}

// GroupMembers returns the roster entries changed after since.
func (l *Log) GroupMembers(ctx context.Context, conv string, since int64, limit int) ([]store.GroupMember, int64, bool, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	ms, version, more, err := l.groupMembers(snap, conv, since, limit)
	if err != nil {
		return nil, 0, false, fmt.Errorf("lsm: group members: %w", err)
	}
	return ms, version, more, nil
}

func (l *Log) groupMembers(snap *pebble.Snapshot, conv string, since int64, limit int) ([]store.GroupMember, int64, bool, error) {
	var h head
	found, err := get(snap, headKey(conv), h.decode)
	if err != nil {
		return nil, 0, false, err
	}
	if !found || h.kind != conversation.Group {
		return nil, 0, false, store.ErrNotFound
	}
	version, err := l.readVersion(snap)
	if err != nil {
		return nil, 0, false, err
	}
	var out []store.GroupMember
	if since == 0 {
		// The current members, in user order: one sequential read.
		err := scanRoster(snap, conv, func(m store.GroupMember) {
			if !m.Left {
				out = append(out, m)
			}
		})
		return out, version, false, err
	}
	prefix := rosterIndexPrefix(conv)
	it, err := snap.NewIter(&pebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(since+1)),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, 0, false, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()[len(prefix):]
		v, user := int64(binary.BigEndian.Uint64(key)), string(key[8:])
		if limit > 0 && len(out) >= limit && out[len(out)-1].Version != v {
			return out, out[len(out)-1].Version, true, nil
		}
		m, found, err := rosterOf(snap, conv, user)
		if err != nil {
			return nil, 0, false, err
		}
		if !found || m.Version != v {
			return nil, 0, false, fmt.Errorf("%w: roster index %s/%d names %q", errCorrupt, conv, v, user)
		}
		out = append(out, m)
	}
	return out, version, false, it.Error()
}

// UserGroups returns the user's groups changed after since.
func (l *Log) UserGroups(ctx context.Context, user string, since int64) ([]store.UserGroup, int64, error) {
	snap := l.db.NewSnapshot()
	defer snap.Close()
	version, err := l.readVersion(snap)
	if err != nil {
		return nil, 0, fmt.Errorf("lsm: user groups: %w", err)
	}
	prefix := append(memberPrefix(user), conversation.GroupPrefix...)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, fmt.Errorf("lsm: user groups: %w", err)
	}
	defer it.Close()
	var out []store.UserGroup
	for ok := it.First(); ok; ok = it.Next() {
		conv := string(it.Key()[len(memberPrefix(user)):])
		m, found, err := rosterOf(snap, conv, user)
		if err != nil {
			return nil, 0, fmt.Errorf("lsm: user groups: %w", err)
		}
		if !found || (since == 0 && m.Left) {
			continue
		}
		info, err := groupInfo(snap, conv)
		if err != nil {
			return nil, 0, fmt.Errorf("lsm: user groups: %w", err)
		}
		if m.Version > since || (!m.Left && info.Version > since) {
			out = append(out, store.UserGroup{Info: info, Member: m})
		}
	}
	if err := it.Error(); err != nil {
		return nil, 0, fmt.Errorf("lsm: user groups: %w", err)
	}
	slices.SortFunc(out, func(a, b store.UserGroup) int {
		return cmp.Compare(max(a.Info.Version, a.Member.Version), max(b.Info.Version, b.Member.Version))
	})
	return out, version, nil
}

// SetJoinRequest stores a join request with a new version.
func (l *Log) SetJoinRequest(ctx context.Context, r store.JoinRequest) (int64, error) {
	var out int64
	err := l.commitWrite(ctx, "set join request", r.Conversation, func(b *pebble.Batch, version int64) (bool, *head, error) {
		r.Version, out = version, version
		b.Set(joinRequestKey(r.Conversation, r.User), encodeJoinRequest(&r), nil)
		return true, nil, nil
	})
	return out, err
}

// JoinRequest returns one join request.
func (l *Log) JoinRequest(ctx context.Context, conv, user string) (store.JoinRequest, error) {
	var r store.JoinRequest
	found, err := get(l.db, joinRequestKey(conv, user), func(d *dec) { r = decodeJoinRequest(d, conv, user) })
	if err != nil {
		return store.JoinRequest{}, fmt.Errorf("lsm: join request: %w", err)
	}
	if !found {
		return store.JoinRequest{}, store.ErrNotFound
	}
	return r, nil
}

// JoinRequests returns a group's join requests, newest first.
func (l *Log) JoinRequests(ctx context.Context, conv string, limit int) ([]store.JoinRequest, error) {
	prefix := joinRequestPrefix(conv)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("lsm: join requests: %w", err)
	}
	defer it.Close()
	var out []store.JoinRequest
	for ok := it.First(); ok; ok = it.Next() {
		user := string(it.Key()[len(prefix):])
		d := &dec{b: it.Value()}
		r := decodeJoinRequest(d, conv, user)
		if d.err != nil {
			return nil, fmt.Errorf("lsm: join requests: %w: %s of %s", d.err, user, conv)
		}
		out = append(out, r)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lsm: join requests: %w", err)
	}
	slices.SortFunc(out, func(a, b store.JoinRequest) int {
		return cmp.Or(cmp.Compare(b.Version, a.Version), strings.Compare(a.User, b.User))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
