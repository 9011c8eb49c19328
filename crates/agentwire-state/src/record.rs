//! The connection log record: one JSON object per lifecycle event.

use core::fmt;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use agentwire_types::json;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::close::{CloseCode, CloseInfo};
use crate::redact;
use crate::severity::Severity;
use crate::state::ConnectionState;
use crate::text::{self, StackStr};

/// The tracing target as a literal, for `concat!`.
macro_rules! tracing_target {
    () => {
        "agentwire::connection"
    };
}

/// The tracing target of [`ConnectionRecord::emit`], also written as the record's `target`
/// field.
pub const TRACING_TARGET: &str = tracing_target!();

/// The most bytes kept of a connection id or a user id.
pub const MAX_ID_BYTES: usize = 128;

/// The most bytes kept of an `Origin`.
pub const MAX_ORIGIN_BYTES: usize = 256;

/// Frames and bytes that crossed a connection, in each direction.
///
/// Bytes count application payloads (text of a frame), not WebSocket framing. The adders
/// saturate instead of overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Counters {
    /// Frames received from the client.
    pub frames_in: u64,
    /// Frames sent to the client.
    pub frames_out: u64,
    /// Payload bytes received from the client.
    pub bytes_in: u64,
    /// Payload bytes sent to the client.
    pub bytes_out: u64,
}

impl Counters {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            frames_in: 0,
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Sets the received totals: `frames` frames of `bytes` payload bytes in all.
    #[must_use]
    pub const fn with_in(mut self, frames: u64, bytes: u64) -> Self {
        self.frames_in = frames;
        self.bytes_in = bytes;
        self
    }

    /// Sets the sent totals: `frames` frames of `bytes` payload bytes in all.
    #[must_use]
    pub const fn with_out(mut self, frames: u64, bytes: u64) -> Self {
        self.frames_out = frames;
        self.bytes_out = bytes;
        self
    }

    /// Counts one received frame of `bytes` payload bytes.
    pub fn record_in(&mut self, bytes: usize) {
        self.frames_in = self.frames_in.saturating_add(1);
        self.bytes_in = self.bytes_in.saturating_add(bytes as u64);
    }

    /// Counts one sent frame of `bytes` payload bytes.
    pub fn record_out(&mut self, bytes: usize) {
        self.frames_out = self.frames_out.saturating_add(1);
        self.bytes_out = self.bytes_out.saturating_add(bytes as u64);
    }
}

/// One structured-log record of a connection's lifecycle event (it connected, opened, started
/// closing, closed, failed).
///
/// Serializes to **one flat JSON object** that Google Cloud Logging reads as a structured
/// payload, and that other JSON pipelines (Loki, Elasticsearch, Datadog) index as fields:
///
/// ```json
/// {"severity":"NOTICE","message":"connection closed: 4401 auth_failed: token_expired",
///  "target":"agentwire::connection","connection_id":"c-1f2e","user_id":"user-42",
///  "state":"closed","previous_state":"closing","close_code":4401,"close_name":"auth_failed",
///  "close_reason":"token_expired","remote_addr":"203.0.113.9:50412",
///  "origin":"https://app.example.com","frames_in":3,"frames_out":5,"bytes_in":310,
///  "bytes_out":1204,"duration_ms":1520,"connected_ms":1490}
/// ```
///
/// | field | type | present |
/// |---|---|---|
/// | `severity` | Cloud Logging severity ([`Severity`]), derived (see [`severity`](Self::severity)) | always |
/// | `message` | one-line summary, derived from state and close | always |
/// | `target` | [`TRACING_TARGET`] | always |
/// | `connection_id` | string, at most [`MAX_ID_BYTES`] | always |
/// | `user_id` | string (the token's `sub`), at most [`MAX_ID_BYTES`] | once authenticated |
/// | `state`, `previous_state` | [`ConnectionState`] name | `previous_state` when set |
/// | `close_code`, `close_name`, `close_reason` | number, [`CloseCode::name`], string | with close info; `close_reason` when not empty |
/// | `remote_addr` | `ip:port` | when set |
/// | `origin` | string, at most [`MAX_ORIGIN_BYTES`] | when the client sent one |
/// | `frames_in`, `frames_out`, `bytes_in`, `bytes_out` | numbers ([`Counters`]) | always |
/// | `duration_ms` | ms since the upgrade request arrived | always |
/// | `connected_ms` | ms the connection has been open | once it opened |
///
/// No timestamp is written: the subscriber or the log agent stamps the entry.
///
/// # Never a token
///
/// There is no free-form field and no header map: every field is typed, and the few strings
/// (ids, origin, close reason) are cut to a fixed length and replaced by `[redacted]` when they
/// contain anything shaped like a bearer credential (a raw or base64url-wrapped JWT, or
/// `Bearer <token>`). The check runs when a value is stored, so serializing stays cheap, and
/// it also runs on records read back from JSON.
///
/// # Cost
///
/// Strings are borrowed (`Cow<'a, str>`), so building a record from the server's connection
/// data copies nothing. [`write_json`](Self::write_json) appends the JSON to a reusable buffer
/// in one pass without `core::fmt`; the [`Serialize`] impl (for `serde_json::to_writer` or any
/// other serializer) writes the same bytes, through serde. Neither can fail:
/// [`to_json`](Self::to_json) returns a `String`, not a `Result`. Figures are in
/// `docs/performance.md` (`cargo bench -p agentwire-benches --bench state`).
///
/// ```
/// use std::time::Duration;
/// use agentwire_state::{CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Severity};
///
/// let record = ConnectionRecord::new("c-1f2e", ConnectionState::Closed)
///     .with_previous_state(ConnectionState::Closing)
///     .with_user_id("user-42")
///     .with_close(CloseInfo::new(CloseCode::AuthFailed, "token_expired"))
///     .with_remote_addr("203.0.113.9:50412".parse().unwrap())
///     .with_duration(Duration::from_millis(1520));
///
/// assert_eq!(record.severity(), Severity::Notice);
/// let json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
/// assert_eq!(json["severity"], "NOTICE");
/// assert_eq!(json["close_code"], 4401);
/// assert_eq!(json["message"], "connection closed: 4401 auth_failed: token_expired");
///
/// // A token never gets in, wherever it is put.
/// let sneaky = ConnectionRecord::new("c-1", ConnectionState::Open)
///     .with_origin("https://x.example/?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln");
/// assert_eq!(sneaky.origin(), Some("[redacted]"));
///
/// record.emit(); // one tracing event, target "agentwire::connection", level INFO
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRecord<'a> {
    connection_id: Cow<'a, str>,
    user_id: Option<Cow<'a, str>>,
    state: ConnectionState,
    previous_state: Option<ConnectionState>,
    close: Option<CloseInfo>,
    remote_addr: Option<SocketAddr>,
    origin: Option<Cow<'a, str>>,
    counters: Counters,
    duration_ms: u64,
    connected_ms: Option<u64>,
}

impl<'a> ConnectionRecord<'a> {
    /// A record of `connection_id` in `state`, with nothing else set.
    pub fn new(connection_id: impl Into<Cow<'a, str>>, state: ConnectionState) -> Self {
        Self {
            connection_id: redact::clean(connection_id.into(), MAX_ID_BYTES),
            user_id: None,
            state,
            previous_state: None,
            close: None,
            remote_addr: None,
            origin: None,
            counters: Counters::new(),
            duration_ms: 0,
            connected_ms: None,
        }
    }

    /// Sets the authenticated user (the token's `sub`).
    pub fn with_user_id(mut self, user_id: impl Into<Cow<'a, str>>) -> Self {
        self.user_id = Some(redact::clean(user_id.into(), MAX_ID_BYTES));
        self
    }

    /// Sets the state the connection was in before this event.
    pub fn with_previous_state(mut self, previous: ConnectionState) -> Self {
        self.previous_state = Some(previous);
        self
    }

    /// Sets the close code and reason.
    pub fn with_close(mut self, close: CloseInfo) -> Self {
        self.close = Some(close);
        self
    }

    /// Sets the client's address. An IPv6 flow label is dropped (it has no text form).
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(normalize_addr(addr));
        self
    }

    /// Sets the `Origin` the client sent.
    pub fn with_origin(mut self, origin: impl Into<Cow<'a, str>>) -> Self {
        self.origin = Some(redact::clean(origin.into(), MAX_ORIGIN_BYTES));
        self
    }

    /// Sets the frame and byte counters.
    pub fn with_counters(mut self, counters: Counters) -> Self {
        self.counters = counters;
        self
    }

    /// Sets the time since the upgrade request arrived (stored in whole milliseconds).
    pub fn with_duration(mut self, since_accept: Duration) -> Self {
        self.duration_ms = millis(since_accept);
        self
    }

    /// Sets how long the connection has been open (stored in whole milliseconds).
    pub fn with_connected(mut self, since_open: Duration) -> Self {
        self.connected_ms = Some(millis(since_open));
        self
    }

    /// The connection id (cut to [`MAX_ID_BYTES`], or `[redacted]`).
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The authenticated user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The state this event moved the connection to.
    pub const fn state(&self) -> ConnectionState {
        self.state
    }

    /// The state before this event, if set.
    pub const fn previous_state(&self) -> Option<ConnectionState> {
        self.previous_state
    }

    /// The close code and reason, if set.
    pub const fn close(&self) -> Option<&CloseInfo> {
        self.close.as_ref()
    }

    /// The client's address, if set.
    pub const fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The client's `Origin`, if set.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The frame and byte counters.
    pub const fn counters(&self) -> Counters {
        self.counters
    }

    /// Milliseconds since the upgrade request arrived.
    pub const fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// Milliseconds the connection has been open, if it opened.
    pub const fn connected_ms(&self) -> Option<u64> {
        self.connected_ms
    }

    /// The severity the record is logged at, derived from the state and the close code:
    ///
    /// | state | severity |
    /// |---|---|
    /// | `connecting`, `closing` | `DEBUG` |
    /// | `open` | `INFO` |
    /// | `closed` | the close code's [`severity`](CloseCode::severity) (`INFO` for 1000/1001, `NOTICE` for client faults such as 4401, `WARNING` for 4008, `ERROR` for 1011), `INFO` without close info |
    /// | `failed` | the close code's severity, at least `NOTICE` |
    pub fn severity(&self) -> Severity {
        let close = self.close.as_ref().map(|c| c.code().severity());
        match self.state {
            ConnectionState::Connecting | ConnectionState::Closing => Severity::Debug,
            ConnectionState::Open => Severity::Info,
            ConnectionState::Closed => close.unwrap_or(Severity::Info),
            ConnectionState::Failed => close.map_or(Severity::Notice, |s| s.max(Severity::Notice)),
        }
    }

    /// The one-line `message`: `connection open`, `connection closed: 1000 normal_closure`,
    /// `connection closed: 4401 auth_failed: token_expired`.
    pub fn message(&self) -> impl fmt::Display + '_ {
        Summary(self)
    }

    /// The record as one JSON object (see the type's docs for the fields).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Only whole UTF-8 strings and ASCII are written; the fallback is unreachable.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the record as one JSON object to `out`; reuse the buffer to avoid allocating.
    ///
    /// This is a hand-written writer for the hot path (no `core::fmt`, no key escaping); it
    /// writes byte for byte what `serde_json::to_writer(out, &record)` writes through the
    /// [`Serialize`] impl, and the test suite holds the two equal.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(512);
        // `{"severity":"…","message":"connection ` in one piece.
        out.extend_from_slice(json_head(self.severity()));
        out.extend_from_slice(self.state.as_str().as_bytes());
        if let Some(close) = &self.close {
            out.extend_from_slice(b": ");
            json::write_u64(out, close.code().as_u16().into());
            out.push(b' ');
            out.extend_from_slice(close.code().name().as_bytes());
            if !close.reason().is_empty() {
                out.extend_from_slice(b": ");
                json::write_escaped(out, close.reason());
            }
        }
        out.extend_from_slice(
            concat!(
                "\",\"target\":\"",
                tracing_target!(),
                "\",\"connection_id\":\""
            )
            .as_bytes(),
        );
        json::write_escaped(out, &self.connection_id);
        if let Some(user) = &self.user_id {
            out.extend_from_slice(b"\",\"user_id\":\"");
            json::write_escaped(out, user);
        }
        out.extend_from_slice(b"\",\"state\":\"");
        out.extend_from_slice(self.state.as_str().as_bytes());
        if let Some(prev) = self.previous_state {
            out.extend_from_slice(b"\",\"previous_state\":\"");
            out.extend_from_slice(prev.as_str().as_bytes());
        }
        out.push(b'"');
        if let Some(close) = &self.close {
            out.extend_from_slice(b",\"close_code\":");
            json::write_u64(out, close.code().as_u16().into());
            out.extend_from_slice(b",\"close_name\":\"");
            out.extend_from_slice(close.code().name().as_bytes());
            if !close.reason().is_empty() {
                out.extend_from_slice(b"\",\"close_reason\":\"");
                json::write_escaped(out, close.reason());
            }
            out.push(b'"');
        }
        if let Some(addr) = &self.remote_addr {
            out.extend_from_slice(b",\"remote_addr\":\"");
            text::push_socket_addr(out, addr);
            out.push(b'"');
        }
        if let Some(origin) = &self.origin {
            out.extend_from_slice(b",\"origin\":\"");
            json::write_escaped(out, origin);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"frames_in\":");
        json::write_u64(out, self.counters.frames_in);
        out.extend_from_slice(b",\"frames_out\":");
        json::write_u64(out, self.counters.frames_out);
        out.extend_from_slice(b",\"bytes_in\":");
        json::write_u64(out, self.counters.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        json::write_u64(out, self.counters.bytes_out);
        out.extend_from_slice(b",\"duration_ms\":");
        json::write_u64(out, self.duration_ms);
        if let Some(ms) = self.connected_ms {
            out.extend_from_slice(b",\"connected_ms\":");
            json::write_u64(out, ms);
        }
        out.push(b'}');
    }

    /// Calls `f` with each piece of the message, in order.
    fn message_pieces<E>(&self, mut f: impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
        f("connection ")?;
        f(self.state.as_str())?;
        if let Some(close) = &self.close {
            f(": ")?;
            f(text::digits(close.code().as_u16().into()).as_str())?;
            f(" ")?;
            f(close.code().name())?;
            if !close.reason().is_empty() {
                f(": ")?;
                f(close.reason())?;
            }
        }
        Ok(())
    }

    /// Emits the record as one tracing event with target [`TRACING_TARGET`], at the level of
    /// its [`severity`](Self::severity) ([`Severity::tracing_level`]), with the same typed
    /// fields as the JSON form (absent optional fields are not recorded) and the summary as
    /// the event's message.
    pub fn emit(&self) {
        let severity = self.severity();
        let close = self.close.as_ref();
        macro_rules! emit_at {
            ($level:expr) => {
                tracing::event!(
                    target: TRACING_TARGET,
                    $level,
                    severity = severity.as_str(),
                    connection_id = &*self.connection_id,
                    user_id = self.user_id.as_deref(),
                    state = self.state.as_str(),
                    previous_state = self.previous_state.map(ConnectionState::as_str),
                    close_code = close.map(|c| c.code().as_u16()),
                    close_name = close.map(|c| c.code().name()),
                    close_reason = close.map(CloseInfo::reason).filter(|r| !r.is_empty()),
                    remote_addr = self.remote_addr.as_ref().map(tracing::field::display),
                    origin = self.origin.as_deref(),
                    frames_in = self.counters.frames_in,
                    frames_out = self.counters.frames_out,
                    bytes_in = self.counters.bytes_in,
                    bytes_out = self.counters.bytes_out,
                    duration_ms = self.duration_ms,
                    connected_ms = self.connected_ms,
                    "{}",
                    Summary(self)
                )
            };
        }
        // The same mapping as `Severity::tracing_level`; tracing needs a constant level per
        // call site.
        match severity {
            Severity::Default => emit_at!(tracing::Level::TRACE),
            Severity::Debug => emit_at!(tracing::Level::DEBUG),
            Severity::Info | Severity::Notice => emit_at!(tracing::Level::INFO),
            Severity::Warning => emit_at!(tracing::Level::WARN),
            Severity::Error | Severity::Critical | Severity::Alert | Severity::Emergency => {
                emit_at!(tracing::Level::ERROR)
            }
        }
    }

    /// The record with every string copied, so that it outlives the data it was built from.
    pub fn into_owned(self) -> ConnectionRecord<'static> {
        ConnectionRecord {
            connection_id: Cow::Owned(self.connection_id.into_owned()),
            user_id: self.user_id.map(|u| Cow::Owned(u.into_owned())),
            state: self.state,
            previous_state: self.previous_state,
            close: self.close,
            remote_addr: self.remote_addr,
            origin: self.origin.map(|o| Cow::Owned(o.into_owned())),
            counters: self.counters,
            duration_ms: self.duration_ms,
            connected_ms: self.connected_ms,
        }
    }
}

/// The start of the JSON form up to the message's first word, for each severity.
const fn json_head(severity: Severity) -> &'static [u8] {
    macro_rules! head {
        ($name:literal) => {
            concat!("{\"severity\":\"", $name, "\",\"message\":\"connection ").as_bytes()
        };
    }
    match severity {
        Severity::Default => head!("DEFAULT"),
        Severity::Debug => head!("DEBUG"),
        Severity::Info => head!("INFO"),
        Severity::Notice => head!("NOTICE"),
        Severity::Warning => head!("WARNING"),
        Severity::Error => head!("ERROR"),
        Severity::Critical => head!("CRITICAL"),
        Severity::Alert => head!("ALERT"),
        Severity::Emergency => head!("EMERGENCY"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn normalize_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(mut v6) => {
            v6.set_flowinfo(0);
            SocketAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The record's `message`.
struct Summary<'r, 'a>(&'r ConnectionRecord<'a>);

impl fmt::Display for Summary<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.message_pieces(|piece| f.write_str(piece))
    }
}

/// The longest message: "connection " + state + ": " + code + " " + name + ": " + reason.
const MAX_MESSAGE_BYTES: usize = 256;

impl Serialize for Summary<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = StackStr::<MAX_MESSAGE_BYTES>::new();
        if self.0.message_pieces(|piece| buf.push_str(piece)).is_ok() {
            serializer.serialize_str(buf.as_str())
        } else {
            serializer.collect_str(self)
        }
    }
}

impl Serialize for ConnectionRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ConnectionRecord", 19)?;
        s.serialize_field("severity", &self.severity())?;
        s.serialize_field("message", &Summary(self))?;
        s.serialize_field("target", TRACING_TARGET)?;
        s.serialize_field("connection_id", &*self.connection_id)?;
        match &self.user_id {
            Some(user) => s.serialize_field("user_id", &**user)?,
            None => s.skip_field("user_id")?,
        }
        s.serialize_field("state", &self.state)?;
        match self.previous_state {
            Some(prev) => s.serialize_field("previous_state", &prev)?,
            None => s.skip_field("previous_state")?,
        }
        match &self.close {
            Some(close) => {
                s.serialize_field("close_code", &close.code())?;
                s.serialize_field("close_name", close.code().name())?;
                if close.reason().is_empty() {
                    s.skip_field("close_reason")?;
                } else {
                    s.serialize_field("close_reason", close.reason())?;
                }
            }
            None => {
                s.skip_field("close_code")?;
                s.skip_field("close_name")?;
                s.skip_field("close_reason")?;
            }
        }
        match &self.remote_addr {
            Some(addr) => s.serialize_field("remote_addr", text::socket_addr(addr).as_str())?,
            None => s.skip_field("remote_addr")?,
        }
        match &self.origin {
            Some(origin) => s.serialize_field("origin", &**origin)?,
            None => s.skip_field("origin")?,
        }
        s.serialize_field("frames_in", &self.counters.frames_in)?;
        s.serialize_field("frames_out", &self.counters.frames_out)?;
        s.serialize_field("bytes_in", &self.counters.bytes_in)?;
        s.serialize_field("bytes_out", &self.counters.bytes_out)?;
        s.serialize_field("duration_ms", &self.duration_ms)?;
        match self.connected_ms {
            Some(ms) => s.serialize_field("connected_ms", &ms)?,
            None => s.skip_field("connected_ms")?,
        }
        s.end()
    }
}

/// The JSON form as read; derived fields (`severity`, `message`, `target`, `close_name`) and
/// unknown fields are ignored.
#[derive(Deserialize)]
struct WireRecord {
    connection_id: String,
    #[serde(default)]
    user_id: Option<String>,
    state: ConnectionState,
    #[serde(default)]
    previous_state: Option<ConnectionState>,
    #[serde(default)]
    close_code: Option<CloseCode>,
    #[serde(default)]
    close_reason: Option<String>,
    #[serde(default)]
    remote_addr: Option<SocketAddr>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    frames_in: u64,
    #[serde(default)]
    frames_out: u64,
    #[serde(default)]
    bytes_in: u64,
    #[serde(default)]
    bytes_out: u64,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    connected_ms: Option<u64>,
}

/// Reads the JSON form; every string goes through the same length and credential checks as
/// the builder, so a record read from anywhere is as safe to log as one built here. A
/// `close_reason` without a `close_code` is ignored.
impl<'de> Deserialize<'de> for ConnectionRecord<'_> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = WireRecord::deserialize(deserializer)?;
        let mut record = ConnectionRecord::new(w.connection_id, w.state).with_counters(Counters {
            frames_in: w.frames_in,
            frames_out: w.frames_out,
            bytes_in: w.bytes_in,
            bytes_out: w.bytes_out,
        });
        record.duration_ms = w.duration_ms;
        record.connected_ms = w.connected_ms;
        record.previous_state = w.previous_state;
        if let Some(user) = w.user_id {
            record = record.with_user_id(user);
        }
        if let Some(code) = w.close_code {
            record = record.with_close(CloseInfo::new(code, w.close_reason.unwrap_or_default()));
        }
        if let Some(addr) = w.remote_addr {
            record = record.with_remote_addr(addr);
        }
        if let Some(origin) = w.origin {
            record = record.with_origin(origin);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_head_spells_every_severity_as_serde_does() {
        for &severity in Severity::ALL {
            let expected = format!(
                "{{\"severity\":{},\"message\":\"connection ",
                serde_json::to_string(&severity).unwrap()
            );
            assert_eq!(json_head(severity), expected.as_bytes());
        }
    }
}
