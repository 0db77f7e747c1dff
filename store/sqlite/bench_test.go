package sqlite

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleyim/parley/store"
)

// BenchmarkAppendMessages appends batches of direct messages of about 100
// bytes, each in one of 1000 conversations between 2000 users picked at
// random, so that a batch of 512 touches some 400 conversations and 800
// member rows.
func BenchmarkAppendMessages(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		for _, size := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, size), func(b *testing.B) {
				benchmarkAppend(b, Options{Sync: sync}, size)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, opts Options, size int) {
	s, _ := openTemp(b, opts)
	rng := rand.New(rand.NewPCG(1, 2))
	content := []byte(`{"text":"a message of about a hundred bytes, which is what most chat messages are, give or take"}`)
	now := time.Now()
	n := 0
	batch := make([]store.NewMessage, size)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			n++
			pair := rng.IntN(1000)
			from, to := fmt.Sprint("u", pair), fmt.Sprint("u", pair+1000)
			if rng.IntN(2) == 0 {
				from, to = to, from
			}
			batch[i] = store.NewMessage{
				Conversation: fmt.Sprint("d:", pair),
				Kind:         store.KindDirect,
				Members:      []string{from, to},
				ServerID:     fmt.Sprint("s", n),
				ClientID:     fmt.Sprint("c", n),
				Sender:       from,
				Recipient:    to,
				ContentType:  "text",
				Content:      content,
				Time:         now,
			}
		}
		if _, err := s.AppendMessages(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
