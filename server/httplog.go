package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/parleyim/parley/protocol"
)

// RequestIDHeader carries a request's id: taken from the request when the
// client (or a proxy) set it, generated otherwise, and echoed in the response.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds an id taken from a request.
const maxRequestID = 64

// logRequests serves h and, at debug level, logs each request with its
// method, path, status, duration, request id and, for an error response,
// its stable error code. WebSocket upgrades are logged when the handler
// returns (the connection's own lifetime is the gateway's to log).
func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > maxRequestID {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		var status any = rec.status()
		if rec.hijacked {
			status = "upgraded"
		}
		attrs := []any{"id", id, "method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start), "remote", r.RemoteAddr}
		if code := rec.code(); code != "" {
			attrs = append(attrs, "code", code)
		}
		log.Log(context.Background(), slog.LevelDebug, "http request", attrs...)
	})
}

// statusRecorder remembers the status of a response and the start of an
// error body, which holds the stable error code.
type statusRecorder struct {
	http.ResponseWriter
	statusCode int
	body       []byte // the first bytes of an error body
	hijacked   bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.statusCode == 0 {
		r.statusCode = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.statusCode == 0 {
		r.statusCode = http.StatusOK
	}
	if r.statusCode >= 400 && len(r.body) < 1024 {
		r.body = append(r.body, p[:min(len(p), 1024-len(r.body))]...)
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) status() int {
	if r.statusCode == 0 {
		return http.StatusOK
	}
	return r.statusCode
}

// code returns the stable error code of an error response, if any.
func (r *statusRecorder) code() protocol.Code {
	var e protocol.ErrorBody
	if r.statusCode < 400 || json.Unmarshal(r.body, &e) != nil || e.Error == nil {
		return ""
	}
	return e.Error.Code
}

// Hijack lets the WebSocket upgrade take the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: response writer cannot hijack")
	}
	r.hijacked = true
	return hj.Hijack()
}

// Flush forwards to the underlying writer (the profiler streams).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap serves http.ResponseController.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
