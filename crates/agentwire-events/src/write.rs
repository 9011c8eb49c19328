//! The hot-path JSON writer for outbound frames.
//!
//! [`Frame::to_json`](crate::Frame::to_json) writes the envelope and every typed payload by hand
//! into one pre-sized `String`: keys are constants, strings without characters to escape are
//! copied in one piece, and only the `Value`s (`result`, `parameters`, generic payloads) go
//! through serde_json. The output is byte-for-byte what serde_json writes for the same frame
//! through its `Serialize` impl; a property test holds the two together.

use core::fmt::Write as _;

use serde_json::{Map, Value};

use crate::event::{Event, Frame};
use crate::payload::{Payload, ToolStatus};

/// Whether serde_json escapes this byte inside a string (what the word tests must agree with).
#[cfg(test)]
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The high bit of each byte of `w` that needs escaping, and possibly of bytes above one
/// that does: exact as a yes/no answer (zero or not).
///
/// A byte is flagged when it is below 0x20, or when XOR-ing it with `"` or `\\` gives zero
/// (`b - n` borrows into the high bit exactly when `b < n`, for bytes under 0x80). Bytes of
/// 0x80 and above never need escaping and have the high bit set in `w` and in both XORs, so
/// one `& !w` masks them out of all three tests at once. A borrow can only flag bytes above
/// a byte that is itself flagged, which leaves the yes/no answer exact.
#[inline]
const fn escape_flags(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20);
    let quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
    let backslash = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
    (control | quote | backslash) & !w & HIGH
}

/// The index of the first byte of `w` (little-endian, so byte 0 is the lowest) that needs
/// escaping: the lowest flag is exact, as a borrow only flags bytes above a flagged one.
#[inline]
const fn first_flagged(w: u64) -> Option<usize> {
    match escape_flags(w) {
        0 => None,
        flags => Some((flags.trailing_zeros() / 8) as usize),
    }
}

/// The index of the first byte to escape (a quote, a backslash or a control character),
/// looking at sixteen bytes at a time, then at the rest: a string of eight bytes or more ends
/// with a word that overlaps the one before it; a shorter one is padded with spaces to a word.
/// Never a loop over bytes.
#[inline]
pub(crate) fn find_escape(bytes: &[u8]) -> Option<usize> {
    const SPACES: [u8; 8] = [b' '; 8];
    let word = |chunk: &[u8]| u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or(SPACES));
    let len = bytes.len();
    if len < 8 {
        let mut padded = SPACES;
        for (slot, &b) in padded.iter_mut().zip(bytes) {
            *slot = b;
        }
        return first_flagged(u64::from_le_bytes(padded));
    }
    let mut pairs = bytes.chunks_exact(16);
    let mut at = 0;
    for pair in &mut pairs {
        let (a, b) = pair.split_at(8);
        let (a, b) = (word(a), word(b));
        if escape_flags(a) | escape_flags(b) != 0 {
            return match first_flagged(a) {
                Some(i) => Some(at + i),
                None => first_flagged(b).map(|i| at + 8 + i),
            };
        }
        at += 16;
    }
    let rest = pairs.remainder();
    if rest.len() > 8
        && let Some(i) = first_flagged(word(&rest[..8]))
    {
        return Some(at + i);
    }
    if rest.is_empty() {
        return None;
    }
    // The last eight bytes; those before `at` among them are known clean.
    first_flagged(bytes.get(len - 8..).map_or(0, word)).map(|i| len - 8 + i)
}

/// Appends `s` as a JSON string (quoted), escaped exactly as serde_json does.
pub fn string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let Some(first) = find_escape(bytes) else {
        // The usual case: nothing to escape, one copy.
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    };
    out.push('"');
    let (mut start, mut next) = (0, Some(first));
    while let Some(at) = next {
        // Every byte to escape is ASCII, so `start` and `at` are on character boundaries.
        out.push_str(s.get(start..at).unwrap_or_default());
        match bytes[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = at + 1;
        next = find_escape(&bytes[start..]).map(|i| start + i);
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Appends an unsigned integer in decimal.
pub fn number(out: &mut String, mut n: u64) {
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[at..].iter().map(|&d| char::from(d)));
}

/// Appends any JSON value, compact, as serde_json writes it.
fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match n.as_u64() {
            Some(n) => number(out, n),
            // Negative integers and floats: serde_json's own formatting (itoa, ryu).
            None => {
                let _ = write!(out, "{n}");
            }
        },
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => object(out, map),
    }
}

fn object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        value(out, v);
    }
    out.push('}');
}

/// A member's key as one literal: `key!("name")` is `,"name":`, `key!(first "name")` is
/// `"name":` (the first member of an object has no comma).
macro_rules! key {
    (first $name:literal) => {
        concat!("\"", $name, "\":")
    };
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// Appends `key` (see [`key!`]) and `text` as a JSON string.
fn field_str(out: &mut String, key: &str, text: &str) {
    out.push_str(key);
    string(out, text);
}

fn field_num(out: &mut String, key: &str, n: u64) {
    out.push_str(key);
    number(out, n);
}

fn opt_str(out: &mut String, key: &str, text: Option<&str>) {
    if let Some(text) = text {
        field_str(out, key, text);
    }
}

fn opt_num(out: &mut String, key: &str, n: Option<u64>) {
    if let Some(n) = n {
        field_num(out, key, n);
    }
}

fn field_timestamp(out: &mut String, key: &str, t: crate::Timestamp) {
    out.push_str(key);
    out.push('"');
    t.write_to(out);
    out.push('"');
}

/// A capacity that holds most frames with this event without growing.
pub(crate) fn size_hint(event: &Event) -> usize {
    let strings = event.run_id().map_or(0, str::len)
        + event.thread_id().map_or(0, str::len)
        + event.reply_to().map_or(0, str::len);
    let payload = match event.payload() {
        Payload::AgentStarted(p) => p.agent_name.len() + p.user_request.len(),
        Payload::AgentThinking(p) => p.reasoning.len(),
        Payload::ToolExecuting(p) => p.tool_name.len() + p.tool_call_id.len() + 64,
        Payload::ToolCompleted(p) => p.tool_name.len() + p.tool_call_id.len() + 64,
        Payload::AgentResponseChunk(p) => p.delta.len(),
        Payload::AgentError(p) => p.code.len() + p.message.len(),
        Payload::Error(p) => p.message.len() + 32,
        _ => 64,
    };
    224 + strings + payload
}

/// The frame's JSON text.
pub(crate) fn frame(frame: &Frame) -> String {
    let mut out = String::with_capacity(size_hint(frame.event()) + frame.event_id().len());
    frame_into(
        &mut out,
        frame.event(),
        EventId::Text(frame.event_id()),
        frame.timestamp(),
        frame.seq(),
    );
    out
}

/// The `event_id` a frame is written with.
pub(crate) enum EventId<'a> {
    /// An id from elsewhere (a [`Frame`] read from text): escaped like any string.
    Text(&'a str),
    /// A fresh id of this process, by its counter value: written straight from the counter,
    /// with nothing to scan or check (see [`crate::stamp`]).
    Fresh(u64),
}

/// Appends the JSON text of `event` stamped with `event_id`, `timestamp` and `seq`.
pub(crate) fn frame_into(
    out: &mut String,
    event: &Event,
    event_id: EventId<'_>,
    timestamp: crate::Timestamp,
    seq: Option<u64>,
) {
    out.push_str("{\"type\":\"");
    out.push_str(event.message_type().as_str());
    out.push_str("\",\"event_id\":");
    match event_id {
        EventId::Text(id) => string(out, id),
        EventId::Fresh(counter) => {
            out.push('"');
            crate::stamp::write_event_id(out, counter);
            out.push('"');
        }
    }
    field_timestamp(out, key!("timestamp"), timestamp);
    opt_str(out, key!("run_id"), event.run_id());
    opt_str(out, key!("thread_id"), event.thread_id());
    opt_num(out, key!("seq"), seq);
    opt_str(out, key!("reply_to"), event.reply_to());
    out.push_str(",\"payload\":");
    payload(out, event.payload());
    out.push('}');
}

/// Writes a payload object, fields in declaration order (as the derived `Serialize` does).
fn payload(out: &mut String, payload: &Payload) {
    out.push('{');
    match payload {
        Payload::AgentStarted(p) => {
            field_str(out, key!(first "agent_name"), &p.agent_name);
            field_str(out, key!("user_request"), &p.user_request);
        }
        Payload::AgentThinking(p) => {
            field_str(out, key!(first "reasoning"), &p.reasoning);
            opt_num(out, key!("step"), p.step.map(u64::from));
        }
        Payload::ToolExecuting(p) => {
            field_str(out, key!(first "tool_name"), &p.tool_name);
            field_str(out, key!("tool_call_id"), &p.tool_call_id);
            out.push_str(",\"parameters\":");
            object(out, &p.parameters);
        }
        Payload::ToolCompleted(p) => {
            field_str(out, key!(first "tool_name"), &p.tool_name);
            field_str(out, key!("tool_call_id"), &p.tool_call_id);
            out.push_str(",\"result\":");
            value(out, &p.result);
            field_num(out, key!("duration_ms"), p.duration_ms);
            out.push_str(match p.status {
                ToolStatus::Ok => ",\"status\":\"ok\"",
                ToolStatus::Error => ",\"status\":\"error\"",
            });
        }
        Payload::AgentResponseChunk(p) => {
            field_str(out, key!(first "delta"), &p.delta);
            field_num(out, key!("index"), u64::from(p.index));
        }
        Payload::AgentCompleted(p) => {
            out.push_str("\"result\":");
            value(out, &p.result);
            field_num(out, key!("duration_ms"), p.duration_ms);
        }
        Payload::AgentError(p) => {
            field_str(out, key!(first "code"), &p.code);
            field_str(out, key!("message"), &p.message);
            out.push_str(if p.recoverable {
                ",\"recoverable\":true"
            } else {
                ",\"recoverable\":false"
            });
        }
        Payload::ConnectionEstablished(p) => {
            field_str(out, key!(first "connection_id"), &p.connection_id);
            field_str(out, key!("user_id"), &p.user_id);
            field_num(out, key!("protocol_version"), u64::from(p.protocol_version));
            field_num(out, key!("heartbeat_interval_ms"), p.heartbeat_interval_ms);
            field_num(out, key!("max_message_bytes"), p.max_message_bytes);
            field_timestamp(out, key!("server_time"), p.server_time);
            out.push_str(",\"stream\":{");
            field_str(out, key!(first "epoch"), &p.stream.epoch);
            field_num(out, key!("seq"), p.stream.seq);
            out.push('}');
        }
        Payload::Pong(p) => field_timestamp(out, key!(first "server_time"), p.server_time),
        Payload::HeartbeatAck(_) => {}
        Payload::Error(p) => {
            field_str(out, key!(first "code"), &p.code);
            field_str(out, key!("message"), &p.message);
            opt_str(out, key!("received_type"), p.received_type.as_deref());
            opt_str(out, key!("field"), p.field.as_deref());
            opt_num(out, key!("line"), p.line);
            opt_num(out, key!("column"), p.column);
            opt_num(out, key!("retry_after_ms"), p.retry_after_ms);
        }
        Payload::AuthRefreshed(p) => field_timestamp(out, key!(first "expires_at"), p.expires_at),
        Payload::Other(p) => {
            // Written as a whole object below.
            out.pop();
            object(out, p.payload());
            return;
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        let samples = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "é ü 日本 🎉",
            "\u{2028}\u{2029}",
            "0123456789abcdef\"0123456789abcdef",
            "0123456789abcdef\\0123456789abcdef\u{1}x",
            "a long clean string of more than eight bytes, twice over, for the fast path",
        ];
        for s in samples {
            let mut out = String::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test() {
        // Every byte at every position, and every pair of adjacent bytes (borrows travel from
        // one byte into the next), among filler that needs no escape.
        for at in 0..8 {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let mut word = [b'a'; 8];
                    word[at] = a;
                    if at < 7 {
                        word[at + 1] = b;
                    }
                    let expected = word.iter().position(|&x| needs_escape(x));
                    assert_eq!(
                        first_flagged(u64::from_le_bytes(word)),
                        expected,
                        "{word:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_escape_at_any_position_of_any_short_length_is_found() {
        for len in 0..=40 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '~', '\u{7f}'] {
                    let s: String = (0..len)
                        .map(|i| if i == at { special } else { 'a' })
                        .collect();
                    let mut out = String::new();
                    string(&mut out, &s);
                    assert_eq!(out, serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn numbers() {
        for n in [0, 1, 9, 10, 12_345, u64::MAX] {
            let mut out = String::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
