//! Worked examples of agentwire, each run by a test through a real WebSocket client over
//! loopback (`cargo test -p agentwire-examples`) and by a binary of its own:
//!
//! - [`embed`]: an existing axum service with its own state, routes and `/metrics` that mounts
//!   agentwire, with a custom agent (streamed chunks, a tool call, a failure), notifications
//!   from a background task, presence, and graceful shutdown
//!   (`cargo run -p agentwire-examples --bin embed-axum`);
//! - [`harness`]: a test harness that mints tokens, builds valid and invalid frames, drives a
//!   server, and splits and validates the transcript
//!   (`cargo run -p agentwire-examples --bin test-harness -- ws://127.0.0.1:3000/ws SECRET`);
//! - `agents/python` (not Rust): FastAPI agent services that agentwire forwards runs to, one
//!   in the `ndjson` protocol and one in AG-UI, with their own README; `tests/python_agents.rs`
//!   runs them end to end (the venv comes from `scripts/setup/python.sh`).

pub mod embed;
pub mod harness;
