//! Every error of the crate, each with a stable machine [`code`](Error::code).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use agentwire_events::{AgentError, ErrorReply, RunViolation};
use agentwire_state::{CloseCode, CloseInfo};

use crate::transport::Response;

/// What went wrong, with the server's stable codes and close codes where the server said why.
///
/// [`code`](Self::code) is a stable snake_case string to match on: the server's own code when
/// it gave one (`invalid_signature`, `token_expired`, `too_many_runs`, `heartbeat_timeout`,
/// ...), otherwise one of this crate's (`connect_failed`, `connection_lost`, ...).
/// [`close_code`](Self::close_code) is the WebSocket close code when the server closed.
///
/// ```
/// use agentwire_client::{CloseCode, CloseInfo, Error};
///
/// let error = Error::Closed {
///     close: CloseInfo::new(CloseCode::from_u16(4401), "invalid_signature"),
///     error: None,
/// };
/// assert_eq!(error.code(), "invalid_signature");
/// assert_eq!(error.close_code().map(|c| c.as_u16()), Some(4401));
/// assert!(error.is_auth_failure());
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential or header cannot go into an HTTP request (a line break, a comma in a
    /// token, ...).
    #[error("invalid credentials: {reason}")]
    InvalidCredentials {
        /// What is wrong (never the token itself).
        reason: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        message: String,
    },
    /// No TCP connection to the server.
    #[error("TCP connect to {addr}: {message}")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// The kind of I/O error (`ConnectionRefused`, `TimedOut`, ...).
        kind: io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// The TLS handshake failed (or TLS could not be set up).
    #[error("TLS: {message}")]
    Tls {
        /// rustls's explanation (`UnknownIssuer`, `NotValidForName`, ...).
        message: String,
    },
    /// A `wss://` URL, but the crate was built without the `rustls` feature.
    #[error("wss:// needs agentwire-client's `rustls` feature")]
    TlsUnavailable,
    /// The HTTP upgrade did not give a WebSocket.
    #[error("WebSocket upgrade: {0}")]
    Upgrade(#[from] UpgradeError),
    /// The server's `Sec-WebSocket-Protocol` answer is not the `jwt-auth` marker the client
    /// offered (browsers refuse such a handshake).
    #[error("the server answered subprotocol {answer:?}, expected \"jwt-auth\"")]
    Subprotocol {
        /// What the server answered, if anything.
        answer: Option<String>,
    },
    /// The server closed the connection: for an authentication failure, 4401 with the
    /// `error` frame sent before it.
    #[error("closed {close}{}", describe_reply(error.as_deref()))]
    Closed {
        /// The close code and reason.
        close: CloseInfo,
        /// The `error` frame the server sent right before closing, if any.
        error: Option<Box<ErrorReply>>,
    },
    /// The connection ended without a close frame (reset, EOF, a dead peer found by the
    /// heartbeat check, a WebSocket protocol violation).
    #[error("connection lost: {message}")]
    ConnectionLost {
        /// What happened.
        message: String,
    },
    /// The server sent a frame that is not a valid agentwire outbound frame (the strict
    /// parser of `agentwire-events` refused it), or not the frame expected at this point.
    #[error("invalid frame from the server ({code}): {message}")]
    InvalidFrame {
        /// `invalid_json`, `invalid_frame` (from the parser) or `unexpected_frame`.
        code: &'static str,
        /// What is wrong, naming the field where it can.
        message: String,
    },
    /// The server answered a request with an `error` frame (`too_many_runs`,
    /// `rate_limited`, `invalid_payload`, a refused `auth_refresh`, a handler's own code, ...).
    #[error("refused: {}: {}", reply.code, reply.message)]
    Refused {
        /// The server's `error` payload.
        reply: Box<ErrorReply>,
    },
    /// The run ended with `agent_error` (from [`RunResult::completed`](crate::RunResult::completed)).
    #[error("run {run_id} failed: {}: {}", error.code, error.message)]
    RunFailed {
        /// The run.
        run_id: String,
        /// The `agent_error` payload.
        error: Box<AgentError>,
    },
    /// After a reconnect the server could not prove the stream's continuity (`epoch_changed`,
    /// `outside_window`, `unavailable`): events of the runs in flight may be lost.
    #[error("the event stream was reset ({reason}): events may be lost")]
    StreamReset {
        /// The server's reason.
        reason: String,
    },
    /// The request was written, then the connection dropped; after the reconnect none of the
    /// run's events arrived, so the server may never have received it. If it did, the run's
    /// events arrive as [`ConnectionEvent::Event`](crate::ConnectionEvent::Event).
    #[error("the request may not have reached the server: the connection dropped")]
    Interrupted,
    /// The run's events broke a rule of a well-formed run (from
    /// [`Client::run_checked`](crate::Client::run_checked)).
    #[error("not a well-formed run: {0}")]
    InvalidRun(RunViolation),
    /// Something did not happen in time.
    #[error("timed out: {what}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
    },
    /// The token refresh callback failed, or a token cannot be read.
    #[error("token: {message}")]
    Token {
        /// What went wrong.
        message: String,
    },
    /// The client was closed ([`Client::close`](crate::Client::close)).
    #[error("the client is closed")]
    ClientClosed,
}

fn describe_reply(reply: Option<&ErrorReply>) -> String {
    reply
        .map(|r| format!(" after error {}: {}", r.code, r.message))
        .unwrap_or_default()
}

impl Error {
    /// The stable machine code: the server's code when it gave one, otherwise this crate's.
    pub fn code(&self) -> &str {
        match self {
            Error::InvalidUrl { .. } => "invalid_url",
            Error::InvalidCredentials { .. } => "invalid_credentials",
            Error::Resolve { .. } => "resolve_failed",
            Error::Connect { .. } => "connect_failed",
            Error::Tls { .. } => "tls_failed",
            Error::TlsUnavailable => "tls_unavailable",
            Error::Upgrade(e) => e.code(),
            Error::Subprotocol { .. } => "subprotocol_mismatch",
            Error::Closed { close, error } => match error {
                Some(reply) => &reply.code,
                None if !close.reason().is_empty() && is_code(close.reason()) => close.reason(),
                None => close.code().name(),
            },
            Error::ConnectionLost { .. } => "connection_lost",
            Error::InvalidFrame { code, .. } => code,
            Error::Refused { reply } => &reply.code,
            Error::RunFailed { error, .. } => &error.code,
            Error::StreamReset { .. } => "stream_reset",
            Error::Interrupted => "interrupted",
            Error::InvalidRun(v) => v.code(),
            Error::Timeout { .. } => "timeout",
            Error::Token { .. } => "token_error",
            Error::ClientClosed => "client_closed",
        }
    }

    /// The close code, when the server closed the connection.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Closed { close, .. } => Some(close.code()),
            _ => None,
        }
    }

    /// Whether the server refused the credentials (close 4401: a failed handshake, an expired
    /// token).
    pub fn is_auth_failure(&self) -> bool {
        self.close_code().is_some_and(|c| c.as_u16() == 4401)
    }

    /// Whether connecting again later may work: network failures, a server going away or
    /// restarting, heartbeat and slow-consumer closes, a user at its connection limit, HTTP
    /// 5xx and 429. Not: bad URLs or credentials, refused tokens, frames the server rejected
    /// (1002, 1003, 1007, 1009), a peer that does not speak agentwire.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::ConnectionLost { .. }
            | Error::Timeout { .. } => true,
            Error::Upgrade(UpgradeError::Refused(response)) => {
                response.status >= 500 || response.status == 429
            }
            Error::Upgrade(UpgradeError::Io { .. } | UpgradeError::Closed { .. }) => true,
            Error::Closed { close, .. } => matches!(
                close.code().as_u16(),
                1001 | 1005 | 1006 | 1011 | 1012 | 1013 | 1014 | 4008 | 4408 | 4409 | 4429
            ),
            _ => false,
        }
    }

    pub(crate) fn lost(message: impl fmt::Display) -> Error {
        Error::ConnectionLost {
            message: message.to_string(),
        }
    }

    pub(crate) fn from_ws(error: tokio_tungstenite::tungstenite::Error) -> Error {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match error {
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                Error::lost("the connection is closed")
            }
            other => Error::lost(other),
        }
    }
}

/// A stable code looks like one: lower-case ASCII letters, digits and `_`.
fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why an HTTP upgrade did not give a WebSocket.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Reading or writing failed before a full response head.
    #[error("{message}")]
    Io {
        /// The kind of I/O error.
        kind: io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// The server closed the connection before a full response head.
    #[error("the server closed the connection after {received} bytes, before an HTTP answer")]
    Closed {
        /// Bytes received before the close.
        received: usize,
    },
    /// The answer does not start like HTTP.
    #[error("not an HTTP answer: {start:?}")]
    NotHttp {
        /// The first bytes received, as text.
        start: String,
    },
    /// The response head is larger than the client reads.
    #[error("HTTP answer head over {max} bytes")]
    HeadTooLarge {
        /// The limit.
        max: usize,
    },
    /// A status other than 101 (the body is read, up to a limit).
    #[error("HTTP {} {}{}", .0.status, .0.reason, .0.error_code().map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused(Box<Response>),
    /// 101 with a `Sec-WebSocket-Accept` that does not match the key.
    #[error("101 with a wrong Sec-WebSocket-Accept")]
    BadAccept(Box<Response>),
}

impl UpgradeError {
    /// The stable code: for a refusal with an agentwire JSON body, the body's code
    /// (`invalid_resume_query`, `marker_missing`, ...); otherwise `upgrade_refused`,
    /// `upgrade_io`, `upgrade_closed`, `not_http`, `head_too_large` or `bad_accept`.
    pub fn code(&self) -> &str {
        match self {
            UpgradeError::Io { .. } => "upgrade_io",
            UpgradeError::Closed { .. } => "upgrade_closed",
            UpgradeError::NotHttp { .. } => "not_http",
            UpgradeError::HeadTooLarge { .. } => "head_too_large",
            UpgradeError::Refused(response) => response.error_code().unwrap_or("upgrade_refused"),
            UpgradeError::BadAccept(_) => "bad_accept",
        }
    }

    pub(crate) fn io(error: &io::Error) -> UpgradeError {
        UpgradeError::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}
