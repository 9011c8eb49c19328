//! Outbound events, stamped frames, their one envelope shape, and reading frames back.

use std::borrow::Cow;
use std::sync::Arc;

use agentwire_types::{MessageType, normalize};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::OutboundError;
use crate::payload::{
    AgentCompleted, AgentError, AgentResponseChunk, AgentStarted, AgentThinking, AuthRefreshed,
    ConnectionEstablished, ErrorReply, HeartbeatAck, Payload, Pong, ToolCompleted, ToolExecuting,
};
use crate::stamp::{EncodedFrame, Stamp};
use crate::timestamp::Timestamp;

/// An outbound event before it is stamped: its payload and the ids that route it.
///
/// A service builds one in one expression and hands it to the server, which stamps it
/// ([`StreamStamper::stamp`](crate::StreamStamper::stamp), or [`Event::stamp`] with a
/// [`Stamp`]) into a [`Frame`] with `event_id`, `timestamp` and, for stream events, `seq`.
///
/// ```
/// use agentwire_events::{Event, ToolCompleted};
/// use serde_json::json;
///
/// let event = Event::in_run("run_1", ToolCompleted::ok("search", "call_1", json!({"hits": 3}), 12))
///     .with_thread_id("thread_9");
/// assert_eq!(event.message_type().as_str(), "tool_completed");
/// assert_eq!(event.run_id(), Some("run_1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    // Shared, not owned: a run's events all carry the same ids, and a server that emits many
    // events per run clones a pointer for each instead of copying the text.
    run_id: Option<Arc<str>>,
    thread_id: Option<Arc<str>>,
    reply_to: Option<Arc<str>>,
    payload: Payload,
}

impl Event {
    /// An event with this payload and no ids. Use [`in_run`](Self::in_run) for run events.
    pub fn new(payload: impl Into<Payload>) -> Event {
        Event {
            run_id: None,
            thread_id: None,
            reply_to: None,
            payload: payload.into(),
        }
    }

    /// An event of run `run_id` (every agent event belongs to a run).
    pub fn in_run(run_id: impl Into<Arc<str>>, payload: impl Into<Payload>) -> Event {
        Event::new(payload).with_run_id(run_id)
    }

    /// `agent_started` of run `run_id`.
    pub fn agent_started(
        run_id: impl Into<Arc<str>>,
        agent_name: impl Into<String>,
        user_request: impl Into<String>,
    ) -> Event {
        Event::in_run(run_id, AgentStarted::new(agent_name, user_request))
    }

    /// `agent_thinking` of run `run_id` (without a step number; see [`AgentThinking`]).
    pub fn agent_thinking(run_id: impl Into<Arc<str>>, reasoning: impl Into<String>) -> Event {
        Event::in_run(run_id, AgentThinking::new(reasoning))
    }

    /// `tool_executing` of run `run_id`.
    pub fn tool_executing(
        run_id: impl Into<Arc<str>>,
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        parameters: Map<String, Value>,
    ) -> Event {
        Event::in_run(
            run_id,
            ToolExecuting::new(tool_name, tool_call_id).with_parameters(parameters),
        )
    }

    /// `tool_completed` of run `run_id` with status `ok` (see [`ToolCompleted::error`] for a
    /// failed call).
    pub fn tool_completed(
        run_id: impl Into<Arc<str>>,
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        result: impl Into<Value>,
        duration_ms: u64,
    ) -> Event {
        Event::in_run(
            run_id,
            ToolCompleted::ok(tool_name, tool_call_id, result, duration_ms),
        )
    }

    /// `agent_response_chunk` of run `run_id`.
    pub fn agent_response_chunk(
        run_id: impl Into<Arc<str>>,
        delta: impl Into<String>,
        index: u32,
    ) -> Event {
        Event::in_run(run_id, AgentResponseChunk::new(delta, index))
    }

    /// `agent_completed` of run `run_id`.
    pub fn agent_completed(
        run_id: impl Into<Arc<str>>,
        result: impl Into<Value>,
        duration_ms: u64,
    ) -> Event {
        Event::in_run(run_id, AgentCompleted::new(result, duration_ms))
    }

    /// `agent_error` of run `run_id`.
    pub fn agent_error(
        run_id: impl Into<Arc<str>>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        recoverable: bool,
    ) -> Event {
        Event::in_run(run_id, AgentError::new(code, message, recoverable))
    }

    /// `connection_established`.
    pub fn connection_established(payload: ConnectionEstablished) -> Event {
        Event::new(payload)
    }

    /// `pong` carrying `server_time`.
    pub fn pong(server_time: Timestamp) -> Event {
        Event::new(Pong::new(server_time))
    }

    /// `system_message` with `{"message": message}`: a notification on the user's stream,
    /// outside any run.
    pub fn system_message(message: impl Into<String>) -> Event {
        let mut payload = serde_json::Map::new();
        payload.insert(
            "message".to_owned(),
            serde_json::Value::String(message.into()),
        );
        match crate::OtherPayload::new(MessageType::SystemMessage, payload) {
            Ok(payload) => Event::new(payload),
            // `system_message` is a server-to-client type without a typed payload: never here.
            Err(_) => Event::error(crate::ErrorCode::InvalidPayload, "system_message"),
        }
    }

    /// A server-to-client event of a type without a typed payload (`system_message`,
    /// `thread_update`, `agent_progress`, ...) with `payload`, a JSON object such as
    /// `json!({...})`.
    ///
    /// # Errors
    ///
    /// [`OtherTypeError`](crate::OtherTypeError) when a server does not send `message_type`,
    /// when it has a typed payload (build that), or when `payload` is not an object.
    pub fn notification(
        message_type: MessageType,
        payload: impl Into<serde_json::Value>,
    ) -> Result<Event, crate::OtherTypeError> {
        crate::OtherPayload::from_value(message_type, payload).map(Event::new)
    }

    /// `heartbeat_ack`.
    pub fn heartbeat_ack() -> Event {
        Event::new(HeartbeatAck {})
    }

    /// `error` with `code` and `message`: `code` is an [`ErrorCode`](crate::ErrorCode), or
    /// the `&'static str` or `String` code of another list (an authentication code, a
    /// handler's own). See [`ErrorReply`] for the optional fields, and
    /// [`InboundError::to_event`](crate::InboundError::to_event).
    pub fn error(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Event {
        Event::new(ErrorReply::new(code, message))
    }

    /// `auth_refreshed` carrying the new token's expiry.
    pub fn auth_refreshed(expires_at: Timestamp) -> Event {
        Event::new(AuthRefreshed::new(expires_at))
    }

    /// Sets `run_id`.
    #[must_use]
    pub fn with_run_id(mut self, run_id: impl Into<Arc<str>>) -> Event {
        self.run_id = Some(run_id.into());
        self
    }

    /// Sets `thread_id`.
    #[must_use]
    pub fn with_thread_id(mut self, thread_id: impl Into<Arc<str>>) -> Event {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Sets `reply_to`, the client `message_id` this frame answers.
    #[must_use]
    pub fn with_reply_to(mut self, reply_to: impl Into<Arc<str>>) -> Event {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// The frame type, decided by the payload.
    pub fn message_type(&self) -> MessageType {
        self.payload.message_type()
    }

    /// The run this event belongs to.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The thread this event belongs to.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }

    /// The client `message_id` this frame answers.
    pub fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }

    /// The typed payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Mutable access to the payload (the frame type follows the variant).
    pub fn payload_mut(&mut self) -> &mut Payload {
        &mut self.payload
    }

    /// The typed payload, by value.
    pub fn into_payload(self) -> Payload {
        self.payload
    }

    /// Whether this event belongs to the user's event stream and so gets a `seq` (see
    /// [`Payload::is_stream_event`]).
    pub fn is_stream_event(&self) -> bool {
        self.payload.is_stream_event()
    }

    /// Appends this stream event's JSON text with a fresh `event_id` and the current time, as
    /// [`StreamStamper::emit_into`](crate::StreamStamper::emit_into) writes it, but with the
    /// `seq`'s number left out; returns where in `out` the number goes (right after
    /// `"seq":`). For a store that assigns the `seq` itself (shared by several servers): the
    /// frame is `out[..at]`, the `seq` in decimal, then `out[at..]`. `None` (nothing written)
    /// for a control frame, which has no `seq`.
    ///
    /// ```
    /// use agentwire_events::{Event, parse_outbound};
    ///
    /// let mut text = String::new();
    /// let at = Event::agent_thinking("run_1", "...").write_unsequenced(&mut text).unwrap();
    /// let frame = format!("{}{}{}", &text[..at], 42, &text[at..]);
    /// assert_eq!(parse_outbound(&frame).unwrap().seq(), Some(42));
    /// ```
    pub fn write_unsequenced(&self, out: &mut String) -> Option<usize> {
        if !self.is_stream_event() {
            return None;
        }
        out.reserve(crate::write::size_hint(self) + 40);
        Some(crate::write::frame_unsequenced(
            out,
            self,
            crate::Timestamp::now(),
        ))
    }

    /// Stamps the event into a [`Frame`].
    pub fn stamp(self, stamp: Stamp) -> Frame {
        Frame { stamp, event: self }
    }

    /// Stamps a connection-scoped control frame (no `seq`) with a fresh `event_id` and the
    /// current time: shorthand for `self.stamp(Stamp::control())`.
    pub fn stamp_control(self) -> Frame {
        self.stamp(Stamp::control())
    }
}

/// A stamped outbound frame: an [`Event`] plus `event_id`, `timestamp` and `seq`.
///
/// Its JSON is the one envelope every outbound frame has, fields in this order, optional ones
/// omitted (never `null`):
///
/// ```text
/// {"type", "event_id", "timestamp", "run_id"?, "thread_id"?, "seq"?, "reply_to"?, "payload"}
/// ```
///
/// [`encode`](Self::encode) serializes it once into a shareable [`EncodedFrame`];
/// [`parse_outbound`] reads one back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    stamp: Stamp,
    event: Event,
}

impl Frame {
    /// A frame from an event and a stamp (same as [`Event::stamp`]).
    pub fn new(event: Event, stamp: Stamp) -> Frame {
        event.stamp(stamp)
    }

    /// The event inside.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event inside, by value.
    pub fn into_event(self) -> Event {
        self.event
    }

    /// The stamp (`event_id`, `timestamp`, `seq`).
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// Splits into event and stamp.
    pub fn into_parts(self) -> (Event, Stamp) {
        (self.event, self.stamp)
    }

    /// The frame type.
    pub fn message_type(&self) -> MessageType {
        self.event.message_type()
    }

    /// The frame's unique id.
    pub fn event_id(&self) -> &str {
        &self.stamp.event_id
    }

    /// When the frame was stamped.
    pub fn timestamp(&self) -> Timestamp {
        self.stamp.timestamp
    }

    /// The position on the user's stream (stream events only).
    pub fn seq(&self) -> Option<u64> {
        self.stamp.seq
    }

    /// The run this frame belongs to.
    pub fn run_id(&self) -> Option<&str> {
        self.event.run_id()
    }

    /// The thread this frame belongs to.
    pub fn thread_id(&self) -> Option<&str> {
        self.event.thread_id()
    }

    /// The client `message_id` this frame answers.
    pub fn reply_to(&self) -> Option<&str> {
        self.event.reply_to()
    }

    /// The typed payload.
    pub fn payload(&self) -> &Payload {
        self.event.payload()
    }

    /// The exact JSON text a server sends for this frame (compact, fields in envelope order).
    ///
    /// Written by a dedicated writer, byte for byte what `serde_json::to_string(&frame)` gives
    /// through the [`Serialize`] impl, in a fraction of the time.
    pub fn to_json(&self) -> String {
        crate::write::frame(self)
    }

    /// Serializes once into a cheaply clonable, shareable [`EncodedFrame`].
    pub fn encode(&self) -> EncodedFrame {
        EncodedFrame::new(self.to_json().into(), self.message_type(), self.seq())
    }
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct PayloadRef<'a>(&'a Payload);

        impl Serialize for PayloadRef<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_inner(serializer)
            }
        }

        let event = &self.event;
        let len = 4
            + usize::from(event.run_id.is_some())
            + usize::from(event.thread_id.is_some())
            + usize::from(self.stamp.seq.is_some())
            + usize::from(event.reply_to.is_some());
        let mut s = serializer.serialize_struct("Frame", len)?;
        s.serialize_field("type", event.message_type().as_str())?;
        s.serialize_field("event_id", &self.stamp.event_id)?;
        s.serialize_field("timestamp", &self.stamp.timestamp)?;
        if let Some(run_id) = &event.run_id {
            s.serialize_field("run_id", &**run_id)?;
        }
        if let Some(thread_id) = &event.thread_id {
            s.serialize_field("thread_id", &**thread_id)?;
        }
        if let Some(seq) = &self.stamp.seq {
            s.serialize_field("seq", seq)?;
        }
        if let Some(reply_to) = &event.reply_to {
            s.serialize_field("reply_to", &**reply_to)?;
        }
        s.serialize_field("payload", &PayloadRef(&event.payload))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for Frame {
    /// Reads an outbound frame strictly: `type` must be the canonical name of a type a server
    /// sends, `event_id`, `timestamp` (RFC 3339) and `payload` must be present, optional envelope
    /// fields must be absent rather than `null`, and the payload must have its type's required
    /// fields.
    /// Unknown fields are ignored.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Frame::from_json_value(value).map_err(de::Error::custom)
    }
}

impl Frame {
    /// Reads a frame from parsed JSON (see the [`Deserialize`] impl for the rules).
    fn from_json_value(value: Value) -> Result<Frame, String> {
        let Value::Object(mut map) = value else {
            return Err(format!(
                "expected a JSON object, found {}",
                json_kind(&value)
            ));
        };
        let ty = required_string(&mut map, "type")?;
        let message_type = match normalize(&ty) {
            Ok(t) if t.as_str() == ty => t,
            Ok(t) => {
                return Err(format!(
                    "type: {ty:?} is an alias; servers send only the canonical name {:?}",
                    t.as_str()
                ));
            }
            Err(e) => return Err(format!("type: {e}")),
        };
        if !message_type.direction().server_may_send() {
            return Err(format!("type: {ty:?} is never sent by a server"));
        }
        let event_id = required_string(&mut map, "event_id")?;
        let timestamp = required_string(&mut map, "timestamp")?;
        let timestamp =
            Timestamp::parse_rfc3339(&timestamp).map_err(|e| format!("timestamp: {e}"))?;
        let run_id = optional_string(&mut map, "run_id")?.map(Arc::from);
        let thread_id = optional_string(&mut map, "thread_id")?.map(Arc::from);
        let reply_to = optional_string(&mut map, "reply_to")?.map(Arc::from);
        let seq = match map.remove("seq") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                format!("seq: expected an unsigned integer, found {}", json_kind(&v))
            })?),
        };
        let payload = map
            .remove("payload")
            .ok_or_else(|| "payload: missing field".to_owned())?;
        if !payload.is_object() {
            return Err(format!(
                "payload: expected a JSON object, found {}",
                json_kind(&payload)
            ));
        }
        let payload = Payload::from_value(message_type, payload)
            .map_err(|e| format!("payload of {ty}: {e}"))?;
        Ok(Frame {
            stamp: Stamp {
                event_id,
                timestamp,
                seq,
            },
            event: Event {
                run_id,
                thread_id,
                reply_to,
                payload,
            },
        })
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required_string(map: &mut Map<String, Value>, field: &str) -> Result<String, String> {
    optional_string(map, field)?.ok_or_else(|| format!("{field}: missing field"))
}

fn optional_string(map: &mut Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "{field}: expected a string, found {} (optional fields are omitted, never null)",
            json_kind(&other)
        )),
    }
}

/// Reads one outbound frame from its JSON text, as a client or a test harness receives it.
///
/// The rules are strict where the contract is (see [`Frame`]'s `Deserialize`), so a test that
/// feeds it frames received over the socket catches a server that drifts from the contract.
///
/// # Errors
///
/// [`OutboundError`] with code `invalid_json` (not JSON) or `invalid_frame` (with the field).
///
/// ```
/// use agentwire_events::parse_outbound;
///
/// let frame = parse_outbound(r#"{"type":"heartbeat_ack","event_id":"e1",
///     "timestamp":"2025-01-02T03:04:05.678Z","payload":{}}"#).unwrap();
/// assert_eq!(frame.message_type().as_str(), "heartbeat_ack");
///
/// let err = parse_outbound(r#"{"type":"tool_completed","event_id":"e2",
///     "timestamp":"2025-01-02T03:04:05.678Z","payload":{"tool_call_id":"c1"}}"#).unwrap_err();
/// assert_eq!(err.code(), "invalid_frame");
/// assert!(err.message().contains("tool_name"));
/// ```
pub fn parse_outbound(text: &str) -> Result<Frame, OutboundError> {
    let value: Value = serde_json::from_str(text).map_err(|e| OutboundError {
        invalid_json: true,
        message: format!("invalid JSON: {e}"),
    })?;
    Frame::from_json_value(value).map_err(|message| OutboundError {
        invalid_json: false,
        message,
    })
}
