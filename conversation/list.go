package conversation

import (
	"cmp"
	"strconv"
	"strings"
	"time"
)

// MuteForever is the muted-until time of a mute without an end.
const MuteForever = -1

// Muted reports whether a mute until the unix millisecond until is in force
// at now: until is MuteForever or lies after now. 0, and any time past, is
// no mute.
func Muted(until int64, now time.Time) bool {
	return until == MuteForever || until > now.UnixMilli()
}

// Rank is where a conversation sorts in its user's list: pinned ones
// first, then by last activity (the later of its last message and its
// draft, unix ms), newest first, then by id.
type Rank struct {
	Pinned   bool
	Activity int64
	ID       string
}

// Compare returns -1 if r sorts before o in the list, 1 if after, 0 if
// they are the same.
func (r Rank) Compare(o Rank) int {
	if r.Pinned != o.Pinned {
		if r.Pinned {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(o.Activity, r.Activity), cmp.Compare(r.ID, o.ID))
}

// String is r as a list cursor: opaque to clients, read back by ParseRank.
func (r Rank) String() string {
	p := "0"
	if r.Pinned {
		p = "1"
	}
	return p + "." + strconv.FormatInt(r.Activity, 10) + "." + r.ID
}

// ParseRank reads a cursor String wrote.
func ParseRank(s string) (Rank, bool) {
	p, rest, ok1 := strings.Cut(s, ".")
	a, id, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(a, 10, 64)
	if !ok1 || !ok2 || err != nil || (p != "0" && p != "1") || KindOf(id) == "" {
		return Rank{}, false
	}
	return Rank{Pinned: p == "1", Activity: n, ID: id}, true
}
