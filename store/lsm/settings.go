package lsm

import (
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/store"
)

// UpdateSettings changes the user's settings of the conversation, and with
// c.Clear clears its history, in one write of the member record.
func (l *Log) UpdateSettings(ctx context.Context, user, conv string, c store.SettingsChange) (store.Member, error) {
	var out store.Member
	err := l.commitWrite(ctx, "update settings", conv, func(b *pebble.Batch, version int64) (bool, *head, error) {
		rec, _, m, err := l.memberForUpdate(user, conv)
		if err != nil {
			return false, nil, err
		}
		out = m
		next := rec
		applySettings(&next.settings, c, m.MaxSeq)
		if c.Clear {
			next.readSeq, next.minSeq = max(m.ReadSeq, m.MaxSeq), m.MaxSeq+1
		}
		if next == rec {
			return false, nil, nil
		}
		next.version = version
		b.Set(memberKey(user, conv), next.encode(), nil)
		out.Settings, out.Version = next.settings, version
		if c.Clear {
			out.ReadSeq, out.MinSeq = next.readSeq, next.minSeq
		}
		return true, nil, nil
	})
	if err != nil {
		return store.Member{}, err
	}
	return withLastMessage(l.db, out)
}

// applySettings applies c to s, a member's settings while their max seq is
// maxSeq.
func applySettings(s *store.Settings, c store.SettingsChange, maxSeq int64) {
	if c.Pinned != nil {
		s.Pinned = *c.Pinned
	}
	if c.MutedUntil != nil {
		s.MutedUntil = *c.MutedUntil
	}
	if c.Draft != nil && *c.Draft != s.Draft {
		s.Draft, s.DraftTime = *c.Draft, c.DraftTime
		if s.Draft == "" {
			s.DraftTime = 0
		}
	}
	if c.Hidden != nil {
		s.UnhideSeq = 0
		if *c.Hidden {
			s.UnhideSeq = maxSeq + 1
		}
	}
}
