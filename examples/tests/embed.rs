//! The embedding example, driven through a real WebSocket client over loopback: the service's
//! own routes and state, its `/metrics` with agentwire's, the custom agent, notifications,
//! the handshake timeout on the mounted router, and graceful shutdown with 1001.

use std::net::SocketAddr;
use std::time::Duration;

use agentwire_examples::embed;
use agentwire_server::Config;
use agentwire_server::auth::Algorithm;
use agentwire_server::auth::mint::{Claims, SigningKey, offer_header};
use agentwire_server::events::validate_run_json;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "an example secret of at least 32 bytes";
/// A liveness bound, not a speed target.
const PATIENCE: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET path` over a fresh connection: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let status = response[9..12].parse().expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn connect(addr: SocketAddr, user: &str) -> Ws {
    let key = SigningKey::hmac(Algorithm::HS256, SECRET).expect("key");
    let token = Claims::new(user).sign(&key).expect("sign");
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
    assert_eq!(next(&mut ws).await["type"], "connection_established");
    ws
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends a request and returns its run's frames (notifications in between are skipped).
async fn run(ws: &mut Ws, text: &str) -> Vec<Value> {
    let request = json!({"type": "start_agent", "payload": {"user_request": text}});
    ws.send(Message::text(request.to_string()))
        .await
        .expect("send");
    let mut frames = Vec::new();
    loop {
        let frame = next(ws).await;
        if frame.get("run_id").is_none() {
            continue;
        }
        let end = matches!(
            frame["type"].as_str(),
            Some("agent_completed" | "agent_error")
        );
        frames.push(frame);
        if end {
            return frames;
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

async fn exercise(addr: SocketAddr) -> Ws {
    // The service's own route and state.
    assert_eq!(
        get(addr, "/api/hello").await,
        (200, "hello, request 1".to_owned())
    );

    let mut ws = connect(addr, "ola").await;
    // The custom agent: a tool call, then the answer in chunks.
    let frames = run(&mut ws, "weather in Oslo?").await;
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_completed"
        ]
    );
    let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
    validate_run_json(texts.iter().map(String::as_str)).expect("a well-formed run");
    // Its failure path, with a code chosen at run time.
    let failed = run(&mut ws, "please fail").await;
    let last = failed.last().expect("terminal");
    assert_eq!(last["type"], "agent_error");
    assert_eq!(last["payload"]["code"], "forecast_503");
    assert_eq!(last["payload"]["recoverable"], true);

    // A notification from the background task.
    loop {
        let frame = next(&mut ws).await;
        if frame["type"] == "system_message" {
            assert!(frame["payload"]["message"].as_str().is_some(), "{frame}");
            assert!(frame["seq"].is_u64(), "a stream event");
            break;
        }
    }

    // The service's /metrics: its own counters and agentwire's; agentwire's endpoints moved.
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "app_hello_requests_total 1",
        "app_users_online 1",
        "agentwire_connections_active 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (status, health) = get(addr, "/agentwire/ws/health").await;
    assert_eq!(status, 200);
    assert!(health.contains("\"healthy\""), "{health}");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_mounts_agentwire_and_shuts_down_with_1001() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Config::builder()
        .handshake_timeout(Duration::from_millis(500))
        .build()
        .expect("config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(embed::serve(listener, SECRET, config, async {
        let _ = stopped.await;
    }));
    let mut ws = exercise(addr).await;

    // The mounted router has agentwire's handshake timeout: a client that sends nothing is
    // dropped.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .expect("the silent client is dropped in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let _ = stop.send(());
    assert_eq!(close_code(&mut ws).await, Some(1001));
    tokio::time::timeout(PATIENCE, served)
        .await
        .expect("serve returns")
        .expect("join")
        .expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_by_axum_serve_it_still_closes_clients_with_1001() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(embed::serve_with_axum(
        listener,
        SECRET,
        Config::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut ws = exercise(addr).await;
    let _ = stop.send(());
    assert_eq!(close_code(&mut ws).await, Some(1001));
    drop(ws);
    tokio::time::timeout(PATIENCE, served)
        .await
        .expect("serve returns")
        .expect("join")
        .expect("served");
}
