//! Connection state, close codes and structured-log records of the agentwire WebSocket layer.
//!
//! The system agentwire replaces had six copies of a function that turned a WebSocket state
//! into something its JSON logger would accept; when one was missed, logging raised and the
//! connection died with 1011. This crate is the one place where connection state becomes log
//! data, and nothing in it can fail or panic on the way:
//!
//! - [`ConnectionState`]: `connecting`, `open`, `closing`, `closed`, `failed`, with the legal
//!   transitions as a small state machine ([`ConnectionState::transition`] returns an
//!   [`IllegalTransition`] error value, never panics). It writes a stable lowercase name and
//!   reads the old system's spellings too (`connected`, `DISCONNECTED`, Starlette's integers
//!   0..=3, ...: the table is on [`ConnectionState`]).
//! - [`CloseCode`]: the registered WebSocket close codes 1000-1015 and agentwire's own 4008
//!   `slow_consumer`, 4401 `auth_failed`, 4408 `timeout`, 4409 `too_many_connections` and 4429
//!   `rate_limited`, each with a stable name, a description and a log severity. Unknown codes
//!   are kept ([`CloseCode::Other`]). [`CloseInfo`] pairs a code with a reason cut to the 123
//!   bytes a close frame allows ([`MAX_REASON_BYTES`]).
//! - [`ConnectionRecord`]: one lifecycle event of a connection as one flat JSON object with
//!   `severity` and `message` (what Google Cloud Logging reads as structured data), or as one
//!   [`tracing`] event with typed fields and target [`TRACING_TARGET`]
//!   (`agentwire::connection`). It has no free-form field, and its strings are checked when
//!   stored: a token cannot get into a record.
//!
//! ```
//! use std::time::Duration;
//! use agentwire_state::{
//!     CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters, Severity,
//! };
//!
//! // The state machine.
//! let state = ConnectionState::Connecting;
//! let state = state.transition(ConnectionState::Open).unwrap();
//! assert_eq!(state.to_string(), "open");
//! assert!(state.transition(ConnectionState::Connecting).is_err());
//!
//! // The old system's spellings read as canonical states.
//! let old: ConnectionState = serde_json::from_str("\"CONNECTED\"").unwrap();
//! assert_eq!(old, ConnectionState::Open);
//!
//! // Close codes keep their meaning, and unknown ones their number.
//! assert_eq!(CloseCode::from_u16(4401), CloseCode::AuthFailed);
//! assert_eq!(CloseCode::AuthFailed.name(), "auth_failed");
//! assert!(CloseCode::InternalError.is_server_bug());
//! assert_eq!(CloseCode::from_u16(4999).as_u16(), 4999);
//!
//! // One record per lifecycle event.
//! let mut counters = Counters::new();
//! counters.record_in(120);
//! counters.record_out(480);
//! let record = ConnectionRecord::new("c-7", ConnectionState::Closed)
//!     .with_previous_state(ConnectionState::Closing)
//!     .with_user_id("user-42")
//!     .with_close(CloseInfo::new(CloseCode::SlowConsumer, "outbound queue full"))
//!     .with_counters(counters)
//!     .with_duration(Duration::from_secs(90))
//!     .with_connected(Duration::from_secs(89));
//! assert_eq!(record.severity(), Severity::Warning);
//!
//! let json = record.to_json();
//! assert!(json.starts_with(r#"{"severity":"WARNING","message":"connection closed: 4008 slow_consumer: outbound queue full""#));
//! let back: ConnectionRecord<'_> = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, record);
//!
//! record.emit(); // a WARN event with target "agentwire::connection"
//! ```
//!
//! Nothing here panics on any input: every reader ([`Deserialize`](serde::Deserialize) and
//! [`FromStr`](core::str::FromStr) of each type) returns an error value instead, and
//! [`fuzz_readers`] is the one-line entry point for a fuzz target that checks it.
//!
//! # Features
//!
//! - `tungstenite` (off by default): conversions from and to tungstenite 0.29's `CloseCode` and
//!   `CloseFrame`, the state after a tungstenite error, and the close frame to answer a read
//!   error with (`CloseInfo::for_tungstenite_error`).
//!   Without it the crate does not depend on any WebSocket stack.

mod close;
mod error;
mod fuzz;
mod record;
mod redact;
mod severity;
mod state;
mod text;
#[cfg(feature = "tungstenite")]
mod tungstenite_compat;

pub use close::{CloseCode, CloseInfo, MAX_REASON_BYTES, truncate_reason};
pub use error::{IllegalTransition, MAX_RECEIVED_BYTES, UnknownCloseCode, UnknownConnectionState};
pub use fuzz::fuzz_readers;
pub use record::{ConnectionRecord, Counters, MAX_ID_BYTES, MAX_ORIGIN_BYTES, TRACING_TARGET};
pub use redact::REDACTED;
pub use severity::Severity;
pub use state::ConnectionState;
