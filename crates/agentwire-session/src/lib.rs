//! One agentwire connection's protocol logic as a state machine without I/O.
//!
//! A [`Session`] is fed the client's frames and its timer's expiries, each with the current
//! time, and answers what to do: a reply for this connection only, a run to start, a request
//! for the application's handler, runs to cancel, a ping to send, or a close with its code
//! and reason. It owns the rules (dispatch of every message type and alias, the rate limit,
//! cancel, token refresh and expiry, in-band authentication, heartbeats and their timeout); the
//! code that drives it owns the socket, the outbound queue, the runs and one timer. This is the
//! split quinn-proto makes for QUIC: the same logic runs under the server, under a fuzzer
//! ([`fuzzing`](crate) with the `fuzzing` feature), and in tests without a network.
//!
//! The crate does no I/O and needs no async runtime. See [`Session`] for an example.

mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ratelimit;
mod session;

pub use config::{
    DEFAULT_AUTH_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RUNS_PER_CONNECTION, DEFAULT_PONG_TIMEOUT,
    DEFAULT_RATE_LIMIT_PER_SEC, SessionConfig,
};
pub use session::{Action, Close, Handled, Host, Message, RunStart, Session, Timeout};
