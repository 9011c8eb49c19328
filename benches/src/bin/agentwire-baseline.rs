//! `agentwire-baseline --listen ADDR`: the bare server `agentwire load` measures agentwire
//! against (scripts/perf-compare.py, scripts/perf-callgrind.sh, docs/performance.md). A load
//! peer for benchmarks, not part of the product: it lives here, not in the `agentwire` binary.
//!
//! Plain tokio-tungstenite with 4 KiB read and write buffers: no authentication, no JSON, no
//! routing. It answers `Sec-WebSocket-Protocol: jwt-auth` when the offer starts with it (so
//! the same clients connect to both), sends a prebuilt `connection_established` frame on
//! connect, and answers every text message with five prebuilt frames: real frames the
//! agentwire server sent for one demo run of `load`'s default request, so both servers write
//! the same bytes per run.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// mimalloc, as in the `agentwire` binary: both servers (and the load tool) run on the same
/// allocator, so comparisons stay like for like (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arguments of `agentwire-baseline`.
#[derive(Parser)]
#[command(
    name = "agentwire-baseline",
    version,
    about = "A bare tokio-tungstenite server for `agentwire load` to compare agentwire with"
)]
struct BaselineArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Runtime worker threads (default: one per core, like `agentwire serve`).
    #[arg(long)]
    threads: Option<usize>,
    /// Busy-wait this many microseconds of CPU on each request before answering: a bare
    /// server that costs as much per run as a heavier one, to tell the cost of CPU per run
    /// from the cost of a server's structure (docs/performance.md, "p99 and CPU per run").
    #[arg(long, default_value_t = 0.0)]
    burn_us: f64,
}

/// The first frame agentwire sends, captured from a real server (see [`FRAMES`]).
const ESTABLISHED: &str = r#"{"type":"connection_established","event_id":"evt_17a887231f14_1a2a","timestamp":"2026-11-22T04:11:13.142Z","payload":{"connection_id":"conn_17a887231f14_1a2b","user_id":"load-500","protocol_version":1,"heartbeat_interval_ms":25000,"max_message_bytes":65536,"server_time":"2026-11-22T04:11:13.142Z","stream":{"epoch":"ep_17a887231f14_0","seq":0}}}"#;

/// The five frames of one demo run, captured once from `agentwire serve --demo-step-ms 0`
/// answering `load`'s default request on connection `c500`. The counters in `event_id`,
/// `run_id` and `seq` were set to the magnitudes they reach in a 1k-connection load run
/// (5 hex digits, 3 digits), so the frames have the sizes the real server writes then:
/// 248, 260, 300, 326, 263 bytes.
const FRAMES: [&str; 5] = [
    r#"{"type":"agent_started","event_id":"evt_17a887231f14_1a2b3","timestamp":"2026-11-22T04:11:13.152Z","run_id":"run_17a887231f14_1a2b3","seq":181,"reply_to":"c500-17","payload":{"agent_name":"demo","user_request":"What is the weather in Oslo today?"}}"#,
    r#"{"type":"agent_thinking","event_id":"evt_17a887231f14_1a2b4","timestamp":"2026-11-22T04:11:13.152Z","run_id":"run_17a887231f14_1a2b3","seq":182,"reply_to":"c500-17","payload":{"reasoning":"Looking up an answer to: What is the weather in Oslo today?","step":1}}"#,
    r#"{"type":"tool_executing","event_id":"evt_17a887231f14_1a2b5","timestamp":"2026-11-22T04:11:13.152Z","run_id":"run_17a887231f14_1a2b3","seq":183,"reply_to":"c500-17","payload":{"tool_name":"echo","tool_call_id":"call_run_17a887231f14_1a2b3","parameters":{"text":"What is the weather in Oslo today?"}}}"#,
    r#"{"type":"tool_completed","event_id":"evt_17a887231f14_1a2b6","timestamp":"2026-11-22T04:11:13.152Z","run_id":"run_17a887231f14_1a2b3","seq":184,"reply_to":"c500-17","payload":{"tool_name":"echo","tool_call_id":"call_run_17a887231f14_1a2b3","result":{"text":"What is the weather in Oslo today?"},"duration_ms":0,"status":"ok"}}"#,
    r#"{"type":"agent_completed","event_id":"evt_17a887231f14_1a2b7","timestamp":"2026-11-22T04:11:13.152Z","run_id":"run_17a887231f14_1a2b3","seq":185,"reply_to":"c500-17","payload":{"result":{"response":"You said: What is the weather in Oslo today?"},"duration_ms":0}}"#,
];

fn main() -> ExitCode {
    agentwire_benches::exit("agentwire-baseline", run(&BaselineArgs::parse()))
}

/// Serves the baseline until Ctrl-C or SIGTERM.
fn run(args: &BaselineArgs) -> Result<(), String> {
    let runtime = agentwire_benches::runtime(args.threads)?;
    let burn = std::time::Duration::from_secs_f64(args.burn_us.max(0.0) / 1e6);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        println!("agentwire-baseline: listening on ws://{local}/ws (bare tokio-tungstenite)");
        let stop = agentwire_benches::stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream, burn));
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                },
            }
        }
    })
}

/// Answers `jwt-auth` when the client offers it first; nothing else is looked at.
// The signature is tungstenite's `Callback`; the error is never built here.
#[allow(clippy::result_large_err)]
fn answer_marker(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .is_some_and(|v| v.as_bytes().starts_with(b"jwt-auth"));
    if offered {
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("jwt-auth"));
    }
    Ok(response)
}

/// Spins on the CPU for `burn` (a no-op for zero): work that cannot yield, like parsing and
/// serializing.
fn burn_cpu(burn: std::time::Duration) {
    if burn.is_zero() {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < burn {
        std::hint::spin_loop();
    }
}

async fn serve(stream: TcpStream, burn: std::time::Duration) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, answer_marker, Some(config)).await
    else {
        return;
    };
    if ws
        .send(Message::Text(Utf8Bytes::from_static(ESTABLISHED)))
        .await
        .is_err()
    {
        return;
    }
    // Pings are answered and close frames returned by tungstenite while reading.
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(_) = message {
            burn_cpu(burn);
            for frame in FRAMES {
                if ws
                    .feed(Message::Text(Utf8Bytes::from_static(frame)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
        }
    }
}
