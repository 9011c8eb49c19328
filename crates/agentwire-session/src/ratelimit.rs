//! A per-connection token bucket for inbound messages.

use std::time::{Duration, Instant};

/// What the limiter decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit: answer `rate_limited`, with when to try again.
    Limited { retry_after: Duration },
    /// Over the limit for too long without a pause: close with 4429.
    Abusive,
}

/// Allows `rate` messages per second on average, and bursts of up to `burst`.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    strikes: u32,
    max_strikes: u32,
}

impl RateLimiter {
    /// A limiter, or `None` when `rate` is zero (no limit).
    pub(crate) fn new(rate: u32, burst: u32, max_strikes: u32, now: Instant) -> Option<Self> {
        (rate > 0).then(|| RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
            strikes: 0,
            max_strikes,
        })
    }

    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return Verdict::Allow;
        }
        self.strikes = self.strikes.saturating_add(1);
        if self.strikes > self.max_strikes {
            return Verdict::Abusive;
        }
        let wait = (1.0 - self.tokens) / self.rate;
        Verdict::Limited {
            retry_after: Duration::from_secs_f64(wait.max(0.001)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_then_refilled() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 3, 5, start).expect("limited");
        for _ in 0..3 {
            assert_eq!(limiter.check(start), Verdict::Allow);
        }
        let Verdict::Limited { retry_after } = limiter.check(start) else {
            panic!("fourth message in the same instant is limited");
        };
        assert!(retry_after <= Duration::from_millis(100) && !retry_after.is_zero());
        assert_eq!(limiter.check(start + retry_after), Verdict::Allow);
    }

    #[test]
    fn sustained_flood_becomes_abusive_and_a_pause_forgives() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(1, 1, 3, start).expect("limited");
        assert_eq!(limiter.check(start), Verdict::Allow);
        for _ in 0..3 {
            assert!(matches!(limiter.check(start), Verdict::Limited { .. }));
        }
        assert_eq!(limiter.check(start), Verdict::Abusive);
        let later = start + Duration::from_secs(2);
        assert_eq!(limiter.check(later), Verdict::Allow);
        assert!(matches!(limiter.check(later), Verdict::Limited { .. }));
    }

    #[test]
    fn zero_rate_means_no_limiter() {
        assert!(RateLimiter::new(0, 0, 0, Instant::now()).is_none());
    }
}
