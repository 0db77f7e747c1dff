package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/store"
)

func testTokens(t *testing.T, open opener) {
	t.Run("empty", func(t *testing.T) {
		s := open(t)
		rs, err := s.Revocations(t.Context())
		if err != nil {
			t.Fatalf("Revocations: %v", err)
		}
		if len(rs) != 0 {
			t.Errorf("Revocations = %v, want none", rs)
		}
	})

	t.Run("before moves forward only", func(t *testing.T) {
		s := open(t)
		for _, r := range []store.Revocation{
			{User: "u1", Before: at(10)},
			{User: "u1", Device: "phone", Before: at(20)},
			{User: "u2", Device: "web", Before: at(30)},
			{User: "u1", Before: at(5)},                   // earlier: ignored
			{User: "u1", Device: "phone", Before: at(25)}, // later: raised
			{User: "u2", Device: "web", Before: at(30)},   // the same: no change
		} {
			if err := s.Revoke(t.Context(), r); err != nil {
				t.Fatalf("Revoke(%+v): %v", r, err)
			}
		}
		got, err := s.Revocations(t.Context())
		if err != nil {
			t.Fatalf("Revocations: %v", err)
		}
		slices.SortFunc(got, func(a, b store.Revocation) int {
			return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Device, b.Device))
		})
		want := []store.Revocation{
			{User: "u1", Before: at(10)},
			{User: "u1", Device: "phone", Before: at(25)},
			{User: "u2", Device: "web", Before: at(30)},
		}
		if len(got) != len(want) {
			t.Fatalf("Revocations = %v, want %v", got, want)
		}
		for i := range want {
			if got[i].User != want[i].User || got[i].Device != want[i].Device || !sameTime(got[i].Before, want[i].Before) {
				t.Errorf("Revocations[%d] = %+v, want %+v", i, got[i], want[i])
			}
		}
	})
	t.Run("far future before", func(t *testing.T) {
		// account deactivates a user with a revocation at the end of year
		// 9999: it must come back exactly, and stay above later ones.
		s := open(t)
		end := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		for _, r := range []store.Revocation{{User: "u1", Before: end}, {User: "u1", Before: at(40)}} {
			if err := s.Revoke(t.Context(), r); err != nil {
				t.Fatalf("Revoke(%+v): %v", r, err)
			}
		}
		got, err := s.Revocations(t.Context())
		if err != nil || len(got) != 1 || !got[0].Before.Equal(end) {
			t.Fatalf("Revocations = %v, %v; want u1 before %v", got, err, end)
		}
	})
}
