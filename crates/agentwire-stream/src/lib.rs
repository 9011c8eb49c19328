//! A user's event stream as data: the resume request of a reconnecting client and the
//! decision a server answers it with, without I/O.

mod config;
mod decide;
mod error;
mod request;

pub use config::{
    DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, MAX_AGE_LIMIT, WindowConfig,
};
pub use decide::{Decision, Held, Replay, ResetReason, StreamState, decide};
pub use error::{ConfigError, ResumeParameter, ResumeQueryError};
pub use request::{MAX_EPOCH_BYTES, MAX_SINCE_DIGITS, ResumeRequest};
