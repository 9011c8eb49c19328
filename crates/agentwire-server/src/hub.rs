//! User streams: which connections each user has open, and delivery of events to all of them.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::Metrics;
use crate::queue::{self, TrySendError};
use agentwire_events::{Event, StreamPosition, StreamStamper};
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
}

/// What a [`Delivery`] did with one event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Connections the event was queued for.
    pub connections: usize,
    /// The `seq` it got on the user's stream; `None` when the user has no stream here (no open
    /// connection), in which case the event was dropped.
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

thread_local! {
    /// Where [`Hub::deliver`] writes a frame before copying it out at its exact length: it
    /// keeps its capacity, so writing a frame never grows a buffer.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

struct Slot {
    connection: u64,
    tx: queue::Sender<Outbound>,
}

struct UserStream {
    /// The table's key; registrations share it without allocating.
    user_id: Arc<str>,
    stamper: StreamStamper,
    slots: Vec<Slot>,
}

type Shard = Mutex<HashTable<UserStream>>;

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
    metrics: Arc<Metrics>,
}

const SHARDS: usize = 64;

/// Why [`Hub::register`] refused a connection.
pub(crate) struct TooManyConnections;

impl Hub {
    pub(crate) fn new(queue_frames: usize, metrics: Arc<Metrics>) -> Hub {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: DefaultHashBuilder::default(),
            queue_frames,
            metrics,
        }
    }

    /// The user's shard, locked, and the user id's hash: computed once, it picks the shard
    /// (bits 32 and up) and the slot in the shard's table (the table uses the low and the top
    /// seven bits, so the shard index does not skew either).
    fn shard(&self, user_id: &str) -> (u64, MutexGuard<'_, HashTable<UserStream>>) {
        let hash = self.hasher.hash_one(user_id);
        let index = (hash >> 32) as usize % SHARDS;
        // A panic while holding a shard cannot leave a stream half-updated in a way that
        // matters more than losing every later delivery; go on with the data.
        let guard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        (hash, guard)
    }

    /// Adds a connection to `user_id`'s stream, unless the user already has `max` open.
    pub(crate) fn register(
        self: &Arc<Self>,
        user_id: &str,
        connection: u64,
        max: usize,
    ) -> Result<(Registration, queue::Receiver<Outbound>, StreamPosition), TooManyConnections> {
        let (hash, mut shard) = self.shard(user_id);
        let mut first = false;
        let stream = match shard.find_mut(hash, |s| &*s.user_id == user_id) {
            Some(stream) if stream.slots.len() >= max => return Err(TooManyConnections),
            Some(stream) => stream,
            None => {
                first = true;
                let hasher = &self.hasher;
                shard
                    .insert_unique(
                        hash,
                        UserStream {
                            user_id: Arc::from(user_id),
                            stamper: StreamStamper::new(),
                            slots: Vec::new(),
                        },
                        |s| hasher.hash_one(&*s.user_id),
                    )
                    .into_mut()
            }
        };
        let key = Arc::clone(&stream.user_id);
        let (tx, rx) = queue::channel(self.queue_frames);
        stream.slots.push(Slot { connection, tx });
        let position = stream.stamper.position();
        drop(shard);
        let registration = Registration {
            hub: Arc::clone(self),
            user_id: key,
            connection,
            first,
            left: false,
        };
        Ok((registration, rx, position))
    }

    /// Removes a connection; whether it was the user's last.
    fn unregister(&self, user_id: &str, connection: u64) -> bool {
        let (hash, mut shard) = self.shard(user_id);
        if let Ok(mut entry) = shard.find_entry(hash, |s| &*s.user_id == user_id) {
            let stream = entry.get_mut();
            stream.slots.retain(|slot| slot.connection != connection);
            if stream.slots.is_empty() {
                entry.remove();
                return true;
            }
        }
        false
    }

    /// How many connections `user_id` has open on this node.
    pub(crate) fn connections(&self, user_id: &str) -> usize {
        let (hash, shard) = self.shard(user_id);
        shard
            .find(hash, |s| &*s.user_id == user_id)
            .map_or(0, |stream| stream.slots.len())
    }

    /// Users with at least one open connection.
    pub(crate) fn users(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

impl Hub {
    /// Sends a connection-scoped control frame (a reply) to one connection of `user_id`;
    /// whether it was queued.
    pub(crate) fn send_to(&self, user_id: &str, connection: u64, event: Event) -> bool {
        let message_type = event.message_type();
        let text = event.stamp_control().to_json();
        let (hash, shard) = self.shard(user_id);
        let Some(stream) = shard.find(hash, |s| &*s.user_id == user_id) else {
            return false;
        };
        let Some(slot) = stream.slots.iter().find(|s| s.connection == connection) else {
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
        let (hash, mut shard) = self.shard(user_id);
        let Some(stream) = shard.find_mut(hash, |s| &*s.user_id == user_id) else {
            return Delivered::default();
        };
        // Stamped, encoded and queued under the user's lock, so every connection sees the
        // stream's events in `seq` order.
        let (seq, outbound) = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let seq = stream.stamper.emit_into(&event, scratch);
            (seq, Outbound::copied(scratch, event.message_type()))
        });
        let mut connections = 0;
        // Each slot but the last gets a clone, the last the frame itself: with one connection
        // (the usual case) nothing is cloned. A slot whose queue refuses the frame leaves.
        let mut frame = Some(outbound);
        let mut i = 0;
        while let Some(slot) = stream.slots.get(i) {
            let this = if i + 1 == stream.slots.len() {
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
                    stream.slots.remove(i);
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
