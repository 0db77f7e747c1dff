package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
)

// TestMain lets the test binary serve as a child process: Run starts
// children as Config.Command followed by -child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testConfig is a short test against s: 12 connections of 6 users (two
// devices each), half of them sending.
func testConfig(s *clienttest.Server) Config {
	return Config{
		URL:         s.URL,
		AdminKey:    clienttest.AdminKey,
		Conns:       12,
		Users:       6,
		Senders:     6,
		Rate:        300,
		Warmup:      200 * time.Millisecond,
		Duration:    time.Second,
		ConnectRate: 1000,
		Procs:       1,
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		procs int
	}{
		{name: "in process", procs: 1},
		{name: "child processes", procs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := clienttest.NewServer(t)
			cfg := testConfig(s)
			cfg.Procs = tt.procs
			cfg.Command = []string{os.Args[0]}
			var progress bytes.Buffer
			sum, err := Run(context.Background(), cfg, &progress)
			if err != nil {
				t.Fatalf("Run: %v\nprogress:\n%s", err, &progress)
			}
			if sum.Connected != 12 || sum.ConnectFailed != 0 || sum.Procs != tt.procs {
				t.Errorf("connected %d, failed %d over %d processes", sum.Connected, sum.ConnectFailed, sum.Procs)
			}
			if sum.Sent == 0 || sum.Acked != sum.Sent || len(sum.Errors) > 0 {
				t.Errorf("sent %d, acked %d, errors %v", sum.Sent, sum.Acked, sum.Errors)
			}
			// Every message reaches both devices of its recipient.
			if sum.Delivered != 2*sum.Acked {
				t.Errorf("delivered %d, want 2 × %d acked", sum.Delivered, sum.Acked)
			}
			if sum.AckLatency.Count != sum.Acked || sum.AckLatency.P50 <= 0 || sum.DeliverLatency.Max < sum.DeliverLatency.P99 {
				t.Errorf("latencies %+v %+v", sum.AckLatency, sum.DeliverLatency)
			}
			if sum.MeasuredSeconds < 0.9 || sum.MeasuredSeconds > 1.1 {
				t.Errorf("measured %.2fs, want 1s", sum.MeasuredSeconds)
			}
			if !strings.Contains(progress.String(), "| sent ") {
				t.Errorf("no progress lines:\n%s", &progress)
			}
			var text bytes.Buffer
			sum.WriteText(&text)
			if !strings.Contains(text.String(), "delivered") {
				t.Errorf("summary:\n%s", &text)
			}
		})
	}
}

func TestRunIdle(t *testing.T) {
	s := clienttest.NewServer(t)
	cfg := testConfig(s)
	cfg.Idle = true
	cfg.Settle = 10 * time.Millisecond
	var progress bytes.Buffer
	sum, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, &progress)
	}
	// clienttest's resident memory grows by 10 KiB per connection.
	if m := sum.Idle; m == nil || m.BytesPerConn != 10<<10 || m.GatewayConnsBefore != 0 || m.GatewayConnsAfter != 12 {
		t.Errorf("idle = %+v", sum.Idle)
	}
	if sum.Sent != 0 {
		t.Errorf("sent %d in idle mode", sum.Sent)
	}
}

func TestRunStopsEarly(t *testing.T) {
	s := clienttest.NewServer(t)
	cfg := testConfig(s)
	cfg.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var progress syncBuffer
	done := make(chan struct{})
	var sum *Summary
	var err error
	go func() {
		defer close(done)
		sum, err = Run(ctx, cfg, &progress)
	}()
	// Stop once something was measured.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(progress.String(), "[run") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if err != nil || sum.Sent == 0 || sum.MeasuredSeconds > 60 {
		t.Errorf("Run = %+v, %v", sum, err)
	}
}

func TestRunReportsErrors(t *testing.T) {
	s := clienttest.NewServer(t)
	s.OnSend(func(protocol.Send, int) clienttest.SendAction {
		return clienttest.SendAction{Err: &protocol.Error{Code: protocol.CodeForbidden, Message: "no"}}
	})
	cfg := testConfig(s)
	cfg.Duration = 300 * time.Millisecond
	sum, err := Run(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Errors["forbidden"] == 0 || sum.Acked != 0 {
		t.Errorf("errors %v, acked %d", sum.Errors, sum.Acked)
	}
}

func TestRunSetupFails(t *testing.T) {
	s := clienttest.NewServer(t)
	cfg := testConfig(s)
	cfg.AdminKey = "wrong"
	if _, err := Run(context.Background(), cfg, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("Run with a wrong admin key = %v", err)
	}
}

func TestMainJSON(t *testing.T) {
	s := clienttest.NewServer(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-url", s.URL, "-admin-key", clienttest.AdminKey, "-conns", "4", "-users", "2",
		"-duration", "300ms", "-warmup", "0s", "-rate", "40", "-procs", "1", "-json"}
	if code := Main(args, &stdout, &stderr); code != 0 {
		t.Fatalf("Main = %d\n%s", code, &stderr)
	}
	var sum Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Connected != 4 {
		t.Errorf("summary %s: %v", &stdout, err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while Run writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
