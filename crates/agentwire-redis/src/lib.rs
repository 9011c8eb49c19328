//! agentwire's Redis engine: every node that shares one Redis shares one stream per user, so
//! an event emitted on any node reaches the user's connections on every node, with one `seq`
//! order per user, and a client may resume on any node.
//!
//! Plug it into a server with [`ServerBuilder::delivery`](agentwire_server::ServerBuilder::delivery)
//! (the `agentwire serve --redis-url` flag does this):
//!
//! ```no_run
//! use agentwire_redis::{RedisConfig, RedisEngine};
//! use agentwire_server::{DemoAgent, Key, Server, Validator};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder().key(Key::hmac(b"a secret of at least thirty-two bytes!!")?).build()?;
//! let redis = RedisConfig::new("redis://127.0.0.1:6379/0")?;
//! let server = Server::builder(validator)
//!     .handler(DemoAgent::default())
//!     .delivery(move |local| RedisEngine::new(redis, local))
//!     .build();
//! # Ok(()) }
//! ```
//!
//! How it works:
//!
//! - **One stream per user in Redis** (never one global stream, which every recovery would
//!   have to read through): a hash with the epoch and last `seq`, and a list of the events
//!   held for replay, trimmed to the replay window's `max_events` and `max_age`. Both keys
//!   expire `max_age` after the stream's last event; nodes keep the streams of users with
//!   connections alive. Keys are `aw:{<user>}:m` and `aw:{<user>}:l`: the `{user}` hash tag
//!   puts one user's keys on one Redis Cluster shard.
//! - **`seq` assigned atomically in Redis** by a Lua script that appends, trims, refreshes
//!   the expiry and publishes in one step. Emits never wait: they are encoded once and queued
//!   (bounded: past [`RedisConfig::queue_events`], emits fail as `overloaded` rather than
//!   grow memory while Redis is slow), and one task sends them in pipelined batches of up to
//!   [`RedisConfig::batch_events`] emits per round trip, in emit order. The emits of one user
//!   in a batch are one script (their seqs reserved in one step, consecutive) and one channel
//!   message. A batch ([`Emitter::emit_batch`](agentwire_server::Emitter::emit_batch), the
//!   publish API) is likewise appended whole: consecutive seqs, with no other node's event
//!   between them.
//! - **Live fan-out by pub/sub, one channel per user** (`aw:{<user>}:c`): a node subscribes
//!   to the channels of the users it holds connections for, so each event goes only to the
//!   nodes that need it, and a node that dies drops its subscriptions with its connection
//!   (no registry of which node holds whom to clean up, as one channel per node would need).
//!   Every node, the emitting one included, delivers from the channel, so all send the same
//!   bytes with the same `seq`.
//! - **Resume on any node, exactly once**: a connection joins live fan-out first (events
//!   received are held for it), the node subscribes (Redis confirms), then one script reads
//!   the stream's epoch, last `seq` and the missed events; the held events the read already
//!   covers are dropped, the rest follow the replay. The epoch lives in Redis, so a stream
//!   begun on node A resumes on node B as `resumed`.
//! - **Failures are visible**: while Redis is unreachable, `/ws/health` says `degraded` with
//!   the reason, emits fail ([`Delivered::status`](agentwire_server::Delivered) is
//!   `Failed`), connections stay open and are sent one `error` frame with code
//!   `stream_unavailable`, new connections resume as `reset` / `unavailable` (or are closed
//!   1013 when the node knows nothing of the user's stream), and the engine reconnects with
//!   backoff. When Redis lost the streams (a restart without persistence), nodes restore the
//!   streams their connections follow (same epoch, `seq` going on, nothing held), so those
//!   connections carry on; a connection found to have missed events is closed 1012 so that
//!   its client resumes.
//!
//! The client is redis-rs (the `redis` crate): the most used Redis client for Rust, kept by
//! the Redis organisation, with the multiplexed connection, pipelines and scripts this
//! engine needs on tokio, and nothing more compiled in (fred brings its own reconnection and
//! pooling layer, which the engine does itself to report health and metrics). The two
//! connections every event crosses are the engine's own, in RESP2: the publishing one
//! (pipelines of APPEND written straight from the encoded frames) and the subscription one
//! (`SUBSCRIBE`/`UNSUBSCRIBE`, channel messages read in place). Through redis-rs, its
//! argument copies and generic reply parser were most of what a node spent per event beyond
//! the in-process engine.
//!
//! Metrics (in `/metrics`): `agentwire_redis_up`, `agentwire_redis_published_total`,
//! `agentwire_redis_publish_failures_total{reason}`, `agentwire_redis_publish_latency_seconds`
//! (from emit to `seq` assigned), `agentwire_redis_reconnects_total`, and the queue's depth.

mod config;
mod engine;
mod error;
mod metrics;
mod scripts;
mod wire;

pub use config::{DEFAULT_BATCH_EVENTS, DEFAULT_QUEUE_EVENTS, RedisConfig};
pub use engine::RedisEngine;
pub use error::ConfigError;
