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
/// The bookkeeping of one held event: its slot in the [`WindowStore`] (48 bytes with an
/// `Arc<str>` frame: ticket, stream id, time stored, frame pointer), its ticket in its
/// [`UserStream`](crate::UserStream) (8), the shared frame's own header (16 for an `Arc`,
/// about 32 for a `bytes::Bytes`) and the allocator's rounding of the frame (up to 16): about
/// 100 bytes, rounded up to cover the slack of the queues' capacity and of evicted slots
/// awaiting compaction (never more than the live ones). So the budget bounds the memory the
/// windows really take, small events included, not only their text.
pub const EVENT_OVERHEAD_BYTES: usize = 128;

/// Slots evicted from the middle of a store (by their stream's count limit) are compacted away
/// once there are more of them than this and than live slots.
const COMPACT_MIN: usize = 32;

/// The scratch buffer a frame is encoded into keeps at most this capacity between appends.
const SCRATCH_KEEP: usize = 16 * 1024;

/// How a stream holds an encoded frame: one allocation shared by every connection the frame
/// is sent to and by the replay window (cloning it copies a pointer, never the text).
///
/// `Arc<str>` is the default. A server stores its own outbound type instead (say, a newtype
/// over the WebSocket library's shared text with the frame's type for metrics), so the frame
/// it fans out and the one it keeps for replay are the same allocation, built once.
pub trait SharedFrame: Clone {
    /// The shared form of `json`, the encoded frame of `event`.
    fn from_json(json: &str, event: &Event) -> Self;

    /// The frame's JSON text (its length is what the byte budget counts).
    fn json(&self) -> &str;
}

impl SharedFrame for Arc<str> {
    fn from_json(json: &str, _event: &Event) -> Self {
        Arc::from(json)
    }

    fn json(&self) -> &str {
        self
    }
}

/// Counters and gauges of a [`WindowStore`], for metrics. Add the stores' stats together
/// (`+`, or `sum()`) for the server's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowStats {
    /// Events held now.
    pub held_events: usize,
    /// Bytes held now, as the budget counts them (frame length plus
    /// [`EVENT_OVERHEAD_BYTES`] each).
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

struct Slot<F> {
    /// The store's append counter: slots are in ticket order.
    ticket: u64,
    /// The [`UserStream`](crate::UserStream) the event belongs to.
    stream: u64,
    stored_at: Instant,
    /// `None` once evicted by its stream's count limit, until compacted away.
    frame: Option<F>,
}

/// The frames held for replay by the user streams of one lock domain (one shard of a server's
/// table of users), in the order they were stored, within a share of the server-wide byte
/// budget.
///
/// A server with `n` shards, each a mutex over its table of [`UserStream`]s, gives each shard
/// a store made with [`new(config, n)`](Self::new): each gets `max_bytes / n`, so the stores
/// together never hold more than `max_bytes`. Events leave a store oldest first: by age (the
/// oldest stored are the oldest), and when an append takes the store over its share, the
/// oldest events of the shard, whichever users they belong to, until it fits again. Eviction
/// is oldest-first per shard, and the bound holds server-wide. (A user's own `max_events`
/// limit evicts that user's oldest event.)
///
/// A [`UserStream`] keeps only the tickets of its events; the frames live here, so the budget
/// is enforced inside every [`append`](crate::UserStream::append), without the server
/// looking other users up. Every method that reads a stream's events takes the store it was
/// appended to; given another store, a stream finds none of its events (never another's).
///
/// Time is passed in; a store reads no clock.
///
/// [`UserStream`]: crate::UserStream
pub struct WindowStore<F = Arc<str>> {
    max_events: usize,
    max_age: Duration,
    max_bytes: usize,
    slots: VecDeque<Slot<F>>,
    next_ticket: u64,
    /// Slots whose frame was taken (count evictions) and not yet removed.
    dead: usize,
    stats: WindowStats,
    scratch: String,
}

impl<F> std::fmt::Debug for WindowStore<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("max_events", &self.max_events)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<F: SharedFrame> WindowStore<F> {
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
            slots: VecDeque::new(),
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

    /// Stores `frame` for `stream`; its ticket.
    pub(crate) fn push(&mut self, stream: u64, now: Instant, frame: F) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.stats.held_bytes = self.stats.held_bytes.saturating_add(cost(&frame));
        self.stats.held_events += 1;
        self.stats.stored += 1;
        self.slots.push_back(Slot {
            ticket,
            stream,
            stored_at: now,
            frame: Some(frame),
        });
        ticket
    }

    /// Enforces the age limit at `now`, then the byte budget.
    pub(crate) fn enforce(&mut self, now: Instant) {
        self.expire(now);
        while self.stats.held_bytes > self.max_bytes && !self.slots.is_empty() {
            self.pop_front(Eviction::Budget);
        }
    }

    /// Drops the event of `ticket`, if `stream` still has it here.
    pub(crate) fn release(&mut self, ticket: u64, stream: u64, why: Eviction) {
        let Some(index) = self.index_of(ticket) else {
            return;
        };
        let slot = &mut self.slots[index];
        if slot.stream != stream {
            return;
        }
        let Some(frame) = slot.frame.take() else {
            return;
        };
        self.account(&frame, why);
        self.dead += 1;
        // Keep the front live: the first held ticket is the front's.
        while self.slots.front().is_some_and(|slot| slot.frame.is_none()) {
            self.slots.pop_front();
            self.dead -= 1;
        }
        if self.dead > COMPACT_MIN && self.dead > self.stats.held_events {
            self.slots.retain(|slot| slot.frame.is_some());
            self.dead = 0;
            self.shrink();
        }
    }

    /// The lowest ticket still held: every ticket below it was evicted.
    pub(crate) fn first_ticket(&self) -> u64 {
        self.slots
            .front()
            .map_or(self.next_ticket, |slot| slot.ticket)
    }

    /// The frame of `ticket`, if `stream` still has it here.
    pub(crate) fn get(&self, ticket: u64, stream: u64) -> Option<&F> {
        let slot = &self.slots[self.index_of(ticket)?];
        if slot.stream != stream {
            return None;
        }
        slot.frame.as_ref()
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
            match slot.frame {
                Some(frame) => self.account(&frame, why),
                None => self.dead -= 1,
            }
        }
        while self.slots.front().is_some_and(|slot| slot.frame.is_none()) {
            self.slots.pop_front();
            self.dead -= 1;
        }
    }

    fn account(&mut self, frame: &F, why: Eviction) {
        let stats = &mut self.stats;
        stats.held_bytes = stats.held_bytes.saturating_sub(cost(frame));
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
            self.scratch = String::new();
        } else if capacity > 16 && len < capacity / 4 {
            self.slots.shrink_to(len * 2);
        }
    }
}

/// What a held frame costs the budget.
fn cost<F: SharedFrame>(frame: &F) -> usize {
    frame.json().len().saturating_add(EVENT_OVERHEAD_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_constant_covers_the_bookkeeping_it_claims() {
        // The slot, the stream's ticket, the Arc's counts, the allocator's rounding of the
        // text; the rest of the constant is headroom for queue capacity and evicted slots.
        let bookkeeping = size_of::<Slot<Arc<str>>>() + size_of::<u64>() + 16 + 16;
        assert_eq!(size_of::<Slot<Arc<str>>>(), 48);
        assert!(bookkeeping <= EVENT_OVERHEAD_BYTES / 4 * 3, "{bookkeeping}");
    }

    #[test]
    fn an_emptied_store_gives_its_memory_back() {
        let mut store: WindowStore = WindowStore::new(&WindowConfig::default(), 1).unwrap();
        let now = Instant::now();
        let mut stamper = StreamStamper::new();
        for _ in 0..100 {
            let (_, frame) = store.encode(&mut stamper, &Event::agent_thinking("r", "..."));
            store.push(1, now, frame);
        }
        assert!(store.slots.capacity() >= 100 && store.scratch.capacity() > 0);
        store.expire(now + WindowConfig::default().max_age);
        assert!(store.is_empty());
        assert_eq!((store.slots.capacity(), store.scratch.capacity()), (0, 0));
        assert_eq!(store.stats().evicted_by_age, 100);
    }
}
