//! The reconnect policy: when to try again, with jittered exponential backoff.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Automatic reconnection after a lost connection, resuming the event stream.
///
/// After a connection is lost for a reason that may pass ([`Error::is_retryable`]: network
/// failures, server restarts, heartbeat timeouts, a user at its connection limit), the client
/// connects again to `?epoch=<epoch>&since=<last seq>` and reads what it missed: events
/// already seen are dropped by `seq`, so each arrives exactly once. When the server cannot
/// prove continuity it answers `reset`, and the client says so
/// ([`ConnectionEvent::Reset`](crate::ConnectionEvent::Reset), and
/// [`Error::StreamReset`](crate::Error::StreamReset) for the runs in flight).
///
/// Attempt `n` (from 0) waits a random time between half and all of
/// `min(initial_backoff * 2^n, max_backoff)`, so clients cut off together do not come back
/// together.
///
/// ```
/// use std::time::Duration;
/// use agentwire_client::Reconnect;
///
/// let policy = Reconnect::new()
///     .initial_backoff(Duration::from_millis(50))
///     .max_backoff(Duration::from_secs(5))
///     .max_attempts(Some(20));
/// assert_eq!(policy.attempts(), Some(20));
/// ```
///
/// [`Error::is_retryable`]: crate::Error::is_retryable
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::new()
    }
}

impl Reconnect {
    /// 100 ms initial backoff, 10 s at most, 10 attempts per loss.
    pub fn new() -> Reconnect {
        Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            attempts: Some(10),
        }
    }

    /// The backoff before the first attempt (doubled for each next one).
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial = backoff;
        self
    }

    /// The longest backoff.
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max = backoff;
        self
    }

    /// Attempts per lost connection before giving up (`None`: never give up).
    #[must_use]
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.attempts = attempts;
        self
    }

    /// Attempts per lost connection (`None`: unlimited).
    pub fn attempts(&self) -> Option<u32> {
        self.attempts
    }

    /// The wait before attempt `attempt` (from 0): between half and all of the capped
    /// exponential backoff.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = cap / 2;
        half + half.mul_f64(random_unit())
    }
}

/// A random number in [0, 1) (std's per-instance random hash keys, no extra crate).
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = Reconnect::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        for attempt in 0..40 {
            let cap = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_secs(1));
            let wait = policy.backoff(attempt);
            assert!(wait >= cap / 2 && wait <= cap, "{attempt}: {wait:?}");
        }
        let draws: std::collections::HashSet<Duration> =
            (0..20).map(|_| policy.backoff(5)).collect();
        assert!(draws.len() > 1, "jitter draws differ");
    }
}
