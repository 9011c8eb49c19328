//! User streams: which connections each user has open, and delivery of events to all of them.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::Metrics;
use crate::queue::{self, TrySendError};
use std::time::{Duration, Instant};

use agentwire_events::{Event, StreamPosition};
use agentwire_stream::{
    Decision, Frame, ResumeRequest, UserStream, WindowConfig, WindowStats, WindowStore,
};
use agentwire_types::MessageType;
use axum::extract::ws::Utf8Bytes;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Delivers events to a user's stream: every connection that user has open.
///
/// The default engine is [`LocalStreams`], in-process. Another engine (a broker for several
/// nodes, or a wrapper that records or filters) is plugged in with
/// [`ServerBuilder::delivery`](crate::ServerBuilder::delivery), which hands it this node's
/// [`LocalStreams`] to reach the connections it holds; handlers and connection code do not
/// change.
pub trait Delivery: Send + Sync + 'static {
    /// Stamps `event` on `user_id`'s stream (next `seq`, fresh `event_id`, current time),
    /// encodes it once and hands it to each of the user's connections.
    fn deliver(&self, user_id: &str, event: Event) -> Delivered;

    /// Delivers `events` to `user_id`'s stream in order, one [`Delivered`] per event.
    ///
    /// The default calls [`deliver`](Self::deliver) for each, so another task's events for
    /// the same user may land between them. An engine that can append the whole batch at once
    /// overrides it, so that the batch gets consecutive `seq`s ([`LocalStreams`] does: the
    /// publish API relies on it for its dense `seq`s).
    fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Delivered> {
        events
            .into_iter()
            .map(|event| self.deliver(user_id, event))
            .collect()
    }
}

/// What a [`Delivery`] did with one event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Connections the event was queued for.
    pub connections: usize,
    /// The `seq` it got on the user's stream. With the replay window on, an event for a user
    /// without a connection gets one too and waits there for a resume; `None` when replay is
    /// off and the user has no connection here, in which case the event was dropped.
    pub seq: Option<u64>,
}

/// Sends events to users' streams from any task. Cheap to clone.
///
/// ```
/// # fn demo(emitter: agentwire_server::Emitter) {
/// use agentwire_events::Event;
///
/// let delivered = emitter.emit("user_42", Event::agent_thinking("run_7", "checking the forecast"));
/// println!("queued for {} connections", delivered.connections);
/// # }
/// ```
#[derive(Clone)]
pub struct Emitter {
    delivery: Arc<dyn Delivery>,
}

impl Emitter {
    /// An emitter over any [`Delivery`].
    pub fn new(delivery: Arc<dyn Delivery>) -> Self {
        Emitter { delivery }
    }

    /// Emits `event` to every open connection of `user_id`.
    pub fn emit(&self, user_id: &str, event: Event) -> Delivered {
        self.delivery.deliver(user_id, event)
    }

    /// Emits `events` to `user_id`'s stream in order, one [`Delivered`] per event; with the
    /// in-process engine they get consecutive `seq`s (see [`Delivery::deliver_batch`]).
    pub fn emit_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Delivered> {
        self.delivery.deliver_batch(user_id, events)
    }

    /// Emits a notification outside any run: `message_type` (a server-to-client type without
    /// a typed payload, such as `system_message` or `thread_update`) with `payload`, a JSON
    /// object. For plain text, `emit(user, Event::system_message(text))` is shorter.
    ///
    /// ```
    /// # fn demo(emitter: agentwire_server::Emitter) -> Result<(), agentwire_server::events::OtherTypeError> {
    /// use agentwire_server::MessageType;
    /// use serde_json::json;
    ///
    /// emitter.notify("user_42", MessageType::ThreadUpdate, json!({"thread_id": "t1", "title": "Trip"}))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`OtherTypeError`](agentwire_events::OtherTypeError) when `message_type` is not one a
    /// server sends without a typed payload, or `payload` is not an object; nothing is sent.
    pub fn notify(
        &self,
        user_id: &str,
        message_type: MessageType,
        payload: impl Into<serde_json::Value>,
    ) -> Result<Delivered, agentwire_events::OtherTypeError> {
        Ok(self.emit(user_id, Event::notification(message_type, payload)?))
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

/// One frame queued for a connection: the shared text and what to count it as.
#[derive(Clone)]
pub(crate) struct Outbound {
    pub(crate) text: Utf8Bytes,
    pub(crate) message_type: MessageType,
}

impl Outbound {
    /// Copies a frame's JSON text into a buffer of exactly its length, shared by reference
    /// count with every other connection that receives the frame. Cheaper than handing over a
    /// string with spare capacity: `Bytes` keeps an exact-length buffer as it is, but gives any
    /// other its own heap-allocated header (one more allocation and free per frame than a copy
    /// of a few hundred bytes costs).
    pub(crate) fn copied(text: &str, message_type: MessageType) -> Outbound {
        Outbound {
            text: Utf8Bytes::from(text.to_owned()),
            message_type,
        }
    }
}

impl Frame for Outbound {
    type Tag = MessageType;

    fn from_json(json: &str, event: &Event) -> Outbound {
        Outbound::copied(json, event.message_type())
    }

    fn json(&self) -> &str {
        self.text.as_str()
    }

    fn tag(&self) -> MessageType {
        self.message_type
    }

    fn from_stored(json: &str, message_type: MessageType) -> Outbound {
        Outbound::copied(json, message_type)
    }
}

struct Slot {
    connection: u64,
    tx: queue::Sender<Outbound>,
}

/// A user's entry: the stream (epoch, `seq`, the user's place in the replay window) and the
/// connections open on this node. It outlives the connections while the window holds the
/// user's events, so that a client that comes back can resume.
struct UserEntry {
    /// The table's key; registrations share it without allocating.
    user_id: Arc<str>,
    stream: UserStream,
    slots: Vec<Slot>,
}

/// One lock domain: a table of users and the replay window of their events.
struct ShardState {
    users: HashTable<UserEntry>,
    window: WindowStore<Outbound>,
    /// When the table was last swept for streams nobody will resume.
    swept: Instant,
}

type Shard = Mutex<ShardState>;

/// What [`Hub::register`] gives a new connection.
pub(crate) struct Registered {
    pub(crate) registration: Registration,
    pub(crate) queue: queue::Receiver<Outbound>,
    pub(crate) position: StreamPosition,
    /// The answer to the client's resume request, and the frames to send before live ones.
    pub(crate) resume: Option<(Decision, Vec<Outbound>)>,
}

/// This node's user streams: the connections it holds, by user, and the in-process
/// [`Delivery`] (the default engine). Cheap to clone.
///
/// An engine plugged in with [`ServerBuilder::delivery`](crate::ServerBuilder::delivery) gets
/// one to deliver to this node's connections.
#[derive(Clone)]
pub struct LocalStreams {
    hub: Arc<Hub>,
}

impl LocalStreams {
    pub(crate) fn new(hub: Arc<Hub>) -> LocalStreams {
        LocalStreams { hub }
    }

    /// Users with at least one open connection on this node.
    pub fn users(&self) -> usize {
        self.hub.users()
    }
}

impl Delivery for LocalStreams {
    fn deliver(&self, user_id: &str, event: Event) -> Delivered {
        self.hub.deliver(user_id, event)
    }

    /// Appends the whole batch under the user's lock: its events get consecutive `seq`s, and
    /// no other event of the user lands between them.
    fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Delivered> {
        self.hub.deliver_batch(user_id, events)
    }
}

impl std::fmt::Debug for LocalStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStreams")
            .field("users", &self.users())
            .finish()
    }
}

/// Users' streams, sharded by user id.
pub(crate) struct Hub {
    shards: Box<[Shard]>,
    /// foldhash, seeded per process: user ids come from validated tokens, and a lookup per
    /// event costs a tenth of the instructions SipHash took (callgrind).
    hasher: DefaultHashBuilder,
    queue_frames: usize,
    /// How often a shard's table is swept for streams whose window expired.
    sweep_every: Duration,
    /// Whether the task that sweeps every shard periodically runs.
    sweeping: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

const SHARDS: usize = 64;

/// Why [`Hub::register`] refused a connection.
pub(crate) struct TooManyConnections;

impl Hub {
    /// A hub whose shards share `window`'s budget. [`Config`](crate::Config) has validated
    /// `window`; should a store still refuse it, replay is turned off (and logged) rather than
    /// the server refused.
    pub(crate) fn new(queue_frames: usize, window: &WindowConfig, metrics: Arc<Metrics>) -> Hub {
        let now = Instant::now();
        let store = || match WindowStore::new(window, SHARDS) {
            Ok(store) => store,
            Err(error) => {
                tracing::error!(target: "agentwire::server", %error, "replay window refused: replay is off");
                // Replay off validates whatever the other settings say.
                WindowStore::new(&WindowConfig::off(), SHARDS)
                    .expect("a replay window that is off always validates")
            }
        };
        Hub {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(ShardState {
                        users: HashTable::new(),
                        window: store(),
                        swept: now,
                    })
                })
                .collect(),
            hasher: DefaultHashBuilder::default(),
            queue_frames,
            sweep_every: (window.max_age / 4).max(Duration::from_secs(1)),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            metrics,
        }
    }

    /// Starts, once, the task that sweeps every shard each `sweep_every`, so that a quiet shard
    /// gives its memory back too; it ends with the hub. Called from a connection's task (a
    /// runtime is there).
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Relaxed) {
            return;
        }
        let hub = Arc::downgrade(self);
        let every = self.sweep_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                hub.sweep_all();
            }
        });
    }

    /// The user's shard, locked, and the user id's hash: computed once, it picks the shard
    /// (bits 32 and up) and the slot in the shard's table (the table uses the low and the top
    /// seven bits, so the shard index does not skew either).
    fn shard(&self, user_id: &str) -> (u64, MutexGuard<'_, ShardState>) {
        let hash = self.hasher.hash_one(user_id);
        let index = (hash >> 32) as usize % SHARDS;
        // A panic while holding a shard cannot leave a stream half-updated in a way that
        // matters more than losing every later delivery; go on with the data.
        let guard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        (hash, guard)
    }

    /// A new stream for `user_id` (with a fresh epoch), with no connection yet.
    fn insert_user<'t>(
        &self,
        users: &'t mut HashTable<UserEntry>,
        hash: u64,
        user_id: &str,
        now: Instant,
    ) -> &'t mut UserEntry {
        let entry = UserEntry {
            user_id: Arc::from(user_id),
            stream: UserStream::new(now),
            slots: Vec::new(),
        };
        users
            .insert_unique(hash, entry, |s| self.hasher.hash_one(&*s.user_id))
            .into_mut()
    }

    /// Adds a connection to `user_id`'s stream, unless the user already has `max` open, and
    /// answers its resume request. Registration and the replay are decided in one critical
    /// section: the replay ends where the connection's live events begin.
    pub(crate) fn register(
        self: &Arc<Self>,
        user_id: &str,
        connection: u64,
        max: usize,
        resume: Option<&ResumeRequest>,
    ) -> Result<Registered, TooManyConnections> {
        self.start_sweeping();
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        shard.window.expire(now);
        let entry = match shard.users.find_mut(hash, |s| &*s.user_id == user_id) {
            Some(entry) if entry.slots.len() >= max => return Err(TooManyConnections),
            Some(entry) => entry,
            None => self.insert_user(&mut shard.users, hash, user_id, now),
        };
        let first = entry.slots.is_empty();
        // A stream created just now has a fresh epoch: a client's resume gets epoch_changed,
        // its history being gone.
        let resume = resume.map(|request| {
            let resumed = entry.stream.resume(&shard.window, request);
            (resumed.decision, resumed.frames)
        });
        let key = Arc::clone(&entry.user_id);
        let (tx, rx) = queue::channel(self.queue_frames);
        entry.slots.push(Slot { connection, tx });
        let position = entry.stream.position();
        drop(guard);
        if let Some((decision, frames)) = &resume {
            self.metrics.resumed(decision, frames.len());
        }
        Ok(Registered {
            registration: Registration {
                hub: Arc::clone(self),
                user_id: key,
                connection,
                first,
                left: false,
            },
            queue: rx,
            position,
            resume,
        })
    }

    /// Removes a connection; whether it was the user's last. The user's stream stays while
    /// its window holds events (or for the window's age after this), for a resume.
    fn unregister(&self, user_id: &str, connection: u64) -> bool {
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        let Ok(mut entry) = shard.users.find_entry(hash, |s| &*s.user_id == user_id) else {
            return false;
        };
        let user = entry.get_mut();
        user.slots.retain(|slot| slot.connection != connection);
        if !user.slots.is_empty() {
            return false;
        }
        user.stream.touch(now);
        if user.stream.is_expired(&shard.window, now) {
            entry.remove();
        }
        self.sweep(shard, now);
        true
    }

    /// Drops, at most every `sweep_every`, the streams of users with no connection whose
    /// window expired: memory returns to what it was once nobody can resume.
    fn sweep(&self, shard: &mut ShardState, now: Instant) {
        if now.saturating_duration_since(shard.swept) < self.sweep_every {
            return;
        }
        shard.swept = now;
        shard.window.expire(now);
        let window = &shard.window;
        shard
            .users
            .retain(|user| !user.slots.is_empty() || !user.stream.is_expired(window, now));
    }

    /// Expires old events and idle streams in every shard (the server calls it periodically,
    /// so a quiet shard gives its memory back too).
    pub(crate) fn sweep_all(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            let mut guard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let shard = &mut *guard;
            shard.swept = now.checked_sub(self.sweep_every).unwrap_or(shard.swept);
            self.sweep(shard, now);
        }
    }

    /// How many connections `user_id` has open on this node.
    pub(crate) fn connections(&self, user_id: &str) -> usize {
        let (hash, shard) = self.shard(user_id);
        shard
            .users
            .find(hash, |s| &*s.user_id == user_id)
            .map_or(0, |user| user.slots.len())
    }

    /// Users with at least one open connection.
    pub(crate) fn users(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                shard.users.iter().filter(|u| !u.slots.is_empty()).count()
            })
            .sum()
    }

    /// User streams held (with or without a connection), and the replay window's counters.
    pub(crate) fn window_stats(&self) -> (usize, WindowStats) {
        self.shards
            .iter()
            .fold((0, WindowStats::default()), |(streams, stats), s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                (streams + shard.users.len(), stats + shard.window.stats())
            })
    }

    /// Sends a connection-scoped control frame (a reply) to one connection of `user_id`;
    /// whether it was queued.
    pub(crate) fn send_to(&self, user_id: &str, connection: u64, event: Event) -> bool {
        let message_type = event.message_type();
        let text = event.stamp_control().to_json();
        let (hash, shard) = self.shard(user_id);
        let Some(user) = shard.users.find(hash, |s| &*s.user_id == user_id) else {
            return false;
        };
        let Some(slot) = user.slots.iter().find(|s| s.connection == connection) else {
            return false;
        };
        slot.tx
            .try_send(Outbound {
                text: Utf8Bytes::from(text),
                message_type,
            })
            .is_ok()
    }

    pub(crate) fn deliver(&self, user_id: &str, event: Event) -> Delivered {
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        let user = match shard.users.find_mut(hash, |s| &*s.user_id == user_id) {
            Some(user) => user,
            // No stream here and no window to keep the event for a later resume: dropped.
            None if !shard.window.replay_enabled() => return Delivered::default(),
            // Kept for the user's next connection that resumes.
            None => self.insert_user(&mut shard.users, hash, user_id, now),
        };
        self.append(user, &mut shard.window, &event, now)
    }

    /// Delivers `events` in order under one lock of the user's shard: they get consecutive
    /// `seq`s. Holding the shard for the whole batch delays other users of the shard by the
    /// batch's encoding time (about a microsecond per event).
    pub(crate) fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Delivered> {
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        let user = match shard.users.find_mut(hash, |s| &*s.user_id == user_id) {
            Some(user) => user,
            None if !shard.window.replay_enabled() => {
                return vec![Delivered::default(); events.len()];
            }
            None => self.insert_user(&mut shard.users, hash, user_id, now),
        };
        events
            .iter()
            .map(|event| self.append(user, &mut shard.window, event, now))
            .collect()
    }

    /// Stamps, encodes, keeps and queues one event on `user`'s stream. Called with the user's
    /// shard locked, so every connection sees the stream's events in `seq` order, and a resume
    /// sees exactly what was sent.
    fn append(
        &self,
        user: &mut UserEntry,
        window: &mut WindowStore<Outbound>,
        event: &Event,
        now: Instant,
    ) -> Delivered {
        let appended = user.stream.append(event, now, window);
        let seq = appended.seq;
        let mut connections = 0;
        // Each slot but the last gets a clone, the last the frame itself: with one connection
        // (the usual case) nothing more is cloned. A slot whose queue refuses the frame leaves.
        let mut frame = Some(appended.frame);
        let mut i = 0;
        while let Some(slot) = user.slots.get(i) {
            let this = if i + 1 == user.slots.len() {
                frame.take()
            } else {
                frame.clone()
            };
            let Some(this) = this else { break };
            match slot.tx.try_send(this) {
                Ok(()) => {
                    connections += 1;
                    i += 1;
                }
                Err(error) => {
                    if error == TrySendError::Full {
                        // A consumer that cannot keep up loses its place on the stream:
                        // dropping the sender ends its queue, and the connection closes itself
                        // with 4008 once it has written what was already queued.
                        self.metrics.queue_drops.fetch_add(1, Relaxed);
                    }
                    user.slots.remove(i);
                }
            }
        }
        self.metrics.events_emitted.fetch_add(1, Relaxed);
        Delivered { connections, seq }
    }
}

/// A connection's place on its user's stream; leaving it ([`leave`](Self::leave), or drop)
/// removes the connection.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    user_id: Arc<str>,
    connection: u64,
    /// Whether this was the user's first connection on this node when it registered.
    first: bool,
    left: bool,
}

impl Registration {
    /// Whether the user had no other connection on this node when this one registered.
    pub(crate) fn was_first(&self) -> bool {
        self.first
    }

    /// Leaves the stream; whether this was the user's last connection on this node.
    pub(crate) fn leave(mut self) -> bool {
        self.left = true;
        self.hub.unregister(&self.user_id, self.connection)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.left {
            self.hub.unregister(&self.user_id, self.connection);
        }
    }
}
