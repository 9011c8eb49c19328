// Errors as values with stable codes: the server's (docs/protocol.md, docs/auth.md), the
// close codes', and the client's own.
/**
 * The `code`s of the server's `error` frames (docs/protocol.md, "Error codes"). A test checks
 * this list against the documentation.
 */
export const PROTOCOL_ERROR_CODES = [
    "invalid_json",
    "unknown_message_type",
    "unsupported_message_type",
    "invalid_payload",
    "rate_limited",
    "too_many_runs",
    "unknown_run",
    "too_many_connections",
    "slow_consumer",
    "token_expired",
    "auth_timeout",
    "heartbeat_timeout",
    "stream_unavailable",
];
/**
 * The authentication codes (docs/auth.md, "Error codes", phase `auth`): the `error` frame and
 * the 4401 close reason after a failed handshake or an expired token, or the refusal of an
 * `auth_refresh`. (The handshake-phase codes come with an HTTP 400 a browser cannot read.)
 */
export const AUTH_ERROR_CODES = [
    "missing_token",
    "malformed_token",
    "invalid_signature",
    "token_expired",
    "token_not_yet_valid",
    "token_too_old",
    "invalid_issuer",
    "invalid_audience",
    "disallowed_algorithm",
    "missing_subject",
    "missing_claim",
    "token_too_large",
    "unknown_key_id",
    "subject_mismatch",
];
/** Codes this client reports itself (no server frame carries them). */
export const CLIENT_ERROR_CODES = [
    /** The first connection could not be opened: unreachable server, refused handshake
     * (HTTP 400/403/503; a browser does not say which), or a close before `connection_established`. */
    "connect_failed",
    /** No `connection_established` arrived within `connectTimeoutMs`. */
    "connect_timeout",
    /** Nothing arrived within the heartbeat timeout after a `heartbeat`: the connection is
     * presumed dead and replaced. */
    "liveness_timeout",
    /** Reconnecting gave up after `maxAttempts`. */
    "reconnect_failed",
    /** The server could not resume the stream (`reset`): a run in flight may have lost events. */
    "stream_reset",
    /** The client was closed with `close()`. */
    "closed",
    /** A frame was sent while the connection was closed. */
    "not_connected",
    /** More frames were queued during a reconnect than `maxQueuedFrames`. */
    "queue_full",
    /** A frame is larger than the server's `max_message_bytes`; it was not sent. */
    "message_too_big",
    /** A run's `AbortSignal` fired. */
    "aborted",
    /** `getToken` threw, or returned something that is not a token. */
    "token_unavailable",
    /** The server sent a frame this client cannot read (not a JSON object with a `type`). */
    "invalid_frame",
    /** The options given to `connect` are not usable (the message says why). */
    "invalid_options",
    /** The application asked for a new connection (`client.reconnect()`). */
    "reconnect_requested",
    /** A listener threw (reported as a lifecycle `error`; the other listeners still ran). */
    "listener_error",
];
/**
 * The close codes an agentwire connection can end with (docs/protocol.md, "Close codes"), and
 * 1006, which no server sends: the connection dropped without a close frame.
 */
export const CLOSE_CODES = {
    1000: { name: "normal_closure", description: "the connection ended normally", retry: true },
    1001: { name: "going_away", description: "the server is shutting down", retry: true },
    1002: { name: "protocol_error", description: "the client broke WebSocket framing", retry: false },
    1003: { name: "unsupported_data", description: "the client sent a binary frame", retry: false },
    1006: { name: "abnormal_closure", description: "the connection dropped without a close frame", retry: true },
    1007: { name: "invalid_payload_data", description: "the client sent a text frame that is not UTF-8", retry: false },
    1009: { name: "message_too_big", description: "the client sent a frame larger than max_message_bytes", retry: true },
    1011: { name: "internal_error", description: "a bug in the server", retry: true },
    1012: { name: "stream_interrupted", description: "multi-node: this connection missed events of its stream; reconnect and resume", retry: true },
    1013: { name: "stream_unavailable", description: "multi-node: the stream's store is unreachable; try again later", retry: true },
    4008: { name: "slow_consumer", description: "the client did not read fast enough", retry: true },
    4401: { name: "auth_failed", description: "authentication failed or the token expired", retry: false },
    4408: { name: "timeout", description: "no answer to the server's ping in time, or no in-band authentication in time", retry: true },
    4409: { name: "too_many_connections", description: "the user already has the maximum number of connections", retry: true },
    4429: { name: "rate_limited", description: "the client kept exceeding the rate limit", retry: true },
};
/** The meaning of close `code`; codes not in {@link CLOSE_CODES} get a generic name. */
export function closeCodeInfo(code) {
    const known = CLOSE_CODES[code];
    if (known)
        return known;
    if (code >= 4000 && code <= 4999) {
        return { name: "application", description: `application close code ${code}`, retry: true };
    }
    return { name: `close_${code}`, description: `close code ${code}`, retry: true };
}
/**
 * Every error this client reports: a stable {@link ErrorCode} to switch on, the human
 * message, and where it came from. `instanceof AgentwireError` tells it from other errors.
 */
export class AgentwireError extends Error {
    /** The stable code; match on it, not on `message`. */
    code;
    /** Where the error came from. */
    source;
    /** The close code, for errors that closed the connection. */
    closeCode;
    /** For `rate_limited`: how long to wait before sending again. */
    retryAfterMs;
    /** For `invalid_payload`: the offending field path. */
    field;
    /** The `type` the server read from the refused frame. */
    receivedType;
    /** For `invalid_json`: the 1-based line. */
    line;
    /** For `invalid_json`: the 1-based column. */
    column;
    /** The `message_id` of the request the error answers. */
    replyTo;
    /** The run the error ended, for `agent_error`. */
    runId;
    /** For `agent_error`: whether the agent says the failure is recoverable. */
    recoverable;
    /** The frame the error was read from. */
    frame;
    /** An error with `code`, `message` and details. */
    constructor(code, message, details) {
        super(message, details.cause === undefined ? undefined : { cause: details.cause });
        this.name = "AgentwireError";
        this.code = code;
        this.source = details.source;
        this.closeCode = details.closeCode;
        this.retryAfterMs = details.retryAfterMs;
        this.field = details.field;
        this.receivedType = details.receivedType;
        this.line = details.line;
        this.column = details.column;
        this.replyTo = details.replyTo;
        this.runId = details.runId;
        this.recoverable = details.recoverable;
        this.frame = details.frame;
    }
    /** Whether `code` is an authentication code (a fresh token may help). */
    get isAuth() {
        return AUTH_ERROR_CODES.includes(this.code);
    }
    /** The error an `error` frame reports. */
    static fromFrame(frame, closeCode) {
        const p = frame.payload;
        const details = { source: "server", frame };
        if (closeCode !== undefined)
            details.closeCode = closeCode;
        if (p.retry_after_ms !== undefined)
            details.retryAfterMs = p.retry_after_ms;
        if (p.field !== undefined)
            details.field = p.field;
        if (p.received_type !== undefined)
            details.receivedType = p.received_type;
        if (p.line !== undefined)
            details.line = p.line;
        if (p.column !== undefined)
            details.column = p.column;
        if (frame.reply_to !== undefined)
            details.replyTo = frame.reply_to;
        return new AgentwireError(p.code, p.message, details);
    }
    /**
     * The error a close reports: its code is the close reason when the reason is a code
     * (`token_expired`, `heartbeat_timeout`), else the close code's name.
     */
    static fromClose(closeCode, reason) {
        const info = closeCodeInfo(closeCode);
        const code = /^[a-z][a-z0-9_]*$/.test(reason) ? reason : info.name;
        const why = reason && reason !== code ? `: ${reason}` : "";
        return new AgentwireError(code, `connection closed ${closeCode} (${info.description})${why}`, {
            source: "close",
            closeCode,
        });
    }
}
