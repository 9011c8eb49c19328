//! A real redis-server on a free loopback port, agentwire nodes using it, and a WebSocket
//! client, for the engine's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentwire_auth::testing::{Claims, SigningKey};
use agentwire_auth::{Algorithm, Key, Token, Validator};
use agentwire_redis::{RedisConfig, RedisEngine};
use agentwire_server::{Config, DemoAgent, PublishConfig, PublishKey, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bounds a wait for something that should happen; never a speed target.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A redis-server of its own: persistence off, loopback only, killed by PID on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING. Fails (never
    /// skips) when redis-server is not installed.
    pub async fn start() -> RedisServer {
        let port = free_port();
        let mut server = RedisServer { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, by PID) and waits for it to be gone: every key is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}): run scripts/setup/redis.sh")
            });
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        let ready = async {
            loop {
                if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                    let pong: Result<String, _> =
                        redis::cmd("PING").query_async(&mut connection).await;
                    if pong.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("redis-server answers PING");
    }

    /// A command connection, for looking at what the engine stored.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub fn validator() -> Validator {
    Validator::builder()
        .key(Key::hmac(agentwire_auth::testing::FIXTURE_HMAC_SECRET).expect("fixture secret"))
        .build()
        .expect("validator")
}

pub fn token(sub: &str) -> Token {
    Claims::new(sub)
        .sign(&SigningKey::fixture(Algorithm::HS256))
        .expect("sign")
}

/// The publish API key of the test nodes that serve it.
pub const PUBLISH_KEY: &str = "redis-publish-key-0123456789abcdef";

/// One agentwire node on a free loopback port, using the Redis engine.
pub struct Node {
    pub addr: SocketAddr,
    /// The publish API's address, when the node serves it.
    pub publish_addr: Option<SocketAddr>,
    pub server: Server,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Node {
    pub async fn start(redis: &RedisServer, demo_step: Duration) -> Node {
        Node::start_with(redis, Config::default(), demo_step, false).await
    }

    /// A node with `config` that also serves the publish API (key [`PUBLISH_KEY`]) when
    /// `publish` is set.
    pub async fn start_with(
        redis: &RedisServer,
        config: Config,
        demo_step: Duration,
        publish: bool,
    ) -> Node {
        let redis = RedisConfig::new(&redis.url()).expect("redis config");
        Node::start_engine(redis, config, demo_step, publish).await
    }

    /// A node whose engine has `redis` (its URL a proxy in front of the test's Redis, say).
    pub async fn start_engine(
        redis: RedisConfig,
        config: Config,
        demo_step: Duration,
        publish: bool,
    ) -> Node {
        let server_config = config;
        let config = redis;
        let mut builder = Server::builder(validator())
            .config(server_config)
            .handler(DemoAgent::new(demo_step))
            .delivery(move |local| RedisEngine::new(config, local));
        if publish {
            builder = builder.publish(
                PublishConfig::builder()
                    .key(PublishKey::new(PUBLISH_KEY).expect("key"))
                    .build()
                    .expect("publish config"),
            );
        }
        let server = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let publish_listener = if publish {
            Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind"),
            )
        } else {
            None
        };
        let publish_addr = publish_listener
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            match publish_listener {
                None => {
                    let _ = serving.serve(listener, stopped).await;
                }
                Some(publish_listener) => {
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    let mut rx2 = rx.clone();
                    let mut rx1 = rx;
                    let ws = serving.serve(listener, async move {
                        let _ = rx1.wait_for(|s| *s).await;
                    });
                    let publishing = serving.serve_publish(publish_listener, async move {
                        let _ = rx2.wait_for(|s| *s).await;
                    });
                    let signal = async move {
                        stopped.await;
                        let _ = tx.send(true);
                    };
                    let _ = tokio::join!(ws, publishing, signal);
                }
            }
        });
        let node = Node {
            addr,
            publish_addr,
            server,
            task,
            stop: Some(stop),
        };
        node.wait_health("healthy").await;
        node
    }

    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    /// `/ws/health` as JSON.
    pub async fn health(&self) -> Value {
        let (_, body) = http_get(self.addr, "/ws/health").await;
        serde_json::from_str(&body).expect("JSON")
    }

    /// Waits until `/ws/health` says `status`.
    pub async fn wait_health(&self, status: &str) -> Value {
        let wait = async {
            loop {
                let health = self.health().await;
                if health["status"] == status {
                    return health;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("health never said {status}"))
    }

    /// A number of `/metrics` whose line starts with `prefix` followed by a space.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.server.metrics_text();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    /// Waits until the metric `name` is `value`.
    pub async fn wait_metric(&self, name: &str, value: u64) {
        let wait = async {
            while self.metric(name) != value {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(PATIENCE, wait).await.is_err() {
            panic!("{name} stayed at {} (want {value})", self.metric(name));
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(PATIENCE, &mut self.task).await;
    }
}

/// A plain HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, &[], b"").await
}

/// Posts `body` to the publish API of `node` for `user`: (status, JSON answer).
pub async fn publish(node: &Node, user: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {PUBLISH_KEY}");
    let (status, answer) = http_request(
        node.publish_addr.expect("a node serving the publish API"),
        "POST",
        &format!("/api/v1/users/{user}/events"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    let answer = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("JSON ({e}): {answer}"));
    (status, answer)
}

/// A plain HTTP/1.1 request with `Connection: close`: (status, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
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
    stream.write_all(&bytes).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Connects as `user` (with `query`, e.g. `?epoch=..&since=..`) and reads
/// `connection_established`.
pub async fn connect(node: &Node, user: &str, query: &str) -> (Client, Value) {
    let offer = agentwire_auth::testing::offer_header(&token(user));
    let mut request = node.url(query).into_client_request().expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer.parse().expect("header"));
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
        .expect("handshake");
    let established = next_json(&mut ws).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    (ws, established)
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

pub async fn next_json(ws: &mut Client) -> Value {
    serde_json::from_str(&next_text(ws).await).expect("JSON")
}

/// Reads until the close frame: the text frames before it, and the frame.
pub async fn until_close(ws: &mut Client) -> (Vec<Value>, Option<CloseFrame>) {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("close in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                frames.push(serde_json::from_str(&text).expect("JSON"))
            }
            Some(Ok(Message::Close(frame))) => return (frames, frame),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

pub async fn send_json(ws: &mut Client, value: &Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}
