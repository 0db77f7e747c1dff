package loadgen

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"PARLEY_ADMIN_KEY": "from-env"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name  string
		args  []string
		check func(*testing.T, cli)
	}{
		{
			name: "defaults",
			args: nil,
			check: func(t *testing.T, l cli) {
				c := l.cfg
				if c.URL != "http://127.0.0.1:8080" || c.AdminKey != "from-env" || c.Conns != 100 || c.Senders != 100 ||
					c.UserPrefix != "lg" || c.Duration != 30*time.Second || c.Procs != 0 || l.json || l.child {
					t.Errorf("defaults = %+v", l)
				}
			},
		},
		{
			name: "everything",
			args: []string{"-url", "http://h:1", "-admin-key", "k", "-conns", "10", "-users", "5", "-rate", "50",
				"-senders", "0.5", "-duration", "2s", "-warmup", "1s", "-size", "10", "-sources", "127.0.0.1-127.0.0.3,127.0.0.9",
				"-procs", "2", "-idle", "-json", "-user-prefix", "x", "-connect-rate", "5", "-inflight", "2",
				"-groups", "3", "-group-size", "4"},
			check: func(t *testing.T, l cli) {
				c := l.cfg
				want := Config{URL: "http://h:1", AdminKey: "k", Conns: 10, Users: 5, UserPrefix: "x", Rate: 50, Inflight: 2,
					Senders: 5, Size: 10, Warmup: time.Second, Duration: 2 * time.Second, Idle: true, Settle: 5 * time.Second,
					ConnectRate: 5, Procs: 2, Groups: 3, GroupSize: 4}
				srcs := c.Sources
				c.Sources = nil
				if fmt.Sprint(c) != fmt.Sprint(want) || !l.json {
					t.Errorf("config = %+v\nwant %+v", c, want)
				}
				if fmt.Sprint(srcs) != "[127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.9]" {
					t.Errorf("sources = %v", srcs)
				}
			},
		},
		{
			name: "senders as a percentage",
			args: []string{"-conns", "8", "-senders", "25%"},
			check: func(t *testing.T, l cli) {
				if l.cfg.Senders != 2 {
					t.Errorf("senders = %d, want 2", l.cfg.Senders)
				}
			},
		},
		{
			name: "senders as a count",
			args: []string{"-conns", "8", "-senders", "3"},
			check: func(t *testing.T, l cli) {
				if l.cfg.Senders != 3 {
					t.Errorf("senders = %d, want 3", l.cfg.Senders)
				}
			},
		},
		{
			name: "child",
			args: []string{"-child"},
			check: func(t *testing.T, l cli) {
				if !l.child {
					t.Error("child not set")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			l, err := parseFlags(tt.args, &stderr, getenv)
			if err != nil {
				t.Fatalf("parseFlags: %v\n%s", err, &stderr)
			}
			tt.check(t, l)
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "unknown flag", args: []string{"-nope"}},
		{name: "bad senders", args: []string{"-senders", "1.5"}},
		{name: "zero senders", args: []string{"-senders", "0"}},
		{name: "bad sources", args: []string{"-sources", "127.0.0.9-127.0.0.1"}},
		{name: "stray argument", args: []string{"extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if _, err := parseFlags(tt.args, &stderr, func(string) string { return "" }); err == nil || stderr.Len() == 0 {
				t.Errorf("err = %v, stderr %q: want an error, explained", err, &stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("Main(--help) = %d, want 0", code)
	}
	help := stderr.String()
	if !strings.Contains(help, "Usage: parley loadgen") || !strings.Contains(help, "-conns") || strings.Contains(help, "-child") {
		t.Errorf("help:\n%s", help)
	}
	if _, err := parseFlags([]string{"-h"}, &stderr, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h gives %v, want flag.ErrHelp", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{URL: "http://h:1", AdminKey: "k", Conns: 4}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr bool
	}{
		{name: "ok", change: func(*Config) {}},
		{name: "no admin key", change: func(c *Config) { c.AdminKey = "" }, wantErr: true},
		{name: "ws url", change: func(c *Config) { c.URL = "ws://h:1" }, wantErr: true},
		{name: "no conns", change: func(c *Config) { c.Conns = 0 }, wantErr: true},
		{name: "more users than conns", change: func(c *Config) { c.Users = 5 }, wantErr: true},
		{name: "one user sending", change: func(c *Config) { c.Users = 1 }, wantErr: true},
		{name: "one user idle", change: func(c *Config) { c.Users, c.Idle = 1, true }},
		{name: "contacts", change: func(c *Config) { c.Contacts = 3 }},
		{name: "as many contacts as users", change: func(c *Config) { c.Contacts = 4 }, wantErr: true},
		{name: "negative contacts", change: func(c *Config) { c.Contacts = -1 }, wantErr: true},
		{name: "groups", change: func(c *Config) { c.Groups, c.GroupSize = 2, 2 }},
		{name: "groups of every user", change: func(c *Config) { c.Groups = 1 }},
		{name: "group larger than users", change: func(c *Config) { c.Groups, c.GroupSize = 1, 5 }, wantErr: true},
		{name: "group of one", change: func(c *Config) { c.Groups, c.GroupSize = 1, 1 }, wantErr: true},
		{name: "negative groups", change: func(c *Config) { c.Groups = -1 }, wantErr: true},
		{name: "groups and contacts", change: func(c *Config) { c.Groups, c.Contacts = 1, 1 }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if _, err := c.withDefaults(); (err != nil) != tt.wantErr {
				t.Errorf("withDefaults() error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestGroupLayout(t *testing.T) {
	tests := []struct {
		name                  string
		conns, users          int
		groups, size, senders int
		wantSenders           int // connections of members, the most that may send
	}{
		{name: "one group of all", conns: 10, users: 10, groups: 1, size: 10, senders: 10, wantSenders: 10},
		{name: "some users in no group", conns: 20, users: 10, groups: 2, size: 3, senders: 20, wantSenders: 12},
		{name: "groups overlap round the ring", conns: 7, users: 7, groups: 3, size: 4, senders: 2, wantSenders: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Config{URL: "http://h:1", AdminKey: "k", Conns: tt.conns, Users: tt.users,
				Groups: tt.groups, GroupSize: tt.size, Senders: tt.senders}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if c.Senders != tt.wantSenders {
				t.Errorf("senders = %d, want %d", c.Senders, tt.wantSenders)
			}
			// groupsOf agrees with groupMembers, and members() counts the
			// users in some group.
			in := make(map[[2]int]bool)
			for k := range tt.groups {
				m := groupMembers(k, tt.size, tt.users)
				if len(m) != tt.size {
					t.Errorf("group %d has %d members", k, len(m))
				}
				for _, u := range m {
					in[[2]int{u, k}] = true
				}
			}
			members := 0
			for u := range tt.users {
				gs := groupsOf(u, tt.groups, tt.size, tt.users)
				for k := range tt.groups {
					if in[[2]int{u, k}] != slices.Contains(gs, k) {
						t.Errorf("user %d in group %d: groupsOf says %v", u, k, gs)
					}
				}
				if len(gs) > 0 {
					members++
					if u >= c.members() {
						t.Errorf("user %d is in %v beyond the first %d", u, gs, c.members())
					}
				}
			}
			if members != c.members() {
				t.Errorf("%d users in groups, members() = %d", members, c.members())
			}
		})
	}
}

func TestFanoutTally(t *testing.T) {
	// 4 connections of 2 users, one group of both: a message from user 0
	// is due to user 1's two devices.
	c := &Config{Conns: 4, Users: 2, Groups: 1, GroupSize: 2}
	var tally fanoutTally
	tally.add([]deliveredMsg{{Group: 0, Seq: 1, N: 1, MaxNS: 5e6}}, []ackedMsg{{Group: 0, Seq: 1, User: 0}, {Group: 0, Seq: 2, User: 1}})
	tally.add([]deliveredMsg{{Group: 0, Seq: 1, N: 1, MaxNS: 9e6}, {Group: 0, Seq: 2, N: 1, MaxNS: 1e6}}, nil)
	r := tally.result(c)
	if r.expected != 4 || r.missing != 1 {
		t.Errorf("expected %d, missing %d; want 4, 1", r.expected, r.missing)
	}
	if r.last.n != 2 || r.last.max != 9*time.Millisecond {
		t.Errorf("last member: %d samples, max %v", r.last.n, r.last.max)
	}
}

func TestProcesses(t *testing.T) {
	tests := []struct {
		name    string
		conns   int
		procs   int
		limit   int
		want    int
		wantErr bool
	}{
		{name: "fits in one", conns: 1000, limit: 20000, want: 1},
		{name: "spread", conns: 19000, limit: 20000, want: 2},
		{name: "low limit", conns: 19000, limit: 4096, want: 5},
		{name: "unknown limit", conns: 50000, limit: 0, want: 5},
		{name: "explicit", conns: 100, procs: 3, limit: 20000, want: 3},
		{name: "explicit too few", conns: 19900, procs: 1, limit: 20000, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Conns: tt.conns, Procs: tt.procs}
			got, err := c.processes(tt.limit)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("processes() = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPeerStaysAmongContacts(t *testing.T) {
	w := &worker{job: job{Users: 10, Contacts: 3}}
	for range 200 {
		if to := w.peer(8); to != 9 && to != 0 && to != 1 {
			t.Fatalf("user 8 sent to %d, not one of its contacts 9, 0, 1", to)
		}
	}
	w.job.Contacts = 0
	for range 200 {
		if to := w.peer(4); to == 4 || to < 0 || to >= 10 {
			t.Fatalf("user 4 sent to %d", to)
		}
	}
}

func TestIsSenderSpreadsEvenly(t *testing.T) {
	for _, tt := range []struct{ senders, conns int }{{1, 10}, {3, 10}, {10, 10}, {7, 1000}} {
		n, firstHalf := 0, 0
		for i := range tt.conns {
			if isSender(i, tt.senders, tt.conns) {
				n++
				if i < tt.conns/2 {
					firstHalf++
				}
			}
		}
		if n != tt.senders || firstHalf > (tt.senders+1)/2 {
			t.Errorf("%d of %d: %d senders, %d in the first half", tt.senders, tt.conns, n, firstHalf)
		}
	}
}

func TestMakeJobs(t *testing.T) {
	c := Config{URL: "https://h:1/", Users: 2, Senders: 4, Inflight: 2, Rate: 16, ConnectRate: 100, UserPrefix: "p"}
	specs := make([]connSpec, 5)
	for i := range specs {
		specs[i].User = i
	}
	jobs := makeJobs(&c, specs, 2)
	if len(jobs[0].Conns) != 3 || len(jobs[1].Conns) != 2 || jobs[1].Conns[0].User != 1 {
		t.Errorf("connections dealt %d/%d", len(jobs[0].Conns), len(jobs[1].Conns))
	}
	// 4 senders × 2 slots sharing 16 messages/s: one message per slot every 0.5s.
	if jobs[0].Interval != 500*time.Millisecond || jobs[0].ConnectRate != 50 || jobs[0].WSURL != "wss://h:1/v1/ws" {
		t.Errorf("job = %+v", jobs[0])
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e+08
parley_gateway_connections{node="a"} 10
parley_gateway_connections{node="b",x="}"} 5 1700000000000
parley_gateway_connections_total 99
`
	got, err := parseMetrics(strings.NewReader(text), []string{metricRSS, metricConns})
	if err != nil {
		t.Fatal(err)
	}
	if got[metricRSS] != 1.2345e8 || got[metricConns] != 15 {
		t.Errorf("metrics = %v", got)
	}
	if _, err := parseMetrics(strings.NewReader("parley_gateway_connections oops\n"), []string{metricConns}); err == nil {
		t.Error("bad value accepted")
	}
}

func TestContent(t *testing.T) {
	for _, size := range []int{0, 10, 100, 3000} {
		b := appendContent(nil, 1700000000123456789, size)
		if len(b) < size || (size > 40 && len(b) != size) {
			t.Errorf("size %d: content is %d bytes", size, len(b))
		}
		if got, ok := sentAt(b); !ok || got != 1700000000123456789 {
			t.Errorf("sentAt(%.40s…) = %d, %v", b, got, ok)
		}
	}
	if got, ok := sentAt([]byte(`{"text":"x", "t": 42}`)); !ok || got != 42 {
		t.Errorf("re-encoded content: %d, %v", got, ok)
	}
	if _, ok := sentAt([]byte(`"hello"`)); ok {
		t.Error("foreign content accepted")
	}
	buf := make([]byte, 0, 200)
	if n := testing.AllocsPerRun(100, func() { buf = appendContent(buf[:0], 1, 100) }); n != 0 {
		t.Errorf("appendContent allocates %v times", n)
	}
}

func TestSourcesFlag(t *testing.T) {
	var s sources
	if err := s.Set("10.0.0.254-10.0.1.1"); err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("10.0.0.255"), netip.MustParseAddr("10.0.1.0"), netip.MustParseAddr("10.0.1.1")}
	if fmt.Sprint([]netip.Addr(s)) != fmt.Sprint(want) || s.String() != "10.0.0.254,10.0.0.255,10.0.1.0,10.0.1.1" {
		t.Errorf("sources = %v", s)
	}
}

func TestChildCommand(t *testing.T) {
	argv := []string{"/bin/parley", "loadgen", "-conns", "5"}
	if got := childCommand(argv, argv[2:]); fmt.Sprint(got) != "[/bin/parley loadgen]" {
		t.Errorf("childCommand = %v", got)
	}
	if got := childCommand(argv, []string{"-other"}); got != nil {
		t.Errorf("childCommand of foreign args = %v, want nil", got)
	}
}
