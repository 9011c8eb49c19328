//! Stamping events (event ids, timestamps, stream sequence numbers) and encoded frames.

use core::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use agentwire_types::MessageType;

use crate::event::{Event, Frame};
use crate::payload::StreamPosition;
use crate::timestamp::Timestamp;

/// What a server adds to an [`Event`] when it sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The frame's unique id.
    pub event_id: String,
    /// When the frame was stamped.
    pub timestamp: Timestamp,
    /// The position on the user's stream; `None` for connection-scoped control frames.
    pub seq: Option<u64>,
}

impl Stamp {
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

/// 48 random bits per process, as 12 lower-case hex digits.
static PROCESS_PREFIX: LazyLock<[u8; 12]> = LazyLock::new(|| {
    // `RandomState` keys come from the operating system's random source; the time and process
    // id are mixed in so that two processes never start from the same prefix by accident.
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    let mut out = [0u8; 12];
    write_hex(&mut out, hasher.finish());
    out
});

static COUNTER: AtomicU64 = AtomicU64::new(0);

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How many hex digits `value` has (at least one).
fn hex_digits(value: u64) -> usize {
    ((64 - value.leading_zeros() as usize).div_ceil(4)).max(1)
}

/// Fills `out` with the low hex digits of `value`, most significant first.
fn write_hex(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A unique id in a stack buffer: the tag, the process prefix, `_` and a hex counter.
struct IdBuf {
    bytes: [u8; 40],
    len: usize,
}

impl IdBuf {
    /// `tag` is at most 8 ASCII bytes (the crate's own tags are 3 or 4).
    fn fresh(tag: &str) -> IdBuf {
        IdBuf::with_counter(tag, COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    fn with_counter(tag: &str, n: u64) -> IdBuf {
        let digits = hex_digits(n);
        let tag = &tag.as_bytes()[..tag.len().min(8)];
        let mut bytes = [0u8; 40];
        let prefix_end = tag.len() + PROCESS_PREFIX.len();
        bytes[..tag.len()].copy_from_slice(tag);
        bytes[tag.len()..prefix_end].copy_from_slice(&PROCESS_PREFIX[..]);
        bytes[prefix_end] = b'_';
        let len = prefix_end + 1 + digits;
        write_hex(&mut bytes[prefix_end + 1..len], n);
        IdBuf { bytes, len }
    }

    fn as_str(&self) -> &str {
        // ASCII tag, hex digits and `_` only.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("evt_0")
    }
}

/// `evt_`, the process prefix and `_`: the start of every event id.
static EVENT_ID_START: LazyLock<String> = LazyLock::new(|| {
    // The prefix is ASCII hex digits.
    let prefix = core::str::from_utf8(&PROCESS_PREFIX[..]).unwrap_or("000000000000");
    ["evt_", prefix, "_"].concat()
});

/// Appends the event id with counter value `n` (what [`next_event_id`] returns when the
/// counter gives it `n`), without building it apart first.
pub(crate) fn write_event_id(out: &mut String, n: u64) {
    out.push_str(&EVENT_ID_START);
    for i in (0..hex_digits(n)).rev() {
        out.push(char::from(HEX[((n >> (i * 4)) & 0xf) as usize]));
    }
}

fn unique_id(tag: &str) -> String {
    IdBuf::fresh(tag).as_str().to_owned()
}

/// A fresh event id, unique within the process and (with overwhelming probability) across
/// processes: `evt_` + 12 hex digits random per process + `_` + a hex counter, e.g.
/// `evt_3f9a2c1b7d4e_1a`. Costs one atomic increment and one small allocation.
pub fn next_event_id() -> String {
    unique_id("evt_")
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
        StreamStamper::resume(unique_id("ep_"), 0)
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
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        out.reserve(crate::write::size_hint(event) + 40);
        let id = crate::write::EventId::Fresh(counter);
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
    fn ids_written_in_place_match_ids_built_apart() {
        for n in [0, 1, 0xf, 0x10, 0x1a2b3, u64::from(u32::MAX), u64::MAX] {
            let mut out = String::from("x");
            write_event_id(&mut out, n);
            assert_eq!(out[1..], *IdBuf::with_counter("evt_", n).as_str(), "{n}");
        }
    }

    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = next_event_id();
        let b = next_event_id();
        assert_ne!(a, b);
        assert!(a.starts_with("evt_"));
        assert_eq!(a.as_bytes()[16], b'_');
        assert!(a[4..16].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..16], b[..16]);
    }

    #[test]
    fn hex_counter_formatting() {
        let mut buf = [0u8; 4];
        write_hex(&mut buf, 0x1a2b);
        assert_eq!(&buf, b"1a2b");
    }

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
