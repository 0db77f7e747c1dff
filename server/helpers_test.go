package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/parleyim/parley/parleytest"
)

// doHTTP performs a REST request with an optional bearer credential and body.
func doHTTP(t *testing.T, s *parleytest.Server, method, path, cred, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" && !strings.Contains(cred, " ") {
		cred = "Bearer " + cred // a bare credential; "Scheme cred" is sent as is
	}
	if cred != "" {
		req.Header.Set("Authorization", cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// getJSON GETs path with the admin key and decodes the 200 response into v.
func getJSON(t *testing.T, s *parleytest.Server, path string, v any) {
	t.Helper()
	status, body := doHTTP(t, s, "GET", path, parleytest.AdminKey, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
