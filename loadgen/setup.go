package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleyim/parley/protocol"
)

// setupConcurrency bounds the REST requests in flight during setup.
const setupConcurrency = 32

// platforms are given to a user's devices in turn, so that a user's
// devices differ in platform as a login policy may require.
var platforms = []string{"ios", "android", "windows", "macos", "linux", "web", "ipad"}

// admin calls the server's admin REST API.
type admin struct {
	base string
	key  string
	http *http.Client
}

func newAdmin(base, key string) *admin {
	return &admin{
		base: strings.TrimSuffix(base, "/"),
		key:  key,
		http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: setupConcurrency},
		},
	}
}

// do sends a request with the admin credential and decodes a JSON reply
// into out; a reply with another status than want becomes its
// *protocol.Error.
func (a *admin) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		var e struct {
			Error *protocol.Error `json:"error"`
		}
		if json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&e) == nil && e.Error != nil {
			return e.Error
		}
		return fmt.Errorf("HTTP %s", res.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// createUser creates user id; a user that exists already is fine.
func (a *admin) createUser(ctx context.Context, id string) error {
	err := a.do(ctx, http.MethodPost, "/v1/users", map[string]string{"id": id, "nickname": id}, http.StatusCreated, nil)
	if pe, ok := err.(*protocol.Error); ok && pe.Code == protocol.CodeAlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", id, err)
	}
	return nil
}

// mintToken returns a token for user's device.
func (a *admin) mintToken(ctx context.Context, user, platform, device string, ttl time.Duration) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	body := map[string]any{"platform": platform, "device": device, "ttl_seconds": int64(ttl / time.Second)}
	if err := a.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/tokens", body, http.StatusOK, &out); err != nil {
		return "", fmt.Errorf("mint token for %s/%s: %w", user, device, err)
	}
	return out.Token, nil
}

// userName returns the id of user i.
func userName(prefix string, i int) string {
	return prefix + "-" + strconv.Itoa(i)
}

// setup creates the users and mints one token per connection. Connection
// i belongs to user i mod Users, as device i div Users of that user.
func setup(ctx context.Context, c *Config, a *admin) ([]connSpec, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupConcurrency)
	for i := range c.Users {
		g.Go(func() error { return a.createUser(gctx, userName(c.UserPrefix, i)) })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("loadgen: setup: %w", err)
	}
	ttl := time.Hour + 2*(c.Warmup+c.Duration)
	specs := make([]connSpec, c.Conns)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupConcurrency)
	for i := range specs {
		user, dev := i%c.Users, i/c.Users
		specs[i] = connSpec{User: user, Sender: isSender(i, c.Senders, c.Conns)}
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
func (a *admin) scrapeMetrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	res, err := a.http.Do(req)
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
