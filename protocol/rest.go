package protocol

import (
	"encoding/json"
	"net/http"
	"time"
)

// Payloads of the REST API that are not also WebSocket frames. The server
// encodes them and the Go clients (package admin) decode them, from this
// one definition.

// User is a user as the REST API shows it; the password hash never leaves
// the server.
type User struct {
	ID        string          `json:"id"`
	Nickname  string          `json:"nickname"`
	AvatarURL string          `json:"avatar_url"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	// Deactivated is true for a deactivated user; omitted otherwise.
	Deactivated bool      `json:"deactivated,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Token is a minted device token and when it expires.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is one live device connection, as operators list them.
type Session struct {
	User        string    `json:"user"`
	Platform    string    `json:"platform"`
	Device      string    `json:"device"`
	RemoteAddr  string    `json:"remote_addr"`
	ConnectedAt time.Time `json:"connected_at"`
}

// ErrorBody is the body of every REST error response, and of a refused
// WebSocket upgrade: {"error":{"code":…,"message":…}}.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// WriteHTTP writes e as a REST error response, with the code's HTTP status.
func (e *Error) WriteHTTP(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.HTTPStatus())
	WriteJSON(w, ErrorBody{e})
}
