package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// Group management benchmarks (docs/benchmarks.md, "Group management"):
//
//	go test ./server -run '^$' -bench 'Group(Create|AddOneByOne|MemberSync)' -benchtime 3x
//
// Each runs a real server on loopback and talks REST to it, as an app
// server would.

// benchUsers creates users bu0…bu(n-1) with four concurrent requests.
func benchUsers(b *testing.B, s *parleytest.Server, prefix string, n int) []string {
	b.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				ids[i] = fmt.Sprintf("%s%d", prefix, i)
				if _, err := s.Admin.CreateUser(context.Background(), admin.NewUser{ID: ids[i]}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return ids
}

// rawDo makes a REST request with the admin key and returns the status
// and the body as sent.
func rawDo(b *testing.B, s *parleytest.Server, method, path string, body any) (int, []byte) {
	b.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+parleytest.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// BenchmarkGroupCreate10k creates a group with 10,000 members in one
// request: one op is one group.
func BenchmarkGroupCreate10k(b *testing.B) {
	s := parleytest.NewServer(b, nil)
	ids := benchUsers(b, s, "bu", 10_000)
	b.ResetTimer()
	for i := range b.N {
		if st, body := rawDo(b, s, "POST", "/v1/groups", protocol.NewGroup{ID: fmt.Sprintf("big%d", i), Members: ids}); st != http.StatusCreated {
			b.Fatalf("create: %d %s", st, body)
		}
	}
}

// BenchmarkGroupAddOneByOne adds 1,000 users one request each to a group
// of 9,000: one op is one addition (a roster write, a conversation push to
// the new member, a joined event fanned out to every member).
func BenchmarkGroupAddOneByOne(b *testing.B) {
	s := parleytest.NewServer(b, nil)
	ids := benchUsers(b, s, "bu", 10_000)
	if st, body := rawDo(b, s, "POST", "/v1/groups", protocol.NewGroup{ID: "big", Members: ids[:9000]}); st != http.StatusCreated {
		b.Fatalf("create: %d %s", st, body)
	}
	b.ResetTimer()
	for i := range b.N {
		u := ids[9000+i%1000]
		if i >= 1000 && i%1000 == 0 { // more rounds: take the last thousand out again
			b.StopTimer()
			for _, v := range ids[9000:] {
				rawDo(b, s, "DELETE", "/v1/groups/big/members/"+v, nil)
			}
			b.StartTimer()
		}
		if st, body := rawDo(b, s, "POST", "/v1/groups/big/members", protocol.MemberChange{Users: []string{u}}); st != http.StatusOK {
			b.Fatalf("add %s: %d %s", u, st, body)
		}
	}
}

// BenchmarkGroupMemberSync is a member's roster sync of a group of about
// 10,000: in full when they join (9,995 members), then after 10 changes (5
// joins, 3 role changes, 2 departures) only what changed. It reports the bytes of each
// answer.
func BenchmarkGroupMemberSync(b *testing.B) {
	s := parleytest.NewServer(b, nil)
	ids := benchUsers(b, s, "bu", 10_000)
	if st, body := rawDo(b, s, "POST", "/v1/groups", protocol.NewGroup{ID: "big", Members: ids[:9995]}); st != http.StatusCreated {
		b.Fatalf("create: %d %s", st, body)
	}
	_, full := rawDo(b, s, "GET", "/v1/groups/big/members?user="+ids[0], nil)
	var d protocol.Delta[protocol.GroupMember]
	if err := json.Unmarshal(full, &d); err != nil || len(d.Items) != 9995 {
		b.Fatalf("full sync: %d items, %v", len(d.Items), err)
	}
	since := d.Version
	for _, u := range ids[9995:] {
		rawDo(b, s, "POST", "/v1/groups/big/members", protocol.MemberChange{Users: []string{u}})
	}
	for _, u := range ids[1:4] {
		rawDo(b, s, "PATCH", "/v1/groups/big/members/"+u, protocol.MemberUpdate{Role: ptr(protocol.RoleAdmin)})
	}
	for _, u := range ids[4:6] {
		rawDo(b, s, "DELETE", "/v1/groups/big/members/"+u, nil)
	}
	path := fmt.Sprintf("/v1/groups/big/members?user=%s&since=%d", ids[0], since)
	var delta []byte
	b.ResetTimer()
	for range b.N {
		_, delta = rawDo(b, s, "GET", path, nil)
	}
	b.StopTimer()
	if err := json.Unmarshal(delta, &d); err != nil || len(d.Items) != 8 || len(d.Deleted) != 2 {
		b.Fatalf("delta sync: %s", delta)
	}
	b.ReportMetric(float64(len(full)), "full-B")
	b.ReportMetric(float64(len(delta)), "delta-B")
}
