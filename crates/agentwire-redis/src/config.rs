//! [`RedisConfig`]: where Redis is and how the engine uses it.

use std::time::Duration;

use crate::error::ConfigError;

/// Default bound of the publish queue, in events.
pub const DEFAULT_QUEUE_EVENTS: usize = 16_384;

/// Default most events sent to Redis in one pipeline.
pub const DEFAULT_BATCH_EVENTS: usize = 256;

/// How the engine reaches Redis and uses it.
///
/// ```
/// use agentwire_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://:hunter2@127.0.0.1:6379/0").unwrap();
/// assert_eq!(config.display_url(), "redis://127.0.0.1:6379/0");
/// assert!(RedisConfig::new("http://example").is_err());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    url: String,
    display_url: String,
    /// Prefix of every key and channel the engine uses (default `aw:`), so several
    /// deployments can share one Redis.
    pub key_prefix: String,
    /// Most events waiting to be published (default [`DEFAULT_QUEUE_EVENTS`]); past it, emits
    /// fail with `overloaded` instead of growing memory while Redis is slow.
    pub queue_events: usize,
    /// Most events sent to Redis in one pipelined round trip (default
    /// [`DEFAULT_BATCH_EVENTS`]).
    pub batch_events: usize,
    /// How long a connection attempt, and any one command, may take before Redis counts as
    /// unreachable (default 2 s).
    pub timeout: Duration,
    /// The first wait before reconnecting; it doubles up to [`max_backoff`](Self::max_backoff)
    /// (default 100 ms).
    pub min_backoff: Duration,
    /// The longest wait between reconnection attempts (default 5 s).
    pub max_backoff: Duration,
}

impl RedisConfig {
    /// A configuration for the Redis at `url` (`redis://[user:password@]host[:port][/db]`,
    /// or `redis+unix:///path` for a Unix socket; TLS, `rediss://`, is not built in), with
    /// the defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<RedisConfig, ConfigError> {
        let info = redis::Client::open(url).map_err(|error| ConfigError::InvalidUrl {
            reason: redact(&error.to_string(), url),
        })?;
        let addr = info.get_connection_info().addr().to_string();
        let db = info.get_connection_info().redis_settings().db();
        Ok(RedisConfig {
            url: url.to_owned(),
            display_url: format!("redis://{addr}/{db}"),
            key_prefix: "aw:".to_owned(),
            queue_events: DEFAULT_QUEUE_EVENTS,
            batch_events: DEFAULT_BATCH_EVENTS,
            timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        })
    }

    /// The URL without user name or password, for logs and `/ws/config`.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] for a zero queue or batch, a zero timeout, or backoffs out
    /// of order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let out = |setting, expected| Err(ConfigError::OutOfRange { setting, expected });
        if self.queue_events == 0 {
            return out("queue_events", "at least 1");
        }
        if self.batch_events == 0 {
            return out("batch_events", "at least 1");
        }
        if self.timeout.is_zero() {
            return out("timeout", "more than 0");
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return out("min_backoff", "more than 0 and at most max_backoff");
        }
        Ok(())
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.display_url)
            .field("key_prefix", &self.key_prefix)
            .field("queue_events", &self.queue_events)
            .field("batch_events", &self.batch_events)
            .field("timeout", &self.timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// `text` with `url` (which may hold a password) taken out.
fn redact(text: &str, url: &str) -> String {
    if url.is_empty() {
        text.to_owned()
    } else {
        text.replace(url, "<url>")
    }
}
