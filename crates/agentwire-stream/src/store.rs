//! [`WindowStore`]: the frames held for replay by the user streams of one lock domain, under
//! its share of the server-wide byte budget.

use std::collections::VecDeque;
use std::ops::{Add, AddAssign};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_events::{Event, StreamStamper};

use crate::config::WindowConfig;
use crate::error::ConfigError;

/// What each held event costs the byte budget beyond its frame's length.
///
/// The bookkeeping of one held event: its slot in the [`WindowStore`] (56 bytes: ticket,
/// stream id, time stored, where its text is, its [`Frame::Tag`]), its ticket in its
/// [`UserStream`](crate::UserStream) (8), and its share of the slack of the store's chunks
/// and queues: about 100 bytes, rounded up. So the budget bounds the memory the windows really
/// take, small events included, not only their text.
pub const EVENT_OVERHEAD_BYTES: usize = 128;

/// The largest chunk a store keeps frame text in; a frame longer than a store's chunk gets a
/// chunk of its own.
const CHUNK_MAX: usize = 32 * 1024;

/// The smallest chunk.
const CHUNK_MIN: usize = 1024;

/// The scratch buffer a frame is encoded into keeps at most this capacity between appends.
const SCRATCH_KEEP: usize = 16 * 1024;

/// A frame as a server sends it, and how a [`WindowStore`] rebuilds it for a replay.
///
/// The store keeps a copy of each frame's text in large chunks of its own (one copy of a few
/// hundred bytes, no allocation per event, and nothing for the allocator to free when the
/// event leaves), so the frame the connections get is theirs alone, and is freed as soon as
/// it is written. A replay rebuilds each frame from the kept text, byte for byte, with
/// [`from_stored`](Self::from_stored).
///
/// `Arc<str>` is the default. A server uses its own outbound type instead (say, the WebSocket
/// library's text type with the frame's message type for metrics, kept as the
/// [`Tag`](Self::Tag)).
pub trait Frame: Sized {
    /// What the store keeps with each frame's text to rebuild the frame (`()` for nothing).
    type Tag: Copy;

    /// The frame for `json`, the encoded frame of `event`.
    fn from_json(json: &str, event: &Event) -> Self;

    /// The frame's JSON text (its length is what the byte budget counts).
    fn json(&self) -> &str;

    /// What to keep with the frame's text.
    fn tag(&self) -> Self::Tag;

    /// The frame again, from the text and tag kept, for a replay.
    fn from_stored(json: &str, tag: Self::Tag) -> Self;
}

impl Frame for Arc<str> {
    type Tag = ();

    fn from_json(json: &str, _event: &Event) -> Self {
        Arc::from(json)
    }

    fn json(&self) -> &str {
        self
    }

    fn tag(&self) {}

    fn from_stored(json: &str, (): ()) -> Self {
        Arc::from(json)
    }
}

/// Counters and gauges of a [`WindowStore`], for metrics. Add the stores' stats together
/// (`+`, or `sum()`) for the server's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowStats {
    /// Events held now.
    pub held_events: usize,
    /// Bytes of the events held now: frame length plus [`EVENT_OVERHEAD_BYTES`] each. The
    /// budget counts these and [`dead_bytes`](Self::dead_bytes).
    pub held_bytes: usize,
    /// Events stored since the start.
    pub stored: u64,
    /// Events evicted because their stream held more than `max_events` newer ones.
    pub evicted_by_count: u64,
    /// Events evicted because they were older than `max_age`.
    pub evicted_by_age: u64,
    /// Events evicted, oldest first, to keep the store within its byte budget.
    pub evicted_by_budget: u64,
    /// Events dropped with their stream ([`UserStream::clear`](crate::UserStream::clear)).
    pub cleared: u64,
    /// Bytes, as the budget counts them, of the holes that events evicted by count or cleared
    /// left among the events held; they count against the budget until the store's front
    /// passes them or the store compacts.
    pub dead_bytes: usize,
    /// Times the store copied what it holds into fresh chunks to reclaim holes.
    pub compactions: u64,
}

impl Add for WindowStats {
    type Output = WindowStats;

    fn add(mut self, other: WindowStats) -> WindowStats {
        self += other;
        self
    }
}

impl AddAssign for WindowStats {
    fn add_assign(&mut self, other: WindowStats) {
        self.held_events = self.held_events.saturating_add(other.held_events);
        self.held_bytes = self.held_bytes.saturating_add(other.held_bytes);
        self.stored = self.stored.saturating_add(other.stored);
        self.evicted_by_count = self.evicted_by_count.saturating_add(other.evicted_by_count);
        self.evicted_by_age = self.evicted_by_age.saturating_add(other.evicted_by_age);
        self.evicted_by_budget = self
            .evicted_by_budget
            .saturating_add(other.evicted_by_budget);
        self.cleared = self.cleared.saturating_add(other.cleared);
        self.dead_bytes = self.dead_bytes.saturating_add(other.dead_bytes);
        self.compactions = self.compactions.saturating_add(other.compactions);
    }
}

impl core::iter::Sum for WindowStats {
    fn sum<I: Iterator<Item = WindowStats>>(iter: I) -> WindowStats {
        iter.fold(WindowStats::default(), Add::add)
    }
}

/// Why an event left a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    Count,
    Age,
    Budget,
    Cleared,
}

struct Slot<T> {
    /// The store's append counter: slots are in ticket order.
    ticket: u64,
    /// The [`UserStream`](crate::UserStream) the event belongs to.
    stream: u64,
    stored_at: Instant,
    /// Where the frame's text is in the store's chunks.
    text: Span,
    tag: T,
    /// False once evicted by its stream's count limit (or cleared): its text stays in its
    /// chunk, and counts against the budget, until the front of the store passes it or the
    /// store compacts.
    live: bool,
}

/// Where a frame's text is: chunk (by id), offset and length.
#[derive(Clone, Copy)]
struct Span {
    chunk: u64,
    start: usize,
    len: usize,
}

/// Frame text, in arrival order, in chunks that are freed whole once every frame in them has
/// left the front of the store.
#[derive(Default)]
struct Chunks {
    chunks: VecDeque<Vec<u8>>,
    /// The id of `chunks[0]`.
    first: u64,
}

impl Chunks {
    /// Copies `text` after the last frame, in a new chunk of `size` (or of the text's length,
    /// when longer) when the last chunk has no room left.
    fn push(&mut self, text: &[u8], size: usize) -> Span {
        let room = self
            .chunks
            .back()
            .is_some_and(|last| last.capacity() - last.len() >= text.len());
        if !room {
            self.chunks
                .push_back(Vec::with_capacity(size.max(text.len())));
        }
        let chunk = self.first + (self.chunks.len() - 1) as u64;
        let last = self.chunks.back_mut().expect("a chunk was just ensured");
        let start = last.len();
        last.extend_from_slice(text);
        Span {
            chunk,
            start,
            len: text.len(),
        }
    }

    fn get(&self, span: Span) -> Option<&str> {
        let index = usize::try_from(span.chunk.checked_sub(self.first)?).ok()?;
        let bytes = self
            .chunks
            .get(index)?
            .get(span.start..span.start + span.len)?;
        // Every span was copied from a `&str` whole, so this never fails.
        std::str::from_utf8(bytes).ok()
    }

    /// Frees the chunks before `chunk`: no frame held is in them.
    fn free_before(&mut self, chunk: u64) {
        while self.first < chunk && !self.chunks.is_empty() {
            self.chunks.pop_front();
            self.first += 1;
        }
    }

    /// Frees every chunk; ids go on from where they were.
    fn clear(&mut self) {
        self.first += self.chunks.len() as u64;
        self.chunks = VecDeque::new();
    }

    /// Bytes allocated for frame text.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

/// The frames held for replay by the user streams of one lock domain (one shard of a server's
/// table of users), in the order they were stored, within a share of the server-wide byte
/// budget.
///
/// A server with `n` shards, each a mutex over its table of [`UserStream`]s, gives each shard
/// a store made with [`new(config, n)`](Self::new): each gets `max_bytes / n`, so the stores
/// together never hold more than `max_bytes`. Events leave a store oldest first: by age (the
/// oldest stored are the oldest), and when an append takes the store over its share, the
/// oldest events of the shard, whichever users they belong to, until it fits again. (A user's
/// own `max_events` limit evicts that user's oldest event.)
///
/// The store copies each frame's text into chunks of up to 32 KiB, in arrival order, and
/// frees a chunk whole once the front of the store has passed it. An event a user's
/// `max_events` limit evicts from the middle leaves a hole that still takes its bytes, so
/// those count against the budget too ([`WindowStats::dead_bytes`]); when the store is over
/// its share and the holes take at least a quarter as much as the events held, it compacts
/// (copies what it holds into fresh chunks) instead of evicting. The budget so bounds the
/// memory the store really takes.
///
/// A [`UserStream`] keeps only the tickets of its events; the frames live here, so the budget
/// is enforced inside every [`append`](crate::UserStream::append), without the server
/// looking other users up. Every method that reads a stream's events takes the store it was
/// appended to; given another store, a stream finds none of its events (never another's).
///
/// Time is passed in; a store reads no clock.
///
/// [`UserStream`]: crate::UserStream
pub struct WindowStore<F: Frame = Arc<str>> {
    max_events: usize,
    max_age: Duration,
    max_bytes: usize,
    /// The size of a new chunk: an eighth of the share, within 1-32 KiB.
    chunk_size: usize,
    slots: VecDeque<Slot<F::Tag>>,
    chunks: Chunks,
    next_ticket: u64,
    /// Slots of events evicted by count or cleared, not yet passed by the front.
    dead: usize,
    stats: WindowStats,
    scratch: String,
}

impl<F: Frame> std::fmt::Debug for WindowStore<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("max_events", &self.max_events)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<F: Frame> WindowStore<F> {
    /// The store of one of `shards` lock domains: it holds at most `config.max_bytes / shards`
    /// bytes. `shards` 0 is taken as 1.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `config` does not [`validate`](WindowConfig::validate), or when
    /// replay is on and `max_bytes` is smaller than `shards` (a share of 0 bytes).
    pub fn new(config: &WindowConfig, shards: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        let max_bytes = config.max_bytes / shards.max(1);
        if config.replay_enabled() && max_bytes == 0 {
            return Err(ConfigError::OutOfRange {
                setting: "max_bytes",
                expected: "at least 1 byte per shard when replay is on",
            });
        }
        Ok(WindowStore {
            max_events: config.max_events,
            max_age: config.max_age,
            max_bytes,
            chunk_size: (max_bytes / 8).clamp(CHUNK_MIN, CHUNK_MAX),
            slots: VecDeque::new(),
            chunks: Chunks::default(),
            next_ticket: 0,
            dead: 0,
            stats: WindowStats::default(),
            scratch: String::new(),
        })
    }

    /// Whether streams keep events for replay.
    pub fn replay_enabled(&self) -> bool {
        self.max_events > 0
    }

    /// Events kept per user stream.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// How long an event is kept.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// This store's share of the byte budget.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Counters and gauges, for metrics.
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> bool {
        self.stats.held_events == 0
    }

    /// Drops the events older than `max_age` at `now`, whichever streams they belong to.
    ///
    /// Appends expire events too; a server also calls this from a timer (see
    /// [`next_expiry`](Self::next_expiry)) so that the windows of users who receive nothing
    /// more expire, then drops the streams that [`is_expired`](crate::UserStream::is_expired)
    /// says are done with. Once everything has expired the store gives its memory back.
    ///
    /// `now` should not go backwards; if it does, events expire late, never early.
    pub fn expire(&mut self, now: Instant) {
        while let Some(front) = self.slots.front() {
            if now.saturating_duration_since(front.stored_at) < self.max_age {
                break;
            }
            self.pop_front(Eviction::Age);
        }
        self.shrink();
    }

    /// When the oldest event held expires (`None` when nothing is held): when a timer should
    /// call [`expire`](Self::expire) next.
    pub fn next_expiry(&self) -> Option<Instant> {
        let front = self.slots.front()?;
        // A deadline beyond what an Instant can hold is as good as the farthest one.
        Some(
            front
                .stored_at
                .checked_add(self.max_age)
                .unwrap_or(front.stored_at),
        )
    }

    /// Stamps `event` on `stamper` and encodes it once, in the store's scratch buffer.
    pub(crate) fn encode(
        &mut self,
        stamper: &mut StreamStamper,
        event: &Event,
    ) -> (Option<u64>, F) {
        self.scratch.clear();
        let seq = stamper.emit_into(event, &mut self.scratch);
        let frame = F::from_json(&self.scratch, event);
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = String::new();
        }
        (seq, frame)
    }

    /// Keeps a copy of `frame` for `stream`; its ticket.
    pub(crate) fn push(&mut self, stream: u64, now: Instant, frame: &F) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let json = frame.json();
        self.stats.held_bytes = self.stats.held_bytes.saturating_add(cost(json.len()));
        self.stats.held_events += 1;
        self.stats.stored += 1;
        let text = self.chunks.push(json.as_bytes(), self.chunk_size);
        self.slots.push_back(Slot {
            ticket,
            stream,
            stored_at: now,
            text,
            tag: frame.tag(),
            live: true,
        });
        ticket
    }

    /// Enforces the age limit at `now`, then the byte budget.
    pub(crate) fn enforce(&mut self, now: Instant) {
        self.expire(now);
        while self.budget_used() > self.max_bytes && !self.slots.is_empty() {
            let dead_bytes = self.stats.dead_bytes;
            if dead_bytes > 0 && dead_bytes.saturating_mul(4) >= self.stats.held_bytes {
                self.compact();
            } else {
                self.pop_front(Eviction::Budget);
            }
        }
    }

    /// Drops the event of `ticket`, if `stream` still has it here.
    pub(crate) fn release(&mut self, ticket: u64, stream: u64, why: Eviction) {
        let Some(index) = self.index_of(ticket) else {
            return;
        };
        let slot = &mut self.slots[index];
        if slot.stream != stream || !slot.live {
            return;
        }
        slot.live = false;
        let len = slot.text.len;
        self.account(len, why);
        self.dead += 1;
        self.stats.dead_bytes = self.stats.dead_bytes.saturating_add(cost(len));
        self.drop_dead_front();
    }

    /// The lowest ticket still held: every ticket below it was evicted.
    pub(crate) fn first_ticket(&self) -> u64 {
        self.slots
            .front()
            .map_or(self.next_ticket, |slot| slot.ticket)
    }

    /// The frame of `ticket`, rebuilt from its text, if `stream` still has it here.
    pub(crate) fn get(&self, ticket: u64, stream: u64) -> Option<F> {
        let slot = &self.slots[self.index_of(ticket)?];
        if slot.stream != stream || !slot.live {
            return None;
        }
        let json = self.chunks.get(slot.text)?;
        Some(F::from_stored(json, slot.tag))
    }

    /// What the budget counts: the events held, and the holes count evictions left.
    fn budget_used(&self) -> usize {
        self.stats.held_bytes.saturating_add(self.stats.dead_bytes)
    }

    /// Where the slot of `ticket` is. Tickets are consecutive, so it is `ticket - front` places
    /// from the front unless compaction removed slots before it; then it is nearer, found by
    /// binary search (the slots are in ticket order).
    fn index_of(&self, ticket: u64) -> Option<usize> {
        let front = self.slots.front()?.ticket;
        let guess = usize::try_from(ticket.checked_sub(front)?).unwrap_or(usize::MAX);
        if self
            .slots
            .get(guess)
            .is_some_and(|slot| slot.ticket == ticket)
        {
            return Some(guess);
        }
        self.slots
            .binary_search_by_key(&ticket, |slot| slot.ticket)
            .ok()
    }

    fn pop_front(&mut self, why: Eviction) {
        if let Some(slot) = self.slots.pop_front() {
            if slot.live {
                self.account(slot.text.len, why);
            } else {
                self.forget_dead(slot.text.len);
            }
        }
        self.drop_dead_front();
    }

    /// Keeps the front live (the first held ticket is the front's), and frees the chunks the
    /// front has passed.
    fn drop_dead_front(&mut self) {
        while let Some(front) = self.slots.front() {
            if front.live {
                break;
            }
            let len = front.text.len;
            self.slots.pop_front();
            self.forget_dead(len);
        }
        match self.slots.front() {
            Some(front) => self.chunks.free_before(front.text.chunk),
            None => self.chunks.clear(),
        }
    }

    fn forget_dead(&mut self, len: usize) {
        self.dead -= 1;
        self.stats.dead_bytes = self.stats.dead_bytes.saturating_sub(cost(len));
    }

    /// Copies the frames held into fresh chunks and forgets the holes.
    fn compact(&mut self) {
        let mut fresh = Chunks {
            chunks: VecDeque::new(),
            first: self.chunks.first + self.chunks.chunks.len() as u64,
        };
        let old = std::mem::take(&mut self.chunks);
        let chunk_size = self.chunk_size;
        let mut lost = Vec::new();
        self.slots.retain_mut(|slot| {
            if !slot.live {
                return false;
            }
            match old.get(slot.text) {
                Some(text) => {
                    slot.text = fresh.push(text.as_bytes(), chunk_size);
                    true
                }
                // A live slot's text is always in the chunks; were it not, the event is
                // evicted (a resume that needs it is then reset), never replayed wrong.
                None => {
                    lost.push(slot.text.len);
                    false
                }
            }
        });
        self.chunks = fresh;
        for len in lost {
            self.account(len, Eviction::Budget);
        }
        self.dead = 0;
        self.stats.dead_bytes = 0;
        self.stats.compactions += 1;
        self.shrink();
    }

    fn account(&mut self, len: usize, why: Eviction) {
        let stats = &mut self.stats;
        stats.held_bytes = stats.held_bytes.saturating_sub(cost(len));
        stats.held_events -= 1;
        let counter = match why {
            Eviction::Count => &mut stats.evicted_by_count,
            Eviction::Age => &mut stats.evicted_by_age,
            Eviction::Budget => &mut stats.evicted_by_budget,
            Eviction::Cleared => &mut stats.cleared,
        };
        *counter += 1;
    }

    /// Gives back the memory of a queue mostly emptied, and all of it once nothing is held.
    fn shrink(&mut self) {
        let (len, capacity) = (self.slots.len(), self.slots.capacity());
        if len == 0 {
            self.slots = VecDeque::new();
            self.chunks.clear();
            self.scratch = String::new();
        } else if capacity > 16 && len < capacity / 4 {
            self.slots.shrink_to(len * 2);
        }
    }
}

/// What an event whose frame is `len` bytes long costs the budget.
fn cost(len: usize) -> usize {
    len.saturating_add(EVENT_OVERHEAD_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_constant_covers_the_bookkeeping_it_claims() {
        // The slot and the stream's ticket; the rest of the constant is the event's share of
        // the slack of chunks and queues.
        let bookkeeping = size_of::<Slot<u16>>() + size_of::<u64>();
        assert_eq!(size_of::<Slot<u16>>(), 64);
        assert!(bookkeeping <= EVENT_OVERHEAD_BYTES / 4 * 3, "{bookkeeping}");
    }

    #[test]
    fn an_emptied_store_gives_its_memory_back() {
        let mut store: WindowStore = WindowStore::new(&WindowConfig::default(), 1).unwrap();
        let now = Instant::now();
        let mut stamper = StreamStamper::new();
        for _ in 0..100 {
            let (_, frame) = store.encode(&mut stamper, &Event::agent_thinking("r", "..."));
            store.push(1, now, &frame);
        }
        assert!(store.slots.capacity() >= 100 && store.scratch.capacity() > 0);
        assert_eq!(store.chunks.capacity(), CHUNK_MAX);
        store.expire(now + WindowConfig::default().max_age);
        assert!(store.is_empty());
        assert_eq!(
            (
                store.slots.capacity(),
                store.scratch.capacity(),
                store.chunks.capacity()
            ),
            (0, 0, 0)
        );
        assert_eq!(store.stats().evicted_by_age, 100);
    }

    #[test]
    fn chunks_are_freed_once_the_front_passes_them() {
        // A 16 KiB share: chunks of 2 KiB, about ten frames each.
        let config = WindowConfig {
            max_bytes: 16 * 1024,
            ..WindowConfig::default()
        };
        let mut store: WindowStore = WindowStore::new(&config, 1).unwrap();
        assert_eq!(store.chunk_size, 2048);
        let now = Instant::now();
        let mut stamper = StreamStamper::new();
        for _ in 0..1000 {
            let (_, frame) = store.encode(&mut stamper, &Event::agent_thinking("r", "..."));
            store.push(1, now, &frame);
            store.enforce(now);
            // Never more text than the share, plus the chunk being filled.
            assert!(store.chunks.capacity() <= store.max_bytes + store.chunk_size);
        }
        assert!(store.stats().evicted_by_budget > 900);
        let first = store.slots.front().unwrap().text.chunk;
        assert_eq!(store.chunks.first, first);
    }

    #[test]
    fn a_frame_longer_than_a_chunk_gets_its_own() {
        let mut chunks = Chunks::default();
        let small = chunks.push(b"abc", 8);
        let big = chunks.push(&[b'x'; 20], 8);
        let after = chunks.push(b"de", 8);
        assert_eq!((small.chunk, big.chunk, after.chunk), (0, 1, 2));
        assert_eq!(chunks.get(big).unwrap().len(), 20);
        assert_eq!(chunks.get(after), Some("de"));
        chunks.free_before(2);
        assert_eq!(chunks.get(small), None);
        assert_eq!(chunks.get(after), Some("de"));
    }
}
