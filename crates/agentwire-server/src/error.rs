//! The errors of this crate.

use std::borrow::Cow;

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// A setting is outside the range it allows.
    #[error("invalid setting {setting}: expected {expected}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The publish API was asked for (its router, its listener, or a
    /// [`PublishConfig`](crate::PublishConfig)) without a key to authenticate publishers with.
    #[error(
        "the publish API needs an API key: add one with PublishConfig::builder().key(...) \
         (agentwire serve: --publish-key-file PATH or AGENTWIRE_PUBLISH_KEY)"
    )]
    MissingPublishKey,
    /// A publish API key that cannot be used; the message never contains the key.
    #[error("invalid publish API key: {reason}")]
    InvalidPublishKey {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ServerConfigError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ServerConfigError::OutOfRange { .. } => "invalid_config",
            ServerConfigError::MissingPublishKey => "missing_publish_key",
            ServerConfigError::InvalidPublishKey { .. } => "invalid_publish_key",
        }
    }
}

/// Why a handler could not start a run, or what it reports instead of the events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub(crate) code: Cow<'static, str>,
    pub(crate) message: String,
    pub(crate) recoverable: bool,
    pub(crate) retry_after_ms: Option<u64>,
}

impl HandlerError {
    /// An error with a stable machine `code` (a constant, or one chosen at run time, e.g.
    /// relayed from an agent service) and a human `message`.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        HandlerError {
            code: code.into(),
            message: message.into(),
            recoverable: false,
            retry_after_ms: None,
        }
    }

    /// Marks the error as recoverable (the client may retry).
    #[must_use]
    pub fn recoverable(mut self) -> Self {
        self.recoverable = true;
        self
    }

    /// Asks the client to wait `retry_after` before trying again (sent as `retry_after_ms`
    /// when the error refuses a request, see [`Handler::accepts`](crate::Handler::accepts)).
    #[must_use]
    pub fn retry_after(mut self, retry_after: std::time::Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// How long the client should wait before trying again, if the error says.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_ms
    }

    /// The stable machine code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Whether the client may retry.
    pub fn is_recoverable(&self) -> bool {
        self.recoverable
    }
}

/// The server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding or serving the listener failed.
    #[error("i/o error while serving: {0}")]
    Io(#[from] std::io::Error),
    /// What was asked to be served is not configured (the publish API without a key).
    #[error(transparent)]
    Config(#[from] ServerConfigError),
}

/// Why an event did not make it onto a user's stream, as [`Delivered`](crate::Delivered) and
/// [`Confirmation`](crate::Confirmation) report it. The in-process engine never fails; an
/// engine over a shared store (Redis) does when the store cannot take the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The engine's store cannot be reached now; the event is not on the stream.
    #[error("the stream's store is unreachable; the event was not delivered")]
    Unavailable,
    /// The engine's bounded publish queue is full (its store is slower than the emitters);
    /// the event is not on the stream.
    #[error("the engine's publish queue is full; the event was not delivered")]
    Overloaded,
    /// The connection to the store broke while the event was being published: it may or may
    /// not be on the stream (a client that resumes finds out).
    #[error(
        "the connection to the stream's store broke while publishing; the event may not have been delivered"
    )]
    Unknown,
}

impl DeliveryError {
    /// A stable machine code: `unavailable`, `overloaded` or `unknown`.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::Unavailable => "unavailable",
            DeliveryError::Overloaded => "overloaded",
            DeliveryError::Unknown => "unknown",
        }
    }
}

/// Why a connection could not join its user's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The user already has the maximum number of connections on this node (closed 4409).
    #[error("the user already has {max} connections")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// The engine cannot tell where the user's stream stands (its store is unreachable and
    /// this node holds no connection of the user): closed 1013, try again later.
    #[error("the user's stream is unavailable; try again later")]
    Unavailable,
}

impl AttachError {
    /// A stable machine code: `too_many_connections` or `stream_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            AttachError::TooManyConnections { .. } => "too_many_connections",
            AttachError::Unavailable => agentwire_events::ErrorCode::StreamUnavailable.as_str(),
        }
    }
}
