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
	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
)

// TestCrashLosesNoAcknowledgedMessage kills the server with SIGKILL while
// clients send continuously, to one-to-one conversations and to a group,
// restarts it on the same data directory, and checks that every
// acknowledged message is stored exactly once and in order, and that the
// clients reconnected and delivered everything on their own, group members
// included.
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
	const group = "g:crash"
	var mu sync.Mutex
	acked := map[string][]protocol.Ack{}      // one-to-one, by sender, in send order
	groupAcked := map[string][]protocol.Ack{} // to the group, by sender, in send order
	received := map[string][]protocol.Message{}
	// record keeps what user's client delivers in conv.
	record := func(user, conv string) func(protocol.Message) {
		return func(m protocol.Message) {
			if m.Conversation == conv {
				mu.Lock()
				received[user] = append(received[user], m)
				mu.Unlock()
			}
		}
	}
	var groupMembers []string
	for i := range pairs {
		groupMembers = append(groupMembers, fmt.Sprint("s", i))
	}
	readers := []string{"m0", "m1"} // in the group only to read
	for _, u := range append(groupMembers, readers...) {
		if _, err := adm.CreateUser(ctx, admin.NewUser{ID: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.CreateGroup(ctx, "crash", append(groupMembers, readers...)); err != nil {
		t.Fatal(err)
	}
	for _, u := range readers {
		dialCrashClient(t, adm, u, record(u, group))
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i := range pairs {
		from, to := fmt.Sprint("s", i), fmt.Sprint("r", i)
		sender := dialCrashClient(t, adm, from, nil)
		dialCrashClient(t, adm, to, record(to, conversation.DirectID(from, to)))
		senders.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				content := json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
				var ack protocol.Ack
				var err error
				if n%2 == 0 {
					ack, err = sender.Send(sctx, to, "text", content)
				} else {
					ack, err = sender.SendTo(sctx, group, "text", content)
				}
				cancel()
				if err != nil {
					t.Errorf("%s: send %d: %v", from, n, err)
					return
				}
				mu.Lock()
				if n%2 == 0 {
					acked[from] = append(acked[from], ack)
				} else {
					groupAcked[from] = append(groupAcked[from], ack)
				}
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
		for _, a := range groupAcked {
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

	// checkStored checks that every acknowledged message of each sender is
	// stored once, at its acked seq, in send order, and that the stored seqs
	// have no gap.
	checkStored := func(conv string, stored []protocol.Message, acksBySender map[string][]protocol.Ack) {
		bySeq := map[int64]protocol.Message{}
		for _, m := range stored {
			bySeq[m.Seq] = m
		}
		for from, acks := range acksBySender {
			for j, a := range acks {
				m, ok := bySeq[a.Seq]
				if !ok || m.ClientID != a.ClientID || m.ServerID != a.ServerID || m.From != from {
					t.Fatalf("%s: %s's acked message %d (seq %d) is missing or different after the crash: %+v", conv, from, j, a.Seq, m)
				}
				if j > 0 && a.Seq <= acks[j-1].Seq {
					t.Fatalf("%s: %s's message %d has seq %d after %d", conv, from, j, a.Seq, acks[j-1].Seq)
				}
			}
		}
		for j, m := range stored {
			if m.Seq != int64(j+1) {
				t.Fatalf("%s: stored seqs have a gap at %d", conv, j+1)
			}
		}
	}
	// checkDelivered checks that user's client reconnected by itself and
	// delivered every stored message once, in order.
	checkDelivered := func(user string, stored []protocol.Message) {
		waitUntil(t, user+" catch-up", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(received[user]) >= len(stored)
		})
		mu.Lock()
		got := received[user]
		mu.Unlock()
		if len(got) != len(stored) {
			t.Fatalf("%s delivered %d messages, %d stored", user, len(got), len(stored))
		}
		for j, m := range got {
			if m.Seq != int64(j+1) {
				t.Fatalf("%s: delivery %d has seq %d", user, j, m.Seq)
			}
		}
	}
	// The senders have stopped: the acks no longer change.
	for i := range pairs {
		from, to := fmt.Sprint("s", i), fmt.Sprint("r", i)
		conv := conversation.DirectID(from, to)
		stored := pullAll(t, base, key, to, conv)
		checkStored(conv, stored, map[string][]protocol.Ack{from: acked[from]})
		checkDelivered(to, stored)
	}
	stored := pullAll(t, base, key, readers[0], group)
	checkStored(group, stored, groupAcked)
	for _, u := range readers {
		checkDelivered(u, stored)
	}
	t.Logf("acked %d messages, %d of them before the SIGKILL; %d in the group", countAcked(), before, len(stored))
}

func dialCrashClient(t *testing.T, adm *admin.Client, user string, onMessage func(protocol.Message)) *client.Client {
	t.Helper()
	ctx := context.Background()
	if _, err := adm.CreateUser(ctx, admin.NewUser{ID: user}); err != nil && protocol.AsError(err).Code != protocol.CodeAlreadyExists {
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
