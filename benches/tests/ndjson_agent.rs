//! `agentwire-ndjson-agent`, run as the binary behind a real agentwire server with an
//! `HttpAgent`, and driven by a real WebSocket client over loopback: its runs carry the same
//! events with the same payloads as the demo agent's (what the bridged measurement compares
//! with), also when it holds a run open or writes the events in one chunk; SIGTERM stops it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentwire_auth::testing::{Claims, SigningKey, offer_header};
use agentwire_auth::{Algorithm, Key, Validator};
use agentwire_http_agent::{HttpAgent, Service};
use agentwire_server::{DemoAgent, Handler, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire-ndjson-agent");

/// A liveness bound for what should arrive at once, not a speed target.
const PATIENCE: Duration = Duration::from_secs(20);

/// Starts the service on a free loopback port with `args`; returns the process and its run
/// URL.
fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agentwire-ndjson-agent");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("read");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

/// An agentwire server with `handler` on loopback; a client's run of the load tool's default
/// request, its frames through the terminal event.
async fn run_through(handler: impl Handler) -> Vec<Value> {
    let validator = Validator::builder()
        .key(Key::hmac(agentwire_auth::testing::FIXTURE_HMAC_SECRET).expect("key"))
        .build()
        .expect("validator");
    let server = Server::builder(validator).handler(handler).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let token = Claims::new("bench")
        .sign(&SigningKey::fixture(Algorithm::HS256))
        .expect("token");
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        offer_header(&token).parse().expect("header"),
    );
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
        .expect("connect");
    let request = json!({"type": "start_agent", "message_id": "m1",
                         "payload": {"user_request": "What is the weather in Oslo today?"}});
    ws.send(Message::text(request.to_string()))
        .await
        .expect("send");
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("no protocol error");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).expect("JSON");
        if frame["run_id"].is_null() {
            continue; // connection_established
        }
        let end = matches!(
            frame["type"].as_str(),
            Some("agent_completed" | "agent_error")
        );
        frames.push(frame);
        if end {
            break;
        }
    }
    drop(ws);
    let _ = stop.send(());
    let _ = serving.await;
    frames
}

/// Each frame's type and payload, with the run id replaced by `RUN` and the durations
/// dropped (they are measured).
fn comparable(frames: &[Value]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|frame| {
            let run_id = frame["run_id"].as_str().expect("run id");
            let mut payload = frame["payload"].clone();
            if let Some(payload) = payload.as_object_mut() {
                payload.remove("duration_ms");
            }
            let payload: Value =
                serde_json::from_str(&payload.to_string().replace(run_id, "RUN")).expect("JSON");
            (
                frame["type"].as_str().unwrap_or_default().to_owned(),
                payload,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ndjson_agent_answers_as_the_demo_agent_does_and_stops_on_sigterm() {
    let demo = run_through(DemoAgent::new(Duration::ZERO)).await;
    let expected = comparable(&demo);
    assert_eq!(expected.len(), 5, "{demo:#?}");
    for args in [
        &["--hold-ms", "0"][..],
        &["--hold-ms", "200"],
        &["--one-chunk"],
    ] {
        let (child, url) = spawn(args);
        let agent = HttpAgent::builder()
            .default_service(Service::ndjson(&url).expect("URL"))
            .build()
            .expect("agent");
        let bridged = run_through(agent).await;
        let texts: Vec<String> = bridged.iter().map(Value::to_string).collect();
        agentwire_events::validate_run_json(texts.iter().map(String::as_str))
            .unwrap_or_else(|violation| panic!("{violation}: {bridged:#?}"));
        assert_eq!(comparable(&bridged), expected, "{args:?}");
        common::stop_with_sigterm(child, PATIENCE).await;
    }
}
