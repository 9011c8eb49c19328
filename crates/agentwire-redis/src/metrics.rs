//! The engine's counters, rendered in the Prometheus text format under `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the publish latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) up: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) failed_unavailable: AtomicU64,
    pub(crate) failed_overloaded: AtomicU64,
    pub(crate) failed_unknown: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) attach_fallbacks: AtomicU64,
    pub(crate) interrupted: AtomicU64,
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// One event published, `elapsed` after it was emitted.
    /// Counts `events` events published `elapsed` after their emit.
    pub(crate) fn published(&self, elapsed: Duration, events: u64) {
        self.published.fetch_add(events, Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(events, Relaxed);
        self.latency_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros())
                .unwrap_or(u64::MAX)
                .saturating_mul(events),
            Relaxed,
        );
    }

    pub(crate) fn render(&self, out: &mut String, queued: usize, subscriptions: usize) {
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "agentwire_redis_up",
            "gauge",
            "1 while the engine's connections to Redis work, else 0.",
            self.up.load(Relaxed),
        );
        metric(
            "agentwire_redis_published_total",
            "counter",
            "Events appended to a user's stream in Redis by this node.",
            self.published.load(Relaxed),
        );
        metric(
            "agentwire_redis_batches_total",
            "counter",
            "Pipelined round trips that published events.",
            self.batches.load(Relaxed),
        );
        metric(
            "agentwire_redis_reconnects_total",
            "counter",
            "Connections to Redis made again after one was lost or failed.",
            self.reconnects.load(Relaxed),
        );
        metric(
            "agentwire_redis_received_total",
            "counter",
            "Events received from Redis for this node's connections.",
            self.received.load(Relaxed),
        );
        metric(
            "agentwire_redis_attach_fallbacks_total",
            "counter",
            "Connections opened while Redis was unreachable (resume answered reset).",
            self.attach_fallbacks.load(Relaxed),
        );
        metric(
            "agentwire_redis_interrupted_total",
            "counter",
            "Connections closed 1012 to resume because they missed events or their stream restarted.",
            self.interrupted.load(Relaxed),
        );
        metric(
            "agentwire_redis_queue_events",
            "gauge",
            "Events waiting to be published.",
            queued as u64,
        );
        metric(
            "agentwire_redis_subscriptions",
            "gauge",
            "User channels this node is subscribed to.",
            subscriptions as u64,
        );
        let name = "agentwire_redis_publish_failures_total";
        let _ = write!(
            out,
            "# HELP {name} Emits not on the stream, by reason.\n# TYPE {name} counter\n"
        );
        for (reason, counter) in [
            ("unavailable", &self.failed_unavailable),
            ("overloaded", &self.failed_overloaded),
            ("unknown", &self.failed_unknown),
        ] {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{reason}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let name = "agentwire_redis_publish_latency_seconds";
        let _ = write!(
            out,
            "# HELP {name} From emit to the seq assigned in Redis.\n# TYPE {name} histogram\n"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.latency[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}
