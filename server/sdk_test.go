package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// inbox records what an SDK client delivers, and checks the SDK's promise:
// per conversation, seqs arrive exactly once and in order.
type inbox struct {
	t    testing.TB
	mu   sync.Mutex
	msgs map[string][]protocol.Message
	last map[string]int64
}

func newInbox(t testing.TB) *inbox {
	return &inbox{t: t, msgs: map[string][]protocol.Message{}, last: map[string]int64{}}
}

func (in *inbox) add(m protocol.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if m.Seq != in.last[m.Conversation]+1 {
		in.t.Errorf("conversation %s: got seq %d after %d", m.Conversation, m.Seq, in.last[m.Conversation])
	}
	in.last[m.Conversation] = m.Seq
	in.msgs[m.Conversation] = append(in.msgs[m.Conversation], m)
}

func (in *inbox) count(conv string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs[conv])
}

// messages returns a copy of what was delivered in conv.
func (in *inbox) messages(conv string) []protocol.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs[conv])
}

func (in *inbox) waitFor(conv string, n int) {
	in.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for in.count(conv) < n {
		if time.Now().After(deadline) {
			in.t.Fatalf("conversation %s: %d of %d messages delivered", conv, in.count(conv), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// switchableDialer lets a test cut a client's connection and hold it offline.
type switchableDialer struct {
	mu     sync.Mutex
	conn   net.Conn
	online chan struct{} // closed when dialing may proceed; nil at first
}

func (d *switchableDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	online := d.online
	d.mu.Unlock()
	if online != nil {
		select {
		case <-online:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, err
}

// cut drops the connection and keeps the client offline until restore.
func (d *switchableDialer) cut() {
	d.mu.Lock()
	d.online = make(chan struct{})
	d.conn.Close()
	d.mu.Unlock()
}

func (d *switchableDialer) restore() {
	d.mu.Lock()
	close(d.online)
	d.mu.Unlock()
}

func dialSDK(t *testing.T, s *parleytest.Server, token string, in *inbox, configure func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{URL: s.WSURL, Token: token, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	if in != nil {
		o.OnMessage = in.add
	}
	if configure != nil {
		configure(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatalf("sdk dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOfflineDeviceCatchesUpAfterBurst(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := dialSDK(t, s, s.User(t, "alice", "web", "a1"), nil, nil)
	online, away := newInbox(t), newInbox(t)
	dialSDK(t, s, s.User(t, "bob", "ios", "b1"), online, nil)
	var sw switchableDialer
	dialSDK(t, s, s.User(t, "bob", "macos", "b2"), away, func(o *client.Options) { o.NetDial = sw.dial })

	ctx := context.Background()
	first, err := alice.Send(ctx, "bob", "text", json.RawMessage(`{"n":0}`))
	if err != nil {
		t.Fatal(err)
	}
	conv := first.Conversation
	away.waitFor(conv, 1)

	sw.cut()
	const burst = 300
	var wg sync.WaitGroup
	for i := 1; i <= burst; i++ {
		wg.Go(func() {
			if _, err := alice.Send(ctx, "bob", "text", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	online.waitFor(conv, burst+1)
	if n := away.count(conv); n != 1 {
		t.Fatalf("offline device received %d messages", n)
	}
	sw.restore()
	away.waitFor(conv, burst+1)
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	if n := away.count(conv); n != burst+1 {
		t.Fatalf("device that was away delivered %d messages, want %d", n, burst+1)
	}
	// Both devices saw the same messages in the same order.
	awayMsgs := away.messages(conv)
	for i, m := range online.messages(conv) {
		if awayMsgs[i].ServerID != m.ServerID {
			t.Fatalf("message %d differs between devices", i)
		}
	}
}

func TestRestartedAppResumesFromItsPositions(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	alice := dialSDK(t, s, s.User(t, "alice", "web", "a1"), nil, nil)
	bobTok := s.User(t, "bob", "ios", "b1")
	first := newInbox(t)
	bob := dialSDK(t, s, bobTok, first, nil)
	ctx := context.Background()
	var conv string
	for i := range 5 {
		ack, err := alice.Send(ctx, "bob", "text", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		conv = ack.Conversation
	}
	first.waitFor(conv, 5)
	positions := bob.Positions()
	bob.Close()
	for i := 5; i < 8; i++ {
		if _, err := alice.Send(ctx, "bob", "text", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	second := newInbox(t)
	second.last[conv] = positions[conv]
	dialSDK(t, s, bobTok, second, func(o *client.Options) { o.Positions = positions })
	second.waitFor(conv, 3)
	if got := second.messages(conv)[0].Seq; got != 6 {
		t.Fatalf("resumed at seq %d, want 6", got)
	}
}

func TestClearReachesTheUsersOtherDevices(t *testing.T) {
	s := parleytest.NewServer(t, nil)
	a1, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "web", "a1"))
	a2, _ := parleytest.Dial(t, s.WSURL, s.User(t, "alice", "ios", "a2"))
	changed := make(chan protocol.Conversation, 1)
	dialSDK(t, s, s.User(t, "alice", "macos", "a3"), nil, func(o *client.Options) {
		o.OnConversation = func(c protocol.Conversation) { changed <- c }
	})
	s.User(t, "bob", "web", "b1")
	var ack protocol.Ack
	a1.Request(t, protocol.TypeSend, "s", send("bob", "c1", "hi"))
	a1.Expect(t, protocol.TypeAck, &ack)
	a2.Expect(t, protocol.TypeMessage, nil)

	a1.Request(t, protocol.TypeClear, "c", protocol.Clear{Conversation: ack.Conversation})
	a1.Expect(t, protocol.TypeOK, nil)
	var pushed protocol.Conversation
	a2.Expect(t, protocol.TypeConversation, &pushed)
	if pushed.ID != ack.Conversation || pushed.MinSeq != 2 {
		t.Fatalf("pushed = %+v", pushed)
	}
	select {
	case c := <-changed:
		if c.MinSeq != 2 {
			t.Fatalf("SDK got %+v", c)
		}
	case <-time.After(wait):
		t.Fatal("the SDK did not report the cleared conversation")
	}
	a1.Quiet(t, 100*time.Millisecond) // the clearing device has its reply only
}
