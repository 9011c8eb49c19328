//! `agentwire-baseline`, run as the binary and driven by a real WebSocket client over loopback:
//! it answers the marker protocol, sends `connection_established`, and answers every request
//! with the five frames of a well-formed run (what `agentwire load` counts), with or without
//! CPU burnt per request; SIGTERM stops it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire-baseline");

/// A liveness bound for what should arrive at once, not a speed target.
const PATIENCE: Duration = Duration::from_secs(20);

/// Starts the baseline on a free loopback port; returns the process and its URL.
fn spawn(burn_us: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--burn-us",
            burn_us,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agentwire-baseline");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("read");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("no protocol error");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn session(url: &str) {
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "jwt-auth, jwt.any-token".parse().expect("header"),
    );
    let (mut ws, response) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake in time")
            .expect("connect");
    assert_eq!(response.headers()["sec-websocket-protocol"], "jwt-auth");
    let established = next_text(&mut ws).await;
    let frame = agentwire_events::parse_outbound(&established).expect("a valid agentwire frame");
    let value: serde_json::Value = serde_json::from_str(&established).expect("JSON");
    assert_eq!(value["type"], "connection_established", "{frame:?}");

    for round in 0..2 {
        let request = serde_json::json!({
            "type": "start_agent",
            "message_id": format!("m{round}"),
            "payload": {"user_request": "What is the weather in Oslo today?"},
        });
        ws.send(Message::text(request.to_string()))
            .await
            .expect("send");
        let mut texts = Vec::new();
        for _ in 0..5 {
            texts.push(next_text(&mut ws).await);
        }
        let summary = agentwire_events::validate_run_json(texts.iter().map(String::as_str))
            .expect("the five frames are a well-formed run");
        assert_eq!(summary.events, 5);
        assert_eq!(summary.terminal.as_str(), "agent_completed");
    }
    ws.close(None).await.expect("close");
}

async fn check(burn_us: &str) {
    let (child, url) = spawn(burn_us);
    session(&url).await;
    // A client that offers no subprotocol gets none back.
    let (ws, response) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(&url))
        .await
        .expect("handshake in time")
        .expect("connect");
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    drop(ws);
    common::stop_with_sigterm(child, PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_answers_like_agentwire_and_stops_on_sigterm() {
    // With CPU burnt per request too: that changes its cost and nothing it answers.
    for burn_us in ["0", "300"] {
        check(burn_us).await;
    }
}
