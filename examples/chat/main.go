// Command chat is a minimal terminal chat client built on the Go SDK: it
// prints every message of the user's conversations, with the conversation id
// and seq, and sends each line typed on standard input to one peer (-to) or
// into a group or other conversation of the user's (-conv).
//
//	go run ./examples/chat -token "$ALICE" -to bob
//	go run ./examples/chat -token "$ALICE" -conv g:team
//
// It keeps its positions (the last seq it printed per conversation) in a
// small state file per server, user and device, so a restarted client prints
// only what it missed. With standard input redirected it sends every line,
// waits until the server has echoed each one back, and exits. Ctrl-C stops it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/v1/ws", "WebSocket `URL` of the server")
	flag.StringVar(&cfg.token, "token", os.Getenv("PARLEY_TOKEN"), "device `token` (env PARLEY_TOKEN)")
	flag.StringVar(&cfg.to, "to", "", "`user` to send the lines typed to")
	flag.StringVar(&cfg.conv, "conv", "", "instead of -to: the `conversation` (such as g:team) to send the lines typed to")
	flag.StringVar(&cfg.state, "state", "", "state `file` keeping the positions (default: one per server, user and device in "+defaultStateDir()+")")
	flag.DurationVar(&cfg.echoWait, "echo-wait", 10*time.Second, "how long to wait, once standard input ends, for the sent lines to come back")
	flag.Parse()
	if cfg.token == "" {
		fmt.Fprintln(os.Stderr, "chat: -token is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := chat(ctx, cfg, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

type config struct {
	url, token, to string
	conv           string        // a conversation to send to, instead of to
	state          string        // empty: defaultStateDir()/<server>_<user>_<device>.json
	echoWait       time.Duration // how long to wait for the echoes of sent lines after stdin ends
}

// chat runs the client until ctx ends, or until in ends and every line sent
// has come back.
func chat(ctx context.Context, cfg config, in io.Reader, out, errOut io.Writer) error {
	who, convs, err := probe(ctx, cfg)
	if err != nil {
		return err
	}
	path := cfg.state
	if path == "" {
		path = defaultStatePath(cfg.url, who)
	}
	st, err := loadState(path)
	if err != nil {
		return err
	}
	if stale := st.dropStale(convs); len(stale) > 0 {
		fmt.Fprintf(errOut, "-- %s is ahead of the server in %s (a new data directory?): showing their history again\n", path, strings.Join(stale, ", "))
	}
	c, err := client.Dial(ctx, client.Options{
		URL:       cfg.url,
		Token:     cfg.token,
		Positions: st.positions(),
		OnMessage: func(m protocol.Message) {
			stamp := fmt.Sprintf("[%s %s #%d]", time.UnixMilli(m.Time).Format("15:04:05"), m.Conversation, m.Seq)
			if m.ContentType == protocol.GroupEventType {
				var ev protocol.GroupEvent
				json.Unmarshal(m.Content, &ev)
				fmt.Fprintf(out, "%s * %s\n", stamp, ev)
			} else {
				var body struct{ Text string }
				json.Unmarshal(m.Content, &body)
				fmt.Fprintf(out, "%s %s: %s\n", stamp, m.From, body.Text)
			}
			if err := st.advance(m.Conversation, m.Seq); err != nil {
				fmt.Fprintln(errOut, "chat: save state:", err)
			}
		},
		OnEvent: func(ev client.Event) {
			switch ev := ev.(type) {
			case client.Disconnected:
				fmt.Fprintf(errOut, "-- disconnected: %v\n", ev.Err)
			case client.Connected:
				fmt.Fprintf(errOut, "-- connected as %s (%s)\n", ev.Hello.User, ev.Hello.Device)
			case client.Kicked:
				fmt.Fprintf(errOut, "-- kicked: %s\n", ev.Kick.Message)
			}
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while connecting
		}
		return err
	}
	defer c.Close()

	// Standard input is read on its own goroutine, which may stay blocked in
	// Read after chat returns (on a terminal, until the next line): the
	// process exits then.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil // Ctrl-C: the positions are saved as messages print
		case <-c.Done():
			return c.Err()
		case line, ok := <-lines:
			if !ok {
				return waitEchoes(ctx, c, st, cfg.echoWait)
			}
			if cfg.to == "" && cfg.conv == "" {
				fmt.Fprintln(errOut, "chat: start with -to USER or -conv CONVERSATION to send")
				continue
			}
			content, _ := json.Marshal(map[string]string{"text": line})
			var ack protocol.Ack
			var err error
			if cfg.conv != "" {
				ack, err = c.SendTo(ctx, cfg.conv, "text", content)
			} else {
				ack, err = c.Send(ctx, cfg.to, "text", content)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				fmt.Fprintln(errOut, "chat: send:", err)
				continue
			}
			st.expect(ack.Conversation, ack.Seq)
		}
	}
}

// waitEchoes waits until every acknowledged send has been printed (the SDK
// delivers one's own messages to OnMessage once acknowledged), for at most d.
func waitEchoes(ctx context.Context, c *client.Client, st *state, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	select {
	case <-st.echoed():
		return nil
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("sent lines not echoed back within %v", d)
		}
		return nil
	}
}

// defaultStateDir is where state files go unless -state names one.
func defaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "parley-chat")
}

// probe asks the server who the token belongs to (tokens are opaque) and
// what conversations the user has, on a short first connection that skips
// all history.
func probe(ctx context.Context, cfg config) (protocol.Hello, []protocol.Conversation, error) {
	c, err := client.Dial(ctx, client.Options{URL: cfg.url, Token: cfg.token, StartAtLatest: true})
	if err != nil {
		return protocol.Hello{}, nil, err
	}
	defer c.Close()
	convs, err := c.Conversations(ctx, 0)
	return c.Hello(), convs.Conversations, err
}

// defaultStatePath names the state file of the user and device of hello on
// the server at wsURL.
func defaultStatePath(wsURL string, hello protocol.Hello) string {
	server := wsURL
	if u, err := url.Parse(wsURL); err == nil {
		server = u.Host
	}
	clean := strings.NewReplacer("/", "-", ":", "-", "\\", "-", "..", "-")
	name := clean.Replace(server) + "_" + clean.Replace(hello.User) + "_" + clean.Replace(hello.Device) + ".json"
	return filepath.Join(defaultStateDir(), name)
}

// state is the client's positions, saved to a file at every change, and
// the seqs of its own sends it still waits to see.
type state struct {
	path string

	mu      sync.Mutex
	pos     map[string]int64 // guarded by mu: last printed seq per conversation
	want    map[string]int64 // guarded by mu: highest acknowledged own seq per conversation
	waiters chan struct{}    // guarded by mu: closed when pos reaches want
}

func loadState(path string) (*state, error) {
	st := &state{path: path, pos: map[string]int64{}, want: map[string]int64{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var f struct {
		Positions map[string]int64 `json:"positions"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("state %s: %w (delete it to start over)", path, err)
	}
	for k, v := range f.Positions {
		st.pos[k] = v
	}
	return st, nil
}

func (s *state) positions() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.pos))
	for k, v := range s.pos {
		out[k] = v
	}
	return out
}

// dropStale forgets positions beyond what the server has (a state file
// older than the server's data) and returns their conversations.
func (s *state) dropStale(convs []protocol.Conversation) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	maxSeq := make(map[string]int64, len(convs))
	for _, c := range convs {
		maxSeq[c.ID] = c.MaxSeq
	}
	var stale []string
	for conv, seq := range s.pos {
		if seq > maxSeq[conv] {
			stale = append(stale, conv)
			delete(s.pos, conv)
		}
	}
	return stale
}

// advance records that seq of conv was printed and saves the file.
func (s *state) advance(conv string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[conv] = max(s.pos[conv], seq)
	s.notifyLocked()
	raw, _ := json.MarshalIndent(struct {
		Positions map[string]int64 `json:"positions"`
	}{s.pos}, "", "  ")
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// expect records an own send acknowledged with seq in conv.
func (s *state) expect(conv string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want[conv] = max(s.want[conv], seq)
}

// echoed returns a channel closed once every expected seq was printed.
func (s *state) echoed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters == nil {
		s.waiters = make(chan struct{})
	}
	s.notifyLocked()
	return s.waiters
}

func (s *state) notifyLocked() {
	if s.waiters == nil {
		return
	}
	for conv, seq := range s.want {
		if s.pos[conv] < seq {
			return
		}
	}
	select {
	case <-s.waiters:
	default:
		close(s.waiters)
	}
}
