//! The `ndjson` protocol: agentwire's own request JSON out, one agentwire event per line back.

use agentwire_events::Payload;
use agentwire_server::Run;

use crate::error::AgentFailure;
use crate::relay::Sink;
use agentwire_types::MessageType;
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;

/// The content types an `ndjson` response may have (parameters such as `charset` aside).
pub(crate) const CONTENT_TYPES: &[&str] = &["application/x-ndjson", "application/jsonl"];

/// The request body: the run's identity and the client's request.
#[derive(Serialize)]
pub(crate) struct RequestBody<'a> {
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<&'a str>,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: RequestPayload<'a>,
}

#[derive(Serialize)]
struct RequestPayload<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a agentwire_events::RawJson<'static>>,
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(run: &'a Run) -> Self {
        let request = run.request();
        RequestBody {
            run_id: run.run_id(),
            thread_id: run.thread_id(),
            user_id: run.user_id(),
            message_id: run.message_id(),
            kind: run.kind().as_str(),
            payload: RequestPayload {
                text: &request.text,
                agent_name: request.agent_name.as_deref(),
                context: request.context.as_ref(),
            },
        }
    }
}

/// Reads one response line into a run event's payload.
///
/// A line is `{"type": ..., "payload": {...}}`; other members (a service's own `run_id`, ...)
/// are ignored: the run's identity is agentwire's. When `type` comes before `payload` (as
/// services write it), the payload is read once, straight into its typed form; otherwise it
/// is kept as text and read once the type is known.
///
/// Error messages carry no payload text (serde's messages quote values; they are cut).
pub(crate) fn parse_line(line: &[u8]) -> Result<Payload, String> {
    // One UTF-8 check for the whole line: reading from a `str`, serde_json does not check
    // each string again.
    let line = std::str::from_utf8(line)
        .map_err(|e| format!("invalid JSON at column {}", e.valid_up_to() + 1))?;
    let failed_payload = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(line);
    let read = de
        .deserialize_any(LineVisitor {
            failed_payload: &failed_payload,
        })
        .and_then(|read| de.end().map(|()| read));
    let payload = match read {
        Err(e) => {
            return Err(match failed_payload.get() {
                Some(message_type) => without_quoted(&format!(
                    "payload of {message_type}: {}",
                    without_position(&e)
                )),
                None if e.is_data() => {
                    "not an object with a string \"type\" and a \"payload\"".to_owned()
                }
                None => format!("invalid JSON at column {}", e.column()),
            });
        }
        Ok(Line::UnknownType) => return Err("unknown event type".to_owned()),
        Ok(Line::Typed(payload)) => payload,
        Ok(Line::Text(message_type, text)) => Payload::from_json_text(message_type, text.get())
            .map_err(|e| without_quoted(e.message()))?,
        Ok(Line::TextFirst(_)) => unreachable!("resolved by the visitor"),
    };
    if !payload.is_stream_event() {
        return Err(format!("{} is not a run event", payload.message_type()));
    }
    Ok(payload)
}

/// A line as read.
enum Line<'a> {
    /// The type, then its payload, read.
    Typed(Payload),
    /// The payload came before the type: its text, to read now.
    Text(MessageType, &'a RawValue),
    /// The payload's text, while the type is not read yet.
    TextFirst(&'a RawValue),
    /// A type agentwire does not know.
    UnknownType,
}

/// `e`'s message without serde_json's ` at line L column C`.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&at) {
        Some(message) => message.to_owned(),
        None => message,
    }
}

/// Reads a line's object; marks `failed_payload` while its payload is read, so that an
/// error there is told as the payload's.
struct LineVisitor<'c> {
    failed_payload: &'c Cell<Option<MessageType>>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = Line<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a string \"type\" and a \"payload\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line<'de>, A::Error> {
        // `Some(None)`: a type agentwire does not know.
        let mut kind: Option<Option<MessageType>> = None;
        let mut read: Option<Line<'de>> = None;
        while let Some(key) = map.next_key_seed(Text)? {
            match &*key {
                "type" => {
                    if kind.is_some() {
                        return Err(A::Error::duplicate_field("type"));
                    }
                    let name = map.next_value_seed(Text)?;
                    kind = Some(agentwire_types::normalize(&name).ok());
                }
                "payload" => {
                    if read.is_some() {
                        return Err(A::Error::duplicate_field("payload"));
                    }
                    read = Some(match kind {
                        Some(Some(message_type)) => {
                            self.failed_payload.set(Some(message_type));
                            let payload = map.next_value_seed(PayloadSeed(message_type))?;
                            self.failed_payload.set(None);
                            Line::Typed(payload)
                        }
                        Some(None) => {
                            map.next_value::<IgnoredAny>()?;
                            Line::UnknownType
                        }
                        None => Line::TextFirst(map.next_value()?),
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(kind) = kind else {
            return Err(A::Error::missing_field("type"));
        };
        let Some(read) = read else {
            return Err(A::Error::missing_field("payload"));
        };
        Ok(match (kind, read) {
            (None, _) => Line::UnknownType,
            (Some(message_type), Line::TextFirst(text)) => Line::Text(message_type, text),
            (Some(_), read) => read,
        })
    }
}

/// A string, borrowed from the line when it has no escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A payload of a known type, read from the line's `payload` member.
struct PayloadSeed(MessageType);

/// What a payload that is not an object is told.
const NOT_AN_OBJECT: &str = "expected a JSON object";

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Payload;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed {
    type Value = Payload;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
        Payload::from_map_access(self.0, map)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Payload, A::Error> {
        Err(A::Error::custom(NOT_AN_OBJECT))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Payload, E> {
        Err(E::custom(NOT_AN_OBJECT))
    }
}

/// `message` without the values serde quotes in it (a string's text, an enum variant): up to
/// the first quote or backtick, except a missing or unknown field's name, which is kept.
pub(crate) fn without_quoted(message: &str) -> String {
    for keep in ["missing field `", "unknown field `"] {
        if let Some(at) = message.find(keep) {
            let name_start = at + keep.len();
            if let Some(len) = message[name_start..].find('`') {
                return message[..name_start + len + 1].to_owned();
            }
        }
    }
    match message.find(['"', '`']) {
        Some(at) => format!("{}...", message[..at].trim_end()),
        None => message.to_owned(),
    }
}

/// Reads an `ndjson` response: lines, each one event.
pub(crate) struct Decoder {
    lines: LineSplitter,
    line: u64,
    max: usize,
}

impl Decoder {
    /// A decoder allowing `max` bytes per line.
    pub(crate) fn new(max: usize) -> Self {
        Decoder {
            lines: LineSplitter::new(max),
            line: 0,
            max,
        }
    }

    /// Feeds body bytes: `Ok(true)` once the terminal event went out.
    pub(crate) fn feed(&mut self, chunk: &[u8], sink: &mut dyn Sink) -> Result<bool, AgentFailure> {
        let Decoder { lines, line, max } = self;
        let limit = *max;
        lines.feed(
            chunk,
            |raw| relay_line(line, raw, sink),
            || AgentFailure::LineTooLarge { limit },
        )
    }

    /// The end of the body: `Ok(true)` if the terminal event went out.
    pub(crate) fn finish(&mut self, sink: &mut dyn Sink) -> Result<bool, AgentFailure> {
        let Decoder { lines, line, max } = self;
        let limit = *max;
        lines.finish(
            |raw| relay_line(line, raw, sink),
            || AgentFailure::LineTooLarge { limit },
        )
    }
}

/// One line: parsed, then emitted.
fn relay_line(count: &mut u64, raw: &[u8], sink: &mut dyn Sink) -> Result<bool, AgentFailure> {
    *count += 1;
    let payload = parse_line(raw).map_err(|reason| AgentFailure::MalformedLine {
        line: *count,
        reason,
    })?;
    sink.emit(payload)
}

/// Splits a byte stream into lines of at most `max` bytes (without the newline; a trailing
/// `\r` is dropped too).
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max,
        }
    }

    /// Feeds `chunk`, calling `line` for each complete non-empty line; stops at the first
    /// error `line` returns.
    pub(crate) fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        mut line: impl FnMut(&[u8]) -> Result<bool, E>,
        too_long: impl Fn() -> E,
    ) -> Result<bool, E> {
        while let Some(at) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = chunk.split_at(at);
            chunk = &rest[1..];
            let done = if self.buf.is_empty() {
                self.emit(head, &mut line, &too_long)?
            } else {
                if self.buf.len() + head.len() > self.max + 1 {
                    return Err(too_long());
                }
                self.buf.extend_from_slice(head);
                let buf = std::mem::take(&mut self.buf);
                let done = self.emit(&buf, &mut line, &too_long);
                self.buf = buf;
                self.buf.clear();
                done?
            };
            if done {
                return Ok(true);
            }
        }
        // One byte of slack for a `\r` that precedes the newline still to come.
        if self.buf.len() + chunk.len() > self.max + 1 {
            return Err(too_long());
        }
        self.buf.extend_from_slice(chunk);
        Ok(false)
    }

    /// The end of the stream: what is left is the last line (a final newline is optional).
    pub(crate) fn finish<E>(
        &mut self,
        mut line: impl FnMut(&[u8]) -> Result<bool, E>,
        too_long: impl Fn() -> E,
    ) -> Result<bool, E> {
        let buf = std::mem::take(&mut self.buf);
        self.emit(&buf, &mut line, &too_long)
    }

    fn emit<E>(
        &self,
        raw: &[u8],
        line: &mut impl FnMut(&[u8]) -> Result<bool, E>,
        too_long: &impl Fn() -> E,
    ) -> Result<bool, E> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > self.max {
            return Err(too_long());
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        line(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Result<Vec<String>, &'static str> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::new(max);
        for chunk in chunks {
            splitter.feed(
                chunk,
                |l| {
                    out.push(String::from_utf8_lossy(l).into_owned());
                    Ok(false)
                },
                || "too long",
            )?;
        }
        splitter.finish(
            |l| {
                out.push(String::from_utf8_lossy(l).into_owned());
                Ok(false)
            },
            || "too long",
        )?;
        Ok(out)
    }

    #[test]
    fn lines_across_chunks() {
        let lines = split(8, &[b"ab", b"c\nde\r\n\n", b"f", b"g\nlast"]).unwrap();
        assert_eq!(lines, ["abc", "de", "fg", "last"]);
    }

    #[test]
    fn line_limit_is_exact() {
        assert_eq!(split(3, &[b"abc\n"]).unwrap(), ["abc"]);
        assert_eq!(split(3, &[b"abc\r\n"]).unwrap(), ["abc"]);
        assert_eq!(split(3, &[b"a", b"bcd\n"]), Err("too long"));
        assert_eq!(split(3, &[b"abcd\n"]), Err("too long"));
        assert_eq!(split(3, &[b"ab", b"cde"]), Err("too long"));
        assert_eq!(split(3, &[b"abcd"]), Err("too long"));
    }

    #[test]
    fn the_payload_may_come_first_and_types_may_be_escaped() {
        for line in [
            &br#"{"payload":{"delta":"x","index":0},"type":"STREAM_CHUNK"}"#[..],
            br#"{"type":"agent_response\u005fchunk","run_id":"r","payload":{"delta":"x","index":0}}"#,
            br#"{"run_id":[1,{"a":2}],"type":"stream_chunk","payload":{"index":0,"delta":"x"},"n":null}"#,
        ] {
            let payload = parse_line(line).unwrap();
            assert_eq!(payload.message_type().as_str(), "agent_response_chunk");
            assert_eq!(
                payload,
                parse_line(br#"{"type":"agent_response_chunk","payload":{"delta":"x","index":0}}"#)
                    .unwrap()
            );
        }
    }

    /// A payload read straight after its type and one read from its text (it came first) are
    /// refused with the same message.
    #[test]
    fn a_payload_member_given_twice_is_refused_in_either_order() {
        let payload = r#"{"reasoning":"a","reasoning":"b"}"#;
        for line in [
            format!(r#"{{"type":"agent_thinking","payload":{payload}}}"#),
            format!(r#"{{"payload":{payload},"type":"agent_thinking"}}"#),
        ] {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.starts_with("payload of agent_thinking: "), "{err}");
            assert!(err.contains("duplicate"), "{err}");
        }
    }

    #[test]
    fn payload_errors_read_the_same_in_either_order() {
        for (kind, payload) in [
            ("agent_started", "[]"),
            ("agent_started", "null"),
            ("agent_started", "7"),
            ("agent_started", "\"secret text\""),
            ("agent_thinking", r#"{"reasoning":7}"#),
            (
                "agent_thinking",
                r#"{"reasoning":"secret text","step":"secret text"}"#,
            ),
            ("tool_completed", r#"{"tool_call_id":"secret text"}"#),
            (
                "tool_completed",
                r#"{"tool_name":"t","tool_call_id":"c","result":1,"duration_ms":1,"status":"secret text"}"#,
            ),
            ("agent_progress", "[]"),
        ] {
            let first = format!(r#"{{"type":"{kind}","payload":{payload}}}"#);
            let last = format!(r#"{{"payload":{payload},"type":"{kind}"}}"#);
            let a = parse_line(first.as_bytes()).unwrap_err();
            let b = parse_line(last.as_bytes()).unwrap_err();
            assert_eq!(a, b, "{first}");
            assert!(a.starts_with(&format!("payload of {kind}: ")), "{a}");
            assert!(!a.contains("secret text"), "{a}");
        }
        // Broken JSON after a good payload is still broken JSON.
        let err =
            parse_line(br#"{"type":"agent_thinking","payload":{"reasoning":"r"},}"#).unwrap_err();
        assert!(err.starts_with("invalid JSON at column"), "{err}");
        let err =
            parse_line(br#"{"type":"agent_thinking","payload":{"reasoning":"r"}} x"#).unwrap_err();
        assert!(err.starts_with("invalid JSON at column"), "{err}");
        for shape in [
            &br#"{"type":"agent_thinking"}"#[..],
            br#"{"payload":{}}"#,
            br#"{"type":7,"payload":{}}"#,
            br#"{"type":"agent_thinking","type":"agent_thinking","payload":{}}"#,
            br#"[1,2]"#,
        ] {
            assert_eq!(
                parse_line(shape).unwrap_err(),
                "not an object with a string \"type\" and a \"payload\""
            );
        }
        assert_eq!(
            parse_line(br#"{"type":"no_such","payload":[]}"#).unwrap_err(),
            "unknown event type"
        );
        let err = parse_line(b"{\"type\":\"agent_thinking\",\"payload\":{\"reasoning\":\"\xff\"}}")
            .unwrap_err();
        assert_eq!(err, "invalid JSON at column 50");
    }

    #[test]
    fn lines_normalize_aliases_and_refuse_the_rest() {
        let payload =
            parse_line(br#"{"type":"STREAM_CHUNK","payload":{"delta":"x","index":0}}"#).unwrap();
        assert_eq!(payload.message_type().as_str(), "agent_response_chunk");
        for bad in [
            &b"not json"[..],
            br#"{"type":"no_such_type","payload":{}}"#,
            br#"{"type":"tool_completed","payload":{"tool_call_id":"secret text"}}"#,
            br#"{"type":"tool_completed","payload":{"tool_name":"t","tool_call_id":"c",
                "result":1,"duration_ms":1,"status":"secret text"}}"#,
            br#"{"type":"agent_thinking","payload":{"reasoning":"secret text","step":"secret text"}}"#,
            br#"{"type":"agent_started","payload":[]}"#,
            br#"{"type":"pong","payload":{"server_time":"2025-01-01T00:00:00Z"}}"#,
            br#"{"payload":{}}"#,
            br#"[1,2]"#,
        ] {
            let err = parse_line(bad).unwrap_err();
            assert!(!err.contains("secret text"), "{err}");
        }
        let err =
            parse_line(br#"{"type":"agent_thinking","payload":{"reasoning":7}}"#).unwrap_err();
        assert!(
            err.contains("reasoning") || err.contains("invalid"),
            "{err}"
        );
    }
}
