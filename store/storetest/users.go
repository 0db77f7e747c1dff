package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/parleyim/parley/store"
)

func testUsers(t *testing.T, open opener) {
	alice := store.User{
		ID:           "alice",
		Nickname:     "Alice Liddell",
		AvatarURL:    "https://example.com/alice.png",
		Extra:        raw(`{"lang":"en"}`),
		PasswordHash: "hash-a",
		CreatedAt:    at(0),
		UpdatedAt:    at(0),
	}

	t.Run("create and get", func(t *testing.T) {
		s := open(t)
		bob := store.User{ID: "bob", CreatedAt: at(1), UpdatedAt: at(2)} // no extra, password or last seen
		for _, u := range []store.User{alice, bob} {
			if err := s.CreateUser(t.Context(), u); err != nil {
				t.Fatalf("CreateUser(%s): %v", u.ID, err)
			}
			got, err := s.User(t.Context(), u.ID)
			if err != nil {
				t.Fatalf("User(%s): %v", u.ID, err)
			}
			if d := diffUser(got, u); d != "" {
				t.Errorf("User(%s): %s", u.ID, d)
			}
		}
	})

	t.Run("create existing", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice)
		other := alice
		other.Nickname = "someone else"
		if err := s.CreateUser(t.Context(), other); !errors.Is(err, store.ErrExists) {
			t.Fatalf("CreateUser again: got %v, want ErrExists", err)
		}
		got, err := s.User(t.Context(), alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffUser(got, alice); d != "" {
			t.Errorf("the first user must stay: %s", d)
		}
	})

	t.Run("get missing", func(t *testing.T) {
		s := open(t)
		if _, err := s.User(t.Context(), "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("User: got %v, want ErrNotFound", err)
		}
	})

	t.Run("update", func(t *testing.T) {
		nick, avatar, hash := "Al", "https://example.com/al.png", "hash-b"
		extra, noExtra := raw(`{"lang":"fr"}`), json.RawMessage(nil)
		for _, tt := range []struct {
			name string
			up   store.UserUpdate
			want func(u *store.User)
		}{
			{"nothing", store.UserUpdate{}, func(*store.User) {}},
			{"nickname", store.UserUpdate{Nickname: &nick}, func(u *store.User) { u.Nickname = nick }},
			{"avatar", store.UserUpdate{AvatarURL: &avatar}, func(u *store.User) { u.AvatarURL = avatar }},
			{"extra", store.UserUpdate{Extra: &extra}, func(u *store.User) { u.Extra = extra }},
			{"extra removed", store.UserUpdate{Extra: &noExtra}, func(u *store.User) { u.Extra = nil }},
			{"password", store.UserUpdate{PasswordHash: &hash}, func(u *store.User) { u.PasswordHash = hash }},
			{"all", store.UserUpdate{Nickname: &nick, AvatarURL: &avatar, Extra: &extra, PasswordHash: &hash}, func(u *store.User) {
				u.Nickname, u.AvatarURL, u.Extra, u.PasswordHash = nick, avatar, extra, hash
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				mustCreateUser(t, s, alice)
				want := alice
				want.UpdatedAt = at(60)
				tt.want(&want)
				got, err := s.UpdateUser(t.Context(), alice.ID, tt.up, at(60))
				if err != nil {
					t.Fatalf("UpdateUser: %v", err)
				}
				if d := diffUser(got, want); d != "" {
					t.Errorf("UpdateUser: %s", d)
				}
				got, err = s.User(t.Context(), alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffUser(got, want); d != "" {
					t.Errorf("User after update: %s", d)
				}
			})
		}
	})

	t.Run("update missing", func(t *testing.T) {
		s := open(t)
		nick := "x"
		if _, err := s.UpdateUser(t.Context(), "nobody", store.UserUpdate{Nickname: &nick}, at(1)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UpdateUser: got %v, want ErrNotFound", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		s := open(t)
		for _, u := range []store.User{
			{ID: "u1", Nickname: "Alice"},
			{ID: "u2", Nickname: "alicia"},
			{ID: "u3", Nickname: "Bob"},
			{ID: "ALI-4", Nickname: "Carol"},
			{ID: "u5", Nickname: "Élodie"},
			{ID: "u6", Nickname: "100% real"},
			{ID: "u7", Nickname: "snake_case"},
			{ID: "u8", Nickname: "1000 real"},
			{ID: "u9", Nickname: "snakeXcase"},
		} {
			u.CreatedAt, u.UpdatedAt = at(0), at(0)
			mustCreateUser(t, s, u)
		}
		for _, tt := range []struct {
			name string
			q    store.UserQuery
			want []string
		}{
			{"all", store.UserQuery{}, []string{"ALI-4", "u1", "u2", "u3", "u5", "u6", "u7", "u8", "u9"}},
			{"limit", store.UserQuery{Limit: 2}, []string{"ALI-4", "u1"}},
			{"after", store.UserQuery{After: "u2", Limit: 3}, []string{"u3", "u5", "u6"}},
			{"after the last", store.UserQuery{After: "u9"}, nil},
			{"search nickname ignores case", store.UserQuery{Search: "ALI"}, []string{"ALI-4", "u1", "u2"}},
			{"search id ignores case", store.UserQuery{Search: "ali-"}, []string{"ALI-4"}},
			{"search beyond ASCII", store.UserQuery{Search: "éLO"}, []string{"u5"}},
			{"search with percent is literal", store.UserQuery{Search: "0%"}, []string{"u6"}},
			{"search with underscore is literal", store.UserQuery{Search: "e_c"}, []string{"u7"}},
			{"search and after", store.UserQuery{Search: "ali", After: "u1"}, []string{"u2"}},
			{"search and limit", store.UserQuery{Search: "ali", Limit: 1}, []string{"ALI-4"}},
			{"search without match", store.UserQuery{Search: "zed"}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				users, err := s.ListUsers(t.Context(), tt.q)
				if err != nil {
					t.Fatalf("ListUsers: %v", err)
				}
				var got []string
				for _, u := range users {
					got = append(got, u.ID)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("ListUsers(%+v) = %q, want %q", tt.q, got, tt.want)
				}
			})
		}
		t.Run("paging", func(t *testing.T) {
			var got []string
			q := store.UserQuery{Limit: 4}
			for range 10 {
				page, err := s.ListUsers(t.Context(), q)
				if err != nil {
					t.Fatalf("ListUsers: %v", err)
				}
				if len(page) == 0 {
					break
				}
				for _, u := range page {
					got = append(got, u.ID)
				}
				q.After = page[len(page)-1].ID
			}
			want := []string{"ALI-4", "u1", "u2", "u3", "u5", "u6", "u7", "u8", "u9"}
			if !slices.Equal(got, want) {
				t.Errorf("pages = %q, want %q", got, want)
			}
		})
	})

	t.Run("last seen", func(t *testing.T) {
		s := open(t)
		for _, id := range []string{"u1", "u2", "u3"} {
			mustCreateUser(t, s, store.User{ID: id, CreatedAt: at(0), UpdatedAt: at(0)})
		}
		if err := s.SetLastSeen(t.Context(), []string{"u1", "u3", "unknown"}, at(10)); err != nil {
			t.Fatalf("SetLastSeen: %v", err)
		}
		if err := s.SetLastSeen(t.Context(), nil, at(20)); err != nil {
			t.Fatalf("SetLastSeen(nil): %v", err)
		}
		for id, want := range map[string]int{"u1": 10, "u2": -1, "u3": 10} {
			u, err := s.User(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case want < 0 && !u.LastSeen.IsZero():
				t.Errorf("%s: LastSeen = %v, want zero", id, u.LastSeen)
			case want >= 0 && !sameTime(u.LastSeen, at(want)):
				t.Errorf("%s: LastSeen = %v, want %v", id, u.LastSeen, at(want))
			}
		}
	})
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ID, err)
	}
}
