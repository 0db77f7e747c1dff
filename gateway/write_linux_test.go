package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestWriteNowReturnsWhatTheSocketDidNotTake writes more buffers than one
// writev takes, and more bytes than the socket holds, to a client that
// does not read: writeNow returns at once, and what the client then reads
// followed by what writeNow returned is everything, in order.
func TestWriteNowReturnsWhatTheSocketDidNotTake(t *testing.T) {
	server, client := narrowPair(t)

	var bufs net.Buffers
	var all bytes.Buffer
	for i := range 3 * maxIovecs {
		b := []byte(fmt.Sprintf("%06d:", i) + string(bytes.Repeat([]byte{'x'}, 1000)))
		bufs = append(bufs, b)
		all.Write(b)
	}
	rest, err := writeNow(server, bufs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 || len(rest) >= all.Len() {
		t.Fatalf("%d of %d bytes left: the socket should have taken some and not all", len(rest), all.Len())
	}
	server.Close()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), all.Bytes()) {
		t.Fatalf("read %d bytes and %d left over do not make the %d written", len(got), len(rest), all.Len())
	}
}

// TestWriteNowTakesMoreThanOneWritev writes more buffers than one writev
// takes to a client that reads: nothing is left over.
func TestWriteNowTakesMoreThanOneWritev(t *testing.T) {
	server, client := tcpPair(t)
	var bufs net.Buffers
	var all bytes.Buffer
	for i := range 3 * maxIovecs {
		b := []byte(fmt.Sprintf("%06d;", i))
		bufs = append(bufs, b)
		all.Write(b)
	}
	rest, err := writeNow(server, bufs)
	if err != nil || rest != nil {
		t.Fatalf("writeNow left %d bytes, %v; want none", len(rest), err)
	}
	server.Close()
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, all.Bytes()) {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, all.Len())
	}
}

// TestWriteNowAfterTheDeadline returns everything, and no error, when the
// socket's write deadline has passed: the caller then waits with a
// deadline of its own.
func TestWriteNowAfterTheDeadline(t *testing.T) {
	server, _ := tcpPair(t)
	server.SetWriteDeadline(time.Now().Add(-time.Second))
	rest, err := writeNow(server, net.Buffers{[]byte("ab"), []byte("cd")})
	if err != nil || string(rest) != "abcd" {
		t.Fatalf("writeNow returned %q, %v; want everything back and no error", rest, err)
	}
}
