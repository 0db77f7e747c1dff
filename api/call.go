package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/parleyim/parley/gateway"
	"github.com/parleyim/parley/protocol"
)

// callerKey marks a request made over a WebSocket connection: its value is
// the connection's user, authenticated at the upgrade.
type callerKey struct{}

// Calls returns the function that serves call frames through h, the API's
// handler, as the connection's user: the same routes, the same checks and
// the same answers as REST with the user's token.
func Calls(h http.Handler) gateway.CallFunc {
	return func(ctx context.Context, user string, call protocol.Call) (protocol.CallResult, error) {
		if !strings.HasPrefix(call.Path, "/v1/") || strings.HasPrefix(call.Path, "/v1/ws") {
			return protocol.CallResult{}, protocol.Errorf(protocol.CodeInvalidArgument, "path must be a REST route under /v1/")
		}
		switch call.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			return protocol.CallResult{}, protocol.Errorf(protocol.CodeInvalidArgument, "method must be GET, POST, PUT, PATCH or DELETE")
		}
		r, err := http.NewRequestWithContext(context.WithValue(ctx, callerKey{}, user), call.Method, call.Path, bytes.NewReader(call.Body))
		if err != nil {
			return protocol.CallResult{}, protocol.Errorf(protocol.CodeInvalidArgument, "path does not parse")
		}
		r.RemoteAddr = "websocket"
		if len(call.Body) > 0 {
			r.Header.Set("Content-Type", "application/json")
		}
		var rec callRecorder
		h.ServeHTTP(&rec, r)
		body := bytes.TrimSpace(rec.body.Bytes())
		if rec.status >= 400 {
			var eb struct {
				Error *protocol.Error `json:"error"`
			}
			if json.Unmarshal(body, &eb) != nil || eb.Error == nil {
				return protocol.CallResult{}, protocol.Errorf(protocol.CodeInternal, "internal server error")
			}
			return protocol.CallResult{}, eb.Error
		}
		res := protocol.CallResult{Status: rec.status}
		if len(body) > 0 {
			res.Body = body
		}
		return res, nil
	}
}

// callRecorder keeps the status and body of a call's response.
type callRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *callRecorder) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *callRecorder) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

func (c *callRecorder) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
