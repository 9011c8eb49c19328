//! The hot-path JSON writer for outbound frames.
//!
//! [`Frame::to_json`](crate::Frame::to_json) writes the envelope and every typed payload by hand
//! into one pre-sized `String`: keys are constants, strings without characters to escape are
//! copied in one piece, and only the `Value`s (`result`, `parameters`, generic payloads) go
//! through serde_json. Strings and integers go through [`agentwire_types::json`], the one JSON
//! writer of agentwire. The output is byte-for-byte what serde_json writes for the same frame
//! through its `Serialize` impl; a property test holds the two together.

use core::fmt::Write as _;

use agentwire_types::json::{write_i64 as int, write_string as string, write_u64 as number};
use serde_json::{Map, Value};

use crate::event::{Event, Frame};
use crate::payload::{Payload, ToolStatus};

/// Appends any JSON value, compact, as serde_json writes it.
fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => number(out, n),
            (None, Some(n)) => int(out, n),
            // Floats: serde_json's own formatting (ryu).
            (None, None) => {
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
        Payload::ErrorReply(p) => p.message.len() + 32,
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
    /// A fresh event id of [`IdGenerator::global`](crate::IdGenerator::global), written in
    /// place, with nothing to scan or check.
    Fresh,
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
        EventId::Fresh => {
            out.push('"');
            crate::IdGenerator::global().write_fresh(crate::id::EVENT, out);
            out.push('"');
        }
    }
    field_timestamp(out, key!("timestamp"), timestamp);
    opt_str(out, key!("run_id"), event.run_id());
    opt_str(out, key!("thread_id"), event.thread_id());
    opt_num(out, key!("seq"), seq);
    frame_tail(out, event);
}

/// Appends the JSON text of `event` stamped with a fresh event id and `timestamp`, with
/// `"seq":` and no number after it; returns where the number goes.
pub(crate) fn frame_unsequenced(
    out: &mut String,
    event: &Event,
    timestamp: crate::Timestamp,
) -> usize {
    out.push_str("{\"type\":\"");
    out.push_str(event.message_type().as_str());
    out.push_str("\",\"event_id\":\"");
    crate::IdGenerator::global().write_fresh(crate::id::EVENT, out);
    out.push('"');
    field_timestamp(out, key!("timestamp"), timestamp);
    opt_str(out, key!("run_id"), event.run_id());
    opt_str(out, key!("thread_id"), event.thread_id());
    out.push_str(key!("seq"));
    let at = out.len();
    frame_tail(out, event);
    at
}

/// What follows the `seq`: `reply_to`, the payload, the closing brace.
#[inline]
fn frame_tail(out: &mut String, event: &Event) {
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
            match &p.resume {
                None => {}
                Some(crate::ResumeOutcome::Resumed {
                    replayed,
                    from_seq,
                    to_seq,
                }) => {
                    out.push_str(",\"resume\":{\"status\":\"resumed\"");
                    field_num(out, key!("replayed"), *replayed);
                    field_num(out, key!("from_seq"), *from_seq);
                    field_num(out, key!("to_seq"), *to_seq);
                    out.push('}');
                }
                Some(crate::ResumeOutcome::Reset { reason }) => {
                    out.push_str(",\"resume\":{\"status\":\"reset\"");
                    field_str(out, key!("reason"), reason);
                    out.push('}');
                }
            }
        }
        Payload::Pong(p) => field_timestamp(out, key!(first "server_time"), p.server_time),
        Payload::HeartbeatAck(_) => {}
        Payload::ErrorReply(p) => {
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
