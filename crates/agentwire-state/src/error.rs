//! The errors of this crate. Each has a stable machine code ([`code`](IllegalTransition::code)).

use std::borrow::Cow;

use crate::redact;
use crate::state::ConnectionState;

/// How many bytes of a rejected input an error keeps (cut on a character boundary, and replaced
/// by `[redacted]` when it looks like a credential).
pub const MAX_RECEIVED_BYTES: usize = 64;

/// A move between two [`ConnectionState`]s that the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("illegal connection state transition from {from} to {to}")]
pub struct IllegalTransition {
    from: ConnectionState,
    to: ConnectionState,
}

impl IllegalTransition {
    pub(crate) const fn new(from: ConnectionState, to: ConnectionState) -> Self {
        Self { from, to }
    }

    /// The state the connection was in.
    pub const fn from(&self) -> ConnectionState {
        self.from
    }

    /// The state it was asked to move to.
    pub const fn to(&self) -> ConnectionState {
        self.to
    }

    /// The stable machine code: `illegal_state_transition`.
    pub const fn code(&self) -> &'static str {
        "illegal_state_transition"
    }
}

/// A connection state name that neither the canonical names nor the legacy table know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown connection state {received:?}: expected connecting, open, closing, closed, failed \
     or a documented legacy spelling"
)]
pub struct UnknownConnectionState {
    received: String,
}

impl UnknownConnectionState {
    pub(crate) fn new(received: &str) -> Self {
        Self {
            received: redact::clean(Cow::Borrowed(received), MAX_RECEIVED_BYTES).into_owned(),
        }
    }

    /// The rejected name, cut to [`MAX_RECEIVED_BYTES`] (or `[redacted]`).
    pub fn received(&self) -> &str {
        &self.received
    }

    /// The stable machine code: `unknown_connection_state`.
    pub const fn code(&self) -> &'static str {
        "unknown_connection_state"
    }
}

/// A close code name or number that [`CloseCode::from_str`](crate::CloseCode) cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown close code {received:?}: expected a number 0..=65535 or a close code name such as \
     normal_closure or auth_failed"
)]
pub struct UnknownCloseCode {
    received: String,
}

impl UnknownCloseCode {
    pub(crate) fn new(received: &str) -> Self {
        Self {
            received: redact::clean(Cow::Borrowed(received), MAX_RECEIVED_BYTES).into_owned(),
        }
    }

    /// The rejected text, cut to [`MAX_RECEIVED_BYTES`] (or `[redacted]`).
    pub fn received(&self) -> &str {
        &self.received
    }

    /// The stable machine code: `unknown_close_code`.
    pub const fn code(&self) -> &'static str {
        "unknown_close_code"
    }
}
