package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/protocol"
)

// setupConcurrency bounds the REST requests in flight during setup.
const setupConcurrency = 32

// platforms are given to a user's devices in turn, so that a user's
// devices differ in platform as a login policy may require.
var platforms = []string{"ios", "android", "windows", "macos", "linux", "web", "ipad"}

// target is the server under load: its admin REST API, for setup, and its
// metrics.
type target struct {
	api  *admin.Client
	http *http.Client
}

func newTarget(base, key string) *target {
	hc := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: setupConcurrency},
	}
	return &target{api: &admin.Client{BaseURL: strings.TrimSuffix(base, "/"), Key: key, HTTP: hc}, http: hc}
}

// createUser creates user id; a user that exists already is fine.
func (t *target) createUser(ctx context.Context, id string) error {
	_, err := t.api.CreateUser(ctx, admin.NewUser{ID: id, Nickname: id})
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeAlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", id, err)
	}
	return nil
}

// mintToken returns a token for user's device.
func (t *target) mintToken(ctx context.Context, user, platform, device string, ttl time.Duration) (string, error) {
	tok, err := t.api.IssueToken(ctx, user, platform, device, ttl)
	if err != nil {
		return "", fmt.Errorf("mint token for %s/%s: %w", user, device, err)
	}
	return tok.Token, nil
}

// userName returns the id of user i.
func userName(prefix string, i int) string {
	return prefix + "-" + strconv.Itoa(i)
}

// groupName returns the name of group k; its conversation is "g:" and the
// name.
func groupName(prefix string, k int) string {
	return prefix + "-g" + strconv.Itoa(k)
}

// groupMembers returns the indexes of the users in group k: size users
// from k·size on, round the ring of users.
func groupMembers(k, size, users int) []int {
	m := make([]int, size)
	for j := range m {
		m[j] = (k*size + j) % users
	}
	return m
}

// groupsOf returns the groups user u belongs to.
func groupsOf(u, groups, size, users int) []int {
	var out []int
	for k := range groups {
		if (u-k*size%users+users)%users < size {
			out = append(out, k)
		}
	}
	return out
}

// createGroup creates group k with its members in one request. A group
// left by an earlier run with the same prefix is fine if it has as many
// members.
func (t *target) createGroup(ctx context.Context, c *Config, k int) error {
	name := groupName(c.UserPrefix, k)
	members := groupMembers(k, c.GroupSize, c.Users)
	ids := make([]string, len(members))
	for j, u := range members {
		ids[j] = userName(c.UserPrefix, u)
	}
	_, err := t.api.CreateGroup(ctx, name, ids)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeAlreadyExists {
		if err != nil {
			return fmt.Errorf("create group %s: %w", name, err)
		}
		return nil
	}
	g, err := t.api.Group(ctx, name)
	if err != nil {
		return fmt.Errorf("read group %s: %w", name, err)
	}
	if g.Members != len(ids) {
		return fmt.Errorf("group %s exists with %d members, want %d: use another -user-prefix", name, g.Members, len(ids))
	}
	return nil
}

// setup creates the users and groups and mints one token per connection.
// Connection i belongs to user i mod Users, as device i div Users of that
// user.
func setup(ctx context.Context, c *Config, a *target) ([]connSpec, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupConcurrency)
	for i := range c.Users {
		g.Go(func() error { return a.createUser(gctx, userName(c.UserPrefix, i)) })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("loadgen: setup: %w", err)
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupConcurrency)
	for k := range c.Groups {
		g.Go(func() error { return a.createGroup(gctx, c, k) })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("loadgen: setup: %w", err)
	}
	ttl := time.Hour + 2*(c.Warmup+c.Duration)
	specs := make([]connSpec, c.Conns)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupConcurrency)
	members, eligible, mayN := c.members(), 0, c.senderConns()
	for i := range specs {
		user, dev := i%c.Users, i/c.Users
		specs[i] = connSpec{User: user}
		if user < members {
			// Senders spread evenly over the connections that may send.
			specs[i].Sender = isSender(eligible, c.Senders, mayN)
			eligible++
		}
		if len(c.Sources) > 0 {
			specs[i].Source = c.Sources[i%len(c.Sources)].String()
		}
		g.Go(func() error {
			tok, err := a.mintToken(gctx, userName(c.UserPrefix, user), platforms[dev%len(platforms)], "dev-"+strconv.Itoa(dev), ttl)
			specs[i].Token = tok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("loadgen: setup: %w", err)
	}
	return specs, nil
}

// isSender reports whether connection i is one of the senders, spreading
// the senders evenly over the connections.
func isSender(i, senders, conns int) bool {
	return (i+1)*senders/conns > i*senders/conns
}

// scrapeMetrics reads the server's Prometheus text metrics and returns the
// value of each named metric, summed over its label sets.
func (t *target) scrapeMetrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.api.BaseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := t.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadgen: metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadgen: metrics: HTTP %s", res.Status)
	}
	out, err := parseMetrics(res.Body, names)
	if err != nil {
		return nil, fmt.Errorf("loadgen: metrics: %w", err)
	}
	return out, nil
}

// parseMetrics extracts the named metrics from Prometheus text format.
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line+" ", "{ ")]
		if !slices.Contains(names, name) {
			continue
		}
		// name{labels} value [timestamp], or name value [timestamp]
		rest := line[len(name):]
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated labels in %q", line)
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %w", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}
