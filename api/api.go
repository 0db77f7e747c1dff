// Package api is Parley's REST API under /v1/: the app server's admin
// endpoints (users, tokens, sessions, system messages) and the endpoints
// devices use besides the WebSocket (login, history, conversations).
//
// Every request is authenticated by a bearer credential: the admin key, or a
// user token. Errors are JSON bodies {"error":{"code":…,"message":…}} with the
// codes of package protocol and their HTTP statuses. docs/openapi.yaml is the
// contract; a test checks that every route here appears in it.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/account"
	"github.com/parleyim/parley/gateway"
	"github.com/parleyim/parley/group"
	"github.com/parleyim/parley/message"
	"github.com/parleyim/parley/metrics"
	"github.com/parleyim/parley/presence"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/social"
	"github.com/parleyim/parley/store"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// API holds the services the REST handlers call.
type API struct {
	Accounts *account.Service
	Messages *message.Service
	Groups   *group.Service
	Social   *social.Service
	Gateway  *gateway.Gateway
	Presence *presence.Registry
	// Backup writes a consistent copy of the store into a new directory.
	Backup func(ctx context.Context, dir string) error
	Log    *slog.Logger
}

// Handler serves mux, answering requests that no route of mux serves with
// JSON errors like every other API error: 404 not_found for a path no route
// knows, and 405 method_not_allowed, with the Allow header listing the
// methods the path has, for a known path asked with another method.
func Handler(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own answer is plain text: keep its status and headers
		// (Allow), replace its body.
		rec := &statusRecorder{header: w.Header()}
		h.ServeHTTP(rec, r)
		var e *protocol.Error
		switch rec.status {
		case http.StatusMethodNotAllowed:
			e = protocol.Errorf(protocol.CodeMethodNotAllowed, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, w.Header().Get("Allow"))
		case http.StatusNotFound:
			e = protocol.Errorf(protocol.CodeNotFound, "no route %s %s", r.Method, r.URL.Path)
		default: // not reached: the mux answers unmatched requests with 404 or 405
			e = protocol.Errorf(protocol.CodeInternal, "unroutable request")
		}
		w.Header().Del("X-Content-Type-Options")
		metrics.Errors.WithLabelValues(string(e.Code)).Inc()
		e.WriteHTTP(w)
	})
}

// statusRecorder keeps the status of a response and drops its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

// Routes registers the API's handlers on mux.
func (a *API) Routes(mux *http.ServeMux) {
	a.handle(mux, "POST /v1/auth/register", public, a.register)
	a.handle(mux, "POST /v1/auth/login", public, a.login)
	a.handle(mux, "POST /v1/users", adminOnly, a.createUser)
	a.handle(mux, "GET /v1/users", adminOnly, a.listUsers)
	a.handle(mux, "GET /v1/users/{id}", anyone, a.getUser)
	a.handle(mux, "PATCH /v1/users/{id}", anyone, a.updateUser)
	a.handle(mux, "POST /v1/users/{id}/tokens", adminOnly, a.mintToken)
	a.handle(mux, "DELETE /v1/users/{id}/tokens", adminOnly, a.revokeTokens)
	a.handle(mux, "POST /v1/users/{id}/kick", adminOnly, a.kick)
	a.handle(mux, "POST /v1/users/{id}/deactivate", adminOnly, a.deactivate)
	a.handle(mux, "GET /v1/users/{id}/sessions", adminOnly, a.userSessions)
	a.handle(mux, "GET /v1/sessions", adminOnly, a.sessions)
	a.handle(mux, "GET /v1/presence", anyone, a.presence)
	a.handle(mux, "POST /v1/messages", anyone, a.send)
	a.handle(mux, "GET /v1/conversations", anyone, a.conversations)
	a.handle(mux, "GET /v1/conversations/{conv}/messages", anyone, a.pull)
	a.handle(mux, "POST /v1/conversations/{conv}/read", anyone, a.markRead)
	a.handle(mux, "POST /v1/conversations/{conv}/clear", anyone, a.clear)
	a.handle(mux, "PATCH /v1/conversations/{conv}/settings", anyone, a.updateSettings)
	a.handle(mux, "DELETE /v1/conversations/{conv}", anyone, a.deleteConversation)
	a.handle(mux, "GET /v1/conversations/recent", anyone, a.recentConversations)
	a.handle(mux, "GET /v1/conversations/unread", anyone, a.unreadTotal)
	a.handle(mux, "POST /v1/backup", adminOnly, a.backup)
	// Groups: users act as themselves; the admin key acts as the app
	// server or, with ?user=, as that user.
	a.handle(mux, "POST /v1/groups", anyone, a.createGroup)
	a.handle(mux, "GET /v1/groups/{id}", anyone, a.getGroup)
	a.handle(mux, "PATCH /v1/groups/{id}", anyone, a.updateGroup)
	a.handle(mux, "DELETE /v1/groups/{id}", anyone, a.dismissGroup)
	a.handle(mux, "GET /v1/groups/{id}/members", anyone, a.groupMembers)
	a.handle(mux, "POST /v1/groups/{id}/members", anyone, a.addMembers)
	a.handle(mux, "PATCH /v1/groups/{id}/members/{user}", anyone, a.updateMember)
	a.handle(mux, "DELETE /v1/groups/{id}/members/{user}", anyone, a.removeMember)
	a.handle(mux, "POST /v1/groups/{id}/transfer", anyone, a.transferGroup)
	a.handle(mux, "POST /v1/groups/{id}/join", anyone, a.joinGroup)
	a.handle(mux, "GET /v1/groups/{id}/requests", anyone, a.joinRequests)
	a.handle(mux, "POST /v1/groups/{id}/requests/{user}/accept", anyone, a.acceptRequest)
	a.handle(mux, "POST /v1/groups/{id}/requests/{user}/refuse", anyone, a.refuseRequest)
	a.handle(mux, "GET /v1/me/groups", anyone, a.myGroups)
	// Friends and blocks.
	a.socialRoutes(mux)
}

// who a route admits
type access int

const (
	public access = iota
	adminOnly
	anyone // the admin key or a user token
)

// caller is the authenticated party of a request: the admin, or a user.
type caller struct {
	admin bool
	user  string
}

type handlerFunc func(ctx context.Context, who caller, r *http.Request) (status int, body any, err error)

func (a *API) handle(mux *http.ServeMux, pattern string, acc access, h handlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		status, body, err := a.serve(acc, h, r)
		if err != nil {
			e := protocol.AsError(err)
			if e.Code == protocol.CodeInternal {
				a.Log.Error("request failed", "route", pattern, "err", err)
			}
			metrics.Errors.WithLabelValues(string(e.Code)).Inc()
			status, body = e.Code.HTTPStatus(), protocol.ErrorBody{Error: e}
		}
		metrics.HTTPRequests.WithLabelValues(pattern, strconv.Itoa(status)).Inc()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if body != nil {
			protocol.WriteJSON(w, body)
		}
	})
}

func (a *API) serve(acc access, h handlerFunc, r *http.Request) (int, any, error) {
	var who caller
	if user, ok := r.Context().Value(callerKey{}).(string); ok {
		// A call frame: the connection's user, authenticated at the upgrade.
		if acc == adminOnly {
			return 0, nil, protocol.Errorf(protocol.CodeForbidden, "this endpoint needs the admin key")
		}
		who.user = user
		return h(r.Context(), who, r)
	}
	if acc != public {
		cred := account.BearerToken(r.Header.Get("Authorization"))
		switch {
		case cred == "":
			return 0, nil, protocol.Errorf(protocol.CodeUnauthenticated, "an Authorization: Bearer credential is required")
		case a.Accounts.IsAdmin(cred):
			who.admin = true
		default:
			// A credential that does not verify (a wrong admin key
			// included) is 401; a valid user token where the admin key is
			// needed is 403.
			claims, err := a.Accounts.Verify(cred)
			if err != nil {
				return 0, nil, err
			}
			if acc == adminOnly {
				return 0, nil, protocol.Errorf(protocol.CodeForbidden, "this endpoint needs the admin key")
			}
			who.user = claims.User
		}
	}
	return h(r.Context(), who, r)
}

// decodeBody decodes a JSON request body strictly into v: unknown fields
// are invalid_argument, and a body that is not valid UTF-8 is invalid_utf8
// (encoding/json would otherwise replace the bad bytes with U+FFFD).
func decodeBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return protocol.Errorf(protocol.CodeFrameTooLarge, "request body is larger than %d bytes", maxBodyBytes)
		}
		return protocol.Errorf(protocol.CodeInvalidArgument, "request body: %v", err)
	}
	if !utf8.Valid(raw) {
		return protocol.Errorf(protocol.CodeInvalidUTF8, "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return protocol.Errorf(protocol.CodeInvalidArgument, "a JSON request body is required")
		}
		return protocol.Errorf(protocol.CodeInvalidArgument, "request body: %v", err)
	}
	return nil
}

// subject is the user a request acts for: the caller, or for the admin the
// user named by the "user" query parameter.
func subject(who caller, r *http.Request) (string, error) {
	if !who.admin {
		return who.user, nil
	}
	u := r.URL.Query().Get("user")
	if u == "" {
		return "", protocol.Errorf(protocol.CodeInvalidArgument, "the admin must name a user with ?user=")
	}
	return u, nil
}

func queryInt(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, protocol.Errorf(protocol.CodeInvalidArgument, "%s must be an integer", name)
	}
	return n, nil
}

func (a *API) toUserJSON(u store.User) protocol.User {
	return protocol.User{ID: u.ID, Nickname: u.Nickname, AvatarURL: u.AvatarURL, Extra: u.Extra,
		Deactivated: a.Accounts.Deactivated(u.ID), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func (a *API) register(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in account.NewUser
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	res, err := a.Accounts.Register(ctx, in)
	return http.StatusCreated, res, err
}

type loginRequest struct {
	ID       string `json:"id"`
	Password string `json:"password"`
	Platform string `json:"platform"`
	Device   string `json:"device"`
}

func (a *API) login(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in loginRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	tok, exp, err := a.Accounts.Login(ctx, in.ID, in.Password, in.Platform, in.Device)
	return http.StatusOK, protocol.Token{Token: tok, ExpiresAt: exp}, err
}

func (a *API) createUser(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in account.NewUser
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	u, err := a.Accounts.CreateUser(ctx, in)
	return http.StatusCreated, map[string]any{"user": a.toUserJSON(u)}, err
}

func (a *API) listUsers(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	users, next, err := a.Accounts.ListUsers(ctx, store.UserQuery{Search: q.Get("search"), After: q.Get("after"), Limit: int(limit)})
	if err != nil {
		return 0, nil, err
	}
	out := make([]protocol.User, len(users))
	for i, u := range users {
		out[i] = a.toUserJSON(u)
	}
	return http.StatusOK, map[string]any{"users": out, "next": next}, nil
}

func (a *API) getUser(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	u, err := a.Accounts.User(ctx, r.PathValue("id"))
	return http.StatusOK, map[string]any{"user": a.toUserJSON(u)}, err
}

func (a *API) updateUser(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if !who.admin && who.user != id {
		return 0, nil, protocol.Errorf(protocol.CodeForbidden, "users may only update themselves")
	}
	var in account.UserUpdate
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Password != nil && !who.admin {
		// Changing a password needs proof of the old one; until that flow
		// exists, only the app server (admin) sets passwords.
		return 0, nil, protocol.Errorf(protocol.CodeForbidden, "only the admin may set a password")
	}
	u, err := a.Accounts.UpdateUser(ctx, id, in)
	return http.StatusOK, map[string]any{"user": a.toUserJSON(u)}, err
}

type tokenRequest struct {
	Platform   string `json:"platform"`
	Device     string `json:"device"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

func (a *API) mintToken(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in tokenRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	tok, exp, err := a.Accounts.IssueToken(ctx, r.PathValue("id"), in.Platform, in.Device, seconds(in.TTLSeconds))
	return http.StatusOK, protocol.Token{Token: tok, ExpiresAt: exp}, err
}

// seconds converts n seconds to a Duration, saturating where the product
// would overflow, so a huge ttl_seconds means "as long as allowed".
func seconds(n int64) time.Duration {
	const limit = math.MaxInt64 / int64(time.Second)
	switch {
	case n > limit:
		return math.MaxInt64
	case n < -limit:
		return math.MinInt64
	}
	return time.Duration(n) * time.Second
}

func (a *API) revokeTokens(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	_, err := a.Accounts.Revoke(ctx, r.PathValue("id"), r.URL.Query().Get("device"), protocol.CodeKickRevoked)
	return http.StatusNoContent, nil, err
}

// kick forces a device (?device=, or all the user's devices) offline: its
// tokens are revoked first, so it cannot come back until the app mints a new
// one, then its connections get a forced_offline kick.
func (a *API) kick(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	n, err := a.Accounts.Revoke(ctx, r.PathValue("id"), r.URL.Query().Get("device"), protocol.CodeKickAdmin)
	return http.StatusOK, map[string]int{"kicked": n}, err
}

// deactivate ends a user's account for good (see account.Service.Deactivate).
func (a *API) deactivate(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	n, err := a.Accounts.Deactivate(ctx, r.PathValue("id"))
	return http.StatusOK, map[string]int{"kicked": n}, err
}

// userSessions lists one user's live connections; unlike /v1/sessions?user=
// it tells an unknown user (not_found) from one with no connection.
func (a *API) userSessions(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if _, err := a.Accounts.User(ctx, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"sessions": a.Gateway.Hub().Sessions(id)}, nil
}

func (a *API) sessions(_ context.Context, _ caller, r *http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{"sessions": a.Gateway.Hub().Sessions(r.URL.Query().Get("user"))}, nil
}

func (a *API) presence(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	raw := r.URL.Query().Get("users")
	if raw == "" {
		return 0, nil, protocol.Errorf(protocol.CodeInvalidArgument, "users is required: a comma-separated list of user ids")
	}
	users := strings.Split(raw, ",")
	if len(users) > 1000 {
		return 0, nil, protocol.Errorf(protocol.CodeInvalidArgument, "at most 1000 users per request")
	}
	for _, u := range users {
		if !account.ValidUserID(u) {
			return 0, nil, protocol.Errorf(protocol.CodeInvalidArgument, "%q is not a user id", u)
		}
	}
	return http.StatusOK, protocol.PresenceList{Presence: a.Presence.Get(ctx, users)}, nil
}

type sendRequest struct {
	From         string          `json:"from"`
	To           string          `json:"to"`
	Conversation string          `json:"conv"`
	ClientID     string          `json:"cid"`
	ContentType  string          `json:"ctype"`
	Content      json.RawMessage `json:"content"`
}

// send commits a message. Users send as themselves; the admin sends as any
// user, or as the system account when from is empty.
func (a *API) send(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in sendRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	from := who.user
	if who.admin {
		from = in.From
		if from == "" {
			from = account.SystemUser
		}
		if _, err := a.Accounts.User(ctx, from); err != nil {
			return 0, nil, err
		}
		if a.Accounts.Deactivated(from) {
			return 0, nil, protocol.Errorf(protocol.CodeUserDeactivated, "user %q is deactivated", from)
		}
	} else if in.From != "" && in.From != who.user {
		return 0, nil, protocol.Errorf(protocol.CodeForbidden, "users may only send as themselves")
	}
	if in.ClientID == "" {
		in.ClientID = "rest-" + rand.Text()
	}
	ack, err := a.Messages.Send(ctx, message.SendRequest{From: from, To: in.To, Conversation: in.Conversation,
		ClientID: in.ClientID, ContentType: in.ContentType, Content: in.Content})
	return http.StatusOK, ack, err
}

func (a *API) conversations(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	since, err := queryInt(r, "since")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.Conversations(ctx, user, protocol.ConversationsRequest{Since: since, Limit: int(min(limit, protocol.MaxConversationsPage))})
	return http.StatusOK, res, err
}

func (a *API) pull(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	from, err := queryInt(r, "from")
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.Pull(ctx, user, protocol.Pull{Conversation: r.PathValue("conv"), From: from, Direction: r.URL.Query().Get("dir"), Limit: int(limit)})
	return http.StatusOK, res, err
}

type readRequest struct {
	Seq int64 `json:"seq"`
}

func (a *API) markRead(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	var in readRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.MarkRead(ctx, user, protocol.Read{Conversation: r.PathValue("conv"), Seq: in.Seq}, router.Device{})
	return http.StatusOK, res, err
}

func (a *API) clear(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.Clear(ctx, user, r.PathValue("conv"), router.Device{})
	return http.StatusOK, res, err
}
