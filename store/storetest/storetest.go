// Package storetest is the conformance suite for implementations of
// store.Store: every backend runs Run from its own tests, so that all of
// them honour the same contract.
//
// Where the contract in package store leaves room, the suite holds every
// backend to the same reading:
//
//   - Times keep millisecond precision and come back in UTC.
//   - An empty client ID opts a message out of de-duplication.
//   - A direct conversation's two users are its members from its first
//     message, whoever sends it (the system account included).
//   - The peer of a direct conversation with oneself is oneself; other
//     kinds of conversation have no peer.
//   - A duplicate or conflicting message creates no conversation.
//   - User search folds case beyond ASCII and treats % and _ literally.
//   - MessageRange with a limit of 0 returns no messages; ListUsers with a
//     limit of 0 returns a page of the backend's default size, at least 10.
package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/store"
)

// Run runs the suite as subtests of t. open must return a new, empty store
// each time it is called; Run closes every store it opens when its subtest
// ends, so open need not (Close is safe to call twice).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	newStore := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("Users", func(t *testing.T) { testUsers(t, newStore) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, newStore) })
	t.Run("Meta", func(t *testing.T) { testMeta(t, newStore) })
	t.Run("AppendMessages", func(t *testing.T) { testAppendMessages(t, newStore) })
	t.Run("Members", func(t *testing.T) { testMembers(t, newStore) })
	t.Run("ReadSeqs", func(t *testing.T) { testReadSeqs(t, newStore) })
	t.Run("MessageRange", func(t *testing.T) { testMessageRange(t, newStore) })
	t.Run("MarkRead", func(t *testing.T) { testMarkRead(t, newStore) })
	t.Run("ClearHistory", func(t *testing.T) { testClearHistory(t, newStore) })
	t.Run("Settings", func(t *testing.T) { testSettings(t, newStore) })
	t.Run("Groups", func(t *testing.T) { testGroups(t, newStore) })
	t.Run("MemberPages", func(t *testing.T) { testMemberPages(t, newStore) })
	t.Run("VersionOrder", func(t *testing.T) { testVersionOrder(t, newStore) })
	t.Run("Social", func(t *testing.T) {
		testSocial(t, func(t *testing.T) store.Social { return newStore(t) })
	})
	t.Run("Close", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// opener opens a new, empty store that is closed when t ends.
type opener func(t *testing.T) store.Store

// epoch is the time the suite's data is stamped with: a whole millisecond,
// the precision every store must keep.
var epoch = time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

// at returns epoch plus n seconds.
func at(n int) time.Time {
	return epoch.Add(time.Duration(n) * time.Second)
}

// sameTime reports whether two times are the same instant and got is in UTC.
func sameTime(got, want time.Time) bool {
	return got.Equal(want) && got.Location() == time.UTC
}

// diffMessage describes how got differs from want, or returns "".
func diffMessage(got, want store.Message) string {
	same := got.Conversation == want.Conversation && got.Seq == want.Seq &&
		got.ServerID == want.ServerID && got.ClientID == want.ClientID &&
		got.Sender == want.Sender && got.Recipient == want.Recipient &&
		got.ContentType == want.ContentType && bytes.Equal(got.Content, want.Content) &&
		sameTime(got.Time, want.Time)
	if !same {
		return fmt.Sprintf("got %s, want %s", formatMessage(got), formatMessage(want))
	}
	return ""
}

func formatMessage(m store.Message) string {
	return fmt.Sprintf("{conv %s seq %d server %s client %s %s→%s %s %s at %s}",
		m.Conversation, m.Seq, m.ServerID, m.ClientID, m.Sender, m.Recipient, m.ContentType, m.Content, m.Time.Format(time.RFC3339Nano))
}

// diffUser describes how got differs from want, or returns "". A nil and
// an empty Extra differ: nil means no value.
func diffUser(got, want store.User) string {
	same := got.ID == want.ID && got.Nickname == want.Nickname && got.AvatarURL == want.AvatarURL &&
		got.PasswordHash == want.PasswordHash &&
		bytes.Equal(got.Extra, want.Extra) && (got.Extra == nil) == (want.Extra == nil) &&
		sameTime(got.CreatedAt, want.CreatedAt) && sameTime(got.UpdatedAt, want.UpdatedAt) &&
		(got.LastSeen.IsZero() && want.LastSeen.IsZero() || sameTime(got.LastSeen, want.LastSeen))
	if !same {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

// raw is a json.RawMessage from a string.
func raw(s string) json.RawMessage {
	return json.RawMessage(s)
}
