//! User streams: which connections each user has open, and delivery of events to all of them.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{AttachError, DeliveryError};
use crate::metrics::Metrics;
use crate::queue::{self, Ended, TrySendError};
use std::time::{Duration, Instant};

use agentwire_events::{Event, StreamPosition};
use agentwire_stream::{
    Decision, Frame, ResumeRequest, UserStream, WindowConfig, WindowStats, WindowStore,
};
use agentwire_types::MessageType;
use axum::extract::ws::Utf8Bytes;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Carries events onto users' streams and connections onto them: the engine behind the
/// [`Emitter`] and behind every connection's `connection_established`.
///
/// The default engine is [`LocalStreams`], in-process: it stamps each event under the user's
/// lock and hands it to the user's connections on this node, and answers a resume from its
/// own replay window. Another engine (a broker shared by several nodes such as
/// `agentwire-redis`, or a wrapper that records or filters) is plugged in with
/// [`ServerBuilder::delivery`](crate::ServerBuilder::delivery), which hands it this node's
/// [`LocalStreams`] to reach the connections it holds. Handlers and connection code do not
/// change with the engine.
///
/// - [`deliver`](Self::deliver) returns at once, never waits: the in-process engine has done
///   everything by then ([`DeliveryStatus::Delivered`], with the `seq`); a networked engine
///   has queued the event for publishing ([`DeliveryStatus::Queued`]) or refused it
///   ([`DeliveryStatus::Failed`]: its store is unreachable, or its bounded queue is full).
/// - [`deliver_confirmed`](Self::deliver_confirmed) also reports the outcome once it is known
///   (the `seq` assigned, or the failure); it is ready at once in-process.
/// - [`attach`](Self::attach) joins a new connection to its user's stream and answers its
///   resume request; a networked engine joins live fan-out first, reads the stream's history
///   from its store, and completes the join with [`Joined::complete`], which merges the two
///   by `seq` (no gap, no duplicate).
pub trait Delivery: Send + Sync + 'static {
    /// Puts `event` on `user_id`'s stream (next `seq`, fresh `event_id`, current time) and
    /// hands it to each of the user's connections, or queues it to be. Never waits.
    fn deliver(&self, user_id: &str, event: Event) -> Delivered;

    /// Delivers `events` to `user_id`'s stream in order, and reports each one's outcome once
    /// it is known, like [`deliver_confirmed`](Self::deliver_confirmed).
    ///
    /// The default calls `deliver_confirmed` for each, so another task's events for the same
    /// user may land between them. An engine that can append the whole batch at once
    /// overrides it, so that the batch gets consecutive `seq`s ([`LocalStreams`] and
    /// `agentwire-redis` do: the publish API relies on it for its dense `seq`s).
    fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Confirmation> {
        events
            .into_iter()
            .map(|event| self.deliver_confirmed(user_id, event))
            .collect()
    }

    /// Like [`deliver`](Self::deliver), and reports the outcome once it is known. The default
    /// reports what `deliver` returned (right for an engine that finishes within `deliver`).
    fn deliver_confirmed(&self, user_id: &str, event: Event) -> Confirmation {
        Confirmation::ready(self.deliver(user_id, event).into_result())
    }

    /// Joins a new connection to its user's stream on this node and answers its resume
    /// request. The default decides in-process ([`Attach::locally`]).
    fn attach(&self, attach: Attach) -> Attaching {
        Attaching::Ready(attach.locally())
    }

    /// Whether the engine can do its work now (`GET /ws/health`). The default: healthy.
    fn health(&self) -> EngineHealth {
        EngineHealth::Healthy
    }

    /// Appends the engine's own metrics, in the Prometheus text format, to `out` (`GET
    /// /metrics`). The default adds none.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }

    /// What `GET /ws/config` shows of the engine under `engine` (never a secret). The default:
    /// `{"kind": "in_process"}`.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "in_process" })
    }
}

/// What [`Delivery::health`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineHealth {
    /// The engine works.
    Healthy,
    /// The engine cannot do all of its work (say, its store is unreachable): open connections
    /// stay open, emits fail visibly. `/ws/health` answers `degraded` with this reason.
    Degraded {
        /// Why, for operators (no secret).
        reason: String,
    },
}

/// What a [`Delivery`] did with one event by the time [`deliver`](Delivery::deliver)
/// returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Connections on this node the event was queued for (0 while it is only queued for
    /// publishing).
    pub connections: usize,
    /// The `seq` it got on the user's stream, when known at return. With the replay window
    /// on, an event for a user without a connection gets one too and waits there for a
    /// resume; `None` when replay is off and the user has no connection here (the event was
    /// dropped), and while a networked engine has it queued ([`DeliveryStatus::Queued`]).
    pub seq: Option<u64>,
    /// What became of the event.
    pub status: DeliveryStatus,
}

impl Delivered {
    /// An event stamped with `seq` and queued for `connections` connections of this node.
    pub fn sent(connections: usize, seq: Option<u64>) -> Delivered {
        Delivered {
            connections,
            seq,
            status: DeliveryStatus::Delivered,
        }
    }

    /// An event queued for publishing; its `seq` comes later.
    pub fn queued() -> Delivered {
        Delivered {
            connections: 0,
            seq: None,
            status: DeliveryStatus::Queued,
        }
    }

    /// An event that is not on the stream, and why.
    pub fn failed(error: DeliveryError) -> Delivered {
        Delivered {
            connections: 0,
            seq: None,
            status: DeliveryStatus::Failed(error),
        }
    }

    /// Whether the engine refused the event ([`DeliveryStatus::Failed`]).
    pub fn is_failed(&self) -> bool {
        matches!(self.status, DeliveryStatus::Failed(_))
    }

    /// `Err` for a failed event, the [`Receipt`] otherwise.
    pub fn into_result(self) -> Result<Receipt, DeliveryError> {
        match self.status {
            DeliveryStatus::Failed(error) => Err(error),
            _ => Ok(Receipt {
                seq: self.seq,
                connections: self.connections,
            }),
        }
    }
}

/// What became of an emitted event, as [`Delivered::status`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Stamped on the stream and queued for this node's connections.
    Delivered,
    /// Accepted by a networked engine, to be published; [`Delivery::deliver_confirmed`] tells
    /// the outcome.
    Queued,
    /// Not on the stream (the engine counts and logs it).
    Failed(DeliveryError),
    /// Nothing was done: the event came after its run's terminal event.
    #[default]
    Dropped,
}

/// The outcome of an event, once the engine knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The event's `seq` on the user's stream (`None` where [`Delivered::seq`] explains).
    pub seq: Option<u64>,
    /// Connections of this node it was queued for.
    pub connections: usize,
}

impl Receipt {
    /// A receipt for an event stamped with `seq` and queued for `connections` connections of
    /// this node.
    pub fn new(seq: Option<u64>, connections: usize) -> Receipt {
        Receipt { seq, connections }
    }
}

/// The outcome of [`Delivery::deliver_confirmed`]: a future, ready at once for an engine that
/// finishes within the call (no allocation then), or completed by the engine through a
/// [`Confirmer`].
#[must_use = "a confirmation does nothing unless awaited"]
pub struct Confirmation(ConfirmationState);

enum ConfirmationState {
    Ready(Option<Result<Receipt, DeliveryError>>),
    Waiting(tokio::sync::oneshot::Receiver<Result<Receipt, DeliveryError>>),
}

impl Confirmation {
    /// A confirmation that is ready now.
    pub fn ready(result: Result<Receipt, DeliveryError>) -> Confirmation {
        Confirmation(ConfirmationState::Ready(Some(result)))
    }

    /// A confirmation the engine completes later through the [`Confirmer`]; a confirmer
    /// dropped unused reports [`DeliveryError::Unknown`].
    pub fn pending() -> (Confirmer, Confirmation) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Confirmer(tx), Confirmation(ConfirmationState::Waiting(rx)))
    }
}

impl Future for Confirmation {
    type Output = Result<Receipt, DeliveryError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            ConfirmationState::Ready(result) => {
                std::task::Poll::Ready(result.take().unwrap_or(Err(DeliveryError::Unknown)))
            }
            ConfirmationState::Waiting(rx) => std::pin::Pin::new(rx)
                .poll(cx)
                .map(|outcome| outcome.unwrap_or(Err(DeliveryError::Unknown))),
        }
    }
}

impl std::fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmation").finish_non_exhaustive()
    }
}

/// Completes a pending [`Confirmation`].
#[derive(Debug)]
pub struct Confirmer(tokio::sync::oneshot::Sender<Result<Receipt, DeliveryError>>);

impl Confirmer {
    /// Reports the event's outcome (ignored if nobody waits for it any more).
    pub fn confirm(self, result: Result<Receipt, DeliveryError>) {
        let _ = self.0.send(result);
    }
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

    /// Emits `event` to every open connection of `user_id`, on every node. Returns at once:
    /// see [`Delivered::status`] for whether the event is on the stream, queued for it, or
    /// refused.
    pub fn emit(&self, user_id: &str, event: Event) -> Delivered {
        self.delivery.deliver(user_id, event)
    }

    /// Emits `events` to `user_id`'s stream in order, at once, and gives a future of each one's
    /// outcome (the `seq` it got, or why it is not on the stream), in the same order. With the
    /// in-process and Redis engines they get consecutive `seq`s (see
    /// [`Delivery::deliver_batch`]); in-process the future is ready at once.
    pub fn emit_batch(
        &self,
        user_id: &str,
        events: Vec<Event>,
    ) -> impl Future<Output = Vec<Result<Receipt, DeliveryError>>> + Send + 'static {
        let confirmations = self.delivery.deliver_batch(user_id, events);
        async move {
            let mut outcomes = Vec::with_capacity(confirmations.len());
            for confirmation in confirmations {
                outcomes.push(confirmation.await);
            }
            outcomes
        }
    }

    /// Emits `event` like [`emit`](Self::emit) and waits for the outcome: the `seq` it got,
    /// or why it is not on the stream. In-process the answer is ready at once.
    ///
    /// ```
    /// # async fn demo(emitter: agentwire_server::Emitter) {
    /// use agentwire_events::Event;
    ///
    /// match emitter.emit_confirmed("user_42", Event::system_message("deployed")).await {
    ///     Ok(receipt) => println!("seq {:?}", receipt.seq),
    ///     Err(error) => eprintln!("not delivered: {error}"),
    /// }
    /// # }
    /// ```
    pub fn emit_confirmed(&self, user_id: &str, event: Event) -> Confirmation {
        self.delivery.deliver_confirmed(user_id, event)
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

    pub(crate) fn delivery(&self) -> &Arc<dyn Delivery> {
        &self.delivery
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

/// A connection joining its user's stream on this node, handed to [`Delivery::attach`].
///
/// An in-process engine calls [`locally`](Self::locally). An engine whose streams live in a
/// shared store calls [`join`](Self::join) first (from then on, the events it passes to
/// [`LocalStreams::deliver_stamped`] for the user are held for this connection), reads where
/// the stream stands and the events the client missed, then calls [`Joined::complete`].
pub struct Attach {
    hub: Arc<Hub>,
    user_id: Arc<str>,
    connection: u64,
    max: usize,
    resume: Option<Box<ResumeRequest>>,
}

impl Attach {
    pub(crate) fn new(
        hub: Arc<Hub>,
        user_id: Arc<str>,
        connection: u64,
        max: usize,
        resume: Option<Box<ResumeRequest>>,
    ) -> Attach {
        Attach {
            hub,
            user_id,
            connection,
            max,
            resume,
        }
    }

    /// The connection's user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The client's `?epoch=&since=`, if it asked to resume.
    pub fn resume(&self) -> Option<&ResumeRequest> {
        self.resume.as_deref()
    }

    /// Joins the user's in-process stream and answers the resume request from this node's
    /// replay window, in one critical section (the replay ends where live events begin).
    ///
    /// # Errors
    ///
    /// [`AttachError::TooManyConnections`] when the user has the maximum open here.
    pub fn locally(self) -> Result<Attached, AttachError> {
        self.hub
            .register(
                &self.user_id,
                self.connection,
                self.max,
                self.resume.as_deref(),
            )
            .map(Attached)
    }

    /// Joins the user's live fan-out on this node without deciding where the stream stands:
    /// events passed to [`LocalStreams::deliver_stamped`] for the user are held for this
    /// connection until [`Joined::complete`].
    ///
    /// # Errors
    ///
    /// [`AttachError::TooManyConnections`] when the user has the maximum open here.
    pub fn join(self) -> Result<Joined, AttachError> {
        self.hub
            .join(&self.user_id, self.connection, self.max)
            .map(|(registration, queue)| Joined {
                registration,
                queue,
                resume: self.resume,
            })
    }
}

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attach")
            .field("user_id", &self.user_id)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// A connection that joined its user's live fan-out and waits for the engine to say where
/// the stream stands ([`complete`](Self::complete)). Dropping it removes the connection.
pub struct Joined {
    registration: Registration,
    queue: queue::Receiver<Outbound>,
    resume: Option<Box<ResumeRequest>>,
}

impl Joined {
    /// The connection's user.
    pub fn user_id(&self) -> &str {
        &self.registration.user_id
    }

    /// The client's `?epoch=&since=`, if it asked to resume.
    pub fn resume(&self) -> Option<&ResumeRequest> {
        self.resume.as_deref()
    }

    /// Where this node's other connections of the user stand, if it holds any (epoch, and the
    /// last `seq` they got): what an engine whose store is unreachable can still say.
    pub fn known_position(&self) -> Option<StreamPosition> {
        self.registration
            .hub
            .known_position(&self.registration.user_id)
    }

    /// Completes the join: the stream is at `position` (its epoch and last `seq`, read from the
    /// engine's store after the join), `decision` answers the client's resume request (`None`
    /// when it made none), and `replay` holds the frames of the replayed events (`from_seq`
    /// through `to_seq`, as first sent) when the decision is `resumed`.
    ///
    /// Events held since the join that the position already covers are dropped; the others
    /// follow the replay, so the connection gets every `seq` once, in order.
    pub fn complete(
        self,
        position: StreamPosition,
        decision: Option<Decision>,
        replay: Vec<String>,
    ) -> Attached {
        let Joined {
            registration,
            queue,
            resume: _,
        } = self;
        let hub = Arc::clone(&registration.hub);
        Attached(hub.complete(registration, queue, position, decision, replay))
    }
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined")
            .field("user_id", &self.registration.user_id)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// A connection on its user's stream: what [`Delivery::attach`] gives the connection.
pub struct Attached(pub(crate) Registered);

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("user_id", &self.0.registration.user_id)
            .finish_non_exhaustive()
    }
}

/// The future [`Delivery::attach`] returns: ready at once in-process, or boxed for an engine
/// that has to wait (once per connection, never per event).
#[non_exhaustive]
pub enum Attaching {
    /// Decided already.
    Ready(Result<Attached, AttachError>),
    /// Decided when this completes.
    Pending(std::pin::Pin<Box<dyn Future<Output = Result<Attached, AttachError>> + Send>>),
}

impl Attaching {
    /// Waits for the decision.
    pub async fn wait(self) -> Result<Attached, AttachError> {
        match self {
            Attaching::Ready(result) => result,
            Attaching::Pending(future) => future.await,
        }
    }
}

impl std::fmt::Debug for Attaching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attaching::Ready(_) => f.write_str("Attaching::Ready"),
            Attaching::Pending(_) => f.write_str("Attaching::Pending"),
        }
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
    /// For a stream held in another engine's store: the last `seq` this connection got (or
    /// was told of in `connection_established`); the next one must be `floor + 1`.
    floor: u64,
}

/// What this node knows of a user whose stream lives in another engine's store (a user
/// joined with [`Attach::join`]).
struct RemoteUser {
    /// The epoch this node's connections of the user were told; `None` before the first
    /// join completes.
    epoch: Option<Box<str>>,
    /// Connections joined but not yet completed, with the events held for them.
    pending: Vec<PendingSlot>,
}

struct PendingSlot {
    connection: u64,
    tx: queue::Sender<Outbound>,
    /// Events delivered since the join: epoch, `seq`, frame.
    held: Vec<(Arc<str>, u64, Outbound)>,
}

/// A user's entry: the stream (epoch, `seq`, the user's place in the replay window) and the
/// connections open on this node. It outlives the connections while the window holds the
/// user's events, so that a client that comes back can resume.
struct UserEntry {
    /// The table's key; registrations share it without allocating.
    user_id: Arc<str>,
    stream: UserStream,
    slots: Vec<Slot>,
    /// Set for a user whose stream lives in another engine's store.
    remote: Option<Box<RemoteUser>>,
}

impl UserEntry {
    fn has_connections(&self) -> bool {
        !self.slots.is_empty() || self.remote.as_ref().is_some_and(|r| !r.pending.is_empty())
    }
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

    /// The replay window the server was configured with: how many events and how long a
    /// user's stream keeps (an engine with its own store applies the same limits there).
    pub fn window(&self) -> &WindowConfig {
        &self.hub.window
    }

    /// Hands an event that the engine's store stamped (its `epoch` and `seq`, and `json`, the
    /// frame exactly as every node sends it) to `user_id`'s connections on this node; how many
    /// got it. Call it in `seq` order per user, from one task.
    ///
    /// A connection joined with [`Attach::join`] and not yet completed holds it; a completed
    /// one gets it if it is the `seq` it needs next (it skips one it already has). A
    /// connection that would miss events (the `seq` is beyond its next) or that follows
    /// another epoch is ended: its client reconnects, resumes, and is answered `resumed` with
    /// what it missed, or `reset`.
    pub fn deliver_stamped(&self, user_id: &str, epoch: &str, seq: u64, json: &str) -> usize {
        self.hub
            .deliver_stamped(user_id, epoch, std::iter::once((seq, json)))
    }

    /// [`deliver_stamped`](Self::deliver_stamped) for several events of one user in one
    /// epoch, in `seq` order (say, the events of one message from the engine's store), under
    /// one lock of the user's table: how many frames were queued in all. The frames are read
    /// only while the user has a connection here.
    pub fn deliver_stamped_many<'a>(
        &self,
        user_id: &str,
        epoch: &str,
        frames: impl IntoIterator<Item = (u64, &'a str)>,
    ) -> usize {
        self.hub.deliver_stamped(user_id, epoch, frames)
    }

    /// Ends `user_id`'s connections on this node that follow another epoch than `epoch` or
    /// have not got every event through `last_seq` (they missed some, say while the node was
    /// cut off from the engine's store); how many. Their clients resume.
    pub fn check_position(&self, user_id: &str, epoch: &str, last_seq: u64) -> usize {
        self.hub.check_position(user_id, epoch, last_seq)
    }

    /// The users with connections on this node that joined with [`Attach::join`], each with
    /// the epoch and the last `seq` its connections got (`None` while all are still joining).
    pub fn joined_users(&self) -> Vec<(Arc<str>, Option<StreamPosition>)> {
        self.hub.remote_users()
    }

    /// Sends a connection-scoped control frame (no `seq`, not replayed; an `error` notice,
    /// say) to every connection on this node; how many queued it.
    pub fn broadcast_control(&self, event: &Event) -> usize {
        self.hub.broadcast_control(event)
    }
}

impl Delivery for LocalStreams {
    fn deliver(&self, user_id: &str, event: Event) -> Delivered {
        self.hub.deliver(user_id, event)
    }

    /// Appends the whole batch under the user's lock: its events get consecutive `seq`s, and
    /// no other event of the user lands between them.
    fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Confirmation> {
        self.hub
            .deliver_batch(user_id, events)
            .into_iter()
            .map(|delivered| Confirmation::ready(delivered.into_result()))
            .collect()
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
    /// The replay window's limits, for engines with a store of their own.
    window: WindowConfig,
}

const SHARDS: usize = 64;

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
            window: *window,
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
            remote: None,
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
    ) -> Result<Registered, AttachError> {
        self.start_sweeping();
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        shard.window.expire(now);
        let entry = match shard.users.find_mut(hash, |s| &*s.user_id == user_id) {
            Some(entry) if entry.slots.len() >= max => {
                return Err(AttachError::TooManyConnections { max });
            }
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
        entry.slots.push(Slot {
            connection,
            tx,
            floor: 0,
        });
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
        if let Some(remote) = &mut user.remote {
            remote.pending.retain(|slot| slot.connection != connection);
            if !remote.pending.is_empty() {
                return false;
            }
        }
        if !user.slots.is_empty() {
            return false;
        }
        if user.remote.is_some() {
            // Its stream lives in the engine's store: nothing to keep here.
            entry.remove();
            return true;
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
                shard.users.iter().filter(|u| u.has_connections()).count()
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

    /// Adds a connection to `user_id`'s live fan-out for a stream held elsewhere, pending
    /// until [`complete`](Self::complete).
    fn join(
        self: &Arc<Self>,
        user_id: &Arc<str>,
        connection: u64,
        max: usize,
    ) -> Result<(Registration, queue::Receiver<Outbound>), AttachError> {
        let now = Instant::now();
        let (hash, mut guard) = self.shard(user_id);
        let shard = &mut *guard;
        let entry = match shard.users.find_mut(hash, |s| s.user_id == *user_id) {
            Some(entry) => entry,
            None => self.insert_user(&mut shard.users, hash, user_id, now),
        };
        let remote = entry.remote.get_or_insert_with(|| {
            Box::new(RemoteUser {
                epoch: None,
                pending: Vec::new(),
            })
        });
        if entry.slots.len() + remote.pending.len() >= max {
            return Err(AttachError::TooManyConnections { max });
        }
        let first = entry.slots.is_empty() && remote.pending.is_empty();
        let (tx, rx) = queue::channel(self.queue_frames);
        remote.pending.push(PendingSlot {
            connection,
            tx,
            held: Vec::new(),
        });
        let key = Arc::clone(&entry.user_id);
        drop(guard);
        Ok((
            Registration {
                hub: Arc::clone(self),
                user_id: key,
                connection,
                first,
                left: false,
            },
            rx,
        ))
    }

    /// The epoch and last `seq` this node's completed connections of `user_id` follow.
    fn known_position(&self, user_id: &str) -> Option<StreamPosition> {
        let (hash, shard) = self.shard(user_id);
        let user = shard.users.find(hash, |s| &*s.user_id == user_id)?;
        let epoch = user.remote.as_ref()?.epoch.as_deref()?;
        let seq = user.slots.iter().map(|slot| slot.floor).max()?;
        Some(StreamPosition::new(epoch, seq))
    }

    /// Completes a join (see [`Joined::complete`]).
    fn complete(
        &self,
        registration: Registration,
        queue: queue::Receiver<Outbound>,
        position: StreamPosition,
        decision: Option<Decision>,
        replay: Vec<String>,
    ) -> Registered {
        let user_id = Arc::clone(&registration.user_id);
        let connection = registration.connection;
        let frames: Vec<Outbound> = replay
            .iter()
            .map(|text| Outbound::copied(text, frame_type(text)))
            .collect();
        let (hash, mut guard) = self.shard(&user_id);
        let shard = &mut *guard;
        if let Some(user) = shard.users.find_mut(hash, |s| s.user_id == user_id)
            && let Some(remote) = user.remote.as_mut()
            && let Some(index) = remote
                .pending
                .iter()
                .position(|p| p.connection == connection)
        {
            let pending = remote.pending.swap_remove(index);
            if remote.epoch.as_deref() != Some(position.epoch.as_str()) {
                // The stream the other connections follow is gone (its store lost it): they
                // cannot place what comes next.
                if remote.epoch.is_some() {
                    for slot in user.slots.drain(..) {
                        slot.tx.end(Ended::StreamInterrupted);
                    }
                }
                remote.epoch = Some(position.epoch.as_str().into());
            }
            let mut floor = position.seq;
            let mut intact = true;
            for (epoch, seq, frame) in pending.held {
                if *epoch != *position.epoch || seq <= floor {
                    continue;
                }
                if seq != floor + 1 || pending.tx.try_send(frame).is_err() {
                    intact = false;
                    break;
                }
                floor = seq;
            }
            if intact {
                user.slots.push(Slot {
                    connection,
                    tx: pending.tx,
                    floor,
                });
            } else {
                pending.tx.end(Ended::StreamInterrupted);
            }
        }
        drop(guard);
        if let Some(decision) = &decision {
            self.metrics.resumed(decision, frames.len());
        }
        Registered {
            registration,
            queue,
            position,
            resume: decision.map(|decision| (decision, frames)),
        }
    }

    /// Hands an event stamped elsewhere (by the engine's store) to `user_id`'s connections
    /// here: those that follow `epoch` and need `seq` next get it; connections still joining
    /// hold it. A connection that would miss events (its next `seq` is lower), or whose
    /// stream restarted in another epoch, is ended so that its client resumes.
    fn deliver_stamped<'a>(
        &self,
        user_id: &str,
        epoch: &str,
        frames: impl IntoIterator<Item = (u64, &'a str)>,
    ) -> usize {
        let (hash, mut guard) = self.shard(user_id);
        let Some(user) = guard.users.find_mut(hash, |s| &*s.user_id == user_id) else {
            return 0;
        };
        if user.remote.is_none() {
            return 0;
        }
        // Shared by the frames held for joining connections (made at most once).
        let mut shared_epoch: Option<Arc<str>> = None;
        let mut connections = 0;
        for (seq, json) in frames {
            connections += self.deliver_stamped_one(user, epoch, &mut shared_epoch, seq, json);
        }
        connections
    }

    /// One frame of [`deliver_stamped`](Self::deliver_stamped), under the shard's lock.
    fn deliver_stamped_one(
        &self,
        user: &mut UserEntry,
        epoch: &str,
        shared_epoch: &mut Option<Arc<str>>,
        seq: u64,
        json: &str,
    ) -> usize {
        let Some(remote) = user.remote.as_mut() else {
            return 0;
        };
        let frame = Outbound::copied(json, frame_type(json));
        if !remote.pending.is_empty() {
            let epoch: &Arc<str> = shared_epoch.get_or_insert_with(|| Arc::from(epoch));
            let limit = self.queue_frames;
            remote.pending.retain_mut(|pending| {
                if pending.held.len() >= limit {
                    self.metrics.queue_drops.fetch_add(1, Relaxed);
                    return false;
                }
                pending.held.push((Arc::clone(epoch), seq, frame.clone()));
                true
            });
        }
        let same_epoch = remote.epoch.as_deref() == Some(epoch);
        let mut connections = 0;
        // The last slot takes the frame itself, the others a clone (as in `append`).
        let mut frame = Some(frame);
        let mut i = 0;
        loop {
            let last = i + 1 == user.slots.len();
            let Some(slot) = user.slots.get_mut(i) else {
                break;
            };
            if same_epoch && seq <= slot.floor {
                i += 1;
                continue;
            }
            if !same_epoch || seq != slot.floor + 1 {
                let slot = user.slots.remove(i);
                slot.tx.end(Ended::StreamInterrupted);
                continue;
            }
            let this = if last { frame.take() } else { frame.clone() };
            let Some(this) = this else { break };
            match slot.tx.try_send(this) {
                Ok(()) => {
                    slot.floor = seq;
                    connections += 1;
                    i += 1;
                }
                Err(error) => {
                    if error == TrySendError::Full {
                        self.metrics.queue_drops.fetch_add(1, Relaxed);
                    }
                    user.slots.remove(i);
                }
            }
        }
        connections
    }

    /// Ends the connections of `user_id` here that follow another epoch than `epoch` or are
    /// behind `last_seq`: they missed events (say, while this node was cut off from the
    /// engine's store), and their clients resume.
    fn check_position(&self, user_id: &str, epoch: &str, last_seq: u64) -> usize {
        let (hash, mut guard) = self.shard(user_id);
        let Some(user) = guard.users.find_mut(hash, |s| &*s.user_id == user_id) else {
            return 0;
        };
        let Some(remote) = user.remote.as_ref() else {
            return 0;
        };
        let same_epoch = remote.epoch.as_deref() == Some(epoch);
        let mut ended = 0;
        let mut i = 0;
        while let Some(slot) = user.slots.get(i) {
            if same_epoch && slot.floor >= last_seq {
                i += 1;
            } else {
                user.slots.remove(i).tx.end(Ended::StreamInterrupted);
                ended += 1;
            }
        }
        ended
    }

    /// The users with a connection here whose stream lives elsewhere, with the epoch and the
    /// last `seq` their connections got (`None` for a user whose connections are all still
    /// joining).
    fn remote_users(&self) -> Vec<(Arc<str>, Option<StreamPosition>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for user in shard.users.iter() {
                let Some(remote) = &user.remote else { continue };
                let position = remote.epoch.as_deref().and_then(|epoch| {
                    let seq = user.slots.iter().map(|slot| slot.floor).max()?;
                    Some(StreamPosition::new(epoch, seq))
                });
                out.push((Arc::clone(&user.user_id), position));
            }
        }
        out
    }

    /// Sends a connection-scoped control frame to every connection on this node; how many
    /// queued it.
    fn broadcast_control(&self, event: &Event) -> usize {
        let text = event.clone().stamp_control().to_json();
        let frame = Outbound::copied(&text, event.message_type());
        let mut sent = 0;
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for user in shard.users.iter() {
                for slot in &user.slots {
                    if slot.tx.try_send(frame.clone()).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        if let agentwire_events::Payload::ErrorReply(reply) = event.payload() {
            let code = agentwire_events::ErrorCode::parse(&reply.code)
                .map_or("other", agentwire_events::ErrorCode::as_str);
            self.metrics.errors_sent(code, sent as u64);
        }
        sent
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
        Delivered::sent(connections, seq)
    }
}

/// The type of an encoded frame, from its leading `{"type":"<name>"` (every frame the events
/// crate writes starts so); `system_message` for text that does not (counted, never parsed).
fn frame_type(json: &str) -> MessageType {
    // Frames are written by agentwire's own writer: the type comes first, by its canonical
    // name (a short one: a byte loop beats a search set up for long text).
    json.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.get(..rest.bytes().position(|b| b == b'"')?))
        .and_then(MessageType::from_canonical)
        .unwrap_or(MessageType::SystemMessage)
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
