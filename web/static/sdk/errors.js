/**
 * Codes the server uses in error frames, kick frames and REST error bodies
 * (docs/protocol.md, "Error codes"), and the few the SDK adds for failures
 * that never reached the server.
 */
export const Codes = {
    BadFrame: "bad_frame",
    UnknownType: "unknown_type",
    FrameTooLarge: "frame_too_large",
    ContentTooLarge: "content_too_large",
    InvalidUTF8: "invalid_utf8",
    InvalidArgument: "invalid_argument",
    Unauthenticated: "unauthenticated",
    TokenExpired: "token_expired",
    TokenRevoked: "token_revoked",
    Forbidden: "forbidden",
    NotFound: "not_found",
    AlreadyExists: "already_exists",
    ClientIDConflict: "client_id_conflict",
    OutOfRange: "out_of_range",
    Disabled: "disabled",
    SlowConsumer: "slow_consumer",
    Unavailable: "unavailable",
    Internal: "internal",
    Blocked: "blocked",
    NotFriends: "not_friends",
    GroupFull: "group_full",
    Muted: "muted",
    /** The reserved `system` account cannot do this. */
    ReservedUser: "reserved_user",
    /** The user was deactivated: no token of theirs works again. Also a kick code. */
    UserDeactivated: "user_deactivated",
    /** A REST path that exists, called with another method. */
    MethodNotAllowed: "method_not_allowed",
    // Kick codes.
    Replaced: "replaced",
    Policy: "policy",
    ForcedOffline: "forced_offline",
    HeartbeatTimeout: "heartbeat_timeout",
    Shutdown: "shutdown",
    ProtocolError: "protocol_error",
    // Client-side codes: the request never got an answer.
    /** No connection was up, or it dropped before the reply; the outcome is unknown. */
    Disconnected: "disconnected",
    /** The client was closed or stopped for good. */
    Closed: "closed",
    /** No reply within the time allowed; the outcome is unknown. */
    Timeout: "timeout",
    /** The network failed (a REST request that got no HTTP answer). */
    Network: "network",
};
/**
 * ParleyError is every error the SDK reports: code is the server's stable
 * code (or one of the client-side codes in Codes), status the HTTP status
 * for REST errors, message for humans only.
 */
export class ParleyError extends Error {
    code;
    status;
    constructor(code, message, status) {
        super(message || code);
        this.name = "ParleyError";
        this.code = code;
        this.status = status;
    }
    /** retryable reports whether repeating the request (a send with the same cid) may succeed. */
    get retryable() {
        return this.code === Codes.Unavailable || this.code === Codes.Internal;
    }
}
/** terminalKick reports whether a kick with code forbids reconnecting. */
export function terminalKick(code) {
    return (code === Codes.Replaced ||
        code === Codes.Policy ||
        code === Codes.ForcedOffline ||
        code === Codes.TokenRevoked ||
        code === Codes.UserDeactivated);
}
