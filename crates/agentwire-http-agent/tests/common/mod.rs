//! The test agent service's plumbing (axum on loopback), an agentwire server with an
//! `HttpAgent`, and a real WebSocket client: shared by the NDJSON and the AG-UI tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentwire_auth::testing::{Claims, SigningKey, offer_header};
use agentwire_auth::{Algorithm, Key, Token, Validator};
use agentwire_http_agent::{HttpAgent, HttpAgentBuilder};
use agentwire_server::Server;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The frame types of the test services' tool-using run, in order (the five events, the
/// answer in two chunks).
pub const TOOL_RUN: [&str; 7] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_response_chunk",
    "agent_response_chunk",
    "agent_completed",
];

/// The frames' `type`s, in order.
pub fn kinds<'a>(frames: impl IntoIterator<Item = &'a Value>) -> Vec<&'a str> {
    frames
        .into_iter()
        .map(|f| f["type"].as_str().expect("a frame has a type"))
        .collect()
}

/// How long a test waits for something that should arrive: a liveness bound, not a target.
pub const PATIENCE: Duration = Duration::from_secs(20);
pub const SERVICE_SECRET: &str = "the agent-service secret, 32 bytes or more";
pub const USER: &str = "user-1";

/// What the test service saw.
#[derive(Default)]
pub struct Seen {
    /// Per request: the `Authorization` header and the body.
    pub requests: Vec<(Option<String>, Value)>,
    /// Per request: the client's address (the same one for a reused connection).
    pub peers: Vec<SocketAddr>,
    /// Per request: all its headers.
    pub headers: Vec<HeaderMap>,
}

#[derive(Clone)]
pub struct ServiceState {
    pub seen: Arc<Mutex<Seen>>,
    /// Told when a streaming response's receiver went away (the client disconnected).
    pub disconnected: mpsc::UnboundedSender<String>,
}

/// Keeps what a request to the test service carried.
pub fn record(state: &ServiceState, peer: SocketAddr, headers: &HeaderMap, body: &[u8]) {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    {
        let mut seen = state.seen.lock().unwrap();
        seen.requests.push((authorization, request));
        seen.peers.push(peer);
        seen.headers.push(headers.clone());
    }
}

/// `GET path` on `addr` over loopback (HTTP/1.1, `Connection: close`): the status and the
/// body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(PATIENCE, exchange).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, body.to_owned())
}

/// A streamed response of `content_type`: `chunks` sent with a pause between them, then the stream
/// stays open if `hold` (until the client goes away), else ends.
pub fn stream(
    state: &ServiceState,
    name: &str,
    content_type: &str,
    chunks: Vec<String>,
    hold: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let disconnected = state.disconnected.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        for chunk in chunks {
            if tx.send(Bytes::from(chunk)).await.is_err() {
                let _ = disconnected.send(name);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if hold {
            // Keep writing blank lines (a blank line is no event in NDJSON nor in SSE)
            // until the write fails: the client is gone.
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if tx.send(Bytes::from_static(b"\n")).await.is_err() {
                    let _ = disconnected.send(name);
                    return;
                }
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, content_type.to_owned())],
        Body::from_stream(body),
    )
        .into_response()
}

pub struct Harness {
    pub service: SocketAddr,
    /// The agentwire server (WebSocket, `/metrics`, `/ws/config`).
    pub server: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    pub disconnected: mpsc::UnboundedReceiver<String>,
    pub agent: HttpAgent,
    pub ws: Client,
    /// The `connection_established` of the current connection.
    pub established: Value,
    pub user_token: Token,
    pub next_message: u32,
}

async fn start_service(
    routes: Router<ServiceState>,
) -> (
    SocketAddr,
    Arc<Mutex<Seen>>,
    mpsc::UnboundedReceiver<String>,
) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (disconnected, disconnects) = mpsc::unbounded_channel();
    let state = ServiceState {
        seen: Arc::clone(&seen),
        disconnected,
    };
    let app = routes.with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, seen, disconnects)
}

/// A WebSocket client of `USER` to `ws://server/ws?query` (`query` may be empty) and its
/// `connection_established`.
async fn connect(server: SocketAddr, user_token: &Token, query: &str) -> (Client, Value) {
    let url = if query.is_empty() {
        format!("ws://{server}/ws")
    } else {
        format!("ws://{server}/ws?{query}")
    };
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        offer_header(user_token).parse().unwrap(),
    );
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    let established = next_frame(&mut ws).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    (ws, established)
}

/// The next text frame as JSON (pings and pongs skipped).
async fn next_frame(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("no protocol error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub fn user_validator() -> Validator {
    Validator::builder()
        .key(Key::hmac(agentwire_auth::testing::FIXTURE_HMAC_SECRET).unwrap())
        .build()
        .unwrap()
}

impl Harness {
    /// The test service (`routes`), a server whose agent `configure` sets up (on top of the
    /// service token, a 1 KiB line limit and a 1.5 s idle timeout), and a connected client.
    pub async fn start_with(
        routes: Router<ServiceState>,
        configure: impl FnOnce(HttpAgentBuilder, SocketAddr) -> HttpAgentBuilder,
    ) -> Harness {
        let (service, seen, disconnected) = start_service(routes).await;
        let builder = HttpAgent::builder()
            .service_token_secret(SERVICE_SECRET)
            .max_line_bytes(1024)
            // Long enough that a loaded machine does not trip it between the scenarios' lines.
            .idle_timeout(Duration::from_millis(1500));
        let agent = configure(builder, service).build().unwrap();
        let server = Server::builder(user_validator())
            .handler(agent.clone())
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = server.serve(listener, std::future::pending::<()>()).await;
        });
        let user_token = Claims::new(USER)
            .sign(&SigningKey::fixture(Algorithm::HS256))
            .unwrap();
        let (ws, established) = connect(addr, &user_token, "").await;
        Harness {
            service,
            server: addr,
            seen,
            disconnected,
            agent,
            ws,
            established,
            user_token,
            next_message: 0,
        }
    }

    /// Goes away without a close frame: shuts the connection's socket (the server reads its
    /// end). The next [`reconnect`](Self::reconnect) replaces it.
    pub async fn disconnect(&mut self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_mut() {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.shutdown().await;
        }
    }

    /// Drops the connection (no close frame: the peer just goes away) and opens a new one as
    /// the same user to `/ws?query`; returns its `connection_established`.
    pub async fn reconnect(&mut self, query: &str) -> Value {
        // The old one goes first: its socket is shut before the new handshake.
        self.disconnect().await;
        let (ws, established) = connect(self.server, &self.user_token, query).await;
        drop(std::mem::replace(&mut self.ws, ws));
        self.established = established.clone();
        established
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn next(&mut self) -> Value {
        next_frame(&mut self.ws).await
    }

    /// Asks `agent_name` for a run; returns the request's message id.
    pub async fn ask(&mut self, agent_name: &str) -> String {
        self.next_message += 1;
        let message_id = format!("m{}", self.next_message);
        self.send(json!({"type": "start_agent", "message_id": message_id,
                         "payload": {"user_request": "hi", "agent_name": agent_name}}))
            .await;
        message_id
    }

    /// The run's frames, through its terminal event.
    pub async fn run_frames(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let kind = frame["type"].as_str().unwrap_or_default().to_owned();
            assert!(frame["run_id"].is_string(), "{frame}");
            frames.push(frame);
            if kind == "agent_completed" || kind == "agent_error" {
                return frames;
            }
        }
    }

    /// Runs `agent_name` and returns the `agent_error` code it ends with. Whatever the
    /// failure, the run is well formed on the wire (`agent_started` first, even when the
    /// service sent nothing).
    pub async fn failing_run(&mut self, agent_name: &str) -> (Vec<Value>, String) {
        self.ask(agent_name).await;
        let frames = self.run_frames().await;
        let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
        agentwire_events::validate_run_json(texts.iter().map(String::as_str))
            .unwrap_or_else(|violation| panic!("{violation}: {frames:#?}"));
        let last = frames.last().unwrap();
        assert_eq!(last["type"], "agent_error", "{last}");
        let code = last["payload"]["code"].as_str().unwrap().to_owned();
        (frames, code)
    }

    /// The WebSocket still answers.
    pub async fn assert_usable(&mut self) {
        self.send(json!({"type": "ping"})).await;
        let pong = self.next().await;
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    /// Waits for the agent's runs to finish on its side: the terminal event is relayed
    /// before the response's end is read.
    pub async fn settled(&self) {
        for _ in 0..PATIENCE.as_millis() / 10 {
            if self.agent.in_flight() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("runs still in flight: {}", self.agent.in_flight());
    }

    pub async fn disconnect_of(&mut self, scenario: &str) {
        loop {
            let name = tokio::time::timeout(PATIENCE, self.disconnected.recv())
                .await
                .expect("the service sees the client disconnect")
                .unwrap();
            if name == scenario {
                return;
            }
        }
    }
}
