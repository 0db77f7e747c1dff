// Command chat is a minimal terminal chat client built on the Go SDK: it
// prints every message of the user's conversations (history first, then live
// ones) and sends each line typed on standard input to one peer.
//
//	go run ./examples/chat -token "$ALICE_TOKEN" -to bob
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/v1/ws", "WebSocket URL of the server")
	token := flag.String("token", os.Getenv("PARLEY_TOKEN"), "device token (env PARLEY_TOKEN)")
	to := flag.String("to", "", "user to send the lines typed to")
	flag.Parse()
	if *token == "" {
		fmt.Fprintln(os.Stderr, "chat: -token is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c, err := client.Dial(ctx, client.Options{
		URL:   *url,
		Token: *token,
		OnMessage: func(m protocol.Message) {
			var body struct{ Text string }
			json.Unmarshal(m.Content, &body)
			fmt.Printf("[%s #%d] %s: %s\n", time.UnixMilli(m.Time).Format("15:04:05"), m.Seq, m.From, body.Text)
		},
		OnEvent: func(ev client.Event) {
			switch ev := ev.(type) {
			case client.Disconnected:
				fmt.Fprintf(os.Stderr, "-- disconnected: %v\n", ev.Err)
			case client.Connected:
				fmt.Fprintf(os.Stderr, "-- connected as %s\n", ev.Hello.User)
			case client.Kicked:
				fmt.Fprintf(os.Stderr, "-- kicked: %s\n", ev.Kick.Message)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	defer c.Close()

	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if *to == "" {
			fmt.Fprintln(os.Stderr, "chat: start with -to USER to send")
			continue
		}
		content, _ := json.Marshal(map[string]string{"text": lines.Text()})
		if _, err := c.Send(ctx, *to, "text", content); err != nil {
			fmt.Fprintln(os.Stderr, "chat: send:", err)
		}
	}
	// Standard input ended: every line was acknowledged, so leave. To only
	// listen, keep standard input open (run without redirecting it).
}
