//! Inbound frames (client to server): the typed requests, their parser and their builders.

use core::fmt;
use std::borrow::Cow;

use agentwire_types::{MAX_RECEIVED_BYTES, MessageType, normalize};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{InboundError, InboundErrorKind, OtherTypeError};
use crate::raw::{self, Body, Scalar};
use crate::timestamp::Timestamp;

/// Borrowed (or owned) raw JSON text, kept exactly as the client sent it.
///
/// Used for values the server passes on without looking inside (`context`, the payload of
/// generic requests). Equality compares the text.
#[derive(Clone, Debug)]
pub struct RawJson<'a>(Cow<'a, RawValue>);

impl<'a> RawJson<'a> {
    /// Raw JSON holding `value`.
    pub fn from_value(value: &Value) -> RawJson<'static> {
        // Serializing a `Value` cannot fail: its keys are strings and its numbers finite.
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).unwrap_or_default());
        RawJson(Cow::Owned(raw))
    }

    pub(crate) fn borrowed(raw: &'a RawValue) -> RawJson<'a> {
        RawJson(Cow::Borrowed(raw))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed.
    pub fn to_value(&self) -> Value {
        // The text is valid JSON, so this only fails past serde_json's nesting limit.
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// Deserializes the text into `T`.
    ///
    /// # Errors
    ///
    /// The text's error message when it does not have `T`'s shape.
    pub fn parse<'s, T: Deserialize<'s>>(&'s self) -> Result<T, String> {
        serde_json::from_str(self.get()).map_err(|e| e.to_string())
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> RawJson<'static> {
        RawJson(Cow::Owned(self.0.into_owned()))
    }
}

impl PartialEq for RawJson<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for RawJson<'_> {}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A credential (the `auth_refresh` token): its [`Debug`](fmt::Debug) form is redacted, so it
/// cannot reach a log through a `{:?}` of any request that holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<'a>(Cow<'a, str>);

impl<'a> Secret<'a> {
    /// Wraps a credential.
    pub fn new(secret: impl Into<Cow<'a, str>>) -> Secret<'a> {
        Secret(secret.into())
    }

    /// The credential itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Secret<'static> {
        Secret(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The body of `start_agent` and `user_message`: both start a run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunRequest<'a> {
    /// The request text (non-empty). Read from `user_request`, `message`, `content` or `text`.
    pub text: Cow<'a, str>,
    /// The agent the client asks for; the server's default when absent.
    pub agent_name: Option<Cow<'a, str>>,
    /// The thread the run belongs to, when given in the payload (see
    /// [`Inbound::resolved_thread_id`]).
    pub thread_id: Option<Cow<'a, str>>,
    /// Extra context for the agent, a JSON object passed on unparsed.
    pub context: Option<RawJson<'a>>,
}

impl<'a> RunRequest<'a> {
    /// A request with only its text.
    pub fn new(text: impl Into<Cow<'a, str>>) -> RunRequest<'a> {
        RunRequest {
            text: text.into(),
            agent_name: None,
            thread_id: None,
            context: None,
        }
    }

    /// Sets `agent_name`.
    #[must_use]
    pub fn with_agent_name(mut self, agent_name: impl Into<Cow<'a, str>>) -> Self {
        self.agent_name = Some(agent_name.into());
        self
    }

    /// Sets the payload's `thread_id`.
    #[must_use]
    pub fn with_thread_id(mut self, thread_id: impl Into<Cow<'a, str>>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Sets `context` (it should be a JSON object; the parser refuses anything else).
    #[must_use]
    pub fn with_context(mut self, context: &Value) -> Self {
        self.context = Some(RawJson::from_value(context));
        self
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> RunRequest<'static> {
        RunRequest {
            text: Cow::Owned(self.text.into_owned()),
            agent_name: self.agent_name.map(|s| Cow::Owned(s.into_owned())),
            thread_id: self.thread_id.map(|s| Cow::Owned(s.into_owned())),
            context: self.context.map(RawJson::into_owned),
        }
    }
}

impl<'a> From<&'a str> for RunRequest<'a> {
    fn from(text: &'a str) -> Self {
        RunRequest::new(text)
    }
}

impl From<String> for RunRequest<'static> {
    fn from(text: String) -> Self {
        RunRequest::new(text)
    }
}

/// The body of `auth_refresh`: a fresh token for the same user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthRefresh<'a> {
    /// The new compact JWT (redacted in `Debug`).
    pub token: Secret<'a>,
}

impl<'a> AuthRefresh<'a> {
    /// An `auth_refresh` body carrying `token`.
    pub fn new(token: impl Into<Cow<'a, str>>) -> AuthRefresh<'a> {
        AuthRefresh {
            token: Secret::new(token),
        }
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> AuthRefresh<'static> {
        AuthRefresh {
            token: self.token.into_owned(),
        }
    }
}

/// The body of `cancel_agent`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelAgent<'a> {
    /// The run to cancel; absent means the connection's current run.
    pub run_id: Option<Cow<'a, str>>,
}

impl<'a> CancelAgent<'a> {
    /// A `cancel_agent` body without `run_id`: the connection's current run.
    pub fn new() -> CancelAgent<'a> {
        CancelAgent { run_id: None }
    }

    /// Sets the run to cancel.
    #[must_use]
    pub fn with_run_id(mut self, run_id: impl Into<Cow<'a, str>>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> CancelAgent<'static> {
        CancelAgent {
            run_id: self.run_id.map(|s| Cow::Owned(s.into_owned())),
        }
    }
}

/// A request of a client-sendable type without a typed body here (`agent_request`,
/// `user_typing`, `thread_message`, the JSON-RPC passthrough, ...), with its payload unparsed
/// so a custom handler can act on it. A server without such a handler answers
/// `unsupported_message_type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherRequest<'a> {
    message_type: MessageType,
    payload: Option<RawJson<'a>>,
}

impl<'a> OtherRequest<'a> {
    /// A generic request of `message_type`.
    ///
    /// # Errors
    ///
    /// [`OtherTypeError`] when a client may not send `message_type`, or when it has a typed
    /// [`Request`] variant.
    pub fn new(
        message_type: MessageType,
        payload: Option<RawJson<'a>>,
    ) -> Result<Self, OtherTypeError> {
        if !message_type.direction().client_may_send() {
            return Err(OtherTypeError {
                message_type,
                reason: "a client does not send this type",
            });
        }
        if Request::is_typed(message_type) {
            return Err(OtherTypeError {
                message_type,
                reason: "it has a typed request; build that instead",
            });
        }
        Ok(Self {
            message_type,
            payload,
        })
    }

    /// The request's type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The payload (`payload` or `data`) as sent, when there was one and it was not `null`.
    pub fn payload(&self) -> Option<&RawJson<'a>> {
        self.payload.as_ref()
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> OtherRequest<'static> {
        OtherRequest {
            message_type: self.message_type,
            payload: self.payload.map(RawJson::into_owned),
        }
    }
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `ping`: answer with `pong`.
    Ping,
    /// `heartbeat`: answer with `heartbeat_ack`.
    Heartbeat,
    /// `start_agent` (or an alias such as `execute_agent`): start a run.
    StartAgent(RunRequest<'a>),
    /// `user_message` (or an alias such as `chat_message`): a chat turn; starts a run.
    UserMessage(RunRequest<'a>),
    /// `auth_refresh`: replace the connection's token.
    AuthRefresh(AuthRefresh<'a>),
    /// `cancel_agent` (or an alias such as `stop_processing`): cancel a run.
    CancelAgent(CancelAgent<'a>),
    /// Any other type a client may send, payload unparsed.
    Other(OtherRequest<'a>),
}

impl<'a> Request<'a> {
    /// The types with a typed variant.
    pub const TYPED: &'static [MessageType] = &[
        MessageType::Ping,
        MessageType::Heartbeat,
        MessageType::StartAgent,
        MessageType::UserMessage,
        MessageType::AuthRefresh,
        MessageType::CancelAgent,
    ];

    /// Whether `message_type` has a typed variant.
    pub fn is_typed(message_type: MessageType) -> bool {
        Self::TYPED.contains(&message_type)
    }

    /// The request's canonical type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Request::Ping => MessageType::Ping,
            Request::Heartbeat => MessageType::Heartbeat,
            Request::StartAgent(_) => MessageType::StartAgent,
            Request::UserMessage(_) => MessageType::UserMessage,
            Request::AuthRefresh(_) => MessageType::AuthRefresh,
            Request::CancelAgent(_) => MessageType::CancelAgent,
            Request::Other(other) => other.message_type,
        }
    }

    /// Detaches from the input buffer.
    pub fn into_owned(self) -> Request<'static> {
        match self {
            Request::Ping => Request::Ping,
            Request::Heartbeat => Request::Heartbeat,
            Request::StartAgent(r) => Request::StartAgent(r.into_owned()),
            Request::UserMessage(r) => Request::UserMessage(r.into_owned()),
            Request::AuthRefresh(r) => Request::AuthRefresh(r.into_owned()),
            Request::CancelAgent(r) => Request::CancelAgent(r.into_owned()),
            Request::Other(r) => Request::Other(r.into_owned()),
        }
    }
}

/// One inbound frame: the request and its envelope.
///
/// [`parse_inbound`] reads one, borrowing from the frame text where it can
/// ([`into_owned`](Self::into_owned) detaches it). The builders make the frames a client or a
/// test harness sends, and [`to_json`](Self::to_json) writes the canonical form:
///
/// ```
/// use agentwire_events::{Inbound, RunRequest, parse_inbound};
///
/// let frame = Inbound::start_agent(RunRequest::new("find flights").with_agent_name("travel"))
///     .with_message_id("m1");
/// let text = frame.to_json();
/// assert_eq!(
///     text,
///     r#"{"type":"start_agent","message_id":"m1","payload":{"user_request":"find flights","agent_name":"travel"}}"#
/// );
/// assert_eq!(parse_inbound(&text).unwrap(), frame);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound<'a> {
    received_type: Cow<'a, str>,
    message_id: Option<Cow<'a, str>>,
    thread_id: Option<Cow<'a, str>>,
    timestamp: Option<Timestamp>,
    request: Request<'a>,
}

impl<'a> Inbound<'a> {
    /// A frame carrying `request`, with the canonical type name.
    pub fn new(request: Request<'a>) -> Inbound<'a> {
        Inbound {
            received_type: Cow::Borrowed(request.message_type().as_str()),
            message_id: None,
            thread_id: None,
            timestamp: None,
            request,
        }
    }

    /// `ping`.
    pub fn ping() -> Inbound<'a> {
        Inbound::new(Request::Ping)
    }

    /// `heartbeat`.
    pub fn heartbeat() -> Inbound<'a> {
        Inbound::new(Request::Heartbeat)
    }

    /// `start_agent` with a request text, or a full [`RunRequest`].
    pub fn start_agent(request: impl Into<RunRequest<'a>>) -> Inbound<'a> {
        Inbound::new(Request::StartAgent(request.into()))
    }

    /// `user_message` with a text, or a full [`RunRequest`].
    pub fn user_message(request: impl Into<RunRequest<'a>>) -> Inbound<'a> {
        Inbound::new(Request::UserMessage(request.into()))
    }

    /// `auth_refresh` with a new token.
    pub fn auth_refresh(token: impl Into<Cow<'a, str>>) -> Inbound<'a> {
        Inbound::new(Request::AuthRefresh(AuthRefresh::new(token)))
    }

    /// `cancel_agent` for a run, or the current one.
    pub fn cancel_agent(run_id: Option<&'a str>) -> Inbound<'a> {
        Inbound::new(Request::CancelAgent(CancelAgent {
            run_id: run_id.map(Cow::Borrowed),
        }))
    }

    /// Sets `message_id`, which the server's answers carry as `reply_to`.
    #[must_use]
    pub fn with_message_id(mut self, message_id: impl Into<Cow<'a, str>>) -> Self {
        self.message_id = Some(message_id.into());
        self
    }

    /// Sets the envelope's `thread_id`.
    #[must_use]
    pub fn with_thread_id(mut self, thread_id: impl Into<Cow<'a, str>>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Sets `timestamp`.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The canonical type (the received name normalized).
    pub fn message_type(&self) -> MessageType {
        self.request.message_type()
    }

    /// The `type` exactly as received (an alias, any case); the canonical name for built frames.
    pub fn received_type(&self) -> &str {
        &self.received_type
    }

    /// The client's `message_id` (a string, or an integer's decimal text).
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The envelope's `thread_id`.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }

    /// The thread of the request: the payload's `thread_id` for `start_agent` and
    /// `user_message` when present, else the envelope's.
    pub fn resolved_thread_id(&self) -> Option<&str> {
        match &self.request {
            Request::StartAgent(r) | Request::UserMessage(r) if r.thread_id.is_some() => {
                r.thread_id.as_deref()
            }
            _ => self.thread_id(),
        }
    }

    /// The client's `timestamp`, when sent.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.timestamp
    }

    /// The request.
    pub fn request(&self) -> &Request<'a> {
        &self.request
    }

    /// The request, by value.
    pub fn into_request(self) -> Request<'a> {
        self.request
    }

    /// Detaches from the input buffer (to move the frame into another task).
    pub fn into_owned(self) -> Inbound<'static> {
        Inbound {
            received_type: Cow::Owned(self.received_type.into_owned()),
            message_id: self.message_id.map(|s| Cow::Owned(s.into_owned())),
            thread_id: self.thread_id.map(|s| Cow::Owned(s.into_owned())),
            timestamp: self.timestamp,
            request: self.request.into_owned(),
        }
    }

    /// The frame's JSON text in canonical form: canonical `type`, request text under
    /// `user_request` (`start_agent`) or `message` (`user_message`), timestamp as RFC 3339.
    pub fn to_json(&self) -> String {
        // Cannot fail: all keys are strings, raw JSON is valid by construction.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Inbound<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.message_type().as_str())?;
        if let Some(id) = &self.message_id {
            map.serialize_entry("message_id", id)?;
        }
        if let Some(thread_id) = &self.thread_id {
            map.serialize_entry("thread_id", thread_id)?;
        }
        if let Some(timestamp) = &self.timestamp {
            map.serialize_entry("timestamp", timestamp)?;
        }
        match &self.request {
            Request::Other(other) => {
                if let Some(payload) = &other.payload {
                    map.serialize_entry("payload", payload)?;
                }
            }
            request => map.serialize_entry("payload", &RequestPayload(request))?,
        }
        map.end()
    }
}

struct RequestPayload<'r, 'a>(&'r Request<'a>);

impl Serialize for RequestPayload<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Request::StartAgent(r) | Request::UserMessage(r) => {
                let key = if matches!(self.0, Request::StartAgent(_)) {
                    "user_request"
                } else {
                    "message"
                };
                map.serialize_entry(key, &r.text)?;
                if let Some(agent_name) = &r.agent_name {
                    map.serialize_entry("agent_name", agent_name)?;
                }
                if let Some(thread_id) = &r.thread_id {
                    map.serialize_entry("thread_id", thread_id)?;
                }
                if let Some(context) = &r.context {
                    map.serialize_entry("context", context)?;
                }
            }
            Request::AuthRefresh(r) => map.serialize_entry("token", r.token.expose())?,
            Request::CancelAgent(r) => {
                if let Some(run_id) = &r.run_id {
                    map.serialize_entry("run_id", run_id)?;
                }
            }
            Request::Ping | Request::Heartbeat | Request::Other(_) => {}
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// What is known about the frame so far, for the error if one comes.
struct Context<'a, 'r> {
    message_id: Option<Cow<'a, str>>,
    received_type: Option<&'r str>,
    message_type: Option<MessageType>,
}

impl Context<'_, '_> {
    fn error(&self, kind: InboundErrorKind, message: String) -> InboundError {
        InboundError {
            kind,
            message,
            message_id: self.message_id.as_deref().map(str::to_owned),
            received_type: self.received_type.map(|t| {
                let mut end = t.len().min(MAX_RECEIVED_BYTES);
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t[..end].to_owned()
            }),
            message_type: self.message_type,
        }
    }

    fn invalid(&self, field: String, message: String) -> InboundError {
        self.error(InboundErrorKind::InvalidPayload { field }, message)
    }

    fn wrong_kind(&self, field: String, expected: &str, found: &str) -> InboundError {
        let message = format!("{field}: expected {expected}, found {found}");
        self.invalid(field, message)
    }
}

fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The error for input whose envelope could not be read.
fn top_level_error(text: &str, error: serde_json::Error) -> InboundError {
    let context = Context {
        message_id: None,
        received_type: None,
        message_type: None,
    };
    let syntax = if error.is_data() {
        // The top level is not an object. Tell apart valid JSON of another kind from text that
        // is not JSON at all (serde_json stops at the first byte of a non-object).
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => {
                let kind = match text.trim_start().as_bytes().first() {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    Some(b'n') => "null",
                    _ => "a number",
                };
                return context.invalid(
                    String::new(),
                    format!(
                        "expected a JSON object such as {{\"type\": \"start_agent\", \
                         \"payload\": {{...}}}}, found {kind}"
                    ),
                );
            }
            Err(syntax) => syntax,
        }
    } else {
        error
    };
    context.error(
        InboundErrorKind::InvalidJson {
            line: syntax.line(),
            column: syntax.column(),
        },
        format!("invalid JSON: {syntax}"),
    )
}

/// Parses one inbound text frame.
///
/// - The `type` is normalized through [`agentwire_types::normalize`]: any alias, any ASCII case.
/// - The payload is read from `payload`, or from `data` when `payload` is absent or `null`.
/// - The request text of `start_agent` is read from `user_request`, `message`, `content` or
///   `text` (first present wins, in that order); for `user_message` from `message`, `content`,
///   `text` or `user_request`.
/// - `timestamp` may be a Unix number (seconds, or milliseconds from 10^11 on) or RFC 3339 text
///   (an offset-less time is UTC).
/// - `message_id` may be a string or an integer. `null` counts as absent for every optional
///   field. Unknown members are ignored; a known member given twice is `invalid_payload`.
///
/// One pass over the text when `type` comes before the payload (two otherwise). Strings
/// without escapes are borrowed from `text`, not copied; so are `context` and the payload of
/// generic requests. It never panics, whatever the input.
///
/// # Errors
///
/// [`InboundError`], with code `invalid_json` (line and column), `unknown_message_type`,
/// `unsupported_message_type` (a server-to-client type, or a legacy name refused on purpose) or
/// `invalid_payload` (naming the field path), carrying the `message_id` and `type` when they
/// could be read.
///
/// # Examples
///
/// ```
/// use agentwire_events::{parse_inbound, ErrorCode, Request};
///
/// let frame = parse_inbound(r#"{"type": "EXECUTE_AGENT", "message_id": "m1",
///                               "data": {"message": "hello"}}"#).unwrap();
/// assert_eq!(frame.received_type(), "EXECUTE_AGENT");
/// let Request::StartAgent(run) = frame.request() else { unreachable!() };
/// assert_eq!(run.text, "hello");
///
/// let err = parse_inbound(r#"{"type": "start_agent", "message_id": "m2", "payload": {}}"#)
///     .unwrap_err();
/// assert_eq!(err.code(), ErrorCode::InvalidPayload);
/// assert_eq!(err.field(), Some("payload.user_request"));
/// assert_eq!(err.message_id(), Some("m2"));
/// ```
pub fn parse_inbound(text: &str) -> Result<Inbound<'_>, InboundError> {
    let mut envelope = raw::Envelope::default();
    raw::envelope(text, &mut envelope).map_err(|e| top_level_error(text, e))?;
    let raw::Envelope {
        ty,
        resolved,
        message_id,
        thread_id,
        timestamp,
        payload,
        data,
        duplicate,
    } = envelope;

    let (received_type, type_kind) = match ty {
        Some(Scalar::Str(name)) => (Some(name), None),
        Some(other) => (None, Some(other.kind())),
        None => (None, None),
    };
    // Only a shared borrow of the received type goes into the context; the `Cow` itself moves
    // into the result.
    let mut context = Context {
        message_id: None,
        received_type: received_type.as_deref(),
        message_type: None,
    };
    match message_id {
        None | Some(Scalar::Null) => {}
        Some(Scalar::Str(id)) => context.message_id = Some(id),
        Some(Scalar::U64(n)) => context.message_id = Some(Cow::Owned(n.to_string())),
        Some(Scalar::I64(n)) => context.message_id = Some(Cow::Owned(n.to_string())),
        Some(other) => {
            return Err(context.wrong_kind(
                "message_id".to_owned(),
                "a string or an integer",
                other.kind(),
            ));
        }
    }
    if let Some(name) = duplicate {
        return Err(context.invalid(name.to_owned(), format!("{name}: given more than once")));
    }

    let message_type = match (resolved, type_kind) {
        (Some(Some(t)), _) => t,
        (Some(None), _) => {
            // Resolve again for the error's reason (the first pass kept only the outcome).
            let name = received_type.as_deref().unwrap_or_default();
            let (kind, message) = match normalize(name) {
                Err(e) if e.code() == "unsupported_message_type" => {
                    (InboundErrorKind::UnsupportedMessageType, e.to_string())
                }
                Err(e) => (InboundErrorKind::UnknownMessageType, e.to_string()),
                // Not reachable: normalize gives the same answer twice.
                Ok(t) => (
                    InboundErrorKind::UnknownMessageType,
                    format!("unknown message type {:?}", t.as_str()),
                ),
            };
            return Err(context.error(kind, message));
        }
        (None, None) => {
            return Err(context.invalid(
                "type".to_owned(),
                "type: missing field (every frame needs a \"type\" such as \"start_agent\")"
                    .to_owned(),
            ));
        }
        (None, Some(kind)) => {
            return Err(context.wrong_kind("type".to_owned(), "a string", kind));
        }
    };
    context.message_type = Some(message_type);
    if !message_type.direction().client_may_send() {
        return Err(context.error(
            InboundErrorKind::UnsupportedMessageType,
            format!(
                "message type {:?} is sent by the server, not by clients",
                message_type.as_str()
            ),
        ));
    }

    let thread_id = string_field(&context, thread_id, "", "thread_id")?;
    let timestamp = match timestamp {
        None | Some(Scalar::Null) => None,
        Some(value) => Some(decode_timestamp(&context, value)?),
    };

    let (prefix, body) = match (payload, data) {
        (Some(p), _) if !p.is_null() => ("payload", Some(p)),
        (_, Some(d)) if !d.is_null() => ("data", Some(d)),
        _ => ("payload", None),
    };

    let request = match message_type {
        MessageType::Ping => Request::Ping,
        MessageType::Heartbeat => Request::Heartbeat,
        MessageType::StartAgent | MessageType::UserMessage => {
            let fields = fields(&context, prefix, body)?;
            let run = run_request(&context, prefix, fields, message_type)?;
            if message_type == MessageType::StartAgent {
                Request::StartAgent(run)
            } else {
                Request::UserMessage(run)
            }
        }
        MessageType::AuthRefresh => {
            let fields = fields(&context, prefix, body)?;
            let token = string_field(&context, fields.token, prefix, "token")?;
            match token {
                Some(token) if !token.is_empty() => Request::AuthRefresh(AuthRefresh {
                    token: Secret(token),
                }),
                Some(_) => {
                    let field = path(prefix, "token");
                    return Err(
                        context.invalid(field.clone(), format!("{field}: must not be empty"))
                    );
                }
                None => {
                    let field = path(prefix, "token");
                    return Err(context.invalid(field.clone(), format!("{field}: missing field")));
                }
            }
        }
        MessageType::CancelAgent => {
            let fields = fields(&context, prefix, body)?;
            Request::CancelAgent(CancelAgent {
                run_id: string_field(&context, fields.run_id, prefix, "run_id")?,
            })
        }
        other => Request::Other(OtherRequest {
            message_type: other,
            payload: match body {
                Some(Body::Raw(raw)) => Some(RawJson::borrowed(raw)),
                // Generic payloads are always captured raw; nothing else can reach here.
                _ => None,
            },
        }),
    };

    let message_id = context.message_id;
    Ok(Inbound {
        received_type: received_type.unwrap_or(Cow::Borrowed(message_type.as_str())),
        message_id,
        thread_id,
        timestamp,
        request,
    })
}

/// An optional string member: absent and `null` are `None`.
fn string_field<'a>(
    context: &Context<'_, '_>,
    value: Option<Scalar<'a>>,
    prefix: &str,
    name: &str,
) -> Result<Option<Cow<'a, str>>, InboundError> {
    match value {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(other) => Err(context.wrong_kind(path(prefix, name), "a string", other.kind())),
    }
}

fn decode_timestamp(
    context: &Context<'_, '_>,
    value: Scalar<'_>,
) -> Result<Timestamp, InboundError> {
    let number = match value {
        Scalar::Str(text) => {
            return Timestamp::parse_lenient(&text).map_err(|e| {
                context.invalid(
                    "timestamp".to_owned(),
                    format!("timestamp: {e}, or a Unix time number"),
                )
            });
        }
        Scalar::U64(n) => n as f64,
        Scalar::I64(n) => n as f64,
        Scalar::F64(n) => n,
        other => {
            return Err(context.wrong_kind(
                "timestamp".to_owned(),
                "a Unix time number or an RFC 3339 string",
                other.kind(),
            ));
        }
    };
    Timestamp::from_unix_number(number).ok_or_else(|| {
        context.invalid(
            "timestamp".to_owned(),
            "timestamp: Unix time out of range (years 0000 to 9999)".to_owned(),
        )
    })
}

/// The payload's fields; an absent payload has none.
fn fields<'a>(
    context: &Context<'_, '_>,
    prefix: &str,
    body: Option<Body<'a>>,
) -> Result<raw::PayloadFields<'a>, InboundError> {
    let Some(body) = body else {
        return Ok(raw::PayloadFields::default());
    };
    let fields = body
        .into_fields()
        .map_err(|kind| context.wrong_kind(prefix.to_owned(), "an object", kind))?;
    if let Some(name) = fields.duplicate {
        let field = path(prefix, name);
        return Err(context.invalid(field.clone(), format!("{field}: given more than once")));
    }
    Ok(fields)
}

fn run_request<'a>(
    context: &Context<'_, '_>,
    prefix: &str,
    fields: raw::PayloadFields<'a>,
    message_type: MessageType,
) -> Result<RunRequest<'a>, InboundError> {
    let raw::PayloadFields {
        user_request,
        message,
        content,
        text,
        agent_name,
        thread_id,
        context: run_context,
        ..
    } = fields;
    let candidates = if message_type == MessageType::StartAgent {
        [
            ("user_request", user_request),
            ("message", message),
            ("content", content),
            ("text", text),
        ]
    } else {
        [
            ("message", message),
            ("content", content),
            ("text", text),
            ("user_request", user_request),
        ]
    };
    let primary = candidates[0].0;
    let found = candidates
        .into_iter()
        .find(|(_, value)| !matches!(value, None | Some(Scalar::Null)));
    let Some((name, Some(value))) = found else {
        let field = path(prefix, primary);
        let others = if primary == "user_request" {
            "message, content, text"
        } else {
            "content, text, user_request"
        };
        return Err(context.invalid(
            field.clone(),
            format!("{field}: missing field (the request text goes in {primary}, or in {others})"),
        ));
    };
    let text = match value {
        Scalar::Str(text) if !text.trim().is_empty() => text,
        Scalar::Str(_) => {
            let field = path(prefix, name);
            return Err(context.invalid(field.clone(), format!("{field}: must not be empty")));
        }
        other => return Err(context.wrong_kind(path(prefix, name), "a string", other.kind())),
    };
    let run_context = match run_context {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) if raw.get().starts_with('{') => Some(RawJson::borrowed(raw)),
        Some(raw) => {
            let found = match raw.get().as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            return Err(context.wrong_kind(path(prefix, "context"), "an object", found));
        }
    };
    Ok(RunRequest {
        text,
        agent_name: string_field(context, agent_name, prefix, "agent_name")?,
        thread_id: string_field(context, thread_id, prefix, "thread_id")?,
        context: run_context,
    })
}
