package message

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// idGenerator makes server message ids: 48 bits of commit time in
// milliseconds, 40 random bits fixed per process and a 32-bit counter, in
// base32 (hex alphabet, lower case), so ids sort by time and never repeat
// within a process. It is used by the committer goroutine alone.
type idGenerator struct {
	node    [5]byte
	counter uint32
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

func newIDGenerator() *idGenerator {
	g := &idGenerator{}
	if _, err := rand.Read(g.node[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return g
}

func (g *idGenerator) next(now time.Time) string {
	var b [15]byte
	ms := uint64(now.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:11], g.node[:])
	g.counter++
	binary.BigEndian.PutUint32(b[11:], g.counter)
	return idEncoding.EncodeToString(b[:])
}
