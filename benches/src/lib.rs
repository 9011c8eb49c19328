//! Criterion benchmarks for the agentwire crates; see `benches/` and docs/performance.md.
