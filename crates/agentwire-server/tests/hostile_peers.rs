//! Peers that try to exhaust the server, from raw sockets and real clients over loopback:
//! slow consumers of small frames, half-open connections from one address, deep JSON, tokens
//! that expire in the far future, and the wrong WebSocket version.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use agentwire_auth::testing::{Claims, offer_header};
use agentwire_server::{Config, Event};
use common::*;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_of_small_frames_is_closed_by_the_write_timeout() {
    // A queue long enough that it does not fill first: the write timeout must catch the peer,
    // which it can only do if the kernel does not buffer megabytes for it.
    let config = Config::builder()
        .outbound_queue_frames(1_000_000)
        .write_timeout(Duration::from_millis(500))
        .build()
        .expect("config");
    let server = start(config).await;
    let mut reader = raw_connect(server.addr, &token("slow")).await;
    // On the user's stream once connection_established is out.
    let established = raw_next_json(&mut reader).await;
    assert_eq!(established["type"], "connection_established");
    // Emit small events until the connection is gone from the user's stream.
    let emitter = server.server.emitter();
    let mut emitted = 0u64;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let delivered = emitter.emit("slow", Event::agent_thinking("run_s", "tick"));
        if delivered.connections == 0 {
            break;
        }
        emitted += 1;
        if emitted.is_multiple_of(512) {
            assert!(tokio::time::Instant::now() < deadline, "never closed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    await_active(server.addr, 0).await;
    assert_eq!(
        metric(server.addr, "agentwire_closes_total{code=\"4008\"").await,
        1,
        "closed as a slow consumer"
    );
    eprintln!("slow consumer closed after {emitted} events were queued for it");
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut reader).await;
    server.stop().await;
}

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_from_one_address_do_not_lock_out_another() {
    let server = start(Config::default()).await;
    let attacker: IpAddr = "127.0.0.1".parse().expect("ip");
    // 4,096 connections that never send a request head, renewed by nobody: the whole
    // pending-handshake budget if one peer could take it.
    let mut half_open = Vec::with_capacity(4096);
    for _ in 0..4096 {
        half_open.push(connect_from(attacker, server.addr).await.expect("connect"));
    }
    // A client from another address is served while the attacker holds its share.
    let stream = connect_from("127.0.0.2".parse().expect("ip"), server.addr)
        .await
        .expect("connect from 127.0.0.2");
    let token = token("neighbour");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.url("/ws"),
        )
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        offer_header(&token).parse().expect("header"),
    );
    let (mut ws, _) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")
            .expect("the other address is served");
    let established = tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut ws))
        .await
        .expect("a frame")
        .expect("open")
        .expect("frame");
    assert!(
        established
            .to_text()
            .expect("text")
            .contains("connection_established"),
        "{established:?}"
    );
    // The attacker was refused past its per-peer cap (asked from the other address: the
    // attacker's own is still at its cap).
    let mut scrape = connect_from("127.0.0.2".parse().expect("ip"), server.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    tokio::io::AsyncWriteExt::write_all(&mut scrape, request.as_bytes())
        .await
        .expect("write");
    let mut metrics = String::new();
    tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_string(&mut scrape, &mut metrics),
    )
    .await
    .expect("metrics in time")
    .expect("read");
    assert!(
        metrics.contains(
            "agentwire_handshakes_rejected_total{reason=\"too_many_pending_handshakes_from_peer\"}"
        ),
        "{metrics}"
    );
    drop(half_open);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_is_refused_with_invalid_payload() {
    let config = Config::builder()
        .max_message_bytes(1 << 20)
        .build()
        .expect("config");
    let server = start(config).await;
    let (mut ws, _) = connect(&server, &token("deep")).await;
    for deep in [
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)),
    ] {
        let text = format!(
            r#"{{"type": "start_agent", "message_id": "d", "payload": {{"user_request": "x", "context": {{"deep": {deep}}}}}}}"#
        );
        futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send");
        let refused = next_json(&mut ws).await;
        assert_eq!(refused["payload"]["code"], "invalid_payload", "{refused}");
        assert_eq!(refused["payload"]["field"], "payload.context");
        assert_eq!(refused["reply_to"], "d");
    }
    // Nesting within the limit is handed on.
    let frames = run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "x", "context": {"a": [[[1]]]}}}),
    )
    .await;
    assert_eq!(frames.last().expect("terminal")["type"], "agent_completed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_exp_round_trips_in_auth_refreshed() {
    let server = start(Config::default()).await;
    let (mut ws, _) = connect(&server, &token("fay")).await;
    for exp in [json!(253_402_300_800u64), json!(1e300)] {
        let fresh = Claims::new("fay")
            .claim("exp", exp.clone())
            .sign(&hmac_key())
            .expect("sign");
        send_json(
            &mut ws,
            &json!({"type": "auth_refresh", "payload": {"token": fresh.expose_secret()}}),
        )
        .await;
        let refreshed = next_json(&mut ws).await;
        assert_eq!(refreshed["type"], "auth_refreshed", "{refreshed}");
        assert_eq!(
            refreshed["payload"]["expires_at"], "9999-12-31T23:59:59.000Z",
            "exp {exp}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_websocket_version_gets_426_with_the_version_spoken() {
    let server = start(Config::default()).await;
    let token = token("old");
    let offer = offer_header(&token);
    let (status, head, body) = http_get(
        server.addr,
        "/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", &offer),
        ],
    )
    .await;
    assert_eq!(status, 426, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["error"]["code"], "unsupported_websocket_version");
    server.stop().await;
}
