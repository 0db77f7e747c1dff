package lsm

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// clientFilter is an in-memory Bloom filter of every stored (sender, client
// id) key, in front of the de-duplication lookup: nearly every new message's
// lookup finds nothing, and the filter answers that without searching the
// memtable and the tables. It answers only "surely absent" or "maybe
// present"; maybe sends the lookup to Pebble, so a wrong answer costs a
// lookup and never a wrong dedupe.
//
// At open, and whenever the keys outgrow it, a filter is filled by a
// background scan of the keys in a snapshot while the writer adds the keys
// it writes. Until the scan is done the outgrown filter, which the writer
// keeps adding to, answers instead (more false positives as it fills, never
// a wrong "absent"); at open, every lookup goes to Pebble.
//
// Bits are set and read atomically: the scan and the writer set them
// concurrently, and only the writer reads them.
type clientFilter struct {
	seed     maphash.Seed
	bits     []atomic.Uint64
	mask     uint64       // blocks - 1; the number of blocks is a power of two
	capacity int          // keys it holds at about 1% false positives
	keys     atomic.Int64 // keys added, an upper bound
	ready    atomic.Bool  // the scan has added every older key
}

// bitsPerKey and probes give about 1% false positives at capacity. The
// filter is blocked: a key's probes all fall in one 512-bit block, one
// cache line, so an add or a lookup costs one cache miss, not seven.
const (
	bitsPerKey   = 10
	filterProbes = 7
	blockWords   = 8 // 512 bits
	minCapacity  = 1 << 20
)

func newClientFilter(capacity int) *clientFilter {
	capacity = max(capacity, minCapacity)
	n := uint64(blockWords * 64)
	for n < uint64(capacity*bitsPerKey) {
		n <<= 1
	}
	return &clientFilter{seed: maphash.MakeSeed(), bits: make([]atomic.Uint64, n/64), mask: n/64/blockWords - 1, capacity: capacity}
}

// locate returns the first word of key's block and the hash whose 9-bit
// slices pick the key's bits in it.
func (f *clientFilter) locate(key []byte) (block, h uint64) {
	h = maphash.Bytes(f.seed, key)
	return (h >> 32 & f.mask) * blockWords, h*0x9e3779b97f4a7c15 | 1
}

// add records key.
func (f *clientFilter) add(key []byte) {
	block, h := f.locate(key)
	for i := range uint64(filterProbes) {
		b := h >> (i * 9) & 511
		f.bits[block+b/64].Or(1 << (b % 64))
	}
	f.keys.Add(1)
}

// absent reports whether key was surely never added. Before the scan is
// done it knows nothing.
func (f *clientFilter) absent(key []byte) bool {
	if !f.ready.Load() {
		return false
	}
	block, h := f.locate(key)
	for i := range uint64(filterProbes) {
		b := h >> (i * 9) & 511
		if f.bits[block+b/64].Load()&(1<<(b%64)) == 0 {
			return true
		}
	}
	return false
}

// full reports whether the filter holds more keys than it was sized for.
func (f *clientFilter) full() bool { return f.keys.Load() > int64(f.capacity) }

// fill adds every client-id key in snap to f, then marks it ready and
// closes snap. It runs on its own goroutine; stop ends it early, leaving f
// not ready.
func (f *clientFilter) fill(snap *pebble.Snapshot, stop <-chan struct{}) error {
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{tagClient}, UpperBound: []byte{tagClient + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			select {
			case <-stop:
				return nil
			default:
			}
		}
		f.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return err
	}
	f.ready.Store(true)
	return nil
}
