package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "fallback", http.StatusTeapot)
	})
	srv := httptest.NewServer(Handler(fallback))
	defer srv.Close()
	tests := []struct {
		name, method, path string
		status             int
		contains, ctype    string
	}{
		{"index at root", "GET", "/", 200, "<title>Parley</title>", "text/html"},
		{"module", "GET", "/app.js", 200, "import", "text/javascript"},
		{"sdk copy", "GET", "/sdk/index.js", 200, "Client", "text/javascript"},
		{"styles", "GET", "/style.css", 200, "body", "text/css"},
		{"unknown file", "GET", "/nope.js", 418, "fallback", ""},
		{"api path", "GET", "/v1/nope", 418, "fallback", ""},
		{"directory", "GET", "/sdk/", 418, "fallback", ""},
		{"post", "POST", "/", 418, "fallback", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("got %d %.80q, want %d containing %q", res.StatusCode, body, tt.status, tt.contains)
			}
			if tt.ctype != "" {
				if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
					t.Fatalf("content type %q, want %q", ct, tt.ctype)
				}
				if res.Header.Get("Content-Security-Policy") == "" {
					t.Fatal("no Content-Security-Policy")
				}
			}
		})
	}
}
