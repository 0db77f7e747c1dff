package protocol

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code. Codes never change meaning;
// new ones may be added. The same table serves WebSocket error frames, kick
// frames and REST error bodies.
type Code string

// The error code table. docs/protocol.md documents each one.
const (
	CodeBadFrame         Code = "bad_frame"          // not a JSON frame, or a payload that does not decode
	CodeUnknownType      Code = "unknown_type"       // frame type the server does not know
	CodeFrameTooLarge    Code = "frame_too_large"    // frame over the size limit
	CodeContentTooLarge  Code = "content_too_large"  // message content over the size limit
	CodeInvalidUTF8      Code = "invalid_utf8"       // text that is not valid UTF-8
	CodeInvalidArgument  Code = "invalid_argument"   // a field is missing, malformed or out of bounds
	CodeUnauthenticated  Code = "unauthenticated"    // no credential, or one that does not verify
	CodeTokenExpired     Code = "token_expired"      // the token's expiry has passed
	CodeTokenRevoked     Code = "token_revoked"      // the token was revoked
	CodeForbidden        Code = "forbidden"          // authenticated, but not allowed to do this
	CodeReservedUser     Code = "reserved_user"      // the reserved system account cannot do this (hold a token)
	CodeUserDeactivated  Code = "user_deactivated"   // the user was deactivated
	CodeNotFound         Code = "not_found"          // no such user, conversation or resource
	CodeMethodNotAllowed Code = "method_not_allowed" // a REST path that exists, with another method
	CodeAlreadyExists    Code = "already_exists"     // the resource to create exists
	CodeClientIDConflict Code = "client_id_conflict" // client message id reused with different content
	CodeOutOfRange       Code = "out_of_range"       // seq outside what the user may see
	CodeDisabled         Code = "disabled"           // feature turned off in configuration
	CodeSlowConsumer     Code = "slow_consumer"      // outbound queue overflowed; reconnect and sync
	CodeUnavailable      Code = "unavailable"        // server shutting down or overloaded; retry
	CodeInternal         Code = "internal"           // a server fault; logged, retry may succeed
	CodeBlocked          Code = "blocked"            // the other user blocked you
	CodeNotFriends       Code = "not_friends"        // the action needs friendship, by policy
	CodeGroupFull        Code = "group_full"         // the group has reached its maximum size
	CodeMuted            Code = "muted"              // you, or the whole group, are muted

	// Kick reasons: the code of a kick frame.
	CodeKickReplaced    Code = "replaced" // the same device connected again
	CodeKickPolicy      Code = "policy"   // another device took this slot under the login policy
	CodeKickAdmin       Code = "forced_offline"
	CodeKickIdle        Code = "heartbeat_timeout"
	CodeKickShutdown    Code = "shutdown"
	CodeKickRevoked          = CodeTokenRevoked // the token was revoked
	CodeKickExpired          = CodeTokenExpired // the token expired while connected
	CodeKickProtocol    Code = "protocol_error"
	CodeKickDeactivated      = CodeUserDeactivated // the user was deactivated
	CodeKickSlowClient       = CodeSlowConsumer    // closed without a kick frame: the queue is full
)

// HTTPStatus is the HTTP status a REST response uses for the code.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadFrame, CodeInvalidArgument, CodeInvalidUTF8, CodeUnknownType:
		return http.StatusBadRequest
	case CodeFrameTooLarge, CodeContentTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthenticated, CodeTokenExpired, CodeTokenRevoked:
		return http.StatusUnauthorized
	case CodeForbidden, CodeDisabled, CodeReservedUser, CodeUserDeactivated, CodeBlocked, CodeNotFriends, CodeMuted:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeAlreadyExists, CodeClientIDConflict, CodeGroupFull:
		return http.StatusConflict
	case CodeOutOfRange:
		return http.StatusRequestedRangeNotSatisfiable
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is a client-facing error: a stable code and a human-readable message.
// It is the error payload of WebSocket error frames and REST error bodies, and
// it implements error so packages can return it directly.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as a client-facing *Error. Errors that are not
// *Error anywhere in their chain become CodeInternal with a generic message,
// so internal details never reach clients.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal server error"}
}
