//! Every error type of this crate, each with a stable machine code.

use core::fmt;

use agentwire_types::MessageType;

/// The stable `code` of an `error` frame: the one list of the codes agentwire sends (the
/// reason of a 4xxx close is the same code).
///
/// Every `error` frame a server sends carries one of these, except two kinds of codes that live
/// elsewhere: the authentication codes (agentwire-auth's `AuthError::code`, e.g.
/// `invalid_signature`), and the codes a service's own handler chooses when it refuses a
/// message. [`ErrorReply::new`](crate::ErrorReply::new) and [`Event::error`](crate::Event::error)
/// take any of the three: an `ErrorCode`, a `&'static str`, or a `String`.
///
/// ```
/// use agentwire_events::{ErrorCode, Event, Payload};
///
/// let reply = Event::error(ErrorCode::TooManyRuns, "this connection already has 8 runs in flight");
/// let Payload::ErrorReply(error) = reply.payload() else { unreachable!() };
/// assert_eq!(error.code, "too_many_runs");
/// assert_eq!(error.error_code(), Some(ErrorCode::TooManyRuns));
/// assert_eq!(ErrorCode::parse("unknown_run"), Some(ErrorCode::UnknownRun));
/// ```
///
/// The enum is `#[non_exhaustive]`: later versions may add codes, and clients should handle a
/// code they do not know like a generic error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not JSON; the message has the line and column.
    InvalidJson,
    /// The `type` is not a known name or alias.
    UnknownMessageType,
    /// The `type` is known but a client may not send it, or this server does not handle it.
    UnsupportedMessageType,
    /// The frame is JSON of the wrong shape; the message names the field path.
    InvalidPayload,
    /// Over the rate limit; `retry_after_ms` says when to try again.
    RateLimited,
    /// The connection already has as many runs in flight as the server allows; no run was
    /// started.
    TooManyRuns,
    /// A `cancel_agent` named a run that is not in flight, or none is in flight.
    UnknownRun,
    /// The user already has as many open connections as the server allows (the connection
    /// is closed with 4409 right after).
    TooManyConnections,
    /// The connection's outbound queue stayed full: the client does not read fast enough (the
    /// connection is closed with 4008 right after).
    SlowConsumer,
    /// The connection's token expired (the connection is closed with 4401 right after).
    TokenExpired,
    /// In-band authentication is on and the client did not authenticate within the auth
    /// timeout (the connection is closed with 4408 right after).
    AuthTimeout,
    /// Nothing arrived from the client within the pong timeout after a ping: the reason of the
    /// 4408 close. No `error` frame carries it (the peer is not reading).
    HeartbeatTimeout,
    /// Multi-node: the store of the users' streams (Redis) became unreachable. Sent once to
    /// every open connection of the node (no `seq`); the connection stays open, and events
    /// emitted meanwhile are refused. Also the reason of a 1013 close when a new connection
    /// cannot be told where its stream stands.
    StreamUnavailable,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::UnknownMessageType,
        ErrorCode::UnsupportedMessageType,
        ErrorCode::InvalidPayload,
        ErrorCode::RateLimited,
        ErrorCode::TooManyRuns,
        ErrorCode::UnknownRun,
        ErrorCode::TooManyConnections,
        ErrorCode::SlowConsumer,
        ErrorCode::TokenExpired,
        ErrorCode::AuthTimeout,
        ErrorCode::HeartbeatTimeout,
        ErrorCode::StreamUnavailable,
    ];

    /// The wire form, e.g. `"invalid_payload"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::UnsupportedMessageType => "unsupported_message_type",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRuns => "too_many_runs",
            ErrorCode::UnknownRun => "unknown_run",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::AuthTimeout => "auth_timeout",
            ErrorCode::HeartbeatTimeout => "heartbeat_timeout",
            ErrorCode::StreamUnavailable => "stream_unavailable",
        }
    }

    /// The code whose wire form is `code` (exactly, no case folding), if it is one of these.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with an inbound frame; see [`InboundError::kind`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InboundErrorKind {
    /// Not JSON (code `invalid_json`), at this 1-based line and column.
    InvalidJson {
        /// Line of the first offending character.
        line: usize,
        /// Column of the first offending character.
        column: usize,
    },
    /// The `type` is not a known name or alias (code `unknown_message_type`).
    UnknownMessageType,
    /// The `type` is known, but refused (code `unsupported_message_type`): a server-to-client
    /// type, or a legacy name agentwire rejects on purpose.
    UnsupportedMessageType,
    /// JSON of the wrong shape (code `invalid_payload`).
    InvalidPayload {
        /// The path of the offending field, e.g. `payload.user_request`; empty for the frame
        /// itself (not a JSON object).
        field: String,
    },
}

/// Why [`parse_inbound`](crate::parse_inbound) refused a frame.
///
/// Carries a stable [`code`](Self::code), a human-readable [`message`](Self::message) (it never
/// contains a value the client sent other than the type name, so it is safe to log and to send
/// back), and, when they could be read, the client's [`message_id`](Self::message_id) (for
/// `reply_to`) and the [`received_type`](Self::received_type).
/// [`to_event`](Self::to_event) builds the `error` frame the server answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InboundError {
    pub(crate) kind: InboundErrorKind,
    pub(crate) message: String,
    pub(crate) message_id: Option<String>,
    pub(crate) received_type: Option<String>,
    pub(crate) message_type: Option<MessageType>,
}

impl InboundError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            InboundErrorKind::InvalidJson { .. } => ErrorCode::InvalidJson,
            InboundErrorKind::UnknownMessageType => ErrorCode::UnknownMessageType,
            InboundErrorKind::UnsupportedMessageType => ErrorCode::UnsupportedMessageType,
            InboundErrorKind::InvalidPayload { .. } => ErrorCode::InvalidPayload,
        }
    }

    /// What went wrong, with its details.
    pub fn kind(&self) -> &InboundErrorKind {
        &self.kind
    }

    /// The human-readable message (also the [`Display`](fmt::Display) form).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The client's `message_id`, when the frame was JSON and had a readable one.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The `type` string as received (at most
    /// [`MAX_RECEIVED_BYTES`](agentwire_types::MAX_RECEIVED_BYTES) of it), when it was a string.
    pub fn received_type(&self) -> Option<&str> {
        self.received_type.as_deref()
    }

    /// The canonical type, when the `type` was resolved before the error (so for
    /// `invalid_payload` of a known type, and for `unsupported_message_type` of a
    /// server-to-client type).
    pub fn message_type(&self) -> Option<MessageType> {
        self.message_type
    }

    /// For `invalid_payload`: the offending field path (empty for the frame itself).
    pub fn field(&self) -> Option<&str> {
        match &self.kind {
            InboundErrorKind::InvalidPayload { field } => Some(field),
            _ => None,
        }
    }

    /// For `invalid_json`: the 1-based line and column.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self.kind {
            InboundErrorKind::InvalidJson { line, column } => Some((line, column)),
            _ => None,
        }
    }

    /// The `error` event that answers this error: `code`, `message`, and where known
    /// `received_type`, `field`, `line` and `column`, with `reply_to` set to the client's
    /// `message_id`.
    pub fn to_event(&self) -> crate::Event {
        let mut reply = crate::ErrorReply::new(self.code(), self.message.clone());
        reply.received_type = self.received_type.clone();
        match &self.kind {
            InboundErrorKind::InvalidJson { line, column } => {
                reply.line = Some(*line as u64);
                reply.column = Some(*column as u64);
            }
            InboundErrorKind::InvalidPayload { field } => reply.field = Some(field.clone()),
            _ => {}
        }
        let event = crate::Event::new(reply);
        match &self.message_id {
            Some(id) => event.with_reply_to(id.clone()),
            None => event,
        }
    }
}

/// Text that is not an RFC 3339 timestamp (see [`Timestamp`](crate::Timestamp)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not of the form `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
    #[error("not an RFC 3339 timestamp (expected e.g. \"2025-01-02T03:04:05.678Z\")")]
    Malformed,
    /// A field out of range (month 13, February 30, hour 24), or outside years 0000 to 9999.
    #[error("timestamp out of range")]
    OutOfRange,
}

impl TimestampError {
    /// The stable code: `malformed_timestamp` or `timestamp_out_of_range`.
    pub fn code(&self) -> &'static str {
        match self {
            TimestampError::Malformed => "malformed_timestamp",
            TimestampError::OutOfRange => "timestamp_out_of_range",
        }
    }
}

/// Why [`parse_outbound`](crate::parse_outbound) refused a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OutboundError {
    pub(crate) invalid_json: bool,
    pub(crate) message: String,
}

impl OutboundError {
    /// The stable code: `invalid_json` (not JSON) or `invalid_frame` (JSON, but not a valid
    /// outbound frame).
    pub fn code(&self) -> &'static str {
        if self.invalid_json {
            "invalid_json"
        } else {
            "invalid_frame"
        }
    }

    /// The human-readable message, naming the field where it can.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// [`OtherPayload::new`](crate::OtherPayload::new) or
/// [`OtherRequest::new`](crate::OtherRequest::new) got a type it cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message_type} cannot be sent as a generic frame: {reason}")]
pub struct OtherTypeError {
    pub(crate) message_type: MessageType,
    pub(crate) reason: &'static str,
}

impl OtherTypeError {
    /// The type that was refused.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The stable code: `not_a_generic_type`.
    pub fn code(&self) -> &'static str {
        "not_a_generic_type"
    }
}

/// A rule of a well-formed run (see [`RunValidator`](crate::RunValidator)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunRule {
    /// The run has no events at all.
    EmptyRun,
    /// The first event is not `agent_started`.
    FirstNotAgentStarted,
    /// A second `agent_started`.
    DuplicateAgentStarted,
    /// A frame that is not a run event (`pong`, `error`, `connection_established`, ...).
    NotARunEvent,
    /// An event without `run_id`.
    MissingRunId,
    /// An event whose `run_id` differs from the first event's.
    RunIdChanged,
    /// A stamped frame without `seq`.
    MissingSeq,
    /// A `seq` not greater than the previous event's.
    SeqNotIncreasing,
    /// A `tool_executing` reusing the `tool_call_id` of an earlier one.
    DuplicateToolCallId,
    /// A `tool_completed` with no earlier `tool_executing` of the same `tool_call_id`.
    ToolCompletedWithoutExecuting,
    /// A second `tool_completed` for the same `tool_call_id`.
    DuplicateToolCompleted,
    /// A `tool_completed` whose `tool_name` differs from its `tool_executing`'s.
    ToolNameMismatch,
    /// Any event after the terminal one (`agent_completed` or `agent_error`).
    EventAfterTerminal,
    /// The run ended without a terminal event.
    MissingTerminal,
    /// A text frame that [`parse_outbound`](crate::parse_outbound) refused.
    InvalidFrame,
}

impl RunRule {
    /// Every rule, in declaration order.
    pub const ALL: &'static [RunRule] = &[
        RunRule::EmptyRun,
        RunRule::FirstNotAgentStarted,
        RunRule::DuplicateAgentStarted,
        RunRule::NotARunEvent,
        RunRule::MissingRunId,
        RunRule::RunIdChanged,
        RunRule::MissingSeq,
        RunRule::SeqNotIncreasing,
        RunRule::DuplicateToolCallId,
        RunRule::ToolCompletedWithoutExecuting,
        RunRule::DuplicateToolCompleted,
        RunRule::ToolNameMismatch,
        RunRule::EventAfterTerminal,
        RunRule::MissingTerminal,
        RunRule::InvalidFrame,
    ];

    /// The stable code, e.g. `tool_completed_without_executing`.
    pub const fn code(self) -> &'static str {
        match self {
            RunRule::EmptyRun => "empty_run",
            RunRule::FirstNotAgentStarted => "first_not_agent_started",
            RunRule::DuplicateAgentStarted => "duplicate_agent_started",
            RunRule::NotARunEvent => "not_a_run_event",
            RunRule::MissingRunId => "missing_run_id",
            RunRule::RunIdChanged => "run_id_changed",
            RunRule::MissingSeq => "missing_seq",
            RunRule::SeqNotIncreasing => "seq_not_increasing",
            RunRule::DuplicateToolCallId => "duplicate_tool_call_id",
            RunRule::ToolCompletedWithoutExecuting => "tool_completed_without_executing",
            RunRule::DuplicateToolCompleted => "duplicate_tool_completed",
            RunRule::ToolNameMismatch => "tool_name_mismatch",
            RunRule::EventAfterTerminal => "event_after_terminal",
            RunRule::MissingTerminal => "missing_terminal",
            RunRule::InvalidFrame => "invalid_frame",
        }
    }
}

impl fmt::Display for RunRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The first event of a run that broke a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: {rule}: {message}")]
pub struct RunViolation {
    pub(crate) index: usize,
    pub(crate) rule: RunRule,
    pub(crate) message: String,
}

impl RunViolation {
    /// The 0-based index of the offending event in the sequence fed to the validator (for
    /// [`MissingTerminal`](RunRule::MissingTerminal) and [`EmptyRun`](RunRule::EmptyRun): the
    /// number of events, one past the last).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The rule that was broken.
    pub fn rule(&self) -> RunRule {
        self.rule
    }

    /// The stable code of the rule (same as `rule().code()`).
    pub fn code(&self) -> &'static str {
        self.rule.code()
    }

    /// A human-readable explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}
