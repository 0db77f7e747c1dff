package loadgen

import (
	"context"
	"os"
	"strconv"
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
