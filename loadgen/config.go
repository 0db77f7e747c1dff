package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config describes a load test. URL, AdminKey and Conns are required; the
// other fields have working zero values.
type Config struct {
	URL      string // HTTP base URL of the server, e.g. http://127.0.0.1:8080
	AdminKey string // admin credential for creating users and tokens

	Conns int // WebSocket connections
	Users int // users the connections are spread over, round robin; 0 means Conns
	// Contacts, when positive, makes each user talk to that many fixed
	// peers (the next users round a ring) instead of to anyone at random,
	// so the run reuses conversations as real chat does.
	Contacts   int
	UserPrefix string // prefix of the user ids and group names; "" means "lg"

	// Groups, when positive, makes setup create that many group
	// conversations of GroupSize members each, and the senders send to
	// them instead of one-to-one: group k has users k·GroupSize onwards,
	// round the ring of Users, so with Groups·GroupSize ≥ Users every
	// user is a member of some group. Only connections of members send.
	Groups    int
	GroupSize int // members per group; 0 means Users

	Rate     float64 // messages per second in total; 0 sends as fast as Inflight allows
	Inflight int     // sends in flight per sending connection; 0 means 4
	Senders  int     // connections that send; 0 means all
	Size     int     // content bytes per message; 0 means 100

	// Read makes the receiving connections mark what they receive read, as
	// a client showing the messages does: one read request in flight per
	// connection, for the newest seq of each conversation received.
	Read bool

	Warmup   time.Duration // sending before measuring starts
	Duration time.Duration // measured sending; 0 means 30s

	// Idle connects and holds the connections without sending, then
	// measures the server's resident memory per connection after Settle
	// (0 means 5s).
	Idle   bool
	Settle time.Duration

	ConnectRate float64      // connections opened per second while ramping up; 0 is unlimited
	Sources     []netip.Addr // source addresses of connections, round robin; nil lets the system choose

	// Procs spreads the connections over that many child processes, for
	// more connections than one process may have files open. 1 keeps them
	// in this process; 0 puts at most 10,000 connections in a process,
	// within its open-file limit. Command is the argv that starts this
	// program's loadgen in child mode, less the -child flag; Main sets it.
	Procs   int
	Command []string
}

// Defaults for zero Config fields.
const (
	defaultPrefix   = "lg"
	defaultInflight = 4
	defaultSize     = 100
	defaultDuration = 30 * time.Second
	defaultSettle   = 5 * time.Second
)

// withDefaults checks c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("loadgen: url %q: want http://host:port", c.URL)
	}
	if c.AdminKey == "" {
		return c, errors.New("loadgen: no admin key (-admin-key or PARLEY_ADMIN_KEY)")
	}
	if c.Conns <= 0 {
		return c, errors.New("loadgen: conns must be positive")
	}
	if c.Users <= 0 {
		c.Users = c.Conns
	}
	if c.Users > c.Conns {
		return c, fmt.Errorf("loadgen: %d users for %d connections: some users would never connect", c.Users, c.Conns)
	}
	if c.Users < 2 && !c.Idle {
		return c, errors.New("loadgen: sending needs at least 2 users")
	}
	if c.Contacts < 0 || c.Contacts >= c.Users && c.Contacts > 0 {
		return c, fmt.Errorf("loadgen: contacts must be 0 (anyone) or fewer than the %d users", c.Users)
	}
	if c.UserPrefix == "" {
		c.UserPrefix = defaultPrefix
	}
	if c.Groups < 0 || c.GroupSize < 0 {
		return c, errors.New("loadgen: negative groups or group size")
	}
	if c.Groups > 0 {
		if c.GroupSize == 0 {
			c.GroupSize = c.Users
		}
		if c.GroupSize < 2 || c.GroupSize > c.Users {
			return c, fmt.Errorf("loadgen: group size must be from 2 to the %d users", c.Users)
		}
		if c.Contacts > 0 {
			return c, errors.New("loadgen: contacts are for one-to-one runs, not with groups")
		}
	}
	if c.Inflight <= 0 {
		c.Inflight = defaultInflight
	}
	if most := c.senderConns(); c.Senders <= 0 || c.Senders > most {
		c.Senders = most
	}
	if c.Size <= 0 {
		c.Size = defaultSize
	}
	if c.Duration <= 0 {
		c.Duration = defaultDuration
	}
	if c.Settle <= 0 {
		c.Settle = defaultSettle
	}
	if c.Rate < 0 || c.ConnectRate < 0 || c.Warmup < 0 || c.Procs < 0 {
		return c, errors.New("loadgen: negative rate, warmup or procs")
	}
	return c, nil
}

// members returns how many users, from user 0 on, belong to some group.
func (c *Config) members() int {
	if c.Groups == 0 {
		return c.Users
	}
	return min(c.Users, c.Groups*c.GroupSize)
}

// senderConns returns how many connections may send: all of them, or with
// groups those of group members.
func (c *Config) senderConns() int {
	m := c.members()
	// Connection i belongs to user i mod Users.
	return c.Conns/c.Users*m + min(c.Conns%c.Users, m)
}

// senders is the -senders flag: a fraction of the connections ("0.5",
// "50%", "1.0") or a count ("100").
type senders struct {
	fraction float64 // used when count is 0
	count    int
}

func (s *senders) String() string {
	if s.count > 0 {
		return strconv.Itoa(s.count)
	}
	return strconv.FormatFloat(s.fraction, 'f', -1, 64)
}

func (s *senders) Set(v string) error {
	switch {
	case strings.HasSuffix(v, "%"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || f <= 0 || f > 100 {
			return fmt.Errorf("want a percentage in (0, 100]")
		}
		*s = senders{fraction: f / 100}
	case strings.ContainsAny(v, ".eE"):
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			return fmt.Errorf("want a fraction in (0, 1]")
		}
		*s = senders{fraction: f}
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive count, or a fraction with a decimal point")
		}
		*s = senders{count: n}
	}
	return nil
}

// resolve returns the number of sending connections out of conns.
func (s *senders) resolve(conns int) int {
	if s.count > 0 {
		return min(s.count, conns)
	}
	return max(1, int(math.Round(s.fraction*float64(conns))))
}

// sources is the -sources flag: comma-separated IPv4 addresses or ranges
// such as 127.0.0.1-127.0.0.8.
type sources []netip.Addr

func (s *sources) String() string {
	parts := make([]string, len(*s))
	for i, a := range *s {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

func (s *sources) Set(v string) error {
	var out []netip.Addr
	for part := range strings.SplitSeq(v, ",") {
		first, last, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := netip.ParseAddr(first)
		if err != nil {
			return err
		}
		hi := lo
		if isRange {
			if hi, err = netip.ParseAddr(last); err != nil {
				return err
			}
		}
		if hi.Less(lo) || lo.Is4() != hi.Is4() {
			return fmt.Errorf("bad range %s", part)
		}
		for a := lo; ; a = a.Next() {
			out = append(out, a)
			if a == hi {
				break
			}
			if len(out) > 1<<16 {
				return fmt.Errorf("range %s is too large", part)
			}
		}
	}
	*s = out
	return nil
}

// usage is printed above the flags by -help.
const usage = `Usage: parley loadgen [flags]

Creates users and tokens over the admin REST API, opens WebSocket connections
(spread over child processes with -procs), has senders send one-to-one
messages to random other users, and reports throughput and the send→ack and
send→deliver latencies, every second on stderr and in a summary on stdout.
With -groups the senders send to group conversations instead, and the
summary adds deliveries per second and the time to a message's last member.
With -idle it only holds the connections and reports the server's resident
memory per connection.

Flags:
`

// cli is what Main's arguments ask for.
type cli struct {
	cfg        Config
	json       bool   // print the summary as JSON
	child      bool   // run as a child process, reading the job from stdin
	cpuProfile string // write the load generator's own CPU profile here
}

// parseFlags parses Main's arguments. -help yields flag.ErrHelp after
// printing usage.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (cli, error) {
	var (
		l cli
		c = &l.cfg
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		snd = senders{fraction: 1}
		src sources
	)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "HTTP base `URL` of the server")
	fs.StringVar(&c.AdminKey, "admin-key", "", "admin `key` for the REST API (default $PARLEY_ADMIN_KEY)")
	fs.IntVar(&c.Conns, "conns", 100, "WebSocket `connections`")
	fs.IntVar(&c.Contacts, "contacts", 0, "each user sends to this many fixed `peers` (0: to any user at random, so most messages open a new conversation)")
	fs.IntVar(&c.Users, "users", 0, "`users` the connections are spread over, round robin; more connections than users means several devices per user (default conns)")
	fs.StringVar(&c.UserPrefix, "user-prefix", defaultPrefix, "`prefix` of the user ids and group names; runs at once against one server need different ones")
	fs.IntVar(&c.Groups, "groups", 0, "send to this many group `conversations` instead of one-to-one; group k has users k×group-size onwards, round the users")
	fs.IntVar(&c.GroupSize, "group-size", 0, "`members` per group (default users)")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per `second` in total; 0 sends flat out, bounded by -inflight")
	fs.IntVar(&c.Inflight, "inflight", defaultInflight, "sends in flight per sending connection")
	fs.Var(&snd, "senders", "connections that send: a fraction (0.5, 50%) or a count (100)")
	fs.DurationVar(&c.Duration, "duration", defaultDuration, "measured sending `time`")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "sending `time` before measuring")
	fs.IntVar(&c.Size, "size", defaultSize, "content `bytes` per message")
	fs.BoolVar(&c.Read, "read", false, "receiving connections mark what they receive read, one read request in flight per connection")
	fs.Var(&src, "sources", "source `addresses` of connections, round robin, e.g. 127.0.0.1-127.0.0.8 (each gives ~28k ports)")
	fs.IntVar(&c.Procs, "procs", 0, "child `processes` to spread connections over; 1 keeps them in this process; 0 picks (at most 10,000 connections per process)")
	fs.BoolVar(&c.Idle, "idle", false, "hold connections without sending and report the server's memory per connection")
	fs.DurationVar(&c.Settle, "settle", defaultSettle, "with -idle, `time` to wait after connecting before reading memory")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 1000, "connections per `second` while ramping up; 0 is unlimited")
	fs.BoolVar(&l.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&l.child, "child", false, "run as a child process (internal)")
	fs.StringVar(&l.cpuProfile, "cpuprofile", "", "write this process's CPU profile to `file` (the load generator's own cost; with -procs 1 it holds every connection)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "child" {
				return
			}
			name, text := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  -%s %s\n    \t%s", f.Name, name, text)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return l, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("loadgen: unexpected arguments %q", fs.Args())
		fmt.Fprintln(stderr, err)
		return l, err
	}
	if c.AdminKey == "" {
		c.AdminKey = getenv("PARLEY_ADMIN_KEY")
	}
	c.Senders = snd.resolve(c.Conns)
	c.Sources = src
	return l, nil
}
