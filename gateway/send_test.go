package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// gatedStore is a message store whose commits wait until gate is closed.
type gatedStore struct {
	message.Store // unused methods panic
	gate          chan struct{}
}

func (g gatedStore) AppendMessages(_ context.Context, batch []store.NewMessage) ([]store.AppendResult, error) {
	<-g.gate
	out := make([]store.AppendResult, len(batch))
	for i, m := range batch {
		out[i].Message = store.Message{Conversation: m.Conversation, Seq: int64(i + 1), ServerID: m.ServerID, ClientID: m.ClientID, Sender: m.Sender}
	}
	return out, nil
}

type everyoneExists struct{}

func (everyoneExists) UserExists(context.Context, string) (bool, error) { return true, nil }

// TestSendsInFlightAreBoundedPerConnection checks that a connection's sends
// past maxSendsInFlight awaiting their acks are refused with unavailable,
// that the refusal answers the send's id, and that the connection may send
// again once its sends are acked.
func TestSendsInFlightAreBoundedPerConnection(t *testing.T) {
	c, client := pipeConn(t)
	c.user = "a"
	st := gatedStore{gate: make(chan struct{})}
	open := sync.OnceFunc(func() { close(st.gate) })
	c.gw.messages = message.New(message.Config{}, st, everyoneExists{}, c.gw.hub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		open() // Close waits for the commits
		c.gw.messages.Close()
	})

	frames := make(chan protocol.Frame, 2*maxSendsInFlight)
	go func() {
		for {
			f, err := readServerFrame(client)
			if err != nil {
				close(frames)
				return
			}
			var fr protocol.Frame
			if err := json.Unmarshal(f.Payload, &fr); err != nil {
				t.Errorf("frame %s: %v", f.Payload, err)
			}
			frames <- fr
		}
	}()
	send := func(id string) {
		c.gw.send(c, id, &protocol.Send{To: "b", ClientID: "cid-" + id, ContentType: "text", Content: json.RawMessage(`{}`)})
	}
	next := func() protocol.Frame {
		t.Helper()
		select {
		case f := <-frames:
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("no frame from the server")
			return protocol.Frame{}
		}
	}

	for i := range maxSendsInFlight {
		send(fmt.Sprint(i))
	}
	send("over")
	if f := next(); f.Type != protocol.TypeError || f.ID != "over" || f.Error == nil || f.Error.Code != protocol.CodeUnavailable {
		t.Fatalf("the send past the bound got %+v, want error unavailable for id over", f)
	}
	open()
	for range maxSendsInFlight {
		if f := next(); f.Type != protocol.TypeAck {
			t.Fatalf("a send within the bound got %+v, want its ack", f)
		}
	}
	send("after")
	if f := next(); f.Type != protocol.TypeAck || f.ID != "after" {
		t.Fatalf("a send once the others were acked got %+v, want its ack", f)
	}
}
