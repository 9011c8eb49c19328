//! The publish API: other services put events on a user's stream over HTTP.
//!
//! `POST /api/v1/users/{user_id}/events` with `Authorization: Bearer KEY` and a body
//! `{"events": [{"type", "payload", "run_id"?, "thread_id"?}, ...]}`. The whole batch is
//! checked before any of it is delivered; it is then appended to the user's stream in one
//! step (consecutive `seq`s with the in-process and Redis engines), like any other event: stamped,
//! kept in the replay window, sent to every connection of the user.
//!
//! Order of checks: the API key (401), draining (503), the user id (400), the body's size
//! (413), reading it (408, 400), its JSON (400), the batch's length (400, 413), each event
//! in order (400 with its index). docs/operations.md, "Publish API", is the reference.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use agentwire_events::{Event, Payload};
use agentwire_types::{MessageClass, MessageType};
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

use crate::error::ServerConfigError;
use crate::server::Shared;

/// The publish endpoint's path (an axum route: `{user_id}` is the user's id, percent-encoded
/// where it has to be).
pub const PUBLISH_PATH: &str = "/api/v1/users/{user_id}/events";

/// Default largest request body the publish API reads (1 MiB); a larger one gets 413.
pub const DEFAULT_PUBLISH_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Default most events in one publish batch (1,000); more gets 413.
pub const DEFAULT_PUBLISH_MAX_BATCH_EVENTS: usize = 1000;

/// Default time a publisher has to send its request body (10 s); slower gets 408.
pub const DEFAULT_PUBLISH_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest API key accepted (16 bytes, e.g. `openssl rand -hex 16` makes 32).
const MIN_KEY_BYTES: usize = 16;
/// The longest API key accepted.
const MAX_KEY_BYTES: usize = 1024;
/// The longest `run_id` or `thread_id` a published event may carry.
const MAX_ID_BYTES: usize = 256;
/// The longest error message of a refused payload (serde's messages may quote a value).
const MAX_DETAIL_BYTES: usize = 200;

/// An API key that authenticates publishers (`Authorization: Bearer KEY`).
///
/// Its `Debug` output never shows the key, and the server never logs it nor puts it in an
/// error or a metric.
///
/// ```
/// use agentwire_server::PublishKey;
///
/// let key = PublishKey::new("3f6c1e0b9a8d4c2e7f1a5b3c9d0e8f7a").unwrap();
/// assert_eq!(format!("{key:?}"), "PublishKey(<redacted>)");
/// assert!(PublishKey::new("short").is_err());
/// ```
#[derive(Clone)]
pub struct PublishKey(Arc<str>);

impl PublishKey {
    /// A key: 16 to 1,024 visible ASCII characters (no spaces), as an HTTP header carries it.
    ///
    /// # Errors
    ///
    /// [`ServerConfigError::InvalidPublishKey`] saying what is wrong (never the key itself).
    pub fn new(key: impl Into<String>) -> Result<PublishKey, ServerConfigError> {
        let key = key.into();
        let invalid = |reason| Err(ServerConfigError::InvalidPublishKey { reason });
        if key.len() < MIN_KEY_BYTES {
            return invalid("shorter than 16 characters");
        }
        if key.len() > MAX_KEY_BYTES {
            return invalid("longer than 1,024 characters");
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("only visible ASCII characters are allowed (no spaces)");
        }
        Ok(PublishKey(Arc::from(key)))
    }

    /// The keys of a key file: one per line; surrounding whitespace, empty lines and lines
    /// starting with `#` are ignored. Several keys let publishers move to a new key before
    /// the old one is removed.
    ///
    /// ```
    /// use agentwire_server::PublishKey;
    ///
    /// let keys = PublishKey::from_lines("# rotated 2025-06\nnew-key-0123456789abcdef\n\nold-key-0123456789abcdef\n").unwrap();
    /// assert_eq!(keys.len(), 2);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ServerConfigError::InvalidPublishKey`] for a line that is not a valid key, or
    /// [`ServerConfigError::MissingPublishKey`] when there is no key at all.
    pub fn from_lines(text: &str) -> Result<Vec<PublishKey>, ServerConfigError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(PublishKey::new)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(ServerConfigError::MissingPublishKey);
        }
        Ok(keys)
    }

    /// Whether `presented` is this key, in time that depends only on `presented`'s length
    /// (not on where it first differs, nor on this key's length).
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        // Never empty (`new` checks), so the modulo is defined.
        let mut diff = u8::from(expected.len() != presented.len());
        for (i, &byte) in presented.iter().enumerate() {
            // `black_box` keeps the compiler from ending the loop once `diff` is non-zero.
            diff = std::hint::black_box(diff | (byte ^ expected[i % expected.len()]));
        }
        diff == 0
    }
}

impl std::fmt::Debug for PublishKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishKey(<redacted>)")
    }
}

/// The publish API's settings: its keys and limits. Set on a server with
/// [`ServerBuilder::publish`](crate::ServerBuilder::publish); build one with
/// [`PublishConfig::builder`].
///
/// ```
/// use agentwire_server::{PublishConfig, PublishKey};
///
/// let publish = PublishConfig::builder()
///     .key(PublishKey::new(std::env::var("PUBLISH_KEY").unwrap_or("0123456789abcdef0123".into())).unwrap())
///     .max_batch_events(100)
///     .build()
///     .unwrap();
/// assert_eq!(publish.max_body_bytes(), 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct PublishConfig {
    keys: Arc<[PublishKey]>,
    max_body_bytes: usize,
    max_batch_events: usize,
    body_timeout: Duration,
}

impl PublishConfig {
    /// A builder with the default limits and no key yet (one is required).
    pub fn builder() -> PublishConfigBuilder {
        PublishConfigBuilder {
            keys: Vec::new(),
            max_body_bytes: DEFAULT_PUBLISH_MAX_BODY_BYTES,
            max_batch_events: DEFAULT_PUBLISH_MAX_BATCH_EVENTS,
            body_timeout: DEFAULT_PUBLISH_BODY_TIMEOUT,
        }
    }

    /// The largest request body read; a larger one is answered 413 `body_too_large`.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The most events in one batch; more is answered 413 `batch_too_large`.
    pub fn max_batch_events(&self) -> usize {
        self.max_batch_events
    }

    /// How long a publisher has to send its body; slower is answered 408 `body_timeout`.
    pub fn body_timeout(&self) -> Duration {
        self.body_timeout
    }

    /// How many keys are accepted.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether `presented` is one of the keys. Every key is compared, each in constant time.
    fn accepts(&self, presented: &[u8]) -> bool {
        let mut accepted = false;
        for key in self.keys.iter() {
            accepted |= key.matches(presented);
        }
        accepted
    }
}

/// Builds a [`PublishConfig`]: at least one [`key`](Self::key) is required.
#[derive(Clone, Debug)]
#[must_use]
pub struct PublishConfigBuilder {
    keys: Vec<PublishKey>,
    max_body_bytes: usize,
    max_batch_events: usize,
    body_timeout: Duration,
}

impl PublishConfigBuilder {
    /// Accepts `key` (repeatable: any of the keys is accepted, for rotation).
    pub fn key(mut self, key: PublishKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts each of `keys` (see [`PublishKey::from_lines`] for a key file).
    pub fn keys(mut self, keys: impl IntoIterator<Item = PublishKey>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// The largest request body read (default 1 MiB; 1 KiB to 64 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The most events in one batch (default 1,000; 1 to 100,000). The batch is appended to
    /// the user's stream under one lock, which delays the other users of the same hub shard
    /// for about a microsecond per event.
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events;
        self
    }

    /// How long a publisher has to send its request body (default 10 s).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ServerConfigError::MissingPublishKey`] without a key;
    /// [`ServerConfigError::OutOfRange`] for a limit out of its range.
    pub fn build(self) -> Result<PublishConfig, ServerConfigError> {
        if self.keys.is_empty() {
            return Err(ServerConfigError::MissingPublishKey);
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(ServerConfigError::OutOfRange {
                setting: "publish_max_body_bytes",
                expected: "between 1 KiB and 64 MiB",
            });
        }
        if !(1..=100_000).contains(&self.max_batch_events) {
            return Err(ServerConfigError::OutOfRange {
                setting: "publish_max_batch_events",
                expected: "between 1 and 100,000",
            });
        }
        if self.body_timeout.is_zero() {
            return Err(ServerConfigError::OutOfRange {
                setting: "publish_body_timeout",
                expected: "more than zero",
            });
        }
        Ok(PublishConfig {
            keys: self.keys.into(),
            max_body_bytes: self.max_body_bytes,
            max_batch_events: self.max_batch_events,
            body_timeout: self.body_timeout,
        })
    }
}

/// A refused request: its status, stable code, message, and where in the batch.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    index: Option<usize>,
    field: Option<String>,
    received_type: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            index: None,
            field: None,
            received_type: None,
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn at(mut self, index: usize) -> Refusal {
        self.index = Some(index);
        self
    }

    fn field(mut self, field: impl Into<String>) -> Refusal {
        self.field = Some(field.into());
        self
    }

    fn into_response(self) -> Response {
        let mut body = crate::handshake::refusal(self.code, &self.message);
        if let Some(index) = self.index {
            body["error"]["index"] = index.into();
        }
        if let Some(field) = self.field {
            body["error"]["field"] = field.into();
        }
        if let Some(received) = self.received_type {
            body["error"]["received_type"] = received.into();
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentwire-publish\""),
            );
        }
        response
    }
}

/// `POST /api/v1/users/{user_id}/events`.
pub(crate) async fn publish(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    match accept(&shared, request).await {
        Ok(response) => response,
        Err(refusal) => {
            shared.metrics.publish_refused(refusal.code);
            tracing::debug!(
                target: "agentwire::publish",
                code = refusal.code,
                status = refusal.status.as_u16(),
                index = refusal.index,
                peer = peer.map(tracing::field::display),
                "publish refused"
            );
            refusal.into_response()
        }
    }
}

async fn accept(shared: &Arc<Shared>, request: Request) -> Result<Response, Refusal> {
    let Some(config) = shared.publish.as_ref() else {
        // The router is only built with a configuration; an embedder cannot get here.
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the publish API is not enabled",
        ));
    };
    let (mut parts, body) = request.into_parts();
    authorize(config, &parts.headers)?;
    if shared.is_draining() {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down; publish to another node or retry shortly",
        ));
    }
    let user_id = user_id(&mut parts, shared).await?;
    let bytes = read_body(&parts.headers, body, config).await?;
    let events = read_batch(&bytes, config, shared.config.max_json_depth())?;
    let count = events.len();

    let outcomes = shared.emitter.emit_batch(&user_id, events).await;
    let seqs: Vec<Option<u64>> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().ok().and_then(|receipt| receipt.seq))
        .collect();
    let failed: Vec<usize> = (0..count).filter(|&i| outcomes[i].is_err()).collect();
    let metrics = &shared.metrics;
    if let Some(error) = failed
        .first()
        .and_then(|&i| outcomes[i].as_ref().err().cloned())
    {
        // A networked engine could not put these events on the stream (they were checked
        // and accepted; the engine's store failed). Those not listed in `failed` are on it.
        metrics.publish_refused("delivery_failed");
        tracing::warn!(
            target: "agentwire::publish",
            user_id = %user_id,
            events = count,
            failed = failed.len(),
            reason = error.code(),
            "batch not delivered"
        );
        let mut body = crate::handshake::refusal(
            "delivery_failed",
            &format!("{error}; the events listed in `failed` are not on the stream"),
        );
        body["error"]["reason"] = error.code().into();
        body["error"]["failed"] = json!(failed);
        body["error"]["seqs"] = json!(seqs);
        return Ok((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
    }
    let dropped = seqs.iter().filter(|seq| seq.is_none()).count();
    let connections = outcomes
        .last()
        .and_then(|outcome| outcome.as_ref().ok())
        .map_or(0, |receipt| receipt.connections);
    metrics.publish_batches.fetch_add(1, Relaxed);
    metrics.publish_events.fetch_add(count as u64, Relaxed);
    metrics
        .publish_events_dropped
        .fetch_add(dropped as u64, Relaxed);
    tracing::debug!(
        target: "agentwire::publish",
        user_id = %user_id,
        events = count,
        first_seq = seqs.first().copied().flatten(),
        last_seq = seqs.last().copied().flatten(),
        connections,
        dropped,
        "batch published"
    );
    let body = json!({
        "user_id": user_id,
        "seqs": seqs,
        "connections": connections,
        "dropped": dropped,
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Checks `Authorization: Bearer KEY` against the configured keys.
fn authorize(config: &PublishConfig, headers: &HeaderMap) -> Result<(), Refusal> {
    let missing = || {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "send the API key as `Authorization: Bearer KEY`",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.as_bytes();
    let scheme_len = b"bearer ".len();
    if value.len() <= scheme_len || !value[..scheme_len].eq_ignore_ascii_case(b"bearer ") {
        return Err(missing());
    }
    let presented = value[scheme_len..].trim_ascii();
    if presented.is_empty() {
        return Err(missing());
    }
    if !config.accepts(presented) {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is not one this server accepts",
        ));
    }
    Ok(())
}

/// The `{user_id}` of the path, percent-decoded: a non-blank string, the rule a token's `sub`
/// follows.
async fn user_id(
    parts: &mut axum::http::request::Parts,
    shared: &Arc<Shared>,
) -> Result<String, Refusal> {
    let invalid = |message: &str| Refusal::bad("invalid_user_id", message).field("user_id");
    let params = RawPathParams::from_request_parts(parts, shared)
        .await
        .map_err(|_| invalid("the user id is not valid UTF-8 once percent-decoded"))?;
    let user_id = params
        .iter()
        .find(|(name, _)| *name == "user_id")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| invalid("the path has no user id"))?;
    if user_id.trim().is_empty() {
        return Err(invalid("the user id is empty"));
    }
    Ok(user_id)
}

/// Reads the body, at most `max_body_bytes` of it, within the body timeout.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    config: &PublishConfig,
) -> Result<Vec<u8>, Refusal> {
    let limit = config.max_body_bytes;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| {
                Refusal::bad("body_read_failed", "the request body could not be read")
            })?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(config.body_timeout, read).await {
        Ok(read) => read?,
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} ms",
                    config.body_timeout.as_millis()
                ),
            ));
        }
    }
    Ok(bytes)
}

/// Reads and checks the whole batch; nothing is delivered unless every event passes.
fn read_batch(
    bytes: &[u8],
    config: &PublishConfig,
    max_depth: usize,
) -> Result<Vec<Event>, Refusal> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            Refusal::bad("invalid_body", "expected {\"events\": [...]}")
        } else {
            Refusal::bad(
                "invalid_json",
                format!(
                    "invalid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    without_position(&e.to_string())
                ),
            )
        }
    })?;
    let Value::Object(mut body) = value else {
        return Err(Refusal::bad(
            "invalid_body",
            "the body must be a JSON object: {\"events\": [...]}",
        ));
    };
    if let Some(unknown) = body.keys().find(|k| *k != "events") {
        return Err(Refusal::bad(
            "invalid_body",
            format!(
                "unknown field {}: the body has only \"events\"",
                short(unknown)
            ),
        )
        .field(short(unknown)));
    }
    let events = match body.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => {
            return Err(Refusal::bad("invalid_body", "\"events\" must be an array").field("events"));
        }
        None => {
            return Err(Refusal::bad(
                "invalid_body",
                "missing field \"events\": the body is {\"events\": [...]}",
            )
            .field("events"));
        }
    };
    if events.is_empty() {
        return Err(Refusal::bad("empty_batch", "the batch has no events").field("events"));
    }
    if events.len() > config.max_batch_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "the batch has {} events; at most {} are accepted",
                events.len(),
                config.max_batch_events
            ),
        )
        .field("events"));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| read_event(event, max_depth).map_err(|r| r.at(index)))
        .collect()
}

/// Reads one event of the batch: `{"type", "payload", "run_id"?, "thread_id"?}`.
fn read_event(event: Value, max_depth: usize) -> Result<Event, Refusal> {
    let Value::Object(mut event) = event else {
        return Err(Refusal::bad(
            "invalid_event",
            "an event is a JSON object {\"type\": ..., \"payload\": {...}}",
        ));
    };
    if let Some(unknown) = event
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "payload" | "run_id" | "thread_id"))
    {
        return Err(Refusal::bad(
            "invalid_event",
            format!(
                "unknown field {}: an event has type, payload, run_id and thread_id",
                short(unknown)
            ),
        )
        .field(short(unknown)));
    }
    let name = match event.remove("type") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(Refusal::bad("invalid_event", "\"type\" must be a string").field("type"));
        }
        None => {
            return Err(Refusal::bad("invalid_event", "missing field \"type\"").field("type"));
        }
    };
    let message_type = match agentwire_types::normalize(&name) {
        Ok(message_type) => message_type,
        Err(error) => {
            let mut refusal = Refusal::bad(error.code(), error.to_string()).field("type");
            refusal.received_type = Some(error.received().to_owned());
            return Err(refusal);
        }
    };
    let unsupported = |why: String| {
        let mut refusal = Refusal::bad("unsupported_message_type", why).field("type");
        refusal.received_type = Some(short(&name));
        refusal
    };
    if !message_type.direction().server_may_send() {
        return Err(unsupported(format!(
            "{message_type} is sent by clients; only server-to-client types are published"
        )));
    }
    if is_control(message_type) {
        return Err(unsupported(format!(
            "{message_type} is a connection-scoped control frame, not a stream event"
        )));
    }
    let run_id = optional_id(&event, "run_id")?;
    let thread_id = optional_id(&event, "thread_id")?;
    let payload = match event.remove("payload") {
        Some(payload @ Value::Object(_)) => payload,
        Some(_) => {
            return Err(
                Refusal::bad("invalid_payload", "\"payload\" must be a JSON object")
                    .field("payload"),
            );
        }
        None => {
            return Err(Refusal::bad("invalid_event", "missing field \"payload\"").field("payload"));
        }
    };
    if nesting(&payload) > max_depth {
        return Err(Refusal::bad(
            "invalid_payload",
            format!("the payload nests arrays and objects deeper than {max_depth} levels"),
        )
        .field("payload"));
    }
    let payload = Payload::from_json(message_type, payload).map_err(|e| {
        Refusal::bad("invalid_payload", shorten(e.message(), MAX_DETAIL_BYTES)).field("payload")
    })?;
    if !payload.is_stream_event() {
        return Err(unsupported(format!("{message_type} is not a stream event")));
    }
    // The run events (agent_started ... agent_error) belong to a run: they need its id.
    let run_event = Payload::is_typed(message_type);
    let mut event = Event::new(payload);
    match run_id {
        Some(run_id) => event = event.with_run_id(run_id),
        None if run_event => {
            return Err(Refusal::bad(
                "missing_run_id",
                format!("{message_type} is a run event: it needs a \"run_id\""),
            )
            .field("run_id"));
        }
        None => {}
    }
    if let Some(thread_id) = thread_id {
        event = event.with_thread_id(thread_id);
    }
    Ok(event)
}

/// Connection-scoped types a server sends (they carry no `seq` and belong to one connection).
fn is_control(message_type: MessageType) -> bool {
    message_type.class() == MessageClass::Connection || message_type == MessageType::Error
}

/// `run_id` or `thread_id`, when present: a non-empty string of at most 256 bytes.
fn optional_id(event: &Map<String, Value>, field: &'static str) -> Result<Option<String>, Refusal> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_BYTES => {
            Ok(Some(id.clone()))
        }
        Some(_) => Err(Refusal::bad(
            "invalid_event",
            format!("\"{field}\" must be a non-empty string of at most {MAX_ID_BYTES} bytes"),
        )
        .field(field)),
    }
}

/// How deep `value` nests arrays and objects (an object of scalars: 1).
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// serde_json's message without its trailing " at line L column C" (the refusal says it).
fn without_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

/// A name from the request, cut to 64 bytes for an error body.
fn short(name: &str) -> String {
    shorten(name, agentwire_types::MAX_RECEIVED_BYTES)
}

/// `text` cut to at most `max` bytes on a character boundary, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The answer to another method on the publish path: 405 with `Allow: POST`.
pub(crate) async fn method_not_allowed() -> Response {
    let mut response = Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the publish endpoint takes POST",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The answer to any other path of the publish listener: 404.
pub(crate) async fn not_found() -> Response {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; events are published with POST /api/v1/users/{user_id}/events",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> PublishKey {
        PublishKey::new(text).expect("a valid key")
    }

    #[test]
    fn keys_match_only_themselves() {
        let k = key("0123456789abcdef");
        assert!(k.matches(b"0123456789abcdef"));
        for other in [
            &b""[..],
            b"0123456789abcde",
            b"0123456789abcdef0",
            b"0123456789abcdeF",
            b"x123456789abcdef",
            b"0123456789abcdef0123456789abcdef",
        ] {
            assert!(!k.matches(other), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn any_configured_key_is_accepted() {
        let config = PublishConfig::builder()
            .key(key("old-key-0123456789"))
            .key(key("new-key-0123456789"))
            .build()
            .expect("config");
        assert!(config.accepts(b"old-key-0123456789"));
        assert!(config.accepts(b"new-key-0123456789"));
        assert!(!config.accepts(b"mid-key-0123456789"));
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        for (bad, reason) in [
            ("tiny-key", "shorter"),
            ("has a space in it!!", "visible ASCII"),
            ("caf\u{e9}-0123456789abcdef", "visible ASCII"),
        ] {
            let error = PublishKey::new(bad).expect_err(bad);
            assert_eq!(error.code(), "invalid_publish_key");
            let text = error.to_string();
            assert!(text.contains(reason), "{text}");
            assert!(!text.contains(bad), "{text}");
        }
        assert_eq!(
            PublishKey::from_lines("# nothing here\n\n")
                .expect_err("empty")
                .code(),
            "missing_publish_key"
        );
        assert_eq!(
            PublishConfig::builder().build().expect_err("no key").code(),
            "missing_publish_key"
        );
    }

    #[test]
    fn nesting_counts_levels() {
        assert_eq!(nesting(&json!({})), 1);
        assert_eq!(nesting(&json!({"a": [1, {"b": 2}]})), 3);
        assert_eq!(nesting(&json!({"a": 1, "b": [[[]]]})), 4);
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("\u{e9}\u{e9}\u{e9}", 3), "\u{e9}...");
    }
}
