//! The errors of this crate.

/// A Redis engine configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not a Redis URL (`redis://[user:password@]host[:port][/db]`).
    #[error("invalid Redis URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it (never the password).
        reason: String,
    },
    /// A setting is outside the range it allows.
    #[error("invalid setting {setting}: expected {expected}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl ConfigError {
    /// A stable machine code: `invalid_redis_url` or `invalid_config`.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::InvalidUrl { .. } => "invalid_redis_url",
            ConfigError::OutOfRange { .. } => "invalid_config",
        }
    }
}
