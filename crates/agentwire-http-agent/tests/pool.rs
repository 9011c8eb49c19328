//! The agent's connection pool against a hand-written HTTP/1.1 agent service on a real
//! loopback socket (so the tests decide when the service closes a connection and see when
//! agentwire closes one), behind a real agentwire server and WebSocket client.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use common::{Harness, PATIENCE, kinds};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// What the service saw, per connection (numbered from 0 in accept order).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Accepted(u32),
    Request(u32, String),
    /// agentwire closed the connection (the service read the end of the stream).
    ClientClosed(u32),
    /// The service closed the connection.
    ServiceClosed(u32),
}

struct RawService {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Closes every idle connection (one waiting for its next request).
    close_idle: Arc<Notify>,
}

impl RawService {
    async fn start() -> RawService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let close_idle = Arc::new(Notify::new());
        let close = Arc::clone(&close_idle);
        tokio::spawn(async move {
            for id in 0.. {
                let (socket, _) = listener.accept().await.unwrap();
                let _ = tx.send(Seen::Accepted(id));
                tokio::spawn(serve(id, socket, tx.clone(), Arc::clone(&close)));
            }
        });
        RawService {
            addr,
            seen,
            close_idle,
        }
    }

    /// The next thing the service saw.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(PATIENCE, self.seen.recv())
            .await
            .expect("the service saw something")
            .unwrap()
    }

    /// Everything the service saw until `last` (included).
    async fn until(&mut self, last: Seen) -> Vec<Seen> {
        let mut all = Vec::new();
        loop {
            let seen = self.next().await;
            let done = seen == last;
            all.push(seen);
            if done {
                return all;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

fn lines() -> String {
    format!(
        "{}\n{}\n",
        json!({"type": "agent_started", "payload": {"agent_name": "raw", "user_request": "hi"}}),
        json!({"type": "agent_completed", "payload": {"result": {"ok": true}, "duration_ms": 1}})
    )
}

/// One connection: requests read one after another, each answered as its path says:
/// `keep` (a whole response, keep-alive), `close-header` (`Connection: close`, then the
/// service closes), `close-after` (a keep-alive response, then the service closes anyway),
/// `hold` (`agent_started`, then the response stays open until the client goes away).
async fn serve(
    id: u32,
    mut socket: TcpStream,
    seen: mpsc::UnboundedSender<Seen>,
    close_idle: Arc<Notify>,
) {
    let mut buf = Vec::new();
    loop {
        // The request head, then its body (Content-Length).
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let read = tokio::select! {
                read = socket.read_buf(&mut buf) => read.unwrap_or(0),
                () = close_idle.notified(), if buf.is_empty() => {
                    drop(socket);
                    let _ = seen.send(Seen::ServiceClosed(id));
                    return;
                }
            };
            if read == 0 {
                let _ = seen.send(Seen::ClientClosed(id));
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let path = head.split_whitespace().nth(1).unwrap().to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                let _ = seen.send(Seen::ClientClosed(id));
                return;
            }
        }
        buf.drain(..head_end + length);
        let _ = seen.send(Seen::Request(id, path.clone()));
        let body = lines();
        let whole = |extra: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n{extra}\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        match path.as_str() {
            "/keep" => socket.write_all(whole("").as_bytes()).await.unwrap(),
            "/close-header" | "/close-after" => {
                let extra = if path == "/close-header" {
                    "connection: close\r\n"
                } else {
                    ""
                };
                socket.write_all(whole(extra).as_bytes()).await.unwrap();
                drop(socket);
                let _ = seen.send(Seen::ServiceClosed(id));
                return;
            }
            "/hold" => {
                let started = body.lines().next().unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\
                     transfer-encoding: chunked\r\n\r\n{:x}\r\n{started}\n\r\n",
                    started.len() + 1
                );
                socket.write_all(head.as_bytes()).await.unwrap();
                // Until the client goes away.
                loop {
                    if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        let _ = seen.send(Seen::ClientClosed(id));
                        return;
                    }
                }
            }
            other => panic!("no such path {other}"),
        }
    }
}

async fn start(
    configure: impl FnOnce(
        agentwire_http_agent::HttpAgentBuilder,
    ) -> agentwire_http_agent::HttpAgentBuilder,
) -> (Harness, RawService) {
    let raw = RawService::start().await;
    let urls: Vec<(&str, String)> = ["keep", "close-header", "close-after", "hold"]
        .into_iter()
        .map(|path| (path, raw.url(path)))
        .collect();
    let h = Harness::start_with(Router::new(), move |mut builder, _| {
        for (name, url) in urls {
            builder = builder.agent(name, agentwire_http_agent::Service::ndjson(&url).unwrap());
        }
        configure(builder)
    })
    .await;
    (h, raw)
}

/// A run to `agent` that completes; waits for the agent to have put its connection back.
async fn completes(h: &mut Harness, agent: &str) {
    h.ask(agent).await;
    let frames = h.run_frames().await;
    let kinds = kinds(&frames);
    assert_eq!(kinds, ["agent_started", "agent_completed"], "{frames:?}");
    h.settled().await;
}

#[tokio::test]
async fn sequential_runs_share_one_connection() {
    let (mut h, mut raw) = start(|b| b).await;
    for _ in 0..5 {
        completes(&mut h, "keep").await;
    }
    let seen = raw.until(Seen::Request(0, "/keep".into())).await;
    assert_eq!(seen, [Seen::Accepted(0), Seen::Request(0, "/keep".into())]);
    for _ in 1..5 {
        assert_eq!(raw.next().await, Seen::Request(0, "/keep".into()));
    }
    assert_eq!(h.agent.connections_opened(), 1);
    assert_eq!(h.agent.connections_reused(), 4);
    assert_eq!(h.agent.idle_connections(), 1);
    assert_eq!(h.agent.completed_runs(), 5);
    h.assert_usable().await;
}

#[tokio::test]
async fn an_idle_connection_the_service_closed_is_not_reused() {
    let (mut h, mut raw) = start(|b| b).await;
    completes(&mut h, "keep").await;
    assert_eq!(h.agent.idle_connections(), 1);
    // The service closes its idle connection (as a keep-alive timeout would).
    raw.close_idle.notify_waiters();
    raw.until(Seen::ServiceClosed(0)).await;
    // The next run finds it closed, opens another, and completes.
    completes(&mut h, "keep").await;
    assert_eq!(
        raw.until(Seen::Request(1, "/keep".into())).await,
        [Seen::Accepted(1), Seen::Request(1, "/keep".into())]
    );
    assert_eq!(h.agent.idle_connections_found_closed(), 1);
    assert_eq!(h.agent.connections_opened(), 2);
    assert_eq!(h.agent.connections_reused(), 0);
    assert_eq!(h.agent.failures("agent_connection_failed"), 0);
    assert_eq!(h.agent.completed_runs(), 2);
}

#[tokio::test]
async fn a_service_that_closes_after_each_response() {
    let (mut h, mut raw) = start(|b| b).await;
    // `Connection: close`: hyper never keeps the connection.
    for id in 0..3 {
        completes(&mut h, "close-header").await;
        raw.until(Seen::ServiceClosed(id)).await;
    }
    assert_eq!(h.agent.connections_opened(), 3);
    assert_eq!(h.agent.connections_reused(), 0);
    assert_eq!(h.agent.idle_connections(), 0);
    // No header, the service just closes after the response: the connection may be kept,
    // and is found closed before the next run would use it.
    for id in 3..6 {
        completes(&mut h, "close-after").await;
        raw.until(Seen::ServiceClosed(id)).await;
    }
    assert_eq!(h.agent.connections_opened(), 6);
    assert_eq!(h.agent.connections_reused(), 0);
    assert_eq!(h.agent.completed_runs(), 6);
    assert_eq!(h.agent.failures("agent_connection_failed"), 0);
    h.assert_usable().await;
}

#[tokio::test]
async fn cancel_closes_a_reused_connection() {
    let (mut h, mut raw) = start(|b| b.idle_timeout(PATIENCE)).await;
    completes(&mut h, "keep").await;
    h.ask("hold").await;
    let started = h.next().await;
    assert_eq!(started["type"], "agent_started", "{started}");
    assert_eq!(
        h.agent.connections_reused(),
        1,
        "the held run reused the connection"
    );
    h.send(json!({"type": "cancel_agent", "payload": {"run_id": started["run_id"]}}))
        .await;
    let error = h.next().await;
    assert_eq!(error["payload"]["code"], "cancelled", "{error}");
    // The service sees agentwire close the connection.
    let seen = raw.until(Seen::ClientClosed(0)).await;
    assert!(seen.contains(&Seen::Request(0, "/hold".into())), "{seen:?}");
    // The next run opens a new one.
    completes(&mut h, "keep").await;
    assert_eq!(
        raw.until(Seen::Request(1, "/keep".into())).await,
        [Seen::Accepted(1), Seen::Request(1, "/keep".into())]
    );
    assert_eq!(h.agent.connections_opened(), 2);
    h.assert_usable().await;
}

#[tokio::test]
async fn the_idle_limit_bounds_the_pool() {
    let (mut h, mut raw) = start(|b| b.pool_max_idle(0)).await;
    for id in 0..3 {
        completes(&mut h, "keep").await;
        // Not kept: closed once its response was read.
        raw.until(Seen::ClientClosed(id)).await;
    }
    assert_eq!(h.agent.connections_opened(), 3);
    assert_eq!(h.agent.idle_connections(), 0);
}

#[tokio::test]
async fn the_pool_settings_are_in_the_config() {
    let (h, _raw) = start(|b| {
        b.pool_max_idle(8)
            .pool_idle_timeout(std::time::Duration::from_secs(4))
    })
    .await;
    let described = agentwire_server::Handler::describe(&h.agent);
    assert_eq!(
        described["pool"],
        json!({"max_idle_per_service": 8, "idle_timeout_ms": 4000})
    );
}
