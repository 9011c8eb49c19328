//! `agentwire-ndjson-agent --listen ADDR`: a fast agent service in agentwire's `ndjson`
//! protocol, for measuring bridged runs (`agentwire serve --agent-url http://ADDR/run`)
//! against the in-process demo agent (scripts/perf-compare.py, scenario `bridged`;
//! docs/performance.md). A load peer for benchmarks, not part of the product.
//!
//! `POST /run` answers each run with the five events the demo agent emits for the same
//! request, with the same payloads (so agentwire writes the same frames either way), each line
//! its own body chunk, with no pause: `agent_started`, `agent_thinking`, `tool_executing`,
//! `tool_completed`, `agent_completed`. With `--hold-ms N` it sends `agent_started`, then holds
//! the response open N milliseconds before the rest: runs in flight, to measure what one
//! costs agentwire in memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// mimalloc, as in the `agentwire` binary and `agentwire-baseline`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arguments of `agentwire-ndjson-agent`.
#[derive(Parser)]
#[command(
    name = "agentwire-ndjson-agent",
    version,
    about = "A fast NDJSON agent service for measuring `agentwire serve --agent-url`"
)]
struct AgentArgs {
    /// Address to listen on (the service is `POST http://ADDR/run`).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Hold each response open this many milliseconds after `agent_started` (0: no pause).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Write the events after `agent_started` as one body chunk instead of one chunk each.
    #[arg(long)]
    one_chunk: bool,
}

fn main() -> ExitCode {
    agentwire_benches::exit("agentwire-ndjson-agent", run(&AgentArgs::parse()))
}

/// Serves until Ctrl-C or SIGTERM.
fn run(args: &AgentArgs) -> Result<(), String> {
    let runtime = agentwire_benches::runtime(args.threads)?;
    let shape = Shape {
        hold: Duration::from_millis(args.hold_ms),
        one_chunk: args.one_chunk,
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "agentwire-ndjson-agent: POST http://{local}/run (hold {:?}, one chunk: {})",
            shape.hold, shape.one_chunk
        );
        let app = axum::Router::new()
            .route("/run", post(agent_run))
            .with_state(shape);
        axum::serve(listener, app)
            .with_graceful_shutdown(agentwire_benches::stop_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// How the responses are written.
#[derive(Clone, Copy)]
struct Shape {
    /// The pause after `agent_started`.
    hold: Duration,
    /// The events after `agent_started` in one chunk.
    one_chunk: bool,
}

/// One run: the demo agent's five events for the request, as NDJSON.
async fn agent_run(State(shape): State<Shape>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let run_id = request["run_id"].as_str().unwrap_or_default();
    let text = request["payload"]["text"].as_str().unwrap_or_default();
    let call_id = format!("call_{run_id}");
    // `type` before `payload`, as docs/agents.md shows a line and as services write it (a
    // Python dict literal through json.dumps, a JS object through JSON.stringify); `json!`
    // would sort the keys and put the payload first.
    let line = |kind: &str, payload: Value| {
        Bytes::from(format!(
            "{{\"type\":{},\"payload\":{payload}}}\n",
            json!(kind)
        ))
    };
    let started = line(
        "agent_started",
        json!({"agent_name": "demo", "user_request": text}),
    );
    let rest = [
        line(
            "agent_thinking",
            json!({"reasoning": format!("Looking up an answer to: {text}"), "step": 1}),
        ),
        line(
            "tool_executing",
            json!({"tool_name": "echo", "tool_call_id": call_id, "parameters": {"text": text}}),
        ),
        line(
            "tool_completed",
            json!({"tool_name": "echo", "tool_call_id": call_id, "result": {"text": text},
                   "duration_ms": 0, "status": "ok"}),
        ),
        line(
            "agent_completed",
            json!({"result": {"response": format!("You said: {text}")}, "duration_ms": 0}),
        ),
    ];
    let hold = shape.hold;
    let rest: Vec<Bytes> = if shape.one_chunk {
        vec![Bytes::from(rest.concat())]
    } else {
        rest.into()
    };
    let pause = futures_util::stream::once(async move {
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    })
    .filter_map(|()| async { None });
    let chunks = futures_util::stream::iter([started])
        .chain(pause)
        .chain(futures_util::stream::iter(rest))
        .map(Ok::<_, Infallible>);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(chunks),
    )
        .into_response()
}
