//! [`UserStream`]: one user's stream in the in-process engine: its epoch and `seq`, and the
//! tickets of its events held in a [`WindowStore`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agentwire_events::{Event, StreamPosition, StreamStamper};

use crate::decide::{Decision, Held, ResetReason, StreamState, decide};
use crate::request::ResumeRequest;
use crate::store::{Eviction, Frame, WindowStore};

/// Ids that tell one stream's events from another's in a store, unique in the process.
static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

/// One user's stream: assigns each event its `seq` in the stream's epoch, encodes it once, and
/// keeps it in a [`WindowStore`] for replay after a reconnect.
///
/// A server keeps one per user in the lock domain (shard) of that user, next to the user's
/// connections, with the shard's store; every method that touches events takes that store.
/// The stream outlives connections: it stays while its window holds events, and for
/// `max_age` after its last event or [`touch`](Self::touch), so a client that comes back in
/// time resumes; then [`is_expired`](Self::is_expired) says the server may drop it, and the
/// memory goes back to what it was.
///
/// ```
/// use std::time::Instant;
/// use agentwire_events::Event;
/// use agentwire_stream::{UserStream, WindowConfig, WindowStore};
///
/// let mut store: WindowStore = WindowStore::new(&WindowConfig::default(), 1).unwrap();
/// let now = Instant::now();
/// let mut stream = UserStream::new(now);
/// let appended = stream.append(&Event::agent_thinking("run_1", "..."), now, &mut store);
/// assert_eq!(appended.seq, Some(1));
/// assert!(appended.frame.contains(r#""seq":1"#));
/// assert_eq!(store.stats().held_events, 1);
/// ```
#[derive(Debug)]
pub struct UserStream {
    id: u64,
    stamper: StreamStamper,
    /// The `seq` of `tickets[0]`; the tickets' `seq`s follow one by one.
    first_seq: u64,
    /// The store tickets of the events held, oldest first. Those below the store's first
    /// ticket were evicted by age or budget and are dropped lazily.
    tickets: VecDeque<u64>,
    /// The last append or touch.
    active_at: Instant,
}

/// What [`UserStream::append`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Appended<F = Arc<str>> {
    /// The event's `seq`; `None` for a connection-scoped control frame, which takes no `seq`
    /// and is not kept.
    pub seq: Option<u64>,
    /// The encoded frame, for every connection of the user: the same allocation the window
    /// keeps for replay.
    pub frame: F,
}

/// What [`UserStream::resume`] answers: the decision and, when resumed, exactly the frames to
/// send before live events.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resume<F = Arc<str>> {
    /// The decision, for `connection_established.payload.resume`.
    pub decision: Decision,
    /// The frames of [`Replay::from_seq`](crate::Replay::from_seq) through
    /// [`Replay::to_seq`](crate::Replay::to_seq), in order, as first sent; empty on a reset.
    pub frames: Vec<F>,
}

impl UserStream {
    /// A new stream with a fresh epoch; its first event gets `seq` 1. `now` starts its idle
    /// time (see [`is_expired`](Self::is_expired)).
    pub fn new(now: Instant) -> Self {
        UserStream::with_stamper(StreamStamper::new(), now)
    }

    /// A stream that goes on from `stamper`'s epoch and last `seq`, with nothing held.
    pub fn with_stamper(stamper: StreamStamper, now: Instant) -> Self {
        UserStream {
            id: NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed),
            stamper,
            first_seq: 0,
            tickets: VecDeque::new(),
            active_at: now,
        }
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> &str {
        self.stamper.epoch()
    }

    /// The `seq` of the last event, 0 before the first.
    pub fn last_seq(&self) -> u64 {
        self.stamper.last_seq()
    }

    /// Where the stream stands, as `connection_established.payload.stream` reports it.
    pub fn position(&self) -> StreamPosition {
        self.stamper.position()
    }

    /// Stamps `event` (next `seq`, fresh `event_id`, current time), encodes it once and, when
    /// replay is on, keeps the frame in `store`, then evicts what the limits say: this
    /// stream's oldest beyond `max_events`, the store's events older than `max_age` at `now`,
    /// and the store's oldest while it is over its byte budget (possibly this very event, when
    /// it alone is larger than the budget: it is still returned for live delivery).
    ///
    /// The frame's `timestamp` is the wall clock's, read here when the event is stamped (an
    /// `Instant` cannot give a calendar time); that is the one clock this crate reads.
    /// A control frame (no `seq`) is encoded and returned, not kept.
    pub fn append<F: Frame>(
        &mut self,
        event: &Event,
        now: Instant,
        store: &mut WindowStore<F>,
    ) -> Appended<F> {
        let (seq, frame) = store.encode(&mut self.stamper, event);
        let Some(seq) = seq else {
            return Appended { seq, frame };
        };
        self.touch(now);
        if !store.replay_enabled() {
            return Appended {
                seq: Some(seq),
                frame,
            };
        }
        self.trim(store);
        let contiguous = u64::try_from(self.tickets.len())
            .ok()
            .and_then(|len| self.first_seq.checked_add(len))
            == Some(seq);
        if !self.tickets.is_empty() && !contiguous {
            // Only a stream whose seq saturated gets here; start the window over.
            self.clear(store);
        }
        if self.tickets.is_empty() {
            self.first_seq = seq;
        }
        let ticket = store.push(self.id, now, &frame);
        self.tickets.push_back(ticket);
        while self.tickets.len() > store.max_events() {
            if let Some(oldest) = self.tickets.pop_front() {
                store.release(oldest, self.id, Eviction::Count);
                self.first_seq += 1;
            }
        }
        store.enforce(now);
        Appended {
            seq: Some(seq),
            frame,
        }
    }

    /// What a resume decision needs to know of this stream: epoch, last `seq`, and the first
    /// `seq` still held in `store`.
    ///
    /// Events older than `max_age` count as held until an append or
    /// [`WindowStore::expire`] drops them; call `expire(now)` first for a decision at `now`.
    pub fn state<'a, F: Frame>(&'a self, store: &WindowStore<F>) -> StreamState<'a> {
        let held = if !store.replay_enabled() {
            Held::Off
        } else {
            let evicted = self.evicted(store);
            if evicted == self.tickets.len() {
                Held::Nothing
            } else {
                Held::From(self.first_seq + evicted as u64)
            }
        };
        StreamState::Known {
            epoch: self.epoch(),
            last_seq: self.last_seq(),
            held,
        }
    }

    /// The held frames of `from_seq..=to_seq`, in order, as first sent.
    ///
    /// It yields the run of held events starting at `from_seq` and stops at the first `seq`
    /// that is not held (or beyond the last), so what it yields never has a gap; after a
    /// [`decide`] on [`state`](Self::state) with the same store and nothing appended or
    /// expired between, that is the whole range. [`resume`](Self::resume) does both.
    pub fn replay<'a, F: Frame>(
        &'a self,
        store: &'a WindowStore<F>,
        from_seq: u64,
        to_seq: u64,
    ) -> Frames<'a, F> {
        let first_held = self.first_seq + self.evicted(store) as u64;
        let end_seq = to_seq.min(self.last_seq());
        let (next, end) = if from_seq < first_held || from_seq > end_seq {
            (0, 0)
        } else {
            let index = |seq: u64| usize::try_from(seq - self.first_seq).unwrap_or(usize::MAX);
            (index(from_seq), index(end_seq).saturating_add(1))
        };
        Frames {
            tickets: &self.tickets,
            store,
            stream: self.id,
            next,
            end: end.min(self.tickets.len()),
        }
    }

    /// Decides `request` against this stream ([`decide`] on [`state`](Self::state)) and, when
    /// resumed, collects the frames to replay: exactly `from_seq..=to_seq`.
    ///
    /// A server calls it under the lock that orders the user's events, in the same critical
    /// section as it adds the new connection to the user's live fan-out, so the replay ends
    /// where live events begin. Call [`WindowStore::expire`] first for a decision at `now`.
    pub fn resume<F: Frame>(&self, store: &WindowStore<F>, request: &ResumeRequest) -> Resume<F> {
        let decision = decide(&self.state(store), request);
        let frames = match decision {
            Decision::Resumed(replay) if !replay.is_empty() => self
                .replay(store, replay.from_seq(), replay.to_seq())
                .collect(),
            _ => Vec::new(),
        };
        let complete = match decision {
            Decision::Resumed(replay) => frames.len() as u64 == replay.len(),
            _ => true,
        };
        if complete {
            Resume { decision, frames }
        } else {
            // Unreachable while state() and replay() agree; never a silent gap if they did not.
            Resume {
                decision: Decision::Reset(ResetReason::OutsideWindow),
                frames: Vec::new(),
            }
        }
    }

    /// Events of this stream held in `store`.
    pub fn held<F: Frame>(&self, store: &WindowStore<F>) -> usize {
        self.tickets.len() - self.evicted(store)
    }

    /// Whether this stream holds no event in `store`.
    pub fn is_empty<F: Frame>(&self, store: &WindowStore<F>) -> bool {
        self.held(store) == 0
    }

    /// Marks the stream active at `now`: a server calls it when one of the user's connections
    /// closes, so that the stream (its epoch and `seq`) is kept `max_age` for the client to
    /// come back, even when the events it missed had expired or there were none.
    pub fn touch(&mut self, now: Instant) {
        self.active_at = self.active_at.max(now);
    }

    /// Whether a server may drop this stream once the user has no connection: it holds no
    /// event, and nothing happened on it (append or [`touch`](Self::touch)) for `max_age`.
    /// With replay off there is nothing to keep, and it is always true.
    ///
    /// Call [`WindowStore::expire`] first so that expired events are gone. A stream dropped
    /// while it still holds events leaves them to expire; [`clear`](Self::clear) drops them
    /// at once.
    pub fn is_expired<F: Frame>(&self, store: &WindowStore<F>, now: Instant) -> bool {
        !store.replay_enabled()
            || (self.is_empty(store)
                && now.saturating_duration_since(self.active_at) >= store.max_age())
    }

    /// Drops every event this stream holds in `store` (counted as
    /// [`cleared`](crate::WindowStats::cleared)); `seq` and epoch go on.
    pub fn clear<F: Frame>(&mut self, store: &mut WindowStore<F>) {
        for ticket in self.tickets.drain(..) {
            store.release(ticket, self.id, Eviction::Cleared);
        }
        self.tickets = VecDeque::new();
        self.first_seq = self.last_seq().saturating_add(1);
    }

    /// How many of the tickets at the front were evicted from `store` (by age or budget).
    fn evicted<F: Frame>(&self, store: &WindowStore<F>) -> usize {
        let first = store.first_ticket();
        self.tickets.partition_point(|&ticket| ticket < first)
    }

    /// Forgets the tickets evicted from `store`, and gives back the memory of a window that
    /// shrank.
    fn trim<F: Frame>(&mut self, store: &WindowStore<F>) {
        let evicted = self.evicted(store);
        if evicted > 0 {
            self.tickets.drain(..evicted);
            self.first_seq += evicted as u64;
        }
        let (len, capacity) = (self.tickets.len(), self.tickets.capacity());
        if capacity > 16 && len < capacity / 4 {
            self.tickets.shrink_to(len * 2);
        }
    }
}

/// The frames [`UserStream::replay`] yields.
#[derive(Debug)]
pub struct Frames<'a, F: Frame> {
    tickets: &'a VecDeque<u64>,
    store: &'a WindowStore<F>,
    stream: u64,
    next: usize,
    end: usize,
}

impl<F: Frame> Iterator for Frames<'_, F> {
    type Item = F;

    fn next(&mut self) -> Option<F> {
        if self.next >= self.end {
            return None;
        }
        let frame = self
            .tickets
            .get(self.next)
            .and_then(|&ticket| self.store.get(ticket, self.stream));
        match frame {
            Some(_) => self.next += 1,
            None => self.next = self.end,
        }
        frame
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.end - self.next))
    }
}
