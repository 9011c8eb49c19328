//! Criterion benchmarks for the agentwire crates (see `benches/` and docs/performance.md),
//! and what the load peers in `src/bin/` share.

/// Raises the soft open-file limit to the hard one, for many thousand connections.
pub fn raise_nofile_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}
