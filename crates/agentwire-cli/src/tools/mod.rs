//! Client-side tools of the `agentwire` binary: `probe` (is this endpoint healthy, and if not,
//! why?) and `load` (how fast is it, and at what memory cost?).
//!
//! They only ever connect to the URL the user gives them. Both are built on agentwire-client's
//! lower-level parts: its connection steps (`transport`) and its raw connection.

pub(crate) mod load;
pub(crate) mod probe;
mod procfs;

use std::time::Duration;

use serde_json::{Value, json};

/// Milliseconds of a duration, as a float for reports.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Rounds to `digits` decimals, so JSON reports stay readable.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// p50, p90, p99, p99.9, max and mean of sorted microsecond samples, in milliseconds.
fn percentiles_ms(sorted: &[u32]) -> Value {
    if sorted.is_empty() {
        return json!({ "samples": 0 });
    }
    let at = |q: f64| {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        round(f64::from(sorted[rank - 1]) / 1000.0, 3)
    };
    let mean = sorted.iter().map(|&v| f64::from(v)).sum::<f64>() / sorted.len() as f64;
    json!({
        "samples": sorted.len(),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": at(1.0),
        "mean": round(mean / 1000.0, 3),
    })
}

/// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(maximum);
        }
    }
    getrlimit(Resource::Nofile).current
}
