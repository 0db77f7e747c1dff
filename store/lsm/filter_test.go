package lsm

import (
	"fmt"
	"testing"
)

// TestClientFilterAnswers checks the blocked Bloom filter: never "absent"
// for a key it holds, and about 1% false positives at capacity.
func TestClientFilterAnswers(t *testing.T) {
	f := newClientFilter(minCapacity)
	f.ready.Store(true)
	for i := range minCapacity {
		f.add(fmt.Appendf(nil, "k%d", i))
	}
	for i := 0; i < minCapacity; i += 97 {
		if f.absent(fmt.Appendf(nil, "k%d", i)) {
			t.Fatalf("key %d added, reported absent", i)
		}
	}
	const probes = 100_000
	fp := 0
	for i := range probes {
		if !f.absent(fmt.Appendf(nil, "other%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / probes; rate > 0.02 {
		t.Errorf("false positive rate %.4f at capacity, want about 0.01", rate)
	}
}

// TestOutgrownFilterAnswersWhileItsSuccessorFills checks that replacing a
// full filter does not send every lookup to Pebble until the new one is
// filled: the old one, which the writer keeps adding to, answers.
func TestOutgrownFilterAnswersWhileItsSuccessorFills(t *testing.T) {
	l := &Log{filter: newClientFilter(minCapacity)}
	l.filter.ready.Store(true)
	l.rememberClientKey([]byte("old"))
	l.outgrown, l.filter = l.filter, newClientFilter(2*minCapacity) // as startFilterLocked does
	l.rememberClientKey([]byte("new"))
	switch {
	case l.clientKeyAbsent([]byte("old")), l.clientKeyAbsent([]byte("new")):
		t.Error("a stored key reported absent while the new filter fills")
	case !l.clientKeyAbsent([]byte("never")):
		t.Error("the outgrown filter does not answer while the new one fills")
	}
	l.filter.ready.Store(true) // the fill is done
	if l.clientKeyAbsent([]byte("new")) || !l.clientKeyAbsent([]byte("never")) || l.outgrown != nil {
		t.Error("once filled, the new filter answers and the old one is dropped")
	}
}
