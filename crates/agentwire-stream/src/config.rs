//! [`WindowConfig`]: how much of each user stream is kept for replay, with its defaults.

use std::time::Duration;

use crate::error::ConfigError;

/// Default events kept per user stream.
pub const DEFAULT_MAX_EVENTS: usize = 1_000;
/// Default age after which a kept event is dropped.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Default bytes the replay windows of all users may hold together, server-wide.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The longest [`max_age`](WindowConfig::max_age) allowed: a day. Longer is almost certainly
/// a unit mistake (milliseconds given as seconds), and the byte budget would evict such old
/// events long before anyway.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

/// How much of each user's stream is kept so that a reconnecting client can resume.
///
/// An event is dropped from its user's window when the window holds more than
/// [`max_events`](Self::max_events) newer events, when it is older than
/// [`max_age`](Self::max_age), or when the windows of all users together hold more than
/// [`max_bytes`](Self::max_bytes) (the oldest events first; see
/// [`WindowStore`](crate::WindowStore) for how the bound is shared). `max_events` 0 turns
/// replay off: streams keep no events, and a resume that missed events is answered `reset` /
/// `unavailable`.
///
/// [`Default`] is the documented defaults; [`validate`](Self::validate) checks a changed one
/// (the [`WindowStore`](crate::WindowStore) constructor does too).
///
/// ```
/// use std::time::Duration;
/// use agentwire_stream::WindowConfig;
///
/// let mut config = WindowConfig::default();
/// assert_eq!((config.max_events, config.max_age), (1_000, Duration::from_secs(300)));
/// config.max_events = 200;
/// config.max_age = Duration::from_secs(60);
/// assert!(config.validate().is_ok());
/// assert!(!WindowConfig::off().replay_enabled());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowConfig {
    /// Events kept per user stream; 0 turns replay off.
    pub max_events: usize,
    /// How long an event is kept: from 1 ms to [`MAX_AGE_LIMIT`] when replay is on. A stream
    /// with no connection is also kept this long after its last event or disconnect (see
    /// [`UserStream::is_expired`](crate::UserStream::is_expired)).
    pub max_age: Duration,
    /// Bytes all the windows may hold together, server-wide, counted as each frame's length
    /// plus [`EVENT_OVERHEAD_BYTES`](crate::EVENT_OVERHEAD_BYTES); at least 1 when replay
    /// is on.
    pub max_bytes: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            max_events: DEFAULT_MAX_EVENTS,
            max_age: DEFAULT_MAX_AGE,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl WindowConfig {
    /// The defaults with replay off (`max_events` 0).
    pub fn off() -> Self {
        WindowConfig {
            max_events: 0,
            ..WindowConfig::default()
        }
    }

    /// Whether streams keep events for replay (`max_events` above 0).
    pub fn replay_enabled(&self) -> bool {
        self.max_events > 0
    }

    /// Checks the settings. With replay off the other two are not used and not checked.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] naming the first setting out of its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.replay_enabled() {
            return Ok(());
        }
        if self.max_age < Duration::from_millis(1) || self.max_age > MAX_AGE_LIMIT {
            return Err(ConfigError::OutOfRange {
                setting: "max_age",
                expected: "from 1 ms to 24 h when replay is on",
            });
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::OutOfRange {
                setting: "max_bytes",
                expected: "at least 1 when replay is on (max_events 0 turns replay off)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let config = WindowConfig::default();
        assert_eq!(config.max_events, 1_000);
        assert_eq!(config.max_age, Duration::from_secs(300));
        assert_eq!(config.max_bytes, 64 << 20);
        assert!(config.replay_enabled());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let setting = |config: WindowConfig| match config.validate() {
            Err(ConfigError::OutOfRange { setting, .. }) => setting,
            Ok(()) => "valid",
        };
        let base = WindowConfig::default();
        for (max_age, expected) in [
            (Duration::ZERO, "max_age"),
            (Duration::from_micros(999), "max_age"),
            (Duration::from_millis(1), "valid"),
            (MAX_AGE_LIMIT, "valid"),
            (MAX_AGE_LIMIT + Duration::from_nanos(1), "max_age"),
            (Duration::MAX, "max_age"),
        ] {
            assert_eq!(setting(WindowConfig { max_age, ..base }), expected);
        }
        assert_eq!(
            setting(WindowConfig {
                max_bytes: 0,
                ..base
            }),
            "max_bytes"
        );
        assert_eq!(
            ConfigError::OutOfRange {
                setting: "max_bytes",
                expected: ""
            }
            .code(),
            "invalid_window_config"
        );
    }

    #[test]
    fn replay_off_checks_nothing_else() {
        let off = WindowConfig {
            max_events: 0,
            max_age: Duration::ZERO,
            max_bytes: 0,
        };
        assert!(!off.replay_enabled());
        assert_eq!(off.validate(), Ok(()));
        assert!(!WindowConfig::off().replay_enabled());
    }
}
