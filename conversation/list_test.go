package conversation

import (
	"slices"
	"testing"
	"time"
)

func TestRankOrder(t *testing.T) {
	// In display order: pinned first, then newest activity, then by id.
	want := []Rank{
		{Pinned: true, Activity: 5, ID: "g:b"},
		{Pinned: true, Activity: 1, ID: "g:a"},
		{Activity: 9, ID: "d:a:b"},
		{Activity: 7, ID: "g:a"},
		{Activity: 7, ID: "g:b"},
		{Activity: 0, ID: "g:c"},
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, Rank.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v, want %v", got, want)
	}
	for _, r := range want {
		if r.Compare(r) != 0 {
			t.Errorf("%v.Compare(itself) = %d", r, r.Compare(r))
		}
		back, ok := ParseRank(r.String())
		if !ok || back != r {
			t.Errorf("ParseRank(%q) = %v, %v; want %v", r.String(), back, ok, r)
		}
	}
	for _, bad := range []string{"", "1", "1.5", "2.5.g:a", "1.x.g:a", "1.5.nope", "1.5.", "0.-1.g:a.b:"} {
		if r, ok := ParseRank(bad); ok {
			t.Errorf("ParseRank(%q) = %v, want refused", bad, r)
		}
	}
	if r, ok := ParseRank("0.12.g:a.b"); !ok || r.ID != "g:a.b" || r.Activity != 12 {
		t.Errorf("ParseRank of an id with a dot = %v, %v", r, ok)
	}
}

func TestMuted(t *testing.T) {
	now := time.UnixMilli(1000)
	for _, tt := range []struct {
		until int64
		want  bool
	}{{0, false}, {MuteForever, true}, {999, false}, {1000, false}, {1001, true}} {
		if got := Muted(tt.until, now); got != tt.want {
			t.Errorf("Muted(%d) at 1000 = %v, want %v", tt.until, got, tt.want)
		}
	}
}
