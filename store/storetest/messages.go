package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// serverIDs numbers the server IDs of the suite's messages.
var serverIDs atomic.Int64

// directID names the direct conversation of two users.
func directID(a, b string) string { return conversation.DirectID(a, b) }

// send is a text message from one user to another in their direct
// conversation, with a new server ID.
func send(from, to, clientID, text string) store.NewMessage {
	return store.NewMessage{
		Conversation: directID(from, to),
		Kind:         conversation.Direct,
		ServerID:     fmt.Sprint("srv-", serverIDs.Add(1)),
		ClientID:     clientID,
		Sender:       from,
		Recipient:    to,
		ContentType:  "text",
		Content:      raw(fmt.Sprintf("%q", text)),
		Time:         epoch,
	}
}

// post is a text message from a user to a group conversation.
func post(from, conv, clientID, text string) store.NewMessage {
	m := send(from, "", clientID, text)
	m.Conversation, m.Kind = conv, conversation.Group
	return m
}

// mustCreate creates a group conversation with its first members.
func mustCreate(t *testing.T, s store.Store, conv string, members ...string) {
	t.Helper()
	if err := createGroup(t, s, conv, members...); err != nil {
		t.Fatalf("CreateGroup(%s): %v", conv, err)
	}
}

// createGroup creates a group with default info and its first members.
func createGroup(t *testing.T, s store.Store, conv string, members ...string) error {
	var ms []store.GroupMember
	for _, u := range members {
		ms = append(ms, store.GroupMember{User: u, Role: "member", JoinedAt: epoch})
	}
	_, err := s.CreateGroup(t.Context(), store.GroupInfo{Conversation: conv, CreatedAt: epoch, UpdatedAt: epoch}, ms)
	return err
}

// addMembers makes users current members of conv through ChangeGroup and
// returns their member state.
func addMembers(t *testing.T, s store.Store, conv string, users []string, fullHistory bool) ([]store.Member, error) {
	_, _, _, err := s.ChangeGroup(t.Context(), conv, users, func(_ store.GroupInfo, cur map[string]store.GroupMember) (store.GroupChange, error) {
		ch := store.GroupChange{FullHistory: fullHistory}
		for _, u := range users {
			if m, ok := cur[u]; !ok || m.Left {
				ch.Members = append(ch.Members, store.GroupMember{User: u, Role: "member", JoinedAt: epoch})
			}
		}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return memberStates(t, s, conv, dedupe(users))
}

// removeMembers ends the membership of those of users who are current
// members and returns their member state.
func removeMembers(t *testing.T, s store.Store, conv string, users []string) ([]store.Member, error) {
	_, changed, _, err := s.ChangeGroup(t.Context(), conv, users, func(_ store.GroupInfo, cur map[string]store.GroupMember) (store.GroupChange, error) {
		var ch store.GroupChange
		for _, u := range users {
			if m, ok := cur[u]; ok && !m.Left {
				m.Left = true
				ch.Members = append(ch.Members, m)
			}
		}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	var left []string
	for _, m := range changed {
		left = append(left, m.User)
	}
	return memberStates(t, s, conv, left)
}

func memberStates(t *testing.T, s store.Store, conv string, users []string) ([]store.Member, error) {
	var out []store.Member
	for _, u := range users {
		m, err := s.Member(t.Context(), u, conv)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func dedupe(users []string) []string {
	out := slices.Clone(users)
	slices.Sort(out)
	return slices.Compact(out)
}

// committed is what a store must return for m stored at seq.
func committed(m store.NewMessage, seq int64) store.Message {
	return store.Message{
		Conversation: m.Conversation,
		Seq:          seq,
		ServerID:     m.ServerID,
		ClientID:     m.ClientID,
		Sender:       m.Sender,
		Recipient:    m.Recipient,
		ContentType:  m.ContentType,
		Content:      m.Content,
		Time:         m.Time,
	}
}

// mustAppend appends the batch and fails t on an error of the batch or of
// any of its messages.
func mustAppend(t *testing.T, s store.Store, batch ...store.NewMessage) []store.AppendResult {
	t.Helper()
	rs, err := s.AppendMessages(t.Context(), batch)
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	if len(rs) != len(batch) {
		t.Fatalf("AppendMessages: %d results for %d messages", len(rs), len(batch))
	}
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("AppendMessages: message %d: %v", i, r.Err)
		}
	}
	return rs
}

// mustMember returns the user's member state.
func mustMember(t *testing.T, s store.Store, user, conv string) store.Member {
	t.Helper()
	m, err := s.Member(t.Context(), user, conv)
	if err != nil {
		t.Fatalf("Member(%s, %s): %v", user, conv, err)
	}
	return m
}

// checkStored checks that results stored the batch's messages at seqs.
func checkStored(t *testing.T, rs []store.AppendResult, batch []store.NewMessage, seqs ...int64) {
	t.Helper()
	for i, seq := range seqs {
		if rs[i].Err != nil || rs[i].Duplicate {
			t.Errorf("result %d: %+v, want stored", i, rs[i])
			continue
		}
		if d := diffMessage(rs[i].Message, committed(batch[i], seq)); d != "" {
			t.Errorf("result %d: %s", i, d)
		}
	}
}

// checkSeqs checks that the conversation holds exactly the messages want,
// the results of storing them.
func checkSeqs(t *testing.T, s store.Store, conv string, want ...store.Message) {
	t.Helper()
	got, err := s.MessageRange(t.Context(), conv, 0, 1, 1<<62, store.Forward, 1000)
	if err != nil {
		t.Fatalf("MessageRange(%s): %v", conv, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s holds %d messages, want %d", conv, len(got), len(want))
	}
	for i := range want {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("%s message %d: %s", conv, i, d)
		}
	}
}

func testAppendMessages(t *testing.T, open opener) {
	t.Run("empty batch", func(t *testing.T) {
		s := open(t)
		rs, err := s.AppendMessages(t.Context(), nil)
		if err != nil || len(rs) != 0 {
			t.Fatalf("AppendMessages(nil) = %v, %v, want no results", rs, err)
		}
	})

	t.Run("seqs per conversation", func(t *testing.T) {
		s := open(t)
		batch := []store.NewMessage{
			send("a", "b", "1", "ab1"),
			send("a", "c", "2", "ac1"),
			send("b", "a", "3", "ab2"),
			send("a", "b", "4", "ab3"),
		}
		rs := mustAppend(t, s, batch...)
		checkStored(t, rs, batch, 1, 1, 2, 3)
		next := []store.NewMessage{send("a", "c", "5", "ac2"), send("b", "a", "6", "ab4")}
		rs2 := mustAppend(t, s, next...)
		checkStored(t, rs2, next, 2, 4)
		checkSeqs(t, s, directID("a", "b"), rs[0].Message, rs[2].Message, rs[3].Message, rs2[1].Message)
		checkSeqs(t, s, directID("a", "c"), rs[1].Message, rs2[0].Message)
	})

	t.Run("duplicate in a later batch", func(t *testing.T) {
		s := open(t)
		m := send("a", "b", "c1", "hi")
		orig := mustAppend(t, s, m)[0].Message
		before := mustMember(t, s, "b", m.Conversation)
		retry := m
		retry.ServerID, retry.Time = "srv-retry", at(5)
		next := send("a", "b", "c2", "next")
		rs := mustAppend(t, s, retry, next)
		if !rs[0].Duplicate {
			t.Fatalf("retry: %+v, want a duplicate", rs[0])
		}
		if d := diffMessage(rs[0].Message, orig); d != "" {
			t.Errorf("retry: not the original: %s", d)
		}
		checkStored(t, rs[1:], []store.NewMessage{next}, 2)
		checkSeqs(t, s, m.Conversation, orig, rs[1].Message)
		if after := mustMember(t, s, "b", m.Conversation); after.MaxSeq != 2 || after.Version <= before.Version {
			t.Errorf("member after the batch: %+v, want max seq 2 and a version above %d", after, before.Version)
		}
	})

	t.Run("duplicate alone changes nothing", func(t *testing.T) {
		s := open(t)
		m := send("a", "b", "c1", "hi")
		mustAppend(t, s, m)
		_, version, _, err := s.Members(t.Context(), "b", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rs := mustAppend(t, s, m); !rs[0].Duplicate {
			t.Fatalf("retry: %+v, want a duplicate", rs[0])
		}
		ms, after, _, err := s.Members(t.Context(), "b", version, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 0 {
			t.Errorf("members changed by a duplicate: %+v", ms)
		}
		if after != version {
			t.Errorf("version moved from %d to %d on a duplicate", version, after)
		}
	})

	t.Run("duplicate in the same batch", func(t *testing.T) {
		s := open(t)
		m := send("a", "b", "c1", "hi")
		retry := m
		retry.ServerID = "srv-retry"
		batch := []store.NewMessage{m, retry, send("a", "b", "c2", "next")}
		rs := mustAppend(t, s, batch...)
		checkStored(t, rs[:1], batch[:1], 1)
		if !rs[1].Duplicate {
			t.Fatalf("retry: %+v, want a duplicate", rs[1])
		}
		if d := diffMessage(rs[1].Message, rs[0].Message); d != "" {
			t.Errorf("retry: not the original: %s", d)
		}
		checkStored(t, rs[2:], batch[2:], 2)
		checkSeqs(t, s, m.Conversation, rs[0].Message, rs[2].Message)
	})

	t.Run("client ID reused in another conversation stores nothing", func(t *testing.T) {
		s := open(t)
		m := send("a", "b", "c1", "hi")
		mustAppend(t, s, m)
		retry := m
		retry.Conversation = directID("a", "elsewhere")
		rs, err := s.AppendMessages(t.Context(), []store.NewMessage{retry})
		if err != nil || !errors.Is(rs[0].Err, store.ErrClientIDConflict) {
			t.Fatalf("retry elsewhere: %+v, %v; want ErrClientIDConflict", rs, err)
		}
		if _, err := s.Member(t.Context(), "a", retry.Conversation); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Member in the refused message's conversation: got %v, want ErrNotFound", err)
		}
		first := send("a", "elsewhere", "c2", "first")
		checkStored(t, mustAppend(t, s, first), []store.NewMessage{first}, 1)
	})

	t.Run("client ID conflict", func(t *testing.T) {
		orig := send("a", "b", "c1", "hi")
		for _, tt := range []struct {
			name   string
			change func(m *store.NewMessage)
		}{
			{"other recipient", func(m *store.NewMessage) {
				*m = send("a", "c", m.ClientID, "hi")
			}},
			{"other content type", func(m *store.NewMessage) { m.ContentType = "image" }},
			{"other content", func(m *store.NewMessage) { m.Content = raw(`"bye"`) }},
		} {
			t.Run(tt.name+" in a later batch", func(t *testing.T) {
				s := open(t)
				stored := mustAppend(t, s, orig)[0].Message
				clash := orig
				tt.change(&clash)
				batch := []store.NewMessage{send("a", "b", "c2", "before"), clash, send("a", "b", "c3", "after")}
				rs, err := s.AppendMessages(t.Context(), batch)
				if err != nil {
					t.Fatalf("AppendMessages: %v", err)
				}
				if !errors.Is(rs[1].Err, store.ErrClientIDConflict) {
					t.Fatalf("clash: %+v, want ErrClientIDConflict", rs[1])
				}
				checkStored(t, rs[:1], batch[:1], 2)
				checkStored(t, rs[2:], batch[2:], 3)
				checkSeqs(t, s, orig.Conversation, stored, rs[0].Message, rs[2].Message)
				if clash.Conversation != orig.Conversation {
					checkSeqs(t, s, clash.Conversation)
					if _, err := s.Member(t.Context(), "a", clash.Conversation); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Member in the clash's conversation: got %v, want ErrNotFound", err)
					}
				}
			})
			t.Run(tt.name+" in the same batch", func(t *testing.T) {
				s := open(t)
				clash := orig
				tt.change(&clash)
				batch := []store.NewMessage{orig, clash, send("a", "b", "c2", "after")}
				rs, err := s.AppendMessages(t.Context(), batch)
				if err != nil {
					t.Fatalf("AppendMessages: %v", err)
				}
				if !errors.Is(rs[1].Err, store.ErrClientIDConflict) {
					t.Fatalf("clash: %+v, want ErrClientIDConflict", rs[1])
				}
				checkStored(t, rs[:1], batch[:1], 1)
				checkStored(t, rs[2:], batch[2:], 2)
				checkSeqs(t, s, orig.Conversation, rs[0].Message, rs[2].Message)
			})
		}
	})

	t.Run("conflict then duplicate in one batch", func(t *testing.T) {
		s := open(t)
		m := send("a", "b", "c1", "hi")
		orig := mustAppend(t, s, m)[0].Message
		clash := m
		clash.Content = raw(`"changed"`)
		rs, err := s.AppendMessages(t.Context(), []store.NewMessage{clash, m})
		if err != nil {
			t.Fatalf("AppendMessages: %v", err)
		}
		if !errors.Is(rs[0].Err, store.ErrClientIDConflict) {
			t.Errorf("clash: %+v, want ErrClientIDConflict", rs[0])
		}
		if !rs[1].Duplicate {
			t.Fatalf("retry: %+v, want a duplicate", rs[1])
		}
		if d := diffMessage(rs[1].Message, orig); d != "" {
			t.Errorf("retry: not the original: %s", d)
		}
	})

	t.Run("empty client IDs are never duplicates", func(t *testing.T) {
		s := open(t)
		batch := []store.NewMessage{send("a", "b", "", "x"), send("a", "b", "", "x")}
		checkStored(t, mustAppend(t, s, batch...), batch, 1, 2)
		checkStored(t, mustAppend(t, s, batch...), batch, 3, 4)
	})

	t.Run("client IDs are per sender", func(t *testing.T) {
		s := open(t)
		batch := []store.NewMessage{send("a", "b", "c1", "x"), send("b", "a", "c1", "x")}
		checkStored(t, mustAppend(t, s, batch...), batch, 1, 2)
	})

	t.Run("concurrent batches", func(t *testing.T) {
		s := open(t)
		const writers, batches, size = 4, 15, 6
		pairs := [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}}
		var mu sync.Mutex
		stored := make(map[string][]store.Message) // by conversation
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					var batch []store.NewMessage
					for i := range size {
						p := pairs[(w+b+i)%len(pairs)]
						batch = append(batch, send(p[0], p[1], fmt.Sprintf("w%d-b%d-m%d", w, b, i), "x"))
					}
					rs, err := s.AppendMessages(t.Context(), batch)
					if err != nil {
						t.Errorf("AppendMessages: %v", err)
						return
					}
					mu.Lock()
					for _, r := range rs {
						if r.Err != nil || r.Duplicate {
							t.Errorf("result %+v, want stored", r)
						}
						stored[r.Message.Conversation] = append(stored[r.Message.Conversation], r.Message)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		total := 0
		for _, p := range pairs {
			conv := directID(p[0], p[1])
			msgs := stored[conv]
			total += len(msgs)
			slices.SortFunc(msgs, func(x, y store.Message) int { return cmp.Compare(x.Seq, y.Seq) })
			for i, m := range msgs {
				if m.Seq != int64(i+1) {
					t.Fatalf("%s: seqs %v are not 1..%d", conv, seqsOf(msgs), len(msgs))
				}
			}
			checkSeqs(t, s, conv, msgs...)
			if m := mustMember(t, s, p[0], conv); m.MaxSeq != int64(len(msgs)) {
				t.Errorf("%s: MaxSeq %d, want %d", conv, m.MaxSeq, len(msgs))
			}
		}
		if total != writers*batches*size {
			t.Errorf("stored %d messages, want %d", total, writers*batches*size)
		}
	})
}

func seqsOf(msgs []store.Message) []int64 {
	var seqs []int64
	for _, m := range msgs {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

// diffMember describes how got differs from want, or returns "".
// want.Version is not compared.
func diffMember(got, want store.Member) string {
	if (got.LastMessage == nil) != (want.LastMessage == nil) ||
		got.LastMessage != nil && diffMessage(*got.LastMessage, *want.LastMessage) != "" {
		return fmt.Sprintf("got last message %+v, want %+v", got.LastMessage, want.LastMessage)
	}
	got.LastMessage, want.LastMessage = nil, nil
	got.Version = want.Version
	if got != want {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func testMembers(t *testing.T, open opener) {
	t.Run("direct conversation", func(t *testing.T) {
		s := open(t)
		batch := []store.NewMessage{send("a", "b", "1", "x"), send("b", "a", "2", "y"), send("a", "b", "3", "z")}
		rs := mustAppend(t, s, batch...)
		last := rs[2].Message
		conv := directID("a", "b")
		for _, want := range []store.Member{
			{User: "a", Conversation: conv, Kind: conversation.Direct, Peer: "b", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 2, MinSeq: 1, LastMessage: &last},
			{User: "b", Conversation: conv, Kind: conversation.Direct, Peer: "a", MaxSeq: 3, ReadSeq: 2, PeerReadSeq: 3, MinSeq: 1, LastMessage: &last},
		} {
			got := mustMember(t, s, want.User, conv)
			if d := diffMember(got, want); d != "" {
				t.Errorf("Member(%s): %s", want.User, d)
			}
			if got.Version <= 0 {
				t.Errorf("Member(%s): Version %d, want > 0", want.User, got.Version)
			}
		}
	})

	t.Run("talking to oneself", func(t *testing.T) {
		s := open(t)
		m := send("a", "a", "1", "note")
		rs := mustAppend(t, s, m)
		want := store.Member{User: "a", Conversation: m.Conversation, Kind: conversation.Direct, Peer: "a", MaxSeq: 1, ReadSeq: 1, PeerReadSeq: 1, MinSeq: 1, LastMessage: &rs[0].Message}
		if d := diffMember(mustMember(t, s, "a", m.Conversation), want); d != "" {
			t.Error(d)
		}
	})

	t.Run("group members have no peer", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a", "b", "c")
		rs := mustAppend(t, s, post("a", "g:1", "1", "hello all"))
		for user, read := range map[string]int64{"a": 1, "b": 0, "c": 0} {
			want := store.Member{User: user, Conversation: "g:1", Kind: conversation.Group, MaxSeq: 1, ReadSeq: read, MinSeq: 1, LastMessage: &rs[0].Message}
			if d := diffMember(mustMember(t, s, user, "g:1"), want); d != "" {
				t.Errorf("Member(%s): %s", user, d)
			}
		}
	})

	t.Run("not a member", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, send("a", "b", "1", "x"))
		for _, tt := range []struct{ user, conv string }{
			{"c", directID("a", "b")},
			{"a", directID("a", "c")},
			{"a", "no such conversation"},
		} {
			if _, err := s.Member(t.Context(), tt.user, tt.conv); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Member(%s, %s): got %v, want ErrNotFound", tt.user, tt.conv, err)
			}
		}
	})

	t.Run("versions", func(t *testing.T) {
		s := open(t)
		// members checks the rows changed for user since a version and
		// returns the store's version.
		members := func(user string, since int64, wantConvs ...string) int64 {
			t.Helper()
			ms, version, more, err := s.Members(t.Context(), user, since, 0)
			if err != nil || more {
				t.Fatalf("Members(%s, %d): more %v, %v", user, since, more, err)
			}
			var convs []string
			for i, m := range ms {
				convs = append(convs, m.Conversation)
				if m.User != user || m.Version <= since || m.Version > version || i > 0 && m.Version < ms[i-1].Version {
					t.Errorf("Members(%s, %d) = %+v with version %d: rows must be the user's, ordered by version, in (since, version]", user, since, ms, version)
				}
				if d := diffMember(m, mustMember(t, s, user, m.Conversation)); d != "" {
					t.Errorf("Members(%s, %d) row differs from Member: %s", user, since, d)
				}
			}
			slices.Sort(convs)
			slices.Sort(wantConvs)
			if !slices.Equal(convs, wantConvs) {
				t.Errorf("Members(%s, %d) = %q, want %q", user, since, convs, wantConvs)
			}
			if version < since {
				t.Errorf("Members(%s, %d) returned version %d, below since", user, since, version)
			}
			return version
		}
		ab, ac, bc := directID("a", "b"), directID("a", "c"), directID("b", "c")

		v0 := members("a", 0)
		mustAppend(t, s, send("a", "b", "1", "x"), send("c", "a", "2", "y"))
		v1 := members("a", v0, ab, ac)
		if v1 <= v0 {
			t.Fatalf("version %d did not rise above %d", v1, v0)
		}
		ms, _, _, _ := s.Members(t.Context(), "a", v0, 0)
		if len(ms) == 2 && ms[0].Version != ms[1].Version {
			t.Errorf("one batch stamped two versions: %d and %d", ms[0].Version, ms[1].Version)
		}
		members("a", v1)
		members("b", v0, ab)
		members("c", v0, ac)

		mustAppend(t, s, send("b", "c", "3", "z"))
		v2 := members("a", v1)
		members("b", v1, bc)
		members("c", v1, bc)

		mustAppend(t, s, send("a", "c", "4", "w"))
		v3 := members("a", v2, ac)
		members("a", v1, ac)
		members("a", v0, ab, ac)
		all, _, _, err := s.Members(t.Context(), "a", v0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Conversation != ab || all[1].Conversation != ac {
			t.Errorf("Members(a, %d) = %+v, want %s then %s, by version", v0, all, ab, ac)
		}

		// b reads a's message: b's row changes, and a's too, because a's
		// PeerReadSeq rose.
		if _, _, err := s.MarkRead(t.Context(), "b", ab, 1); err != nil {
			t.Fatal(err)
		}
		v4 := members("b", v3, ab)
		members("a", v3, ab)
		if got := mustMember(t, s, "a", ab).PeerReadSeq; got != 1 {
			t.Errorf("a's PeerReadSeq after b read = %d, want 1", got)
		}
		// Reading what was read already changes nothing for anyone.
		if _, _, err := s.MarkRead(t.Context(), "b", ab, 1); err != nil {
			t.Fatal(err)
		}
		members("b", v4)
		members("a", v4)
	})

	t.Run("new message in a conversation with rows", func(t *testing.T) {
		s := open(t)
		ab, ac := directID("a", "b"), directID("a", "c")
		mustAppend(t, s, send("a", "b", "1", "x"), send("c", "a", "2", "y"))
		_, v1, _, err := s.Members(t.Context(), "b", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A read in one conversation, then a message in the other: the
		// message's change is the later one.
		if _, _, err := s.MarkRead(t.Context(), "a", ac, 1); err != nil {
			t.Fatal(err)
		}
		next := mustAppend(t, s, send("a", "b", "3", "z"))[0].Message
		for _, user := range []string{"a", "b"} {
			ms, version, _, err := s.Members(t.Context(), user, v1, 0)
			if err != nil {
				t.Fatal(err)
			}
			n := len(ms)
			if n == 0 || ms[n-1].Conversation != ab || ms[n-1].MaxSeq != 2 || ms[n-1].LastMessage == nil ||
				ms[n-1].LastMessage.ServerID != next.ServerID || ms[n-1].Version != version {
				t.Errorf("Members(%s, %d) = %+v with version %d, want %s last, at max seq 2 and version %d", user, v1, ms, version, ab, version)
			}
			if got := mustMember(t, s, user, ab); got.Version != version {
				t.Errorf("Member(%s, %s).Version = %d, want %d", user, ab, got.Version, version)
			}
		}
		ms, _, _, err := s.Members(t.Context(), "a", v1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].Conversation != ac || ms[0].ReadSeq != 1 {
			t.Errorf("Members(a, %d) = %+v, want %s (read) then %s (new message)", v1, ms, ac, ab)
		}
	})
}

// testReadSeqs checks the read seqs that sending implies: a sender has read
// what it sent, whatever the store keeps for it.
func testReadSeqs(t *testing.T, open opener) {
	// readSeqs checks the read seq of each user in conv.
	readSeqs := func(t *testing.T, s store.Store, conv string, want map[string]int64) {
		t.Helper()
		for user, read := range want {
			if m := mustMember(t, s, user, conv); m.ReadSeq != read {
				t.Errorf("Member(%s, %s).ReadSeq = %d, want %d", user, conv, m.ReadSeq, read)
			}
		}
	}

	t.Run("senders across batches", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		mustAppend(t, s, send("a", "b", "1", "x"), send("a", "b", "2", "y"), send("a", "b", "3", "z"))
		readSeqs(t, s, conv, map[string]int64{"a": 3, "b": 0})
		mustAppend(t, s, send("b", "a", "4", "w"))
		readSeqs(t, s, conv, map[string]int64{"a": 3, "b": 4})
		mustAppend(t, s, send("b", "a", "5", "v"), send("a", "b", "6", "u"), send("b", "a", "7", "t"))
		readSeqs(t, s, conv, map[string]int64{"a": 6, "b": 7})
		ms, _, _, err := s.Members(t.Context(), "a", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].ReadSeq != 6 || ms[0].MaxSeq != 7 {
			t.Errorf("Members(a, 0) = %+v, want read seq 6 of 7", ms)
		}
	})

	t.Run("recipient marks read between sends", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		mustAppend(t, s, send("a", "b", "1", "x"), send("a", "b", "2", "y"))
		if _, _, err := s.MarkRead(t.Context(), "b", conv, 2); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, send("b", "a", "3", "z"), send("a", "b", "4", "w"))
		readSeqs(t, s, conv, map[string]int64{"a": 4, "b": 3})
	})

	t.Run("system notices", func(t *testing.T) {
		s := open(t)
		conv := directID("system", "b")
		mustAppend(t, s, send("system", "b", "1", "welcome"), send("b", "system", "2", "thanks"))
		readSeqs(t, s, conv, map[string]int64{"system": 1, "b": 2})
		if m := mustMember(t, s, "b", conv); m.Peer != "system" || m.MaxSeq != 2 {
			t.Errorf("Member(b) = %+v, want peer system and max seq 2", m)
		}
	})

	t.Run("group senders", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, "g:1", "a", "b", "c")
		mustAppend(t, s, post("a", "g:1", "1", "x"), post("b", "g:1", "2", "y"))
		readSeqs(t, s, "g:1", map[string]int64{"a": 1, "b": 2, "c": 0})
		mustAppend(t, s, post("a", "g:1", "3", "z"))
		readSeqs(t, s, "g:1", map[string]int64{"a": 3, "b": 2, "c": 0})
	})
}

func testMessageRange(t *testing.T, open opener) {
	s := open(t)
	var batch []store.NewMessage
	for i := range 10 {
		batch = append(batch, send("a", "b", fmt.Sprint(i), fmt.Sprint("m", i+1)))
	}
	rs := mustAppend(t, s, batch...)
	mustAppend(t, s, send("a", "c", "other", "elsewhere"))
	conv := directID("a", "b")
	for _, tt := range []struct {
		name                 string
		from, minSeq, maxSeq int64
		dir                  store.Direction
		limit                int
		want                 []int64
	}{
		{"forward all", 0, 1, 10, store.Forward, 100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"forward limit", 0, 1, 10, store.Forward, 3, []int64{1, 2, 3}},
		{"forward from", 5, 1, 10, store.Forward, 3, []int64{5, 6, 7}},
		{"forward from 0 starts at min", 0, 4, 10, store.Forward, 3, []int64{4, 5, 6}},
		{"forward from below min", 2, 4, 10, store.Forward, 3, []int64{4, 5, 6}},
		{"forward stops at max", 8, 1, 9, store.Forward, 5, []int64{8, 9}},
		{"forward past max", 11, 1, 10, store.Forward, 5, nil},
		{"forward max beyond the last", 9, 1, 50, store.Forward, 5, []int64{9, 10}},
		{"backward from 0 is from max", 0, 1, 10, store.Backward, 3, []int64{8, 9, 10}},
		{"backward from 0 with lower max", 0, 1, 6, store.Backward, 2, []int64{5, 6}},
		{"backward from", 5, 1, 10, store.Backward, 3, []int64{3, 4, 5}},
		{"backward stops at min", 5, 2, 10, store.Backward, 10, []int64{2, 3, 4, 5}},
		{"backward from above max", 20, 1, 10, store.Backward, 2, []int64{9, 10}},
		{"backward from below min", 2, 4, 10, store.Backward, 5, nil},
		{"backward all", 0, 1, 10, store.Backward, 100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"zero limit", 0, 1, 10, store.Forward, 0, nil},
		{"empty bounds", 0, 11, 10, store.Forward, 5, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.MessageRange(t.Context(), conv, tt.from, tt.minSeq, tt.maxSeq, tt.dir, tt.limit)
			if err != nil {
				t.Fatalf("MessageRange: %v", err)
			}
			if seqs := seqsOf(got); !slices.Equal(seqs, tt.want) {
				t.Fatalf("MessageRange(from %d, [%d, %d], dir %d, limit %d) = %v, want %v",
					tt.from, tt.minSeq, tt.maxSeq, tt.dir, tt.limit, seqs, tt.want)
			}
			for _, m := range got {
				if d := diffMessage(m, rs[m.Seq-1].Message); d != "" {
					t.Errorf("seq %d: %s", m.Seq, d)
				}
			}
		})
	}
	t.Run("unknown conversation", func(t *testing.T) {
		got, err := s.MessageRange(t.Context(), "nothing", 0, 1, 10, store.Forward, 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("MessageRange = %v, %v, want no messages", got, err)
		}
	})
}

func testMarkRead(t *testing.T, open opener) {
	s := open(t)
	conv := directID("a", "b")
	rs := mustAppend(t, s, send("a", "b", "1", "x"), send("a", "b", "2", "y"), send("a", "b", "3", "z"))
	last := rs[2].Message
	version := mustMember(t, s, "b", conv).Version
	for _, tt := range []struct {
		name    string
		seq     int64
		want    int64
		raised  bool
		wantErr error
	}{
		{"raise", 2, 2, true, nil},
		{"never lowered", 1, 2, false, nil},
		{"above max seq", 10, 2, false, store.ErrAboveMaxSeq},
		{"to max seq", 3, 3, true, nil},
		{"zero", 0, 3, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, raised, err := s.MarkRead(t.Context(), "b", conv, tt.seq)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("MarkRead: got error %v, want %v", err, tt.wantErr)
			}
			want := store.Member{User: "b", Conversation: conv, Kind: conversation.Direct, Peer: "a", MaxSeq: 3, ReadSeq: tt.want, PeerReadSeq: 3, MinSeq: 1, LastMessage: &last}
			if d := diffMember(got, want); d != "" {
				t.Errorf("MarkRead: %s", d)
			}
			if raised != tt.raised {
				t.Errorf("MarkRead: raised %v, want %v", raised, tt.raised)
			}
			if got.Version < version || !raised && got.Version != version {
				t.Errorf("MarkRead: version went from %d to %d, raised %v", version, got.Version, raised)
			}
			if d := diffMember(mustMember(t, s, "b", conv), got); d != "" {
				t.Errorf("Member after MarkRead: %s", d)
			}
			version = got.Version
		})
	}
	t.Run("raising stamps a new version", func(t *testing.T) {
		before := mustMember(t, s, "a", conv)
		mustAppend(t, s, send("b", "a", "4", "w"))
		_, since, _, err := s.Members(t.Context(), "a", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.MarkRead(t.Context(), "a", conv, 4)
		if err != nil {
			t.Fatalf("MarkRead: %v", err)
		}
		if got.ReadSeq != 4 || got.Version <= since || got.Version <= before.Version {
			t.Errorf("MarkRead = %+v, want read seq 4 and a version above %d", got, since)
		}
		ms, _, _, err := s.Members(t.Context(), "a", since, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].ReadSeq != 4 {
			t.Errorf("Members since %d = %+v, want the read row", since, ms)
		}
	})
	t.Run("not a member", func(t *testing.T) {
		for _, tt := range []struct{ user, conv string }{{"c", conv}, {"a", "nothing"}} {
			if _, _, err := s.MarkRead(t.Context(), tt.user, tt.conv, 1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("MarkRead(%s, %s): got %v, want ErrNotFound", tt.user, tt.conv, err)
			}
		}
	})
	t.Run("after own sends", func(t *testing.T) {
		s := open(t)
		conv := directID("a", "b")
		mustAppend(t, s, send("a", "b", "1", "x"), send("a", "b", "2", "y"))
		before := mustMember(t, s, "a", conv)
		got, _, err := s.MarkRead(t.Context(), "a", conv, 1)
		if err != nil {
			t.Fatalf("MarkRead: %v", err)
		}
		if got.ReadSeq != 2 || got.Version != before.Version {
			t.Errorf("MarkRead below own sends = %+v, want read seq 2 and version %d unchanged", got, before.Version)
		}
		mustAppend(t, s, send("b", "a", "3", "z"))
		if m := mustMember(t, s, "a", conv); m.ReadSeq != 2 {
			t.Errorf("read seq after the peer's message = %d, want 2", m.ReadSeq)
		}
		got, _, err = s.MarkRead(t.Context(), "a", conv, 3)
		if err != nil {
			t.Fatalf("MarkRead: %v", err)
		}
		if got.ReadSeq != 3 || got.Version <= before.Version {
			t.Errorf("MarkRead = %+v, want read seq 3 and a version above %d", got, before.Version)
		}
		mustAppend(t, s, send("a", "b", "4", "w"))
		if m := mustMember(t, s, "a", conv); m.ReadSeq != 4 {
			t.Errorf("read seq after another send = %d, want 4", m.ReadSeq)
		}
	})
}

func testClearHistory(t *testing.T, open opener) {
	s := open(t)
	conv := directID("a", "b")
	rs := mustAppend(t, s, send("a", "b", "1", "x"), send("a", "b", "2", "y"), send("a", "b", "3", "z"))
	if _, _, err := s.MarkRead(t.Context(), "b", conv, 1); err != nil {
		t.Fatal(err)
	}
	before := mustMember(t, s, "b", conv)

	got, err := s.ClearHistory(t.Context(), "b", conv)
	if err != nil {
		t.Fatalf("ClearHistory: %v", err)
	}
	want := store.Member{User: "b", Conversation: conv, Kind: conversation.Direct, Peer: "a", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 3, MinSeq: 4}
	if d := diffMember(got, want); d != "" {
		t.Errorf("ClearHistory: %s", d)
	}
	if got.Version <= before.Version {
		t.Errorf("ClearHistory: version %d, want above %d", got.Version, before.Version)
	}
	if d := diffMember(mustMember(t, s, "b", conv), want); d != "" {
		t.Errorf("Member after ClearHistory: %s", d)
	}
	ms, _, _, err := s.Members(t.Context(), "b", before.Version, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || diffMember(ms[0], want) != "" {
		t.Errorf("Members since %d = %+v, want the cleared row", before.Version, ms)
	}
	other := store.Member{User: "a", Conversation: conv, Kind: conversation.Direct, Peer: "b", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 3, MinSeq: 1, LastMessage: &rs[2].Message}
	if d := diffMember(mustMember(t, s, "a", conv), other); d != "" {
		t.Errorf("the other member changed: %s", d)
	}

	if got, err := s.ClearHistory(t.Context(), "b", conv); err != nil || diffMember(got, want) != "" {
		t.Errorf("ClearHistory again = %+v, %v, want %+v", got, err, want)
	}

	next := mustAppend(t, s, send("a", "b", "4", "after"))[0].Message
	want = store.Member{User: "b", Conversation: conv, Kind: conversation.Direct, Peer: "a", MaxSeq: 4, ReadSeq: 3, PeerReadSeq: 4, MinSeq: 4, LastMessage: &next}
	if d := diffMember(mustMember(t, s, "b", conv), want); d != "" {
		t.Errorf("Member after a new message: %s", d)
	}

	for _, tt := range []struct{ user, conv string }{{"c", conv}, {"a", "nothing"}} {
		if _, err := s.ClearHistory(t.Context(), tt.user, tt.conv); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClearHistory(%s, %s): got %v, want ErrNotFound", tt.user, tt.conv, err)
		}
	}

	t.Run("after own sends", func(t *testing.T) {
		s := open(t)
		mustAppend(t, s, send("a", "b", "1", "x"), send("b", "a", "2", "y"), send("a", "b", "3", "z"))
		got, err := s.ClearHistory(t.Context(), "a", conv)
		if err != nil {
			t.Fatalf("ClearHistory: %v", err)
		}
		want := store.Member{User: "a", Conversation: conv, Kind: conversation.Direct, Peer: "b", MaxSeq: 3, ReadSeq: 3, PeerReadSeq: 2, MinSeq: 4}
		if d := diffMember(got, want); d != "" {
			t.Errorf("ClearHistory: %s", d)
		}
		next := mustAppend(t, s, send("b", "a", "4", "w"), send("a", "b", "5", "v"))[1].Message
		want = store.Member{User: "a", Conversation: conv, Kind: conversation.Direct, Peer: "b", MaxSeq: 5, ReadSeq: 5, PeerReadSeq: 4, MinSeq: 4, LastMessage: &next}
		if d := diffMember(mustMember(t, s, "a", conv), want); d != "" {
			t.Errorf("Member after new messages: %s", d)
		}
	})
}
