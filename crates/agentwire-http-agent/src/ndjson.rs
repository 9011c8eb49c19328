//! The `ndjson` protocol: agentwire's own request JSON out, one agentwire event per line back.

use agentwire_events::Payload;
use agentwire_server::Run;

use crate::error::AgentFailure;
use crate::relay::Sink;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// One line of the response as read; other fields (a service's own `run_id`, ...) are
/// ignored: the run's identity is agentwire's.
#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    payload: Value,
}

/// Reads one response line into a run event's payload.
///
/// Error messages carry no payload text (serde's messages quote values; they are cut).
pub(crate) fn parse_line(line: &[u8]) -> Result<Payload, String> {
    let line: Line = serde_json::from_slice(line).map_err(|e| {
        if e.is_data() {
            "not an object with a string \"type\" and a \"payload\"".to_owned()
        } else {
            format!("invalid JSON at column {}", e.column())
        }
    })?;
    let message_type =
        agentwire_types::normalize(&line.kind).map_err(|_| "unknown event type".to_owned())?;
    let payload =
        Payload::from_json(message_type, line.payload).map_err(|e| without_quoted(e.message()))?;
    if !payload.is_stream_event() {
        return Err(format!("{message_type} is not a run event"));
    }
    Ok(payload)
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
        while let Some(at) = chunk.iter().position(|b| *b == b'\n') {
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
