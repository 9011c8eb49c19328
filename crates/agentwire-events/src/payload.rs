//! Typed payloads of every outbound frame.
//!
//! Each struct is the `payload` object of one frame type. Required fields are plain fields, so
//! a frame cannot be built without them; optional fields are `Option`s that are omitted from the
//! JSON when `None` (never written as `null`).

use std::borrow::Cow;

use agentwire_types::MessageType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, OtherTypeError, OutboundError};
use crate::timestamp::Timestamp;

/// The protocol version this crate speaks, sent in `connection_established`.
pub const PROTOCOL_VERSION: u32 = 1;

/// `agent_started`: first event of every run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AgentStarted {
    /// The agent that handles the run.
    pub agent_name: String,
    /// The request text that started the run.
    pub user_request: String,
}

impl AgentStarted {
    /// An `agent_started` payload.
    pub fn new(agent_name: impl Into<String>, user_request: impl Into<String>) -> Self {
        Self {
            agent_name: agent_name.into(),
            user_request: user_request.into(),
        }
    }
}

/// `agent_thinking`: the agent is reasoning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AgentThinking {
    /// The reasoning text.
    pub reasoning: String,
    /// The step number within the run, when the agent counts steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
}

impl AgentThinking {
    /// An `agent_thinking` payload without a step number.
    pub fn new(reasoning: impl Into<String>) -> Self {
        Self {
            reasoning: reasoning.into(),
            step: None,
        }
    }

    /// Sets the step number.
    #[must_use]
    pub fn with_step(mut self, step: u32) -> Self {
        self.step = Some(step);
        self
    }
}

/// `tool_executing`: the agent called a tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ToolExecuting {
    /// The tool's name.
    pub tool_name: String,
    /// Identifies this call; the matching `tool_completed` carries the same id.
    pub tool_call_id: String,
    /// The call's arguments (a JSON object, possibly empty).
    pub parameters: Map<String, Value>,
}

impl ToolExecuting {
    /// A `tool_executing` payload with no parameters yet.
    pub fn new(tool_name: impl Into<String>, tool_call_id: impl Into<String>) -> Self {
        Self {
            tool_name: tool_name.into(),
            tool_call_id: tool_call_id.into(),
            parameters: Map::new(),
        }
    }

    /// Adds one parameter.
    #[must_use]
    pub fn with_parameter(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// Replaces the parameters.
    #[must_use]
    pub fn with_parameters(mut self, parameters: Map<String, Value>) -> Self {
        self.parameters = parameters;
        self
    }
}

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolStatus {
    /// The tool returned a result.
    Ok,
    /// The tool failed; the result describes the failure.
    Error,
}

/// `tool_completed`: a tool call finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ToolCompleted {
    /// The tool's name (same as in the matching `tool_executing`).
    pub tool_name: String,
    /// The id of the matching `tool_executing`.
    pub tool_call_id: String,
    /// What the tool returned (any JSON).
    pub result: Value,
    /// How long the call took.
    pub duration_ms: u64,
    /// Whether the call succeeded.
    pub status: ToolStatus,
}

impl ToolCompleted {
    /// A successful tool call.
    pub fn ok(
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        result: impl Into<Value>,
        duration_ms: u64,
    ) -> Self {
        Self {
            tool_name: tool_name.into(),
            tool_call_id: tool_call_id.into(),
            result: result.into(),
            duration_ms,
            status: ToolStatus::Ok,
        }
    }

    /// A failed tool call; `result` describes the failure.
    pub fn error(
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        result: impl Into<Value>,
        duration_ms: u64,
    ) -> Self {
        Self {
            status: ToolStatus::Error,
            ..Self::ok(tool_name, tool_call_id, result, duration_ms)
        }
    }
}

/// `agent_response_chunk`: a piece of the agent's streamed answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AgentResponseChunk {
    /// The text to append.
    pub delta: String,
    /// The chunk's position in the answer, from 0.
    pub index: u32,
}

impl AgentResponseChunk {
    /// An `agent_response_chunk` payload.
    pub fn new(delta: impl Into<String>, index: u32) -> Self {
        Self {
            delta: delta.into(),
            index,
        }
    }
}

/// `agent_completed`: the run finished successfully (terminal event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AgentCompleted {
    /// The run's result (any JSON).
    pub result: Value,
    /// How long the run took.
    pub duration_ms: u64,
}

impl AgentCompleted {
    /// An `agent_completed` payload.
    pub fn new(result: impl Into<Value>, duration_ms: u64) -> Self {
        Self {
            result: result.into(),
            duration_ms,
        }
    }
}

/// `agent_error`: the run failed (terminal event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AgentError {
    /// A stable machine code chosen by the agent, e.g. `tool_failed` or `cancelled`.
    pub code: Cow<'static, str>,
    /// A human-readable explanation.
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub recoverable: bool,
}

impl AgentError {
    /// An `agent_error` payload.
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        recoverable: bool,
    ) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            recoverable,
        }
    }
}

/// The position of a user's event stream: an epoch and the last `seq` sent in it.
///
/// `seq` values are only comparable within one epoch; a new epoch (for example after a server
/// restart) starts again from 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct StreamPosition {
    /// Identifies this incarnation of the stream.
    pub epoch: String,
    /// The `seq` of the last event on the stream, 0 when there was none yet.
    pub seq: u64,
}

impl StreamPosition {
    /// The position `seq` in `epoch`.
    pub fn new(epoch: impl Into<String>, seq: u64) -> Self {
        Self {
            epoch: epoch.into(),
            seq,
        }
    }
}

/// `connection_established`: first frame after a successful handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ConnectionEstablished {
    /// The server's id for this connection.
    pub connection_id: String,
    /// The authenticated user (the token's `sub`).
    pub user_id: String,
    /// The protocol version: 1 (`PROTOCOL_VERSION`).
    pub protocol_version: u32,
    /// How often the server pings; a client may send `heartbeat` at this interval.
    pub heartbeat_interval_ms: u64,
    /// The largest frame the server accepts (larger ones are closed with 1009).
    pub max_message_bytes: u64,
    /// The server's clock when the frame was sent.
    pub server_time: Timestamp,
    /// Where the user's event stream stands.
    pub stream: StreamPosition,
    /// What became of the resume the client asked for (`?epoch=&since=`); absent when it
    /// asked for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeOutcome>,
}

/// `connection_established.payload.resume`: the answer to a client's `?epoch=&since=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResumeOutcome {
    /// The events `from_seq..=to_seq` (`replayed` of them) follow this frame, as first
    /// stamped, then live events.
    Resumed {
        /// How many events are replayed (`to_seq - from_seq + 1`; 0 when none was missed).
        replayed: u64,
        /// The first replayed `seq` (the client's `since` + 1).
        from_seq: u64,
        /// The last replayed `seq`; live events go on from `to_seq + 1`.
        to_seq: u64,
    },
    /// The server cannot prove continuity: the client resynchronizes by other means.
    Reset {
        /// `epoch_changed`, `outside_window` or `unavailable`.
        reason: String,
    },
}

impl ConnectionEstablished {
    /// A `connection_established` payload of protocol version [`PROTOCOL_VERSION`].
    pub fn new(
        connection_id: impl Into<String>,
        user_id: impl Into<String>,
        heartbeat_interval_ms: u64,
        max_message_bytes: u64,
        server_time: Timestamp,
        stream: StreamPosition,
    ) -> Self {
        Self {
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            protocol_version: PROTOCOL_VERSION,
            heartbeat_interval_ms,
            max_message_bytes,
            server_time,
            stream,
            resume: None,
        }
    }

    /// Sets `resume`: the answer to the client's resume request.
    #[must_use]
    pub fn with_resume(mut self, resume: ResumeOutcome) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Sets `protocol_version` (a server speaking another version than this crate's).
    #[must_use]
    pub fn with_protocol_version(mut self, protocol_version: u32) -> Self {
        self.protocol_version = protocol_version;
        self
    }
}

/// `pong`: the answer to `ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Pong {
    /// The server's clock when the frame was sent.
    pub server_time: Timestamp,
}

impl Pong {
    /// A `pong` payload.
    pub fn new(server_time: Timestamp) -> Self {
        Self { server_time }
    }
}

/// `heartbeat_ack`: the answer to `heartbeat` (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct HeartbeatAck {}

impl HeartbeatAck {
    /// A `heartbeat_ack` payload.
    pub fn new() -> Self {
        Self {}
    }
}

/// `error`: a protocol-level error reply. The connection stays open unless a close follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ErrorReply {
    /// The stable code, e.g. `invalid_payload`: a protocol code (`ErrorCode`), an
    /// authentication code (agentwire-auth), or a code a service's handler chose.
    pub code: Cow<'static, str>,
    /// A human-readable explanation.
    pub message: String,
    /// The `type` the client sent, for `unknown_message_type` and `unsupported_message_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_type: Option<String>,
    /// For `invalid_payload`: the offending field path, e.g. `payload.user_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid_json`: the 1-based line of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// For `invalid_json`: the 1-based column of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// For `rate_limited`: how long to wait before sending again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorReply {
    /// An `error` payload with only `code` and `message`. `code` is an [`ErrorCode`], or the
    /// `&'static str` or `String` code of another list (authentication, a handler's own).
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            received_type: None,
            field: None,
            line: None,
            column: None,
            retry_after_ms: None,
        }
    }

    /// A `rate_limited` error saying when to try again.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            "too many messages; wait retry_after_ms before sending again",
        )
        .with_retry_after_ms(retry_after_ms)
    }

    /// Sets `received_type`.
    #[must_use]
    pub fn with_received_type(mut self, received_type: impl Into<String>) -> Self {
        self.received_type = Some(received_type.into());
        self
    }

    /// Sets `field`, the path of the offending field (for `invalid_payload`).
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Sets `line` and `column`, 1-based, of the error (for `invalid_json`).
    #[must_use]
    pub fn with_position(mut self, line: u64, column: u64) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets `retry_after_ms` (for `rate_limited`; see [`rate_limited`](Self::rate_limited)).
    #[must_use]
    pub fn with_retry_after_ms(mut self, retry_after_ms: u64) -> Self {
        self.retry_after_ms = Some(retry_after_ms);
        self
    }

    /// The [`ErrorCode`] this reply carries, or `None` for a code of another list (an
    /// authentication code, a handler's own code).
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

impl From<ErrorCode> for Cow<'static, str> {
    fn from(code: ErrorCode) -> Self {
        Cow::Borrowed(code.as_str())
    }
}

/// `auth_refreshed`: the server accepted an `auth_refresh`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AuthRefreshed {
    /// When the new token expires (its `exp`).
    pub expires_at: Timestamp,
}

impl AuthRefreshed {
    /// An `auth_refreshed` payload.
    pub fn new(expires_at: Timestamp) -> Self {
        Self { expires_at }
    }
}

/// The payload of a server-to-client type that has no typed payload here (`system_message`,
/// `thread_update`, `agent_progress`, the JSON-RPC passthrough, ...): the type and a JSON
/// object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherPayload {
    message_type: MessageType,
    payload: Map<String, Value>,
}

impl OtherPayload {
    /// A payload of `message_type`.
    ///
    /// # Errors
    ///
    /// [`OtherTypeError`] when a server may not send `message_type`, or when it has a typed
    /// payload in [`Payload`] (use that, so its required fields are checked).
    pub fn new(
        message_type: MessageType,
        payload: Map<String, Value>,
    ) -> Result<Self, OtherTypeError> {
        if !message_type.direction().server_may_send() {
            return Err(OtherTypeError {
                message_type,
                reason: "a server does not send this type",
            });
        }
        if Payload::is_typed(message_type) {
            return Err(OtherTypeError {
                message_type,
                reason: "it has a typed payload; build that instead",
            });
        }
        Ok(Self {
            message_type,
            payload,
        })
    }

    /// A payload of `message_type` from any JSON value that is an object (`json!({...})`, a
    /// `Map`, a serialized struct).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`OtherTypeError`] when `payload` is not a JSON object.
    pub fn from_value(
        message_type: MessageType,
        payload: impl Into<Value>,
    ) -> Result<Self, OtherTypeError> {
        match payload.into() {
            Value::Object(map) => Self::new(message_type, map),
            _ => Err(OtherTypeError {
                message_type,
                reason: "the payload must be a JSON object",
            }),
        }
    }

    /// The frame's type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The payload object.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }

    /// The payload object, by value.
    pub fn into_payload(self) -> Map<String, Value> {
        self.payload
    }
}

/// Declares [`Payload`] with its typed variants, their `From` impls and the type mapping.
macro_rules! payloads {
    ($( $(#[doc = $doc:literal])+ $variant:ident($ty:ty) = $mt:ident, stream = $stream:literal; )+) => {
        /// The typed payload of an outbound frame; its variant decides the frame's `type`.
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Payload {
            $( $(#[doc = $doc])+ $variant($ty), )+
            /// A server-to-client type without a typed payload.
            Other(OtherPayload),
        }

        $(
            impl From<$ty> for Payload {
                fn from(payload: $ty) -> Self {
                    Payload::$variant(payload)
                }
            }
        )+

        impl From<OtherPayload> for Payload {
            fn from(payload: OtherPayload) -> Self {
                Payload::Other(payload)
            }
        }

        impl Payload {
            /// The types that have a typed variant, in declaration order.
            pub const TYPED: &'static [MessageType] = &[$(MessageType::$mt),+];

            /// The frame type this payload belongs to.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $( Payload::$variant(_) => MessageType::$mt, )+
                    Payload::Other(other) => other.message_type,
                }
            }

            /// Whether `message_type` has a typed variant.
            pub fn is_typed(message_type: MessageType) -> bool {
                Self::TYPED.contains(&message_type)
            }

            /// Whether frames of this payload belong to the user's event stream (and so carry
            /// a `seq`), as opposed to connection-scoped control frames.
            ///
            /// The agent events are stream events; `connection_established`, `pong`,
            /// `heartbeat_ack`, `error` and `auth_refreshed` are not. Generic payloads are
            /// stream events.
            pub fn is_stream_event(&self) -> bool {
                match self {
                    $( Payload::$variant(_) => $stream, )+
                    Payload::Other(_) => true,
                }
            }

            /// Serializes the payload object alone.
            pub(crate) fn serialize_inner<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                match self {
                    $( Payload::$variant(p) => p.serialize(serializer), )+
                    Payload::Other(other) => other.payload.serialize(serializer),
                }
            }

            /// Reads the payload object of a frame of type `message_type`.
            pub(crate) fn from_value(
                message_type: MessageType,
                value: Value,
            ) -> Result<Payload, String> {
                match message_type {
                    $( MessageType::$mt => serde_json::from_value::<$ty>(value)
                        .map(Payload::$variant)
                        .map_err(|e| e.to_string()), )+
                    other => match value {
                        Value::Object(map) => OtherPayload::new(other, map)
                            .map(Payload::Other)
                            .map_err(|e| e.to_string()),
                        _ => Err("expected a JSON object".to_owned()),
                    },
                }
            }

            /// Reads the payload object of a frame of type `message_type` from its JSON text
            /// (`text` must hold a JSON object), with the messages of
            /// [`from_value`](Self::from_value) (no position in the text).
            pub(crate) fn from_text(message_type: MessageType, text: &str) -> Result<Payload, String> {
                let message = |e: serde_json::Error| {
                    let message = e.to_string();
                    let at = format!(" at line {} column {}", e.line(), e.column());
                    match message.strip_suffix(&at) {
                        Some(message) => message.to_owned(),
                        None => message,
                    }
                };
                match message_type {
                    $( MessageType::$mt => serde_json::from_str::<$ty>(text)
                        .map(Payload::$variant)
                        .map_err(message), )+
                    other => match serde_json::from_str(text).map_err(message)? {
                        Value::Object(map) => OtherPayload::new(other, map)
                            .map(Payload::Other)
                            .map_err(|e| e.to_string()),
                        _ => Err("expected a JSON object".to_owned()),
                    },
                }
            }

            /// Reads the payload of a frame of type `message_type` from the members of a JSON
            /// object as a deserializer hands them over (`visit_map`): for relays that read
            /// whole events themselves and meet the type before the payload, so that the
            /// payload is read once, straight into its typed form.
            ///
            /// # Errors
            ///
            /// The deserializer's errors, and a custom error (with the message
            /// [`from_json`](Self::from_json) gives, without its prefix) for a payload that
            /// does not fit `message_type`.
            pub fn from_map_access<'de, A: serde::de::MapAccess<'de>>(
                message_type: MessageType,
                map: A,
            ) -> Result<Payload, A::Error> {
                use serde::de::Error as _;
                let members = serde::de::value::MapAccessDeserializer::new(map);
                match message_type {
                    $( MessageType::$mt => <$ty>::deserialize(members).map(Payload::$variant), )+
                    other => {
                        let map = Map::<String, Value>::deserialize(members)?;
                        OtherPayload::new(other, map)
                            .map(Payload::Other)
                            .map_err(A::Error::custom)
                    }
                }
            }

            /// Adds the JSON Schema of each typed payload to `generator`, returning
            /// `(type, schema)` pairs.
            pub(crate) fn typed_schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(MessageType, bool, schemars::Schema)> {
                vec![$( (MessageType::$mt, $stream, generator.subschema_for::<$ty>()), )+]
            }
        }
    };
}

payloads! {
    /// `agent_started`.
    AgentStarted(AgentStarted) = AgentStarted, stream = true;
    /// `agent_thinking`.
    AgentThinking(AgentThinking) = AgentThinking, stream = true;
    /// `tool_executing`.
    ToolExecuting(ToolExecuting) = ToolExecuting, stream = true;
    /// `tool_completed`.
    ToolCompleted(ToolCompleted) = ToolCompleted, stream = true;
    /// `agent_response_chunk`.
    AgentResponseChunk(AgentResponseChunk) = AgentResponseChunk, stream = true;
    /// `agent_completed`.
    AgentCompleted(AgentCompleted) = AgentCompleted, stream = true;
    /// `agent_error`.
    AgentError(AgentError) = AgentError, stream = true;
    /// `connection_established`.
    ConnectionEstablished(ConnectionEstablished) = ConnectionEstablished, stream = false;
    /// `pong`.
    Pong(Pong) = Pong, stream = false;
    /// `heartbeat_ack`.
    HeartbeatAck(HeartbeatAck) = HeartbeatAck, stream = false;
    /// `error`.
    ErrorReply(ErrorReply) = Error, stream = false;
    /// `auth_refreshed`.
    AuthRefreshed(AuthRefreshed) = AuthRefreshed, stream = false;
}

impl Payload {
    /// Reads the payload object of a frame of type `message_type`, as [`parse_outbound`]
    /// does for a whole frame: a typed payload has its required fields checked, any other
    /// type a server may send becomes [`Payload::Other`]. For a relay (an agent service's
    /// events) that has the type and the payload apart; normalize the type first with
    /// [`agentwire_types::normalize`].
    ///
    /// # Errors
    ///
    /// [`OutboundError`] with code `invalid_frame`: a missing or mistyped field, a payload
    /// that is not a JSON object, or a type a server never sends.
    ///
    /// ```
    /// use agentwire_events::Payload;
    /// use agentwire_types::MessageType;
    /// use serde_json::json;
    ///
    /// let chunk = Payload::from_json(
    ///     MessageType::AgentResponseChunk,
    ///     json!({"delta": "Hel", "index": 0}),
    /// ).unwrap();
    /// assert_eq!(chunk.message_type(), MessageType::AgentResponseChunk);
    /// assert!(Payload::from_json(MessageType::ToolCompleted, json!({})).is_err());
    /// ```
    ///
    /// [`parse_outbound`]: crate::parse_outbound
    pub fn from_json(message_type: MessageType, payload: Value) -> Result<Payload, OutboundError> {
        if !payload.is_object() {
            return Err(OutboundError {
                invalid_json: false,
                message: format!("payload of {message_type}: expected a JSON object"),
            });
        }
        Payload::from_value(message_type, payload).map_err(|e| OutboundError {
            invalid_json: false,
            message: format!("payload of {message_type}: {e}"),
        })
    }

    /// As [`from_json`](Self::from_json), reading the payload from its JSON text without
    /// building a [`Value`] first (for relays that read events from text, one per line).
    ///
    /// ```
    /// use agentwire_events::Payload;
    /// use agentwire_types::MessageType;
    ///
    /// let chunk = Payload::from_json_text(
    ///     MessageType::AgentResponseChunk,
    ///     r#"{"delta": "Hel", "index": 0}"#,
    /// ).unwrap();
    /// assert_eq!(chunk.message_type(), MessageType::AgentResponseChunk);
    /// assert!(Payload::from_json_text(MessageType::ToolCompleted, "{}").is_err());
    /// assert!(Payload::from_json_text(MessageType::AgentStarted, "[]").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json), with the same messages; also when `text` is not
    /// JSON.
    pub fn from_json_text(message_type: MessageType, text: &str) -> Result<Payload, OutboundError> {
        if !text.trim_start().starts_with('{') {
            let invalid_json = serde_json::from_str::<serde::de::IgnoredAny>(text).is_err();
            return Err(OutboundError {
                invalid_json,
                message: format!("payload of {message_type}: expected a JSON object"),
            });
        }
        Payload::from_text(message_type, text).map_err(|e| OutboundError {
            invalid_json: false,
            message: format!("payload of {message_type}: {e}"),
        })
    }

    /// The `tool_call_id` of a `tool_executing` or `tool_completed` payload.
    pub fn tool_call_id(&self) -> Option<&str> {
        match self {
            Payload::ToolExecuting(p) => Some(&p.tool_call_id),
            Payload::ToolCompleted(p) => Some(&p.tool_call_id),
            _ => None,
        }
    }
}
