//! The agentwire server: the WebSocket layer of an AI-agent chat product, ready to run.
//!
//! It composes the protocol crates (`agentwire-types`, `-auth`, `-events`, `-state`,
//! `-session`, re-exported as [`types`], [`auth`], [`events`], [`state`], [`session`]) and
//! adds only transport, routing and lifecycle: the per-connection rules are
//! [`agentwire_session::Session`]'s, and this crate drives it over a socket.
//!
//! - [`Server::router`]: an axum [`Router`](axum::Router) with `GET /ws` and `GET /websocket`
//!   (the same endpoint), `GET /ws/health`, `GET /ws/config` and `GET /metrics`, to serve on
//!   its own ([`Server::serve`]) or mount next to a service's own routes;
//! - [`Handler`]: what a service implements to act on requests (required; [`DemoAgent`]
//!   shows the whole event flow), with [`Run`] to emit a run's events;
//! - [`Emitter`]: sends events to all of a user's open connections from any task, through a
//!   [`Delivery`] engine ([`LocalStreams`], in-process, by default; another is plugged in with
//!   [`ServerBuilder::delivery`]);
//! - [`Config`]: limits, timeouts and handshake policy with safe defaults;
//! - the publish API ([`PublishConfig`], [`Server::publish_router`],
//!   [`Server::serve_publish`]): other services `POST` batches of events to a user's stream
//!   over HTTP, authenticated by an API key, on a listener of their own.
//!
//! The wire contract is `docs/protocol.md`; operating it is `docs/operations.md`.
//!
//! ```no_run
//! use agentwire_server::{Handler, Key, Run, Server, Validator};
//! use serde_json::json;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     async fn run(&self, run: Run) {
//!         run.started("echo");
//!         let text = run.request().text.to_string();
//!         run.completed(json!({ "echo": text }));
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder()
//!     .key(Key::hmac(std::env::var("JWT_SECRET")?)?)
//!     .build()?;
//! let server = Server::builder(validator).handler(Echo).build();
//!
//! // Mount it next to your own routes, and serve the app with agentwire's protection
//! // (handshake timeout, pending-handshake caps, graceful shutdown with 1001)...
//! let app: axum::Router = axum::Router::new()
//!     .route("/healthz", axum::routing::get(|| async { "ok" }))
//!     .merge(server.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve_app(listener, app, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! // ...or serve it alone: `server.serve(listener, signal)`.
//! # Ok(()) }
//! ```

mod accept;
mod config;
mod connection;
mod console;
mod error;
mod handler;
mod handshake;
mod http;
mod hub;
mod metrics;
mod publish;
mod queue;
mod runs;
mod server;

pub use accept::IpNet;
pub use config::{
    Config, ConfigBuilder, DEFAULT_MAX_CONNECTIONS_PER_USER, DEFAULT_SEND_BUFFER_BYTES,
};
pub use console::console_router;
pub use error::{AttachError, DeliveryError, HandlerError, ServeError, ServerConfigError};
pub use handler::{DemoAgent, Handler, MessageContext, Presence, Run};
pub use hub::{
    Attach, Attached, Attaching, Confirmation, Confirmer, Delivered, Delivery, DeliveryStatus,
    Emitter, EngineHealth, Joined, LocalStreams, Receipt,
};
pub use publish::{
    DEFAULT_PUBLISH_BODY_TIMEOUT, DEFAULT_PUBLISH_MAX_BATCH_EVENTS, DEFAULT_PUBLISH_MAX_BODY_BYTES,
    PUBLISH_PATH, PublishConfig, PublishConfigBuilder, PublishKey,
};
pub use server::{NoHandler, Server, ServerBuilder};

// The protocol crates this API takes and returns, so a service needs only this crate.
pub use agentwire_auth::{self as auth, Key, Principal, Validator};
pub use agentwire_events::{self as events, Event, OtherRequest, Payload, RunRequest};
pub use agentwire_session::{
    self as session, DEFAULT_AUTH_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PONG_TIMEOUT, DEFAULT_RATE_LIMIT_PER_SEC, SessionConfig,
};
pub use agentwire_state as state;
pub use agentwire_stream::{self as stream, WindowConfig};
pub use agentwire_types::{self as types, MessageType};

/// The README's Rust examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// docs/operations.md's Rust examples (the publish API in a service), compiled likewise.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/operations.md")]
struct OperationsDoctests;
