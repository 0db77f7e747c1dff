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

// NewGroup creates a group conversation: the app server's request body of
// POST /v1/groups. ID names the group; its conversation id is "g:" + ID.
type NewGroup struct {
	ID      string   `json:"id"`
	Members []string `json:"members"`
}

// Group is a group conversation as the REST API shows it.
type Group struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conv"`
	Members      int       `json:"members"`
	MaxSeq       int64     `json:"max_seq"`
	CreatedAt    time.Time `json:"created_at"`
}

// MemberChange adds members to a group (POST /v1/groups/{id}/members).
// FullHistory lets the new members read the group's whole history instead
// of the messages after they joined.
type MemberChange struct {
	Users       []string `json:"users"`
	FullHistory bool     `json:"full_history,omitempty"`
}

// GroupMembers lists a group's current members in id order.
type GroupMembers struct {
	Members []string `json:"members"`
}
