//! A server on loopback and a real WebSocket client, for the binary's integration tests: the
//! few helpers of agentwire-server's tests/common that these tests need, built only on the
//! server's public API.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use agentwire_auth::testing::{Claims, FIXTURE_HMAC_SECRET, SigningKey};
use agentwire_auth::{Algorithm, Key, Token, Validator};
use agentwire_events::{parse_outbound, validate_run};
use agentwire_server::{Config, DemoAgent, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should arrive. A liveness bound, not a speed
/// target: a healthy run answers in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn hmac_key() -> SigningKey {
    SigningKey::fixture(Algorithm::HS256)
}

pub fn validator() -> Validator {
    Validator::builder()
        .key(Key::hmac(FIXTURE_HMAC_SECRET).expect("fixture secret"))
        .build()
        .expect("validator")
}

pub fn token(sub: &str) -> Token {
    Claims::new(sub).sign(&hmac_key()).expect("sign")
}

/// An agentwire server with the demo agent (no pause between steps) on a loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Triggers the serve loop's shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(PATIENCE, &mut self.task).await;
    }
}

pub async fn start(config: Config) -> TestServer {
    let server = Server::builder(validator())
        .config(config)
        .handler(DemoAgent::new(Duration::ZERO))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    TestServer {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Connects with the given `Sec-WebSocket-Protocol` offer and `Authorization` header.
pub async fn connect_raw(
    url: &str,
    protocol: Option<&str>,
    authorization: Option<&str>,
) -> Result<(Client, Response), tungstenite::Error> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    }
    if let Some(authorization) = authorization {
        request
            .headers_mut()
            .insert("Authorization", authorization.parse().expect("header"));
    }
    tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
}

/// The next text frame as JSON, skipping pings and pongs. Panics on close or timeout.
pub async fn next_json(ws: &mut Client) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).expect("server frames are JSON")
}

pub async fn next_text(ws: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("no protocol error");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the close frame and returns it (text frames before it are returned too).
pub async fn until_close(ws: &mut Client) -> (Vec<Value>, Option<CloseFrame>) {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("close in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                frames.push(serde_json::from_str(&text).expect("JSON"));
            }
            Some(Ok(Message::Close(frame))) => return (frames, frame),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

pub fn close_code(frame: &Option<CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

/// Sends a request and reads the run's events until its terminal one; checks them with the
/// run validator and returns them.
pub async fn run_agent(ws: &mut Client, request: &Value) -> Vec<Value> {
    ws.send(Message::text(request.to_string()))
        .await
        .expect("send");
    let mut texts = Vec::new();
    loop {
        let text = next_text(ws).await;
        let value: Value = serde_json::from_str(&text).expect("JSON");
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        assert!(kind != "error", "unexpected error frame: {value}");
        texts.push(text);
        if kind == "agent_completed" || kind == "agent_error" {
            break;
        }
    }
    let frames: Vec<_> = texts
        .iter()
        .map(|t| parse_outbound(t).expect("a valid outbound frame"))
        .collect();
    if let Err(violation) = validate_run(&frames) {
        panic!("not a well-formed run: {violation:?}");
    }
    texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("JSON"))
        .collect()
}

/// `GET /ws/health` over a plain HTTP/1.1 connection: the body as JSON.
pub async fn health(addr: SocketAddr) -> Value {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /ws/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let response = String::from_utf8_lossy(&response);
    let (_, body) = response.split_once("\r\n\r\n").expect("a response head");
    serde_json::from_str(body).expect("health JSON")
}

/// Waits until `/ws/health` reports `active` connections (connections end asynchronously).
pub async fn await_active(addr: SocketAddr, active: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let body = health(addr).await;
        if body["connections"]["active"] == active {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "active connections stayed at {} (want {active})",
            body["connections"]["active"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
