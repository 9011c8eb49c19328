//! [`RedisEngine`]: the [`Delivery`] over Redis.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agentwire_events::{ErrorCode, Event, StreamPosition};
use agentwire_server::{
    Attach, AttachError, Attached, Attaching, Confirmation, Confirmer, Delivered, Delivery,
    DeliveryError, EngineHealth, Joined, LocalStreams, Receipt, WindowConfig,
};
use agentwire_stream::{Decision, Held, ResetReason, StreamState, decide};
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::timeout;

use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::scripts::{Script, Scripts};
use crate::wire::{self, Answer, Publisher, Subscriber};

/// How often the engine checks its connection and drops the subscriptions of users who left.
const TICK: Duration = Duration::from_secs(1);

/// How long after a reconnection the engine waits before it ends the connections that are
/// still behind the stream (events published while it was cut off never reach them live).
const RECHECK_AFTER: Duration = Duration::from_secs(2);

/// What `/ws/health` says while a connection to Redis is being made.
const CONNECTING: &str = "connecting to Redis";

/// A user's stream as Redis has it: user, epoch, last `seq`.
type Position = (Arc<str>, String, u64);

/// One event encoded for publishing.
struct Encoded {
    /// The frame without its `seq`'s number, which Redis puts at `split`.
    frame: String,
    split: usize,
    confirmer: Option<Confirmer>,
}

impl Encoded {
    /// The frame before its `seq`'s number, and after it.
    fn halves(&self) -> (&str, &str) {
        self.frame.split_at(self.split)
    }
}

/// A user id owned by a [`Job`]: held in place when it is short (most are), so that an emit
/// allocates nothing for it.
enum UserKey {
    Inline {
        len: u8,
        bytes: [u8; UserKey::INLINE],
    },
    Heap(Box<[u8]>),
}

impl UserKey {
    /// The longest id held in place (with its length byte, the key takes 48 bytes).
    const INLINE: usize = 46;

    fn new(user: &str) -> UserKey {
        let bytes = user.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= UserKey::INLINE => {
                let mut inline = [0; UserKey::INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                UserKey::Inline { len, bytes: inline }
            }
            _ => UserKey::Heap(bytes.into()),
        }
    }

    /// The id's bytes (UTF-8, as it came).
    fn as_bytes(&self) -> &[u8] {
        match self {
            UserKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            UserKey::Heap(bytes) => bytes,
        }
    }
}

/// Events of one user waiting to be published: one, or a batch appended in one script (its
/// events get consecutive seqs).
struct Job {
    user: UserKey,
    first: Encoded,
    /// The rest of a batch (empty for a single event: no allocation).
    rest: Vec<Encoded>,
    emitted: Instant,
}

impl Job {
    fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Reports `outcome(i)` for the job's `i`-th event.
    fn confirm(self, mut outcome: impl FnMut(u64) -> Result<Receipt, DeliveryError>) {
        for (i, encoded) in std::iter::once(self.first).chain(self.rest).enumerate() {
            let result = outcome(i as u64);
            if let Some(confirmer) = encoded.confirmer {
                confirmer.confirm(result);
            }
        }
    }
}

/// The Redis engine: every node that uses the same Redis (and key prefix) shares one stream
/// per user. Plug it in with [`ServerBuilder::delivery`](agentwire_server::ServerBuilder::delivery).
///
/// Created inside a tokio runtime (it spawns the tasks that publish, subscribe and
/// reconnect); dropping it stops them.
pub struct RedisEngine {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::AbortHandle>,
}

struct Inner {
    local: LocalStreams,
    config: RedisConfig,
    client: redis::Client,
    scripts: Scripts,
    window: WindowConfig,
    max_age_ms: u64,
    /// Epochs this node creates start with it (then Redis's clock in µs).
    epoch_prefix: String,
    /// APPEND's first arguments in RESP, the same for every call: `EVALSHA <sha> 2`.
    append_head: Vec<u8>,
    /// APPEND's ARGV before the channel, the same for every call: the epoch prefix, max
    /// events, max age.
    append_limits: Vec<u8>,
    jobs: mpsc::Sender<Job>,
    /// Events queued (a batch counts each of its events), bounded by
    /// [`RedisConfig::queue_events`].
    queued: AtomicUsize,
    /// The command connection, while it works.
    commands: Mutex<Option<MultiplexedConnection>>,
    commands_up: AtomicBool,
    /// Command connections made so far: the publishing connection is made again after a
    /// reconnection (the one it had may lead to a Redis that restarted).
    links: AtomicU64,
    pubsub_up: AtomicBool,
    /// Why Redis counts as unreachable (for `/ws/health`).
    down_reason: Mutex<String>,
    /// Whether this node's connections were told of the current outage.
    told: AtomicBool,
    /// Wakes the connection supervisor when a command failed on the connection.
    broken: Notify,
    /// Set when a connection came back: the supervisor checks positions.
    recheck: AtomicBool,
    /// Held only briefly, never across a round trip to Redis: attaches of different users
    /// subscribe concurrently.
    subs: Mutex<Subscriptions>,
    subscriptions: AtomicUsize,
    metrics: Metrics,
}

/// This node's subscriptions, one channel per user.
#[derive(Default)]
struct Subscriptions {
    sink: Option<Subscriber>,
    /// Counts subscription connections: a SUBSCRIBE confirmed on an older one does not count.
    generation: u64,
    users: HashMap<Arc<str>, Subscription>,
}

impl Subscriptions {
    fn subscribed(&self) -> usize {
        self.users
            .values()
            .filter(|s| matches!(s, Subscription::Subscribed))
            .count()
    }
}

/// Where a user's channel subscription stands. At most one SUBSCRIBE or UNSUBSCRIBE of a
/// user is in flight at a time; a task that finds one waits for it (the receiver's sender is
/// dropped when it is done, after the entry was updated) and looks again.
enum Subscription {
    /// SUBSCRIBE sent, not yet confirmed.
    Subscribing(watch::Receiver<()>),
    /// Confirmed: every event published from now on reaches this node.
    Subscribed,
    /// UNSUBSCRIBE sent (the user has no connection here any more).
    Leaving(watch::Receiver<()>),
}

impl Subscription {
    /// An entry whose task went away (an attach dropped mid-way) without updating it: whether
    /// the channel is subscribed is unknown.
    fn abandoned(&self) -> bool {
        match self {
            Subscription::Subscribed => false,
            Subscription::Subscribing(waiting) | Subscription::Leaving(waiting) => {
                waiting.has_changed().is_err()
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisEngine {
    /// An engine for the node whose connections `local` holds, over the Redis of `config`,
    /// with the node's replay window limits ([`LocalStreams::window`]) applied to the
    /// streams in Redis. It connects in the background: until it has, `/ws/health` says
    /// `degraded` and emits fail with [`DeliveryError::Unavailable`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(config: RedisConfig, local: LocalStreams) -> RedisEngine {
        let client = redis::Client::open(config.url())
            .unwrap_or_else(|_| unreachable_url(config.display_url()));
        let window = *local.window();
        let max_age_ms = u64::try_from(window.max_age.as_millis())
            .unwrap_or(u64::MAX)
            .max(1000);
        let (jobs, receiver) = mpsc::channel(config.queue_events.max(1));
        let id = agentwire_events::next_event_id();
        let scripts = Scripts::new();
        let epoch_prefix = format!("ep_{}_", id.trim_start_matches("evt_"));
        let append_head = wire::args(&[b"EVALSHA", scripts.append.hash.as_bytes(), b"2"]);
        let append_limits = wire::args(&[
            epoch_prefix.as_bytes(),
            window.max_events.to_string().as_bytes(),
            max_age_ms.to_string().as_bytes(),
        ]);
        let inner = Arc::new(Inner {
            local,
            client,
            scripts,
            window,
            max_age_ms,
            epoch_prefix,
            append_head,
            append_limits,
            jobs,
            queued: AtomicUsize::new(0),
            commands: Mutex::new(None),
            commands_up: AtomicBool::new(false),
            links: AtomicU64::new(0),
            pubsub_up: AtomicBool::new(false),
            down_reason: Mutex::new(CONNECTING.to_owned()),
            told: AtomicBool::new(false),
            broken: Notify::new(),
            recheck: AtomicBool::new(false),
            subs: Mutex::new(Subscriptions::default()),
            subscriptions: AtomicUsize::new(0),
            metrics: Metrics::default(),
            config,
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&inner).supervise()).abort_handle(),
            tokio::spawn(Arc::clone(&inner).listen()).abort_handle(),
            tokio::spawn(Arc::clone(&inner).publish(receiver)).abort_handle(),
        ];
        RedisEngine { inner, tasks }
    }

    /// Whether both connections to Redis (commands and subscriptions) work now.
    pub fn is_up(&self) -> bool {
        self.inner.is_up()
    }
}

/// `RedisConfig::new` parsed the URL already; a client that still refuses it is a bug.
fn unreachable_url(url: &str) -> redis::Client {
    panic!("RedisConfig accepted {url} but the client refuses it")
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("config", &self.inner.config)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Delivery for RedisEngine {
    fn deliver(&self, user_id: &str, event: Event) -> Delivered {
        if !event.is_stream_event() {
            // A control frame takes no seq and is not kept: this node's connections only.
            return self.inner.local.deliver(user_id, event);
        }
        let encoded = match self.inner.encode(event, None) {
            Ok(encoded) => encoded,
            Err(error) => return Delivered::failed(error),
        };
        match self.inner.enqueue(user_id, encoded, Vec::new()) {
            Ok(()) => Delivered::queued(),
            Err(error) => Delivered::failed(error),
        }
    }

    fn deliver_confirmed(&self, user_id: &str, event: Event) -> Confirmation {
        if !event.is_stream_event() {
            return Confirmation::ready(self.inner.local.deliver(user_id, event).into_result());
        }
        let (confirmer, confirmation) = Confirmation::pending();
        let encoded = match self.inner.encode(event, Some(confirmer)) {
            Ok(encoded) => encoded,
            Err(error) => return Confirmation::ready(Err(error)),
        };
        match self.inner.enqueue(user_id, encoded, Vec::new()) {
            Ok(()) => confirmation,
            Err(error) => Confirmation::ready(Err(error)),
        }
    }

    /// Appends the whole batch in one script: its events get consecutive `seq`s, and no
    /// other event of the user, from any node, lands between them. A batch is refused or
    /// fails as a whole.
    fn deliver_batch(&self, user_id: &str, events: Vec<Event>) -> Vec<Confirmation> {
        if events.len() < 2 || !events.iter().all(Event::is_stream_event) {
            return events
                .into_iter()
                .map(|event| self.deliver_confirmed(user_id, event))
                .collect();
        }
        let count = events.len();
        let mut confirmations = Vec::with_capacity(count);
        let mut encoded = Vec::with_capacity(count);
        for event in events {
            let (confirmer, confirmation) = Confirmation::pending();
            confirmations.push(confirmation);
            match self.inner.encode(event, Some(confirmer)) {
                Ok(one) => encoded.push(one),
                Err(error) => return failed_batch(count, error),
            }
        }
        let mut encoded = encoded.into_iter();
        let Some(first) = encoded.next() else {
            return Vec::new();
        };
        match self.inner.enqueue(user_id, first, encoded.collect()) {
            Ok(()) => confirmations,
            Err(error) => failed_batch(count, error),
        }
    }

    fn attach(&self, attach: Attach) -> Attaching {
        let joined = match attach.join() {
            Ok(joined) => joined,
            Err(error) => return Attaching::Ready(Err(error)),
        };
        let inner = Arc::clone(&self.inner);
        Attaching::Pending(Box::pin(async move { inner.attach(joined).await }))
    }

    fn health(&self) -> EngineHealth {
        if self.inner.is_up() {
            EngineHealth::Healthy
        } else {
            EngineHealth::Degraded {
                reason: lock(&self.inner.down_reason).clone(),
            }
        }
    }

    fn render_metrics(&self, out: &mut String) {
        let queued = self.inner.queued.load(Relaxed);
        let subscriptions = self.inner.subscriptions.load(Relaxed);
        self.inner.metrics.render(out, queued, subscriptions);
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "redis",
            "url": self.inner.config.display_url(),
            "key_prefix": self.inner.config.key_prefix,
        })
    }
}

impl Inner {
    fn is_up(&self) -> bool {
        self.commands_up.load(Relaxed) && self.pubsub_up.load(Relaxed)
    }

    /// `<prefix>{<user>}:<kind>` (built by hand: `format!` costs several times as much on
    /// the publish path).
    fn key(&self, user: &str, kind: char) -> String {
        let prefix = &self.config.key_prefix;
        let mut key = String::with_capacity(prefix.len() + user.len() + 4);
        key.push_str(prefix);
        key.push('{');
        key.push_str(user);
        key.push_str("}:");
        key.push(kind);
        key
    }

    fn meta_key(&self, user: &str) -> String {
        self.key(user, 'm')
    }

    fn log_key(&self, user: &str) -> String {
        self.key(user, 'l')
    }

    fn channel(&self, user: &str) -> String {
        self.key(user, 'c')
    }

    fn user_of_channel<'c>(&self, channel: &'c str) -> Option<&'c str> {
        channel
            .strip_prefix(self.config.key_prefix.as_str())?
            .strip_prefix('{')?
            .strip_suffix("}:c")
    }

    /// Counts `events` emits that failed with `error`.
    fn failed(&self, error: DeliveryError, events: usize) -> DeliveryError {
        let counter = match error {
            DeliveryError::Overloaded => &self.metrics.failed_overloaded,
            DeliveryError::Unknown => &self.metrics.failed_unknown,
            _ => &self.metrics.failed_unavailable,
        };
        counter.fetch_add(events as u64, Relaxed);
        tracing::debug!(target: "agentwire::redis", code = error.code(), events, "emit failed");
        error
    }

    /// Encodes `event` once, without the number of its `seq` (Redis puts it in).
    fn encode(&self, event: Event, confirmer: Option<Confirmer>) -> Result<Encoded, DeliveryError> {
        let mut frame = String::new();
        let Some(split) = event.write_unsequenced(&mut frame) else {
            return Err(self.failed(DeliveryError::Unknown, 1));
        };
        Ok(Encoded {
            frame,
            split,
            confirmer,
        })
    }

    /// Queues one event (`rest` empty) or a batch for the publisher, unless Redis is
    /// unreachable or the queue holds [`RedisConfig::queue_events`] events already.
    fn enqueue(
        &self,
        user_id: &str,
        first: Encoded,
        rest: Vec<Encoded>,
    ) -> Result<(), DeliveryError> {
        let count = 1 + rest.len();
        if !self.is_up() {
            return Err(self.failed(DeliveryError::Unavailable, count));
        }
        let before = self.queued.fetch_add(count, Relaxed);
        if before + count > self.config.queue_events {
            self.queued.fetch_sub(count, Relaxed);
            return Err(self.failed(DeliveryError::Overloaded, count));
        }
        let job = Job {
            user: UserKey::new(user_id),
            first,
            rest,
            emitted: Instant::now(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.queued.fetch_sub(count, Relaxed);
                Err(self.failed(
                    match error {
                        mpsc::error::TrySendError::Full(_) => DeliveryError::Overloaded,
                        mpsc::error::TrySendError::Closed(_) => DeliveryError::Unavailable,
                    },
                    count,
                ))
            }
        }
    }

    /// Publishes queued events, a pipelined batch of jobs per round trip, in emit order, on
    /// a connection of its own.
    async fn publish(self: Arc<Self>, mut receiver: mpsc::Receiver<Job>) {
        let max = self.config.batch_events;
        let mut batch: Vec<Job> = Vec::with_capacity(max);
        let mut publisher: Option<(u64, Publisher)> = None;
        loop {
            if receiver.recv_many(&mut batch, max).await == 0 {
                return;
            }
            let events: usize = batch.iter().map(Job::len).sum();
            self.send(&mut batch, events, &mut publisher).await;
            self.queued.fetch_sub(events, Relaxed);
        }
    }

    /// Fails every job of `batch` with `error` (counted).
    fn fail_all(&self, batch: &mut Vec<Job>, events: usize, error: DeliveryError) {
        let error = self.failed(error, events);
        for job in batch.drain(..) {
            job.confirm(|_| Err(error));
        }
    }

    /// Sends `batch` (`events` events in all) in one pipeline and confirms each event. The
    /// jobs of one user are appended by one script and published as one channel message, in
    /// emit order: consecutive seqs, one round of script overhead, one message to parse on
    /// every node. `publisher` is the publishing connection and the connection count it was
    /// made in: a new one is made after Redis was reconnected.
    async fn send(
        &self,
        batch: &mut Vec<Job>,
        events: usize,
        publisher: &mut Option<(u64, Publisher)>,
    ) {
        if !self.is_up() {
            return self.fail_all(batch, events, DeliveryError::Unavailable);
        }
        let links = self.links.load(Relaxed);
        if publisher.as_ref().is_none_or(|(made, _)| *made != links) {
            *publisher = None;
            let script = &self.scripts.append;
            let connected = timeout(
                self.config.timeout,
                Publisher::connect(
                    self.client.get_connection_info(),
                    &script.code,
                    &script.hash,
                ),
            )
            .await;
            match connected {
                Ok(Ok(connection)) => *publisher = Some((links, connection)),
                other => {
                    let reason = match other {
                        Ok(Err(error)) => format!("cannot publish: {:?}", error.kind()),
                        _ => "connecting to publish timed out".to_owned(),
                    };
                    tracing::warn!(target: "agentwire::redis", events, %reason, "publish failed");
                    self.fail_all(batch, events, DeliveryError::Unavailable);
                    self.lost(&reason);
                    self.broken.notify_one();
                    return;
                }
            }
        }
        let Some((_, connection)) = publisher.as_mut() else {
            return self.fail_all(batch, events, DeliveryError::Unavailable);
        };
        let groups = group_by_user(batch);
        let prefix = self.config.key_prefix.as_bytes();
        for group in &groups {
            let user = group.jobs[0].user.as_bytes();
            connection.command(9 + 2 * group.events);
            // `EVALSHA <sha> 2`
            connection.raw(&self.append_head);
            connection.arg_parts(&[prefix, b"{", user, b"}:m"]);
            connection.arg_parts(&[prefix, b"{", user, b"}:l"]);
            // The epoch prefix, max events, max age.
            connection.raw(&self.append_limits);
            connection.arg_parts(&[prefix, b"{", user, b"}:c"]);
            for job in &group.jobs {
                for encoded in std::iter::once(&job.first).chain(&job.rest) {
                    let (head, tail) = encoded.halves();
                    connection.arg(head.as_bytes());
                    connection.arg(tail.as_bytes());
                }
            }
        }
        let outcome = timeout(self.config.timeout, connection.round_trip()).await;
        match outcome {
            Ok(Ok(answers)) if answers.len() == groups.len() => {
                self.metrics.batches.fetch_add(1, Relaxed);
                let now = Instant::now();
                for (group, answer) in groups.into_iter().zip(answers) {
                    match answer {
                        Answer::Integer(first_seq) => {
                            let mut next = u64::try_from(first_seq).unwrap_or_default();
                            for job in group.jobs {
                                let elapsed = now.saturating_duration_since(job.emitted);
                                let first = next;
                                next += job.len() as u64;
                                self.metrics.published(elapsed, job.len() as u64);
                                job.confirm(|i| Ok(Receipt::new(Some(first + i), 0)));
                            }
                        }
                        Answer::Error(text) => {
                            // This user's script failed (say, Redis is out of memory); the
                            // others in the pipeline stand.
                            let reason = text.split(' ').next().unwrap_or_default();
                            tracing::warn!(target: "agentwire::redis", events = group.events, reason, "append failed");
                            if reason == "NOSCRIPT" {
                                // Redis's script cache was flushed: load it again.
                                *publisher = None;
                            }
                            let error = self.failed(DeliveryError::Unknown, group.events);
                            for job in group.jobs {
                                job.confirm(|_| Err(error));
                            }
                        }
                    }
                }
            }
            other => {
                let reason = match other {
                    Ok(Err(error)) => format!("publishing failed: {:?}", error.kind()),
                    Err(_) => "publishing timed out".to_owned(),
                    Ok(Ok(_)) => "publishing answered a short batch".to_owned(),
                };
                *publisher = None;
                tracing::warn!(target: "agentwire::redis", events, %reason, "publish failed");
                let error = self.failed(DeliveryError::Unknown, events);
                for job in groups.into_iter().flat_map(|group| group.jobs) {
                    job.confirm(|_| Err(error));
                }
                self.lost(&reason);
                self.broken.notify_one();
            }
        }
    }

    /// A connection to Redis was lost (or never made): health degraded, and this node's
    /// connections are told once per outage.
    fn lost(&self, reason: &str) {
        *lock(&self.down_reason) = reason.to_owned();
        if !self.told.swap(true, Relaxed) {
            self.metrics.up.store(0, Relaxed);
            tracing::warn!(target: "agentwire::redis", reason, "Redis unreachable: emits fail until it is back");
            let notice = Event::error(
                ErrorCode::StreamUnavailable,
                "the event store is unreachable: events emitted now are not delivered; \
                 reconnect with ?epoch=&since= once it is back to find out what you missed",
            );
            self.local.broadcast_control(&notice);
        }
    }

    fn update_up(&self) {
        if self.is_up() {
            if self.told.swap(false, Relaxed) {
                tracing::info!(target: "agentwire::redis", "Redis reachable again");
            }
            self.metrics.up.store(1, Relaxed);
        }
    }

    async fn connect_commands(&self) -> Result<MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| format!("cannot connect to Redis: {}", kind(&error)))?;
        for script in self.scripts.all() {
            let loaded: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(&script.code)
                .query_async(&mut connection)
                .await
                .map_err(|error| format!("cannot load scripts: {}", kind(&error)))?;
            if loaded != script.hash {
                return Err("Redis hashed a script differently".to_owned());
            }
        }
        Ok(connection)
    }

    /// Keeps the command connection: connects with backoff, checks it every tick, keeps the
    /// streams of this node's users alive, and drops the subscriptions of users who left.
    async fn supervise(self: Arc<Self>) {
        let mut backoff = self.config.min_backoff;
        let mut connected_before = false;
        loop {
            let connection = match self.connect_commands().await {
                Ok(connection) => connection,
                Err(reason) => {
                    self.lost(&reason);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            if connected_before {
                self.metrics.reconnects.fetch_add(1, Relaxed);
                self.recheck.store(true, Relaxed);
            }
            connected_before = true;
            backoff = self.config.min_backoff;
            *lock(&self.commands) = Some(connection.clone());
            self.links.fetch_add(1, Relaxed);
            self.commands_up.store(true, Relaxed);
            self.update_up();
            tracing::info!(target: "agentwire::redis", url = self.config.display_url(), "connected to Redis");
            self.serve_connection(connection).await;
            *lock(&self.commands) = None;
            self.commands_up.store(false, Relaxed);
        }
    }

    /// Runs the periodic work on a working connection until it fails.
    async fn serve_connection(&self, mut connection: MultiplexedConnection) {
        let keepalive_every = (self.window.max_age / 4).clamp(TICK, Duration::from_secs(60));
        let mut last_keepalive: Option<Instant> = None;
        let mut due_check: Option<(Instant, Vec<Position>)> = None;
        loop {
            if self.recheck.swap(false, Relaxed) {
                // Connections that missed events while this node was cut off are found by
                // comparing with what Redis holds, a little later (events published just
                // before the read are still on their way).
                match self.keepalive(&mut connection).await {
                    Ok(positions) => due_check = Some((Instant::now() + RECHECK_AFTER, positions)),
                    Err(reason) => return self.lost(&reason),
                }
                last_keepalive = Some(Instant::now());
            }
            if last_keepalive.is_none_or(|at| at.elapsed() >= keepalive_every) {
                if let Err(reason) = self.keepalive(&mut connection).await {
                    return self.lost(&reason);
                }
                last_keepalive = Some(Instant::now());
            }
            if let Some((at, positions)) = &due_check
                && Instant::now() >= *at
            {
                for (user, epoch, last) in positions {
                    let ended = self.local.check_position(user, epoch, *last);
                    self.metrics.interrupted.fetch_add(ended as u64, Relaxed);
                }
                due_check = None;
            }
            if let Err(reason) = self.forget_leavers(&mut connection).await {
                return self.lost(&reason);
            }
            tokio::select! {
                () = self.broken.notified() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let ping: Result<Result<String, _>, _> = timeout(
                self.config.timeout,
                redis::cmd("PING").query_async(&mut connection),
            )
            .await;
            if !matches!(ping, Ok(Ok(_))) {
                return self.lost("Redis does not answer PING");
            }
        }
    }

    /// Keeps alive (restoring if Redis lost them) the streams this node's connections follow;
    /// ends at once the connections of a stream that restarted in another epoch. Returns the
    /// streams' positions.
    async fn keepalive(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<Vec<Position>, String> {
        let users: Vec<(Arc<str>, StreamPosition)> = self
            .local
            .joined_users()
            .into_iter()
            .filter_map(|(user, position)| Some((user, position?)))
            .collect();
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(self.config.batch_events) {
            let mut pipe = redis::pipe();
            for (user, position) in chunk {
                self.eval(&mut pipe, &self.scripts.keepalive, user)
                    .arg(&position.epoch)
                    .arg(position.seq)
                    .arg(self.max_age_ms);
            }
            let results: Vec<(String, u64)> =
                timeout(self.config.timeout, pipe.query_async(connection))
                    .await
                    .map_err(|_| "keep-alive timed out".to_owned())?
                    .map_err(|error| format!("keep-alive failed: {}", kind(&error)))?;
            for ((user, position), (epoch, last)) in chunk.iter().zip(results) {
                if epoch != position.epoch {
                    let ended = self.local.check_position(user, &epoch, last);
                    self.metrics.interrupted.fetch_add(ended as u64, Relaxed);
                }
                out.push((Arc::clone(user), epoch, last));
            }
        }
        Ok(out)
    }

    /// Unsubscribes from the users who have no connection here any more, and keeps their
    /// streams `max_age` from now for them to resume.
    async fn forget_leavers(&self, connection: &mut MultiplexedConnection) -> Result<(), String> {
        let (leavers, sink, done) = {
            let mut subs = lock(&self.subs);
            if subs.users.is_empty() {
                return Ok(());
            }
            // Decided under the lock that attaches check: a connection that joins after this
            // finds its user `Leaving` and subscribes again once the UNSUBSCRIBE is through.
            let joined: HashSet<Arc<str>> = self
                .local
                .joined_users()
                .into_iter()
                .map(|(user, _)| user)
                .collect();
            let leavers: Vec<Arc<str>> = subs
                .users
                .iter()
                .filter(|(user, state)| {
                    (matches!(state, Subscription::Subscribed) || state.abandoned())
                        && !joined.contains(*user)
                })
                .map(|(user, _)| Arc::clone(user))
                .collect();
            if leavers.is_empty() {
                return Ok(());
            }
            let (done, waiting) = watch::channel(());
            for user in &leavers {
                subs.users
                    .insert(Arc::clone(user), Subscription::Leaving(waiting.clone()));
            }
            (leavers, subs.sink.clone(), done)
        };
        if let Some(sink) = sink {
            let channels: Vec<String> = leavers.iter().map(|user| self.channel(user)).collect();
            // A failure here leaves a subscription whose events find no connection: harmless.
            let _ = timeout(self.config.timeout, sink.unsubscribe(&channels)).await;
        }
        {
            let mut subs = lock(&self.subs);
            for user in &leavers {
                if matches!(subs.users.get(user), Some(Subscription::Leaving(_))) {
                    subs.users.remove(user);
                }
            }
            self.subscriptions.store(subs.subscribed(), Relaxed);
        }
        drop(done);
        let mut pipe = redis::pipe();
        for user in &leavers {
            self.eval(&mut pipe, &self.scripts.touch, user)
                .arg(self.max_age_ms);
        }
        timeout(self.config.timeout, pipe.query_async::<()>(connection))
            .await
            .map_err(|_| "touch timed out".to_owned())?
            .map_err(|error| format!("touch failed: {}", kind(&error)))
    }

    /// Adds `EVALSHA script 2 meta log` for `user` to `pipe`; the caller adds the ARGV.
    fn eval<'p>(
        &self,
        pipe: &'p mut redis::Pipeline,
        script: &Script,
        user: &str,
    ) -> &'p mut redis::Pipeline {
        pipe.cmd("EVALSHA")
            .arg(&script.hash)
            .arg(2)
            .arg(self.meta_key(user))
            .arg(self.log_key(user))
    }

    /// Keeps the subscription connection: connects with backoff, subscribes to the channels
    /// of every user with a connection here, and hands each event received to them.
    async fn listen(self: Arc<Self>) {
        let mut backoff = self.config.min_backoff;
        let mut connected_before = false;
        loop {
            let connected = timeout(
                self.config.timeout,
                wire::connect(self.client.get_connection_info()),
            )
            .await;
            let (sink, connection) = match connected {
                Ok(Ok(pair)) => pair,
                other => {
                    let reason = match other {
                        Ok(Err(error)) => format!("cannot subscribe: {:?}", error.kind()),
                        _ => "subscribing timed out".to_owned(),
                    };
                    self.lost(&reason);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            let driver = connection.run(|channel, payload| self.on_message(channel, payload));
            tokio::pin!(driver);
            // Attaches fall back while the subscription connection is down, so nothing
            // subscribes meanwhile: the users joined now are all there is to restore.
            let users: HashSet<Arc<str>> = self
                .local
                .joined_users()
                .into_iter()
                .map(|(user, _)| user)
                .collect();
            let restore = async {
                for user in &users {
                    let channel = self.channel(user);
                    if !matches!(
                        timeout(self.config.timeout, sink.subscribe(&channel)).await,
                        Ok(Ok(()))
                    ) {
                        return false;
                    }
                }
                true
            };
            let restored = tokio::select! {
                restored = restore => restored,
                _ = &mut driver => false,
            };
            if !restored {
                self.lost("cannot subscribe");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.config.max_backoff);
                continue;
            }
            {
                let mut subs = lock(&self.subs);
                subs.generation += 1;
                subs.users = users
                    .into_iter()
                    .map(|user| (user, Subscription::Subscribed))
                    .collect();
                subs.sink = Some(sink);
                self.subscriptions.store(subs.users.len(), Relaxed);
            }
            if connected_before {
                self.metrics.reconnects.fetch_add(1, Relaxed);
                self.recheck.store(true, Relaxed);
            }
            connected_before = true;
            backoff = self.config.min_backoff;
            self.pubsub_up.store(true, Relaxed);
            self.update_up();
            let error = driver.await;
            tracing::debug!(target: "agentwire::redis", kind = ?error.kind(), "subscription connection ended");
            self.pubsub_up.store(false, Relaxed);
            // The command connection went with it, most likely (Redis restarted): make a new
            // one too rather than find out on the next publish.
            self.commands_up.store(false, Relaxed);
            *lock(&self.commands) = None;
            self.broken.notify_one();
            {
                let mut subs = lock(&self.subs);
                subs.sink = None;
                subs.generation += 1;
                subs.users.clear();
                self.subscriptions.store(0, Relaxed);
            }
            self.lost("the subscription connection to Redis was lost");
        }
    }

    /// The events of one append from a user's channel: `<epoch>|<first seq>|` followed by
    /// `<bytes>|<frame>` for each, their seqs consecutive from the first.
    fn on_message(&self, channel: &[u8], payload: &[u8]) {
        let Some(user) = std::str::from_utf8(channel)
            .ok()
            .and_then(|channel| self.user_of_channel(channel))
        else {
            return;
        };
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let Some((epoch, first, frames)) = parse_message(text) else {
            tracing::warn!(target: "agentwire::redis", user, "malformed channel message ignored");
            return;
        };
        let mut received = 0u64;
        let mut malformed = None;
        let mut frames = (first..).zip(frames).map_while(|(seq, frame)| {
            if frame.is_none() {
                malformed = Some(seq);
            } else {
                received += 1;
            }
            Some(seq).zip(frame)
        });
        // All of them under one lock of the user's table.
        self.local.deliver_stamped_many(user, epoch, &mut frames);
        // What the user's table did not read (it has no connection here any more): counted
        // and checked all the same.
        frames.for_each(drop);
        self.metrics.received.fetch_add(received, Relaxed);
        if let Some(seq) = malformed {
            tracing::warn!(target: "agentwire::redis", user, seq, "malformed channel message cut short");
        }
    }

    /// Subscribes this node to `user`'s channel (once), waiting for Redis to confirm. Only
    /// this user's own SUBSCRIBE or UNSUBSCRIBE in flight is waited for: attaches of
    /// different users proceed at once.
    async fn subscribe(&self, user: &Arc<str>) -> Result<(), ()> {
        let (sink, generation, done) = loop {
            let mut waiting = {
                let mut subs = lock(&self.subs);
                match subs.users.get(user) {
                    Some(Subscription::Subscribed) => return Ok(()),
                    Some(
                        state @ (Subscription::Subscribing(waiting)
                        | Subscription::Leaving(waiting)),
                    ) if !state.abandoned() => waiting.clone(),
                    _ => {
                        let sink = subs.sink.clone().ok_or(())?;
                        let (done, waiting) = watch::channel(());
                        subs.users
                            .insert(Arc::clone(user), Subscription::Subscribing(waiting));
                        break (sink, subs.generation, done);
                    }
                }
            };
            // Ends when the other task drops its sender; then look again.
            if timeout(self.config.timeout, waiting.changed())
                .await
                .is_err()
            {
                return Err(());
            }
        };
        let confirmed = matches!(
            timeout(self.config.timeout, sink.subscribe(&self.channel(user))).await,
            Ok(Ok(()))
        );
        let mut subs = lock(&self.subs);
        let result = if subs.generation != generation {
            // The connection it was confirmed on is gone; the new one subscribed every
            // joined user itself.
            if matches!(subs.users.get(user), Some(Subscription::Subscribed)) {
                Ok(())
            } else {
                Err(())
            }
        } else if confirmed {
            subs.users
                .insert(Arc::clone(user), Subscription::Subscribed);
            Ok(())
        } else {
            subs.users.remove(user);
            Err(())
        };
        self.subscriptions.store(subs.subscribed(), Relaxed);
        drop(subs);
        drop(done);
        result
    }

    /// Joins a connection to its user's stream: subscribed first, then the stream's state and
    /// the missed events read in one script, merged by `seq` with what arrived in between.
    async fn attach(&self, joined: Joined) -> Result<Attached, AttachError> {
        if !self.is_up() {
            return self.fallback(joined);
        }
        let user: Arc<str> = Arc::from(joined.user_id());
        if self.subscribe(&user).await.is_err() {
            return self.fallback(joined);
        }
        let Some(mut connection) = lock(&self.commands).clone() else {
            return self.fallback(joined);
        };
        let (client_epoch, since) = match joined.resume() {
            Some(request) => (request.epoch().to_owned(), request.since().to_string()),
            None => (String::new(), "-1".to_owned()),
        };
        let mut pipe = redis::pipe();
        self.eval(&mut pipe, &self.scripts.attach, &user)
            .arg(&self.epoch_prefix)
            .arg(&client_epoch)
            .arg(&since)
            .arg(self.max_age_ms);
        let read = timeout(
            self.config.timeout,
            pipe.query_async::<Vec<(String, u64, u64, Vec<String>)>>(&mut connection),
        )
        .await;
        let Ok(Ok(mut results)) = read else {
            return self.fallback(joined);
        };
        let Some((epoch, last, held, frames)) = results.pop() else {
            return self.fallback(joined);
        };
        let held = if self.window.max_events == 0 {
            Held::Off
        } else if held == 0 {
            Held::Nothing
        } else {
            Held::From(last.saturating_sub(held) + 1)
        };
        let state = StreamState::Known {
            epoch: &epoch,
            last_seq: last,
            held,
        };
        let mut decision = joined.resume().map(|request| decide(&state, request));
        let mut replay = Vec::new();
        if let Some(Decision::Resumed(range)) = decision
            && !range.is_empty()
        {
            if frames.len() as u64 == range.len() {
                replay = frames
                    .into_iter()
                    .map(|entry| match entry.split_once('|') {
                        Some((_, frame)) => frame.to_owned(),
                        None => entry,
                    })
                    .collect();
            } else {
                // Never a partial replay.
                decision = Some(Decision::Reset(ResetReason::OutsideWindow));
            }
        }
        Ok(joined.complete(StreamPosition::new(epoch, last), decision, replay))
    }

    /// Redis is unreachable: the connection follows what this node's other connections of
    /// the user follow, and a resume cannot be proven; with none, it cannot open.
    fn fallback(&self, joined: Joined) -> Result<Attached, AttachError> {
        self.metrics.attach_fallbacks.fetch_add(1, Relaxed);
        let Some(position) = joined.known_position() else {
            return Err(AttachError::Unavailable);
        };
        let decision = joined
            .resume()
            .map(|_| Decision::Reset(ResetReason::Unavailable));
        Ok(joined.complete(position, decision, Vec::new()))
    }
}

/// `count` confirmations that all report `error`.
fn failed_batch(count: usize, error: DeliveryError) -> Vec<Confirmation> {
    (0..count)
        .map(|_| Confirmation::ready(Err(error)))
        .collect()
}

/// What went wrong, without anything the error may quote of the URL (a password).
fn kind(error: &redis::RedisError) -> String {
    let kind = format!("{:?}", error.kind());
    if error.is_timeout() {
        format!("{kind} (timed out)")
    } else if error.is_connection_refusal() {
        format!("{kind} (connection refused)")
    } else {
        kind
    }
}

/// The jobs of one user in a flush, in emit order, and how many events they hold.
struct Group {
    jobs: Vec<Job>,
    events: usize,
}

/// Up to this many jobs in a flush are grouped by comparing users, beyond it by a table.
const GROUP_BY_SCAN: usize = 16;

/// Splits `batch` by user, each user's jobs in emit order, users in order of their first job.
fn group_by_user(batch: &mut Vec<Job>) -> Vec<Group> {
    let slots: Vec<usize> = if batch.len() <= GROUP_BY_SCAN {
        // A few jobs (light load): the users seen so far, by comparison.
        let mut users: Vec<&[u8]> = Vec::with_capacity(batch.len());
        batch
            .iter()
            .map(|job| {
                let user = job.user.as_bytes();
                users.iter().position(|&u| u == user).unwrap_or_else(|| {
                    users.push(user);
                    users.len() - 1
                })
            })
            .collect()
    } else {
        let mut index: hashbrown::HashMap<&[u8], usize> =
            hashbrown::HashMap::with_capacity(batch.len());
        batch
            .iter()
            .map(|job| {
                let next = index.len();
                *index.entry(job.user.as_bytes()).or_insert(next)
            })
            .collect()
    };
    let users = slots.iter().max().map_or(0, |&max| max + 1);
    let mut groups: Vec<Group> = Vec::with_capacity(users);
    for (job, slot) in batch.drain(..).zip(slots) {
        let events = job.len();
        if let Some(group) = groups.get_mut(slot) {
            group.events += events;
            group.jobs.push(job);
        } else {
            groups.push(Group {
                jobs: vec![job],
                events,
            });
        }
    }
    groups
}

/// One channel message: `<epoch>|<first seq>|` then `<bytes>|<frame>` for each event. Gives
/// the epoch, the first seq and the frames; `None` when the head is malformed.
fn parse_message(text: &str) -> Option<(&str, u64, Frames<'_>)> {
    let (epoch, rest) = text.split_once('|')?;
    let (first, rest) = rest.split_once('|')?;
    let first = first.parse::<u64>().ok()?;
    Some((epoch, first, Frames { rest }))
}

/// The frames of a channel message, in order: `None` for one that is cut short or
/// malformed, after which the iterator ends.
struct Frames<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Option<&'a str>> {
        if self.rest.is_empty() {
            return None;
        }
        let frame = self.rest.split_once('|').and_then(|(len, rest)| {
            let len = len.parse::<usize>().ok()?;
            let frame = rest.get(..len)?;
            self.rest = &rest[len..];
            Some(frame)
        });
        if frame.is_none() {
            self.rest = "";
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_message_splits_into_its_frames() {
        let frames = [r#"{"a":"x|y"}"#, "{}", "{\"b\":\"\u{e9}\n\"}"];
        let mut text = String::from("ep_1|41|");
        for frame in frames {
            text.push_str(&format!("{}|{frame}", frame.len()));
        }
        let (epoch, first, parsed) = parse_message(&text).unwrap();
        assert_eq!((epoch, first), ("ep_1", 41));
        let parsed: Vec<Option<&str>> = parsed.collect();
        assert_eq!(parsed, frames.map(Some));
    }

    #[test]
    fn a_malformed_channel_message_is_refused_or_cut_short() {
        assert!(parse_message("ep_1").is_none());
        assert!(parse_message("ep_1|x|2|{}").is_none());
        let (_, _, frames) = parse_message("ep_1|1|2|{}9|{}").unwrap();
        assert_eq!(frames.collect::<Vec<_>>(), [Some("{}"), None]);
        // A length that ends inside a character.
        let (_, _, frames) = parse_message("ep_1|1|1|\u{e9}").unwrap();
        assert_eq!(frames.collect::<Vec<_>>(), [None]);
    }

    fn job(user: &str, events: usize) -> Job {
        let encoded = || Encoded {
            frame: String::new(),
            split: 0,
            confirmer: None,
        };
        Job {
            user: UserKey::new(user),
            first: encoded(),
            rest: (1..events).map(|_| encoded()).collect(),
            emitted: Instant::now(),
        }
    }

    #[test]
    fn jobs_are_grouped_by_user_in_emit_order() {
        let long = "u".repeat(UserKey::INLINE + 1);
        let edge = "é".repeat(UserKey::INLINE / 2);
        let users = ["a", long.as_str(), "b", edge.as_str(), "", "ab"];
        // Few jobs (grouped by comparison) and many (by a table).
        for rounds in [1, 2, 5] {
            let mut batch = Vec::new();
            let mut expected: Vec<(&str, Vec<usize>)> = Vec::new();
            for round in 0..rounds {
                for (i, user) in users.iter().enumerate() {
                    let events = 1 + (i + round) % 3;
                    batch.push(job(user, events));
                    match expected.iter_mut().find(|(u, _)| u == user) {
                        Some((_, sizes)) => sizes.push(events),
                        None => expected.push((user, vec![events])),
                    }
                }
            }
            let groups = group_by_user(&mut batch);
            assert!(batch.is_empty());
            assert_eq!(groups.len(), expected.len());
            for (group, (user, sizes)) in groups.iter().zip(&expected) {
                assert!(
                    group
                        .jobs
                        .iter()
                        .all(|job| job.user.as_bytes() == user.as_bytes())
                );
                let got: Vec<usize> = group.jobs.iter().map(Job::len).collect();
                assert_eq!(&got, sizes);
                assert_eq!(group.events, sizes.iter().sum::<usize>());
            }
        }
    }

    #[test]
    fn an_event_is_encoded_in_two_halves_around_its_seq() {
        let mut frame = String::new();
        let event = Event::agent_thinking("run_\"seq\":1", "\"seq\":2");
        let split = event.write_unsequenced(&mut frame).unwrap();
        let encoded = Encoded {
            frame,
            split,
            confirmer: None,
        };
        let (head, tail) = encoded.halves();
        assert!(head.ends_with(r#","seq":"#), "{head}");
        assert!(tail.starts_with(r#","payload":"#), "{tail}");
        let whole = format!("{head}7{tail}");
        let parsed = agentwire_events::parse_outbound(&whole).unwrap();
        assert_eq!((parsed.seq(), parsed.event()), (Some(7), &event));
    }
}
