package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// TestCrashLosesNoAcknowledgedMessage kills the server with SIGKILL while
// clients send continuously, restarts it on the same data directory, and
// checks that every acknowledged message is stored exactly once and in order,
// and that the clients reconnected and delivered everything on their own.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	const key = "crash-test-key"
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--admin-key", key, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, base)
		return cmd
	}
	srv := start()
	defer func() { srv.Process.Kill(); srv.Wait() }()

	ctx := context.Background()
	adm := &admin.Client{BaseURL: base, Key: key}
	const pairs = 4
	var mu sync.Mutex
	acked := map[string][]protocol.Ack{} // by sender, in send order
	received := map[string][]protocol.Message{}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i := range pairs {
		from, to := fmt.Sprint("s", i), fmt.Sprint("r", i)
		sender := dialCrashClient(t, adm, from, nil)
		dialCrashClient(t, adm, to, func(m protocol.Message) {
			mu.Lock()
			received[to] = append(received[to], m)
			mu.Unlock()
		})
		senders.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				ack, err := sender.Send(sctx, to, "text", json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)))
				cancel()
				if err != nil {
					t.Errorf("%s: send %d: %v", from, n, err)
					return
				}
				mu.Lock()
				acked[from] = append(acked[from], ack)
				mu.Unlock()
			}
		})
	}

	countAcked := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acked {
			n += len(a)
		}
		return n
	}
	waitUntil(t, "sends before the crash", func() bool { return countAcked() >= 200 })
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	before := countAcked()
	srv = start()
	waitUntil(t, "sends after the restart", func() bool { return countAcked() >= before+200 })
	close(stop)
	senders.Wait()

	for i := range pairs {
		from, to := fmt.Sprint("s", i), fmt.Sprint("r", i)
		mu.Lock()
		acks := append([]protocol.Ack(nil), acked[from]...)
		mu.Unlock()
		conv := acks[0].Conversation
		stored := pullAll(t, base, key, to, conv)
		// Every acknowledged message is stored once, at its acked seq, and
		// the sender's messages are in send order.
		bySeq := map[int64]protocol.Message{}
		for _, m := range stored {
			bySeq[m.Seq] = m
		}
		for j, a := range acks {
			m, ok := bySeq[a.Seq]
			if !ok || m.ClientID != a.ClientID || m.ServerID != a.ServerID {
				t.Fatalf("%s: acked message %d (seq %d) is missing or different after the crash: %+v", from, j, a.Seq, m)
			}
			if j > 0 && a.Seq <= acks[j-1].Seq {
				t.Fatalf("%s: message %d has seq %d after %d", from, j, a.Seq, acks[j-1].Seq)
			}
		}
		for j, m := range stored {
			if m.Seq != int64(j+1) {
				t.Fatalf("%s: stored seqs have a gap at %d", conv, j+1)
			}
		}
		// The receiver reconnected by itself and delivered everything once, in order.
		waitUntil(t, to+" catch-up", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(received[to]) >= len(stored)
		})
		mu.Lock()
		got := received[to]
		mu.Unlock()
		if len(got) != len(stored) {
			t.Fatalf("%s delivered %d messages, %d stored", to, len(got), len(stored))
		}
		for j, m := range got {
			if m.Seq != int64(j+1) {
				t.Fatalf("%s: delivery %d has seq %d", to, j, m.Seq)
			}
		}
	}
	t.Logf("acked %d messages, %d of them before the SIGKILL", countAcked(), before)
}

func dialCrashClient(t *testing.T, adm *admin.Client, user string, onMessage func(protocol.Message)) *client.Client {
	t.Helper()
	ctx := context.Background()
	if _, err := adm.CreateUser(ctx, admin.NewUser{ID: user}); err != nil {
		t.Fatal(err)
	}
	tok, err := adm.IssueToken(ctx, user, "linux", "d1", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Options{
		URL:        "ws" + adm.BaseURL[len("http"):] + "/v1/ws",
		Token:      tok.Token,
		OnMessage:  onMessage,
		AckTimeout: time.Second,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pullAll(t *testing.T, base, key, user, conv string) []protocol.Message {
	var all []protocol.Message
	from := int64(1)
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/conversations/%s/messages?user=%s&from=%d&limit=200", base, conv, user, from), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page protocol.Messages
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if !page.More {
			return all
		}
		from = page.Messages[len(page.Messages)-1].Seq + 1
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, base string) {
	waitUntil(t, "server ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
