package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/parleyim/parley/store"
)

// RunSocial runs the store.Social part of the suite as subtests of t, for
// backends that implement it alone (Run includes it for a whole store).
// open must return a new, empty store each time and close it when t ends.
func RunSocial(t *testing.T, open func(t *testing.T) store.Social) {
	testSocial(t, open)
}

func testSocial(t *testing.T, open func(t *testing.T) store.Social) {
	t.Run("empty", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		if rs, v, more, err := s.FriendRequests(ctx, "a", 0, 10); err != nil || len(rs) != 0 || v != 0 || more {
			t.Errorf("FriendRequests = %v, %d, %v, %v; want nothing at version 0", rs, v, more, err)
		}
		if fs, v, more, err := s.Friends(ctx, "a", 0, 10); err != nil || len(fs) != 0 || v != 0 || more {
			t.Errorf("Friends = %v, %d, %v, %v; want nothing at version 0", fs, v, more, err)
		}
		if bs, v, more, err := s.Blocks(ctx, "a", 0, 0); err != nil || len(bs) != 0 || v != 0 || more {
			t.Errorf("Blocks = %v, %d, %v, %v; want nothing at version 0", bs, v, more, err)
		}
		if _, err := s.Friend(ctx, "a", "b"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Friend: got %v, want ErrNotFound", err)
		}
		mustUpdate(t, s, func(tx store.SocialTx) error {
			if _, err := tx.FriendRequest("a", "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.FriendRequest: got %v, want ErrNotFound", err)
			}
			if _, err := tx.Friend("a", "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.Friend: got %v, want ErrNotFound", err)
			}
			if _, err := tx.Block("a", "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.Block: got %v, want ErrNotFound", err)
			}
			return nil
		})
	})

	t.Run("requests seen from both sides", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var first, second store.FriendRequest
		mustUpdate(t, s, func(tx store.SocialTx) (err error) {
			first, err = tx.PutFriendRequest(store.FriendRequest{From: "a", To: "b", Message: "hi b", State: store.RequestPending, CreatedAt: at(1), UpdatedAt: at(1)})
			if err != nil {
				return err
			}
			second, err = tx.PutFriendRequest(store.FriendRequest{From: "c", To: "a", Message: "hi a", State: store.RequestPending, CreatedAt: at(2), UpdatedAt: at(2)})
			return err
		})
		if first.Version <= 0 || second.Version <= first.Version {
			t.Fatalf("versions %d then %d; want positive and increasing", first.Version, second.Version)
		}
		rs, v, more, err := s.FriendRequests(ctx, "a", 0, 10)
		if err != nil || more || v != second.Version || len(rs) != 2 || !sameRequest(rs[0], first) || !sameRequest(rs[1], second) {
			t.Fatalf("FriendRequests(a) = %+v, %d, %v, %v; want both, by version", rs, v, more, err)
		}
		if rs, _, _, err := s.FriendRequests(ctx, "b", 0, 10); err != nil || len(rs) != 1 || !sameRequest(rs[0], first) {
			t.Fatalf("FriendRequests(b) = %+v, %v", rs, err)
		}
		// Accepting rewrites the row with a new version; a sync from
		// before sees the new state only.
		var accepted store.FriendRequest
		mustUpdate(t, s, func(tx store.SocialTx) error {
			r, err := tx.FriendRequest("a", "b")
			if err != nil || !sameRequest(r, first) {
				t.Errorf("tx.FriendRequest = %+v, %v; want %+v", r, err, first)
			}
			r.State, r.UpdatedAt = store.RequestAccepted, at(3)
			accepted, err = tx.PutFriendRequest(r)
			return err
		})
		rs, v, _, err = s.FriendRequests(ctx, "b", first.Version, 10)
		if err != nil || len(rs) != 1 || rs[0].State != store.RequestAccepted || !sameTime(rs[0].UpdatedAt, at(3)) || !sameTime(rs[0].CreatedAt, at(1)) || v != accepted.Version {
			t.Fatalf("FriendRequests(b, since %d) = %+v, %d, %v", first.Version, rs, v, err)
		}
		if rs, _, _, err := s.FriendRequests(ctx, "a", accepted.Version, 10); err != nil || len(rs) != 0 {
			t.Fatalf("FriendRequests(a, since the last) = %+v, %v; want none", rs, err)
		}
	})

	t.Run("friends with tombstones", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var ab, ba store.Friend
		mustUpdate(t, s, func(tx store.SocialTx) (err error) {
			if ab, err = tx.PutFriend(store.Friend{Owner: "a", User: "b", Remark: "Bee", Extra: raw(`{"tag":1}`), CreatedAt: at(1)}); err != nil {
				return err
			}
			ba, err = tx.PutFriend(store.Friend{Owner: "b", User: "a", CreatedAt: at(1)})
			return err
		})
		got, err := s.Friend(ctx, "a", "b")
		if err != nil || !sameFriend(got, ab) || got.Remark != "Bee" || !bytes.Equal(got.Extra, raw(`{"tag":1}`)) {
			t.Fatalf("Friend(a, b) = %+v, %v; want %+v", got, err, ab)
		}
		if got, err := s.Friend(ctx, "b", "a"); err != nil || !sameFriend(got, ba) || got.Extra != nil {
			t.Fatalf("Friend(b, a) = %+v, %v; want %+v with no extra", got, err, ba)
		}
		var gone store.Friend
		mustUpdate(t, s, func(tx store.SocialTx) (err error) {
			gone, err = tx.PutFriend(store.Friend{Owner: "a", User: "b", Remark: "dropped", CreatedAt: at(1), Deleted: true})
			return err
		})
		if !gone.Deleted || gone.Remark != "" || gone.Version <= ba.Version {
			t.Fatalf("tombstone = %+v", gone)
		}
		if _, err := s.Friend(ctx, "a", "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Friend after delete: got %v, want ErrNotFound", err)
		}
		mustUpdate(t, s, func(tx store.SocialTx) error {
			if _, err := tx.Friend("a", "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.Friend after delete: got %v, want ErrNotFound", err)
			}
			return nil
		})
		// A full read leaves the tombstone out; a read from before the
		// delete has it.
		if fs, v, _, err := s.Friends(ctx, "a", 0, 10); err != nil || len(fs) != 0 || v != gone.Version {
			t.Fatalf("Friends(a, 0) = %+v, %d, %v; want none at %d", fs, v, err, gone.Version)
		}
		fs, _, _, err := s.Friends(ctx, "a", ab.Version, 10)
		if err != nil || len(fs) != 1 || !fs[0].Deleted || fs[0].User != "b" || fs[0].Version != gone.Version {
			t.Fatalf("Friends(a, since %d) = %+v, %v; want the tombstone", ab.Version, fs, err)
		}
		// Friends again: the row comes back to life.
		var again store.Friend
		mustUpdate(t, s, func(tx store.SocialTx) (err error) {
			again, err = tx.PutFriend(store.Friend{Owner: "a", User: "b", CreatedAt: at(5)})
			return err
		})
		if fs, _, _, err := s.Friends(ctx, "a", gone.Version, 10); err != nil || len(fs) != 1 || fs[0].Deleted || !sameFriend(fs[0], again) {
			t.Fatalf("Friends after re-adding = %+v, %v", fs, err)
		}
		var pairs []string
		if err := s.ScanFriends(ctx, func(owner, user string) error { pairs = append(pairs, owner+">"+user); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(pairs)
		if !slices.Equal(pairs, []string{"a>b", "b>a"}) {
			t.Fatalf("ScanFriends = %v", pairs)
		}
	})

	t.Run("blocks", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var ab store.Block
		mustUpdate(t, s, func(tx store.SocialTx) (err error) {
			if ab, err = tx.PutBlock(store.Block{Owner: "a", User: "b", CreatedAt: at(1)}); err != nil {
				return err
			}
			_, err = tx.PutBlock(store.Block{Owner: "a", User: "c", CreatedAt: at(2)})
			return err
		})
		mustUpdate(t, s, func(tx store.SocialTx) error {
			if b, err := tx.Block("a", "b"); err != nil || b != ab {
				t.Errorf("tx.Block(a, b) = %+v, %v; want %+v", b, err, ab)
			}
			if _, err := tx.Block("b", "a"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.Block(b, a): got %v, want ErrNotFound: a block has a direction", err)
			}
			if _, err := tx.PutBlock(store.Block{Owner: "a", User: "c", CreatedAt: at(2), Deleted: true}); err != nil {
				return err
			}
			if _, err := tx.Block("a", "c"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("tx.Block of a lifted block: got %v, want ErrNotFound", err)
			}
			return nil
		})
		bs, _, _, err := s.Blocks(ctx, "a", 0, 10)
		if err != nil || len(bs) != 1 || bs[0].User != "b" || bs[0].Version != ab.Version || !sameTime(bs[0].CreatedAt, at(1)) {
			t.Fatalf("Blocks(a, 0) = %+v, %v; want b alone", bs, err)
		}
		// c was blocked, then unblocked: one row, the tombstone.
		bs, _, _, err = s.Blocks(ctx, "a", ab.Version, 10)
		if err != nil || len(bs) != 1 || bs[0].User != "c" || !bs[0].Deleted {
			t.Fatalf("Blocks(a, since %d) = %+v, %v; want c's tombstone", ab.Version, bs, err)
		}
		var pairs []string
		if err := s.ScanBlocks(ctx, func(owner, user string) error { pairs = append(pairs, owner+">"+user); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pairs, []string{"a>b"}) {
			t.Fatalf("ScanBlocks = %v, want [a>b]", pairs)
		}
	})

	t.Run("failed update keeps nothing", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		errStop := errors.New("stop")
		err := s.UpdateSocial(ctx, func(tx store.SocialTx) error {
			if _, err := tx.PutBlock(store.Block{Owner: "a", User: "b", CreatedAt: at(1)}); err != nil {
				return err
			}
			if _, err := tx.PutFriend(store.Friend{Owner: "a", User: "c", CreatedAt: at(1)}); err != nil {
				return err
			}
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("UpdateSocial = %v, want fn's error", err)
		}
		if bs, v, _, err := s.Blocks(ctx, "a", 0, 10); err != nil || len(bs) != 0 || v != 0 {
			t.Fatalf("Blocks after a failed update = %+v, %d, %v; want nothing at version 0", bs, v, err)
		}
		if _, err := s.Friend(ctx, "a", "c"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Friend after a failed update: %v", err)
		}
	})

	t.Run("pages and one counter", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		var versions []int64
		mustUpdate(t, s, func(tx store.SocialTx) error {
			for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
				f, err := tx.PutFriend(store.Friend{Owner: "a", User: u, CreatedAt: at(1)})
				if err != nil {
					return err
				}
				// Another owner and another scope share the counter.
				b, err := tx.PutBlock(store.Block{Owner: "z", User: u, CreatedAt: at(1)})
				if err != nil {
					return err
				}
				versions = append(versions, f.Version, b.Version)
			}
			return nil
		})
		if !slices.IsSorted(versions) || len(slices.Compact(slices.Clone(versions))) != len(versions) {
			t.Fatalf("versions %v: want unique and increasing", versions)
		}
		var got []string
		since, pages := int64(0), 0
		for {
			fs, v, more, err := s.Friends(ctx, "a", since, 2)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(fs) > 2 {
				t.Fatalf("a page of %d rows with limit 2", len(fs))
			}
			for _, f := range fs {
				got = append(got, f.User)
			}
			if !more {
				if v != versions[len(versions)-1] {
					t.Fatalf("last page at version %d, want the counter's %d", v, versions[len(versions)-1])
				}
				break
			}
			if v != fs[len(fs)-1].Version {
				t.Fatalf("page ends at version %d, want its last row's %d", v, fs[len(fs)-1].Version)
			}
			since = v
		}
		if !slices.Equal(got, []string{"u1", "u2", "u3", "u4", "u5"}) || pages != 3 {
			t.Fatalf("paged Friends = %v in %d pages; want u1…u5 in 3", got, pages)
		}
	})
}

func mustUpdate(t *testing.T, s store.Social, fn func(tx store.SocialTx) error) {
	t.Helper()
	if err := s.UpdateSocial(t.Context(), fn); err != nil {
		t.Fatalf("UpdateSocial: %v", err)
	}
}

func sameRequest(got, want store.FriendRequest) bool {
	return got.From == want.From && got.To == want.To && got.Message == want.Message && got.State == want.State &&
		sameTime(got.CreatedAt, want.CreatedAt) && sameTime(got.UpdatedAt, want.UpdatedAt) && got.Version == want.Version
}

func sameFriend(got, want store.Friend) bool {
	return got.Owner == want.Owner && got.User == want.User && got.Remark == want.Remark &&
		bytes.Equal(got.Extra, want.Extra) && sameTime(got.CreatedAt, want.CreatedAt) &&
		got.Version == want.Version && got.Deleted == want.Deleted
}
