//! Stamping events (event ids, timestamps, stream sequence numbers) and encoded frames.

use core::fmt;
use std::sync::Arc;

use agentwire_types::MessageType;

use crate::event::{Event, Frame};
use crate::id::{self, IdGenerator, next_event_id};
use crate::payload::StreamPosition;
use crate::timestamp::Timestamp;

/// What a server adds to an [`Event`] when it sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stamp {
    /// The frame's unique id.
    pub event_id: String,
    /// When the frame was stamped.
    pub timestamp: Timestamp,
    /// The position on the user's stream; `None` for connection-scoped control frames.
    pub seq: Option<u64>,
}

impl Stamp {
    /// A stamp with this id and time and no `seq` (see [`with_seq`](Self::with_seq)); for
    /// fresh ids and the current time, see [`control`](Self::control) and
    /// [`stream`](Self::stream).
    pub fn new(event_id: impl Into<String>, timestamp: Timestamp) -> Stamp {
        Stamp {
            event_id: event_id.into(),
            timestamp,
            seq: None,
        }
    }

    /// Sets the position on the user's stream.
    #[must_use]
    pub fn with_seq(mut self, seq: u64) -> Stamp {
        self.seq = Some(seq);
        self
    }

    /// A stamp for a connection-scoped control frame: a fresh [`next_event_id`], the current
    /// time, no `seq`.
    pub fn control() -> Stamp {
        Stamp {
            event_id: next_event_id(),
            timestamp: Timestamp::now(),
            seq: None,
        }
    }

    /// A stamp with a fresh [`next_event_id`], the current time and `seq`.
    pub fn stream(seq: u64) -> Stamp {
        Stamp {
            event_id: next_event_id(),
            timestamp: Timestamp::now(),
            seq: Some(seq),
        }
    }
}

/// Stamps the events of one user's stream: `seq` increases by one per stream event.
///
/// The server keeps one per user. Services build [`Event`]s with their `run_id`; the stream
/// stamps each with the next `seq`, a fresh `event_id` and the current time at the moment it
/// emits it, then [`encode`](Frame::encode)s it once for every connection of the user
/// ([`emit`](Self::emit) does both).
///
/// Control frames passed through a stamper get no `seq` and do not consume one.
///
/// ```
/// use agentwire_events::{Event, StreamStamper};
///
/// let mut stream = StreamStamper::new();
/// let first = stream.emit(Event::agent_started("run_1", "demo", "hello"));
/// let second = stream.emit(Event::agent_thinking("run_1", "..."));
/// assert_eq!((first.seq(), second.seq()), (Some(1), Some(2)));
/// assert_eq!(stream.position().seq, 2);
/// assert!(first.as_str().starts_with(r#"{"type":"agent_started","event_id":"evt_"#));
/// ```
#[derive(Clone, Debug)]
pub struct StreamStamper {
    epoch: String,
    last_seq: u64,
}

impl StreamStamper {
    /// A new stream with a fresh epoch; its first event gets `seq` 1.
    pub fn new() -> StreamStamper {
        StreamStamper::resume(IdGenerator::global().fresh_string(id::EPOCH), 0)
    }

    /// Continues a stream whose last event had `last_seq` in `epoch`.
    pub fn resume(epoch: impl Into<String>, last_seq: u64) -> StreamStamper {
        StreamStamper {
            epoch: epoch.into(),
            last_seq,
        }
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The `seq` of the last stream event stamped, 0 before the first.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Where the stream stands, as `connection_established` reports it.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch.clone(),
            seq: self.last_seq,
        }
    }

    /// Stamps `event` with a fresh id, the current time and, for a stream event, the next `seq`.
    pub fn stamp(&mut self, event: Event) -> Frame {
        self.stamp_at(event, Timestamp::now())
    }

    /// Like [`stamp`](Self::stamp) with a given time (for deterministic tests).
    pub fn stamp_at(&mut self, event: Event, timestamp: Timestamp) -> Frame {
        let seq = self.next_seq(&event);
        event.stamp(Stamp {
            event_id: next_event_id(),
            timestamp,
            seq,
        })
    }

    /// The `seq` for `event`: the next one for a stream event, none for a control frame.
    fn next_seq(&mut self, event: &Event) -> Option<u64> {
        if event.is_stream_event() {
            self.last_seq = self.last_seq.saturating_add(1);
            Some(self.last_seq)
        } else {
            None
        }
    }

    /// Stamps and encodes `event`: what the server hands to every connection of the user.
    pub fn emit(&mut self, event: Event) -> EncodedFrame {
        let mut text = String::new();
        let seq = self.emit_into(&event, &mut text);
        EncodedFrame::new(text.into(), event.message_type(), seq)
    }

    /// Stamps `event` (fresh id, current time, next `seq` for a stream event) and appends its
    /// JSON text to `out`, the same text [`emit`](Self::emit) produces; returns the `seq`.
    ///
    /// The allocation-free form of `emit` for servers that own their output buffers: no
    /// intermediate [`Frame`], the event id is written straight into `out`, and `out` can be
    /// handed to a WebSocket library without a copy.
    ///
    /// ```
    /// use agentwire_events::{Event, StreamStamper, parse_outbound};
    ///
    /// let mut stream = StreamStamper::new();
    /// let mut text = String::new();
    /// let seq = stream.emit_into(&Event::agent_thinking("run_1", "..."), &mut text);
    /// assert_eq!(seq, Some(1));
    /// assert_eq!(parse_outbound(&text).unwrap().seq(), Some(1));
    /// ```
    pub fn emit_into(&mut self, event: &Event, out: &mut String) -> Option<u64> {
        let seq = self.next_seq(event);
        out.reserve(crate::write::size_hint(event) + 40);
        let id = crate::write::EventId::Fresh;
        crate::write::frame_into(out, event, id, Timestamp::now(), seq);
        seq
    }
}

impl Default for StreamStamper {
    fn default() -> Self {
        StreamStamper::new()
    }
}

/// A frame serialized once, shared by reference count: cloning it for every connection of a
/// user (or every slot of a replay buffer) copies a pointer, never the text.
///
/// `AsRef<[u8]>` and `Send + Sync + 'static` make it usable as the owner of a zero-copy byte
/// buffer (e.g. `bytes::Bytes::from_owner`).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    text: Arc<str>,
    message_type: MessageType,
    seq: Option<u64>,
}

impl EncodedFrame {
    pub(crate) fn new(text: Arc<str>, message_type: MessageType, seq: Option<u64>) -> Self {
        Self {
            text,
            message_type,
            seq,
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The shared text (a reference-count increment).
    pub fn text(&self) -> Arc<str> {
        Arc::clone(&self.text)
    }

    /// The frame's type (for metrics by type without parsing).
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The frame's `seq`, for stream events (for replay after a reconnect).
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the text is empty (never, for a frame built by this crate).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl AsRef<str> for EncodedFrame {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl AsRef<[u8]> for EncodedFrame {
    fn as_ref(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl From<EncodedFrame> for Arc<str> {
    fn from(frame: EncodedFrame) -> Self {
        frame.text
    }
}

impl From<&EncodedFrame> for String {
    fn from(frame: &EncodedFrame) -> Self {
        frame.text.to_string()
    }
}

impl fmt::Display for EncodedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for EncodedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedFrame")
            .field("type", &self.message_type.as_str())
            .field("seq", &self.seq)
            .field("text", &&*self.text)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_do_not_consume_seq() {
        let mut stream = StreamStamper::resume("ep", 41);
        let pong = stream.stamp(Event::pong(Timestamp::UNIX_EPOCH));
        assert_eq!(pong.seq(), None);
        let started = stream.stamp(Event::agent_started("r", "a", "q"));
        assert_eq!(started.seq(), Some(42));
        assert_eq!(stream.last_seq(), 42);
        assert_eq!(stream.epoch(), "ep");
    }
}
