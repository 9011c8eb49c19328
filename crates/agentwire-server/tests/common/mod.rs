//! A server on loopback and a real WebSocket client, for the integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use agentwire_auth::testing::{Claims, SigningKey};
use agentwire_auth::{Algorithm, Key, Token, Validator};
use agentwire_events::{parse_outbound, validate_run};
use agentwire_server::{Config, DemoAgent, Handler, Server, ServerBuilder};
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
        .key(Key::hmac(agentwire_auth::testing::FIXTURE_HMAC_SECRET).expect("fixture secret"))
        .build()
        .expect("validator")
}

pub fn token(sub: &str) -> Token {
    Claims::new(sub).sign(&hmac_key()).expect("sign")
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
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

    pub fn trigger_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn join(mut self) {
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task");
    }
}

pub async fn start(config: Config) -> TestServer {
    start_with(
        Server::builder(validator())
            .config(config)
            .handler(DemoAgent::new(Duration::ZERO)),
    )
    .await
}

pub async fn start_handler(config: Config, handler: impl Handler) -> TestServer {
    start_with(Server::builder(validator()).config(config).handler(handler)).await
}

pub async fn start_with<H: Handler>(builder: ServerBuilder<H>) -> TestServer {
    raise_fd_limit();
    let server = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    TestServer::from_listener(server, listener)
}

impl TestServer {
    /// Serves `server` on `listener` (a test that needs a given port binds it itself).
    pub fn from_listener(server: Server, listener: tokio::net::TcpListener) -> TestServer {
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        TestServer {
            addr,
            server,
            stop: Some(stop),
            task,
        }
    }
}

/// Lets a test hold a few thousand sockets where the soft limit is low.
pub fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum
        && limit.current.is_some_and(|cur| cur < max)
    {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        );
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

/// Connects offering `jwt-auth, jwt.<token>` and reads `connection_established`.
pub async fn connect(server: &TestServer, token: &Token) -> (Client, Value) {
    let offer = agentwire_auth::testing::offer_header(token);
    let (mut ws, response) = connect_raw(&server.url("/ws"), Some(&offer), None)
        .await
        .expect("connect");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"jwt-auth"[..])
    );
    let established = next_json(&mut ws).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    (ws, established)
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

pub async fn send_json(ws: &mut Client, value: &Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Sends a request and reads the run's events until its terminal one; checks them with the
/// run validator and returns them.
pub async fn run_agent(ws: &mut Client, request: &Value) -> Vec<Value> {
    send_json(ws, request).await;
    read_run(ws).await
}

pub async fn read_run(ws: &mut Client) -> Vec<Value> {
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

/// A plain HTTP/1.1 GET over loopback: (status, head, body). Reads the head, then
/// `Content-Length` bytes of body (none for `101 Switching Protocols`).
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    http_raw(addr, request.as_bytes()).await
}

/// One HTTP/1.1 request with a body over loopback: (status, head, body). `method` is any
/// method; `Content-Length` is set from `body`, and the connection closes after the answer.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    http_raw(addr, &bytes).await
}

/// Writes `request` as it is (a head and whatever body, chunked or cut short) and reads the
/// answer: (status, head, body). A write the server cut short by answering early is not an
/// error: the answer is what counts.
pub async fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length = header_value(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    let (head, body) = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("response in time");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, body)
}

/// The value of header `name` (any case) in a response head.
pub fn header_value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

pub async fn health(addr: SocketAddr) -> (u16, Value) {
    let (status, _, body) = http_get(addr, "/ws/health", &[]).await;
    (status, serde_json::from_str(&body).expect("health JSON"))
}

/// Waits until `/ws/health` reports `active` connections (connections end asynchronously).
pub async fn await_active(addr: SocketAddr, active: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, body) = health(addr).await;
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

/// A hand-made WebSocket client over a raw TCP stream, for frames a library client refuses to
/// send (invalid UTF-8, odd fragmentation). Returns the stream after the 101 response head.
pub async fn raw_connect(addr: SocketAddr, token: &Token) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        agentwire_auth::testing::offer_header(token)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// One masked client frame: `opcode` with FIN set (or not), `payload` as given.
pub fn raw_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames from a raw stream until a close frame; returns its code.
pub async fn raw_close_code(stream: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let (_, opcode, payload) = read_frame(stream).await?;
            if opcode == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("close in time")
}

/// Reads server frames from a raw stream until a close frame; returns its code and reason.
pub async fn raw_close(stream: &mut TcpStream) -> Option<(u16, String)> {
    let read = async {
        loop {
            let (_, opcode, payload) = read_frame(stream).await?;
            if opcode == 0x8 && payload.len() >= 2 {
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                return Some((u16::from_be_bytes([payload[0], payload[1]]), reason));
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("close in time")
}

/// One unmasked (server) frame: `(fin, opcode, payload)`; `None` at end of stream. No timeout.
async fn read_frame(stream: &mut TcpStream) -> Option<(bool, u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.ok()?;
    let len = match header[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[0] & 0x80 != 0, header[0] & 0x0F, payload))
}

/// Reads one server frame from a raw stream: `(fin, opcode, payload)`; `None` at end of stream.
pub async fn raw_read_frame(stream: &mut TcpStream) -> Option<(bool, u8, Vec<u8>)> {
    tokio::time::timeout(PATIENCE, read_frame(stream))
        .await
        .expect("a frame in time")
}

/// The next text frame from a raw stream as JSON, skipping pings and pongs. Panics on a close
/// frame or the end of the stream.
pub async fn raw_next_json(stream: &mut TcpStream) -> Value {
    loop {
        match raw_read_frame(stream).await {
            Some((true, 0x1, payload)) => {
                return serde_json::from_slice(&payload).expect("server frames are JSON");
            }
            Some((_, 0x9 | 0xA, _)) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A counter of `/metrics` whose line starts with `prefix` (0 when absent).
pub async fn metric(addr: SocketAddr, prefix: &str) -> u64 {
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Checks `/metrics` for any connection closed 1011 (a server bug, never the client's fault).
pub async fn assert_no_1011(addr: SocketAddr) {
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    assert!(
        !metrics.contains("code=\"1011\""),
        "no 1011 ever: {metrics}"
    );
}
