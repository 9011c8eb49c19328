//! Liveness, load and shutdown over real sockets.

mod common;

use std::time::Duration;

use agentwire_server::{Config, DemoAgent};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_drop_a_silent_peer_and_keep_a_live_one() {
    let config = Config::builder()
        .heartbeat_interval(Duration::from_millis(200))
        .pong_timeout(Duration::from_millis(300))
        .build()
        .expect("config");
    let server = start(config).await;
    let token = token("pat");

    // A live client: its library answers pings while it reads.
    let (mut live, _) = connect(&server, &token).await;
    // A silent peer: completes the handshake, then never answers anything.
    let mut silent = raw_connect(server.addr, &token).await;

    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, live.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(other))) => panic!("unexpected {other:?}"),
            Ok(other) => panic!("live connection ended: {other:?}"),
            Err(_) => break,
        }
    }
    assert!(pings >= 3, "pinged across several intervals ({pings})");
    send_json(&mut live, &json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut live).await["type"], "pong", "still open");

    // The silent one was closed with 4408 heartbeat_timeout (a close frame, after the pings
    // it never answered), then its stream ends.
    let (code, reason) = raw_close(&mut silent).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (4408, "heartbeat_timeout"));
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, silent.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "the server dropped the silent peer");
    await_active(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_each_run_an_agent() {
    let config = Config::builder()
        .rate_limit_per_sec(0)
        .build()
        .expect("config");
    let server = start(config).await;
    let url = server.url("/ws");
    let clients: Vec<_> = (0..1000)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let token = token(&format!("user-{i}"));
                let offer = agentwire_auth::testing::offer_header(&token);
                let (mut ws, _) = connect_raw(&url, Some(&offer), None).await.expect("connect");
                assert_eq!(next_json(&mut ws).await["type"], "connection_established");
                let events = run_agent(
                    &mut ws,
                    &json!({"type": "start_agent", "payload": {"user_request": format!("req {i}")}}),
                )
                .await;
                ws.close(None).await.expect("close");
                events.len()
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.expect("client task"), 5);
    }
    await_active(server.addr, 0).await;
    let (_, health) = health(server.addr).await;
    assert_eq!(health["connections"]["total"], 1000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_config_and_metrics_answer() {
    let server = start(Config::default()).await;
    let (status, health) = health(server.addr).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["service"], "agentwire");
    assert!(health["version"].is_string() && health["uptime_s"].is_u64());
    assert_eq!(health["connections"]["active"], 0);

    let (status, _, body) = http_get(server.addr, "/ws/config", &[]).await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(config["protocol_version"], 1);
    assert_eq!(config["subprotocol"], "jwt-auth");
    assert_eq!(config["endpoints"], json!(["/ws", "/websocket"]));
    assert_eq!(config["max_message_bytes"], 65536);
    assert_eq!(config["heartbeat_interval_ms"], 25000);
    assert_eq!(config["agent"], json!({"kind": "demo", "step_ms": 0}));
    assert!(
        !body.contains(agentwire_auth::testing::FIXTURE_HMAC_SECRET),
        "no secret"
    );

    let (mut ws, _) = connect(&server, &token("quinn")).await;
    run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "m"}}),
    )
    .await;
    ws.send(Message::text("nope")).await.expect("send");
    next_json(&mut ws).await;
    let (status, head, metrics) = http_get(server.addr, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4")
    );
    for line in [
        "agentwire_connections_active 1",
        "agentwire_connections_total 1",
        "agentwire_runs_started_total 1",
        "agentwire_events_emitted_total 5",
        "agentwire_frames_in_total{type=\"start_agent\"} 1",
        "agentwire_frames_out_total{type=\"tool_completed\"} 1",
        "agentwire_errors_total{code=\"invalid_json\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_with_1001_and_health_says_draining() {
    let mut server = start_handler(
        Config::builder()
            .close_timeout(Duration::from_secs(3))
            .build()
            .expect("config"),
        DemoAgent::new(Duration::from_millis(50)),
    )
    .await;
    let token = token("rita");
    let (mut reading, _) = connect(&server, &token).await;
    // This client reads nothing until told to: its close handshake keeps the drain open.
    let (mut lagging, _) = connect(&server, &common::token("sam")).await;
    send_json(
        &mut reading,
        &json!({"type": "start_agent", "payload": {"user_request": "x"}}),
    )
    .await;
    assert_eq!(next_json(&mut reading).await["type"], "agent_started");

    let addr = server.addr;
    server.trigger_stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = health(addr).await;
        if status == 503 {
            assert_eq!(body["status"], "draining");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never said draining"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // New upgrades are refused while draining.
    let offer = agentwire_auth::testing::offer_header(&token);
    assert!(
        connect_raw(&format!("ws://{addr}/ws"), Some(&offer), None)
            .await
            .is_err()
    );

    let (_, close) = until_close(&mut reading).await;
    assert_eq!(close_code(&close), Some(1001));
    let (_, close) = until_close(&mut lagging).await;
    assert_eq!(close_code(&close), Some(1001));
    server.join().await;
}
