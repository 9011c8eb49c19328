//! The Rust client of the agentwire WebSocket protocol, for backend services that call each
//! other's agents and for test harnesses that drive agentwire servers.
//!
//! - [`Client::connect`] with [`Credentials`] (the token in the `jwt-auth, jwt.<token>`
//!   subprotocol offer, or an `Authorization: Bearer` header) reads `connection_established`
//!   ([`Client::established`]: ids, limits, stream position). Every failure is a typed
//!   [`Error`] with a stable [`code`](Error::code) and, when the server closed, its
//!   [`close_code`](Error::close_code) (4401 with the reason, 4408, 4409, 4429, 4008, 1009...).
//! - [`Client::start_agent`] and [`Client::user_message`] return a [`RunHandle`]: the run's
//!   own typed events ([`Frame`]s, read strictly with `agentwire_events::parse_outbound`) and
//!   its final [`RunResult`] (`agent_completed` or `agent_error`); [`RunHandle::cancel`].
//!   Any number of runs share one connection, each handle seeing only its own events.
//! - Liveness as the server announces it: pings are answered, `heartbeat` is sent at the
//!   announced interval, a silent connection counts as lost; the token is refreshed before
//!   `exp` through a callback ([`ClientBuilder::refresh_with`]); with
//!   [`ClientBuilder::reconnect`] a lost connection is replaced with jittered backoff and the
//!   stream resumed from the last `seq`, each event arriving once (a `reset` is reported).
//! - For harnesses: [`RawConnection`] sends any text or binary frame and reads what comes
//!   back; [`Client::run_checked`] runs a request and checks the run with the
//!   [`RunValidator`](agentwire_events::RunValidator). [`transport`] has each connection step
//!   on its own (`agentwire probe` and `agentwire load` are built on it).
//!
//! `wss://` needs the `rustls` feature (on by default).
//!
//! # Connect, run, await the result
//!
//! ```
//! # use std::time::Duration;
//! # use agentwire_auth::testing::{Claims, SigningKey};
//! # use agentwire_server::{DemoAgent, Key, Server, Validator};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let secret = agentwire_auth::testing::FIXTURE_HMAC_SECRET;
//! # let validator = Validator::builder().key(Key::hmac(secret)?).build()?;
//! # let server = Server::builder(validator).handler(DemoAgent::new(Duration::ZERO)).build();
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("ws://{}/ws", listener.local_addr()?);
//! # tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
//! # let key = SigningKey::fixture(agentwire_auth::Algorithm::HS256);
//! # let token = Claims::new("alice").sign(&key)?.into_secret();
//! use agentwire_client::{Client, Credentials, RunOutcome};
//!
//! let client = Client::connect(&url, Credentials::subprotocol(token)).await?;
//! assert_eq!(client.established().user_id, "alice");
//!
//! let mut run = client.start_agent("What is the weather in Oslo?").await?;
//! while let Some(event) = run.next().await {
//!     println!("{} seq {:?}", event.message_type(), event.seq());
//! }
//! let result = run.result().await?;
//! match &result.outcome {
//!     RunOutcome::Completed(done) => println!("result: {}", done.result),
//!     RunOutcome::Failed(error) => println!("agent_error {}: {}", error.code, error.message),
//!     _ => {}
//! }
//! assert_eq!(result.completed()?.result["response"], "You said: What is the weather in Oslo?");
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Reconnect and resume
//!
//! With a [`Reconnect`] policy a lost connection is replaced and the stream resumed with
//! `?epoch=&since=`: the events missed meanwhile are replayed, events seen before are dropped
//! by `seq`, and runs in flight finish on their handles. When the server cannot prove
//! continuity (a restart: new epoch; too long away: outside its window), the runs in flight
//! end with [`Error::StreamReset`] and the events say so:
//!
//! ```no_run
//! use agentwire_client::{Client, ConnectionEvent, Credentials, Reconnect, ResumeOutcome};
//!
//! # async fn mint_token() -> Result<String, std::io::Error> { Ok(String::new()) }
//! # async fn f() -> Result<(), agentwire_client::Error> {
//! let client = Client::builder("wss://chat.example.com/ws", Credentials::subprotocol("eyJ..."))
//!     .reconnect(Reconnect::new())
//!     .refresh_with(|| async { mint_token().await })
//!     .connect()
//!     .await?;
//! let mut events = client.events();
//! while let Some(event) = events.next().await {
//!     match event {
//!         ConnectionEvent::Reconnected { resume: ResumeOutcome::Reset { reason }, .. } => {
//!             println!("events may be lost ({reason}): reload the thread");
//!         }
//!         ConnectionEvent::Event(notification) => println!("{}", notification.message_type()),
//!         ConnectionEvent::Closed { error } => println!("closed: {error:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A process that stops can save [`Client::position`] and resume from it later with
//! [`ClientBuilder::resume_from`].

mod client;
mod credentials;
mod error;
mod events;
mod harness;
mod raw;
mod reconnect;
mod run;
mod task;
pub mod transport;

pub use client::{Client, ClientBuilder};
pub use credentials::{Carrier, Credentials};
pub use error::{Error, UpgradeError};
pub use events::{ConnectionEvent, Events};
pub use harness::CheckedRun;
pub use raw::{RawConnection, RawMessage, Text};
pub use reconnect::Reconnect;
pub use run::{RunHandle, RunOutcome, RunResult};

// The protocol types this API takes and returns.
pub use agentwire_events::{
    AgentCompleted, AgentError, ConnectionEstablished, ErrorReply, Frame, Inbound, Payload,
    ResumeOutcome, RunRequest, RunSummary, RunViolation, StreamPosition, Timestamp,
};
pub use agentwire_state::{CloseCode, CloseInfo};
pub use agentwire_types::MessageType;
