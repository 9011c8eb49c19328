//! Client-side tools of the `agentwire` binary: `probe` (is this endpoint healthy, and if not,
//! why?) and `load` (how fast is it, and at what memory cost?).
//!
//! They only ever connect to the URL the user gives them.

mod client;
pub(crate) mod load;
pub(crate) mod probe;
mod procfs;

use std::time::Duration;

/// Milliseconds of a duration, as a float for reports.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Rounds to `digits` decimals, so JSON reports stay readable.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
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
