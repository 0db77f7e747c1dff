package loadgen

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/parleytest"
)

// TestIntegration runs a short load test against a real server: the one at
// $PARLEY_URL with the admin key $PARLEY_ADMIN_KEY if they are set, or one
// started in this process by parleytest.
func TestIntegration(t *testing.T) {
	url, key := os.Getenv("PARLEY_URL"), os.Getenv("PARLEY_ADMIN_KEY")
	if url == "" || key == "" {
		s := parleytest.NewServer(t, nil)
		url, key = s.URL, parleytest.AdminKey
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{
		URL:        url,
		AdminKey:   key,
		Conns:      200,
		Users:      100, // two devices per user
		UserPrefix: "it" + strconv.FormatInt(time.Now().Unix(), 36),
		Rate:       1000,
		Warmup:     time.Second,
		Duration:   5 * time.Second,
		Procs:      1,
	}
	sum, err := Run(ctx, cfg, os.Stderr)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Connected != cfg.Conns || sum.Sent == 0 || sum.Acked != sum.Sent || len(sum.Errors) > 0 {
		t.Errorf("connected %d/%d, sent %d, acked %d, errors %v", sum.Connected, cfg.Conns, sum.Sent, sum.Acked, sum.Errors)
	}
	// Exactly once to both devices of each recipient.
	if sum.Delivered != 2*sum.Acked {
		t.Errorf("delivered %d, want 2 × %d acked", sum.Delivered, sum.Acked)
	}
	t.Logf("ack %s; deliver %s", sum.AckLatency, sum.DeliverLatency)
}

// TestRead runs a short load with -read: the receiving devices mark what
// they receive read, and the server answers every read request.
func TestRead(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{
		URL:        s.URL,
		AdminKey:   parleytest.AdminKey,
		Conns:      40,
		Users:      20, // two devices per user
		Contacts:   2,
		UserPrefix: "rd",
		Rate:       400,
		Warmup:     200 * time.Millisecond,
		Duration:   2 * time.Second,
		Procs:      1,
		Read:       true,
	}
	sum, err := Run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Acked == 0 || sum.Acked != sum.Sent || len(sum.Errors) > 0 {
		t.Fatalf("sent %d, acked %d, errors %v", sum.Sent, sum.Acked, sum.Errors)
	}
	// At least one read per receiving device, at most one per delivery.
	if sum.Reads < uint64(cfg.Conns)/2 || sum.Reads > sum.Delivered || sum.ReadLatency.Count != sum.Reads || sum.ReadsPerSecond <= 0 {
		t.Errorf("reads %d (%.1f/s, latency %+v) for %d deliveries", sum.Reads, sum.ReadsPerSecond, sum.ReadLatency, sum.Delivered)
	}
	var text bytes.Buffer
	sum.WriteText(&text)
	if !strings.Contains(text.String(), "reads ") {
		t.Errorf("summary:\n%s", &text)
	}
}

// TestGroups runs short group workloads against a real server, in this
// process and over child processes whose accounts of each message the
// parent merges: 10 users with two devices each in 3 groups of 5, so users
// 0-4 are in two groups and every message is due to 8 devices.
func TestGroups(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	for _, procs := range []int{1, 2} {
		t.Run("procs "+strconv.Itoa(procs), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := Config{
				URL:        s.URL,
				AdminKey:   parleytest.AdminKey,
				Conns:      20,
				Users:      10,
				UserPrefix: "grp" + strconv.Itoa(procs),
				Groups:     3,
				GroupSize:  5,
				Rate:       100,
				Warmup:     200 * time.Millisecond,
				Duration:   time.Second,
				Procs:      procs,
				Command:    []string{os.Args[0]},
			}
			var progress syncBuffer
			sum, err := Run(ctx, cfg, &progress)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, progress.String())
			}
			if sum.Connected != cfg.Conns || sum.Acked == 0 || sum.Acked != sum.Sent || len(sum.Errors) > 0 {
				t.Fatalf("connected %d, sent %d, acked %d, errors %v", sum.Connected, sum.Sent, sum.Acked, sum.Errors)
			}
			const due = 5*2 - 2 // the group's devices less the sender's two
			if sum.ExpectedDeliveries != due*sum.Acked || sum.MissingDeliveries != 0 || sum.Delivered != due*sum.Acked {
				t.Errorf("delivered %d, expected %d, missing %d; want %d × %d acked",
					sum.Delivered, sum.ExpectedDeliveries, sum.MissingDeliveries, due, sum.Acked)
			}
			last, all := sum.LastMemberLatency, sum.DeliverLatency
			if last.Count != sum.Acked || last.P50 <= 0 || last.Max != all.Max {
				t.Errorf("last member %+v, all deliveries %+v", last, all)
			}
			if sum.Received == 0 || sum.ReceivedPerSecond <= 0 {
				t.Errorf("received %d (%.1f/s)", sum.Received, sum.ReceivedPerSecond)
			}
			var text bytes.Buffer
			sum.WriteText(&text)
			if !strings.Contains(text.String(), "last member") {
				t.Errorf("summary:\n%s", &text)
			}
			t.Logf("summary:\n%s", &text)
		})
	}
}
