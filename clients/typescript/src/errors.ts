// Errors as values with stable codes: the server's (docs/protocol.md, docs/auth.md), the
// close codes', and the client's own.

import type { ErrorFrame } from "./generated/outbound.js";

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
] as const;

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
] as const;

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
] as const;

/** A code of the server's `error` frames. */
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];
/** An authentication code. */
export type AuthErrorCode = (typeof AUTH_ERROR_CODES)[number];
/** A code this client reports itself. */
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];
/** The name of a close code (see {@link CLOSE_CODES}). */
export type CloseName = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES]["name"];

/**
 * Every code an {@link AgentwireError} may carry: the known ones, and any other string (an
 * agent's own `agent_error` code, a service handler's own refusal, a close reason).
 */
export type ErrorCode =
  | ProtocolErrorCode
  | AuthErrorCode
  | ClientErrorCode
  | CloseName
  | (string & {});

/** What an error came from. */
export type ErrorSource =
  /** An `error` frame from the server. */
  | "server"
  /** An `agent_error` event ending a run. */
  | "agent"
  /** A WebSocket close (its code and reason). */
  | "close"
  /** This client. */
  | "client";

/** A close code's meaning: a stable name, and whether reconnecting can help. */
export interface CloseCodeInfo {
  /** Stable lower-case name (the Rust `agentwire_state::CloseCode` name). */
  readonly name: string;
  /** One line for people. */
  readonly description: string;
  /** Whether the client reconnects after it (with a fresh token for 4401 `token_expired`). */
  readonly retry: boolean;
}

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
} as const satisfies Record<number, CloseCodeInfo>;

/** The meaning of close `code`; codes not in {@link CLOSE_CODES} get a generic name. */
export function closeCodeInfo(code: number): CloseCodeInfo {
  const known = (CLOSE_CODES as Record<number, CloseCodeInfo>)[code];
  if (known) return known;
  if (code >= 4000 && code <= 4999) {
    return { name: "application", description: `application close code ${code}`, retry: true };
  }
  return { name: `close_${code}`, description: `close code ${code}`, retry: true };
}

/** Fields of an {@link AgentwireError} besides its code and message. */
export interface AgentwireErrorDetails {
  /** Where the error came from. */
  source: ErrorSource;
  /** The close code, for errors that closed the connection. */
  closeCode?: number;
  /** For `rate_limited`: how long to wait before sending again. */
  retryAfterMs?: number;
  /** For `invalid_payload`: the offending field path. */
  field?: string;
  /** The `type` the server read from the refused frame. */
  receivedType?: string;
  /** For `invalid_json`: the 1-based line and column. */
  line?: number;
  /** For `invalid_json`: the 1-based column. */
  column?: number;
  /** The `message_id` of the request the error answers. */
  replyTo?: string;
  /** The run the error ended, for `agent_error`. */
  runId?: string;
  /** For `agent_error`: whether the agent says the failure is recoverable. */
  recoverable?: boolean;
  /** The frame the error was read from (`error` or `agent_error`). */
  frame?: unknown;
  /** What led to it (e.g. the last close before `reconnect_failed`). */
  cause?: unknown;
}

/**
 * Every error this client reports: a stable {@link ErrorCode} to switch on, the human
 * message, and where it came from. `instanceof AgentwireError` tells it from other errors.
 */
export class AgentwireError extends Error {
  /** The stable code; match on it, not on `message`. */
  readonly code: ErrorCode;
  /** Where the error came from. */
  readonly source: ErrorSource;
  /** The close code, for errors that closed the connection. */
  readonly closeCode: number | undefined;
  /** For `rate_limited`: how long to wait before sending again. */
  readonly retryAfterMs: number | undefined;
  /** For `invalid_payload`: the offending field path. */
  readonly field: string | undefined;
  /** The `type` the server read from the refused frame. */
  readonly receivedType: string | undefined;
  /** For `invalid_json`: the 1-based line. */
  readonly line: number | undefined;
  /** For `invalid_json`: the 1-based column. */
  readonly column: number | undefined;
  /** The `message_id` of the request the error answers. */
  readonly replyTo: string | undefined;
  /** The run the error ended, for `agent_error`. */
  readonly runId: string | undefined;
  /** For `agent_error`: whether the agent says the failure is recoverable. */
  readonly recoverable: boolean | undefined;
  /** The frame the error was read from. */
  readonly frame: unknown;

  /** An error with `code`, `message` and details. */
  constructor(code: ErrorCode, message: string, details: AgentwireErrorDetails) {
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
  get isAuth(): boolean {
    return (AUTH_ERROR_CODES as readonly string[]).includes(this.code);
  }

  /** The error an `error` frame reports. */
  static fromFrame(frame: ErrorFrame, closeCode?: number): AgentwireError {
    const p = frame.payload;
    const details: AgentwireErrorDetails = { source: "server", frame };
    if (closeCode !== undefined) details.closeCode = closeCode;
    if (p.retry_after_ms !== undefined) details.retryAfterMs = p.retry_after_ms;
    if (p.field !== undefined) details.field = p.field;
    if (p.received_type !== undefined) details.receivedType = p.received_type;
    if (p.line !== undefined) details.line = p.line;
    if (p.column !== undefined) details.column = p.column;
    if (frame.reply_to !== undefined) details.replyTo = frame.reply_to;
    return new AgentwireError(p.code, p.message, details);
  }

  /**
   * The error a close reports: its code is the close reason when the reason is a code
   * (`token_expired`, `heartbeat_timeout`), else the close code's name.
   */
  static fromClose(closeCode: number, reason: string): AgentwireError {
    const info = closeCodeInfo(closeCode);
    const code = /^[a-z][a-z0-9_]*$/.test(reason) ? reason : info.name;
    const why = reason && reason !== code ? `: ${reason}` : "";
    return new AgentwireError(code, `connection closed ${closeCode} (${info.description})${why}`, {
      source: "close",
      closeCode,
    });
  }
}
