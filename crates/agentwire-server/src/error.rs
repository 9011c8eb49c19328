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
