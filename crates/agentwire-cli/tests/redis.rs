//! `agentwire serve --redis-url`: two `agentwire` processes sharing one real redis-server
//! (started here on a free loopback port, persistence off, stopped by PID), driven by real
//! WebSocket clients. A run started on one node reaches the user's client on the other;
//! `/ws/config` names the Redis without its password; a node killed with SIGKILL mid-run
//! leaves the user's stream going on the other node, and resumable from it.

// The server's own test helpers (a real client, HTTP over loopback): one copy for the crates.
#[path = "../../agentwire-server/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

/// A redis-server of its own, killed by PID on drop.
struct RedisServer {
    port: u16,
    password: Option<&'static str>,
    child: Child,
}

impl RedisServer {
    /// Starts redis-server (with `--requirepass` when `password` is set) and waits until it
    /// answers. Fails, never skips, when it is not installed.
    fn start(password: Option<&'static str>) -> RedisServer {
        let port = free_addr().port();
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string()]).args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ]);
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}): run scripts/setup/redis.sh")
            });
        let server = RedisServer {
            port,
            password,
            child,
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        // Any answer to PING (`+PONG`, or `-NOAUTH` with a password) means it is up.
        while !server.command("PING\r\n").starts_with(['+', '-']) {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server answers PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        match self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Sends an inline command (after AUTH when there is a password): its answer's first line,
    /// or a bulk string's value, or "" when the server is not up.
    fn command(&self, line: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut answer = String::new();
        if let Some(password) = self.password {
            let _ = write!(stream, "AUTH {password}\r\n");
            let _ = reader.read_line(&mut answer);
            answer.clear();
        }
        let _ = stream.write_all(line.as_bytes());
        let _ = reader.read_line(&mut answer);
        if answer.starts_with('$') && !answer.starts_with("$-1") {
            answer.clear();
            let _ = reader.read_line(&mut answer);
        }
        answer.trim_end().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `agentwire serve --redis-url` process; killed by PID on drop.
struct NodeProcess {
    addr: SocketAddr,
    child: Child,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl NodeProcess {
    fn start(redis: &RedisServer, demo_step_ms: u64) -> NodeProcess {
        let addr = free_addr();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string()])
            .args(["--demo-step-ms", &demo_step_ms.to_string()])
            .args(["--log-format", "json"])
            .env("AGENTWIRE_REDIS_URL", redis.url())
            .env(
                "AGENTWIRE_JWT_SECRET",
                agentwire_auth::testing::FIXTURE_HMAC_SECRET,
            )
            .env("RUST_LOG", "agentwire=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agentwire");
        let mut stderr = child.stderr.take().expect("stderr");
        let logs = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        NodeProcess {
            addr,
            child,
            logs: Some(logs),
        }
    }

    /// Waits until the node listens and its engine says healthy (connected to Redis).
    async fn wait_healthy(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                let (_, body) = health(self.addr).await;
                if body["status"] == "healthy" {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {} never became healthy",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    /// SIGKILL, by PID: no drain, no close frame, nothing flushed.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the node and gives what it logged.
    fn stop(mut self) -> String {
        self.kill();
        self.logs
            .take()
            .map(|logs| logs.join().expect("logs"))
            .unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn connect_node(node: &NodeProcess, user: &str, query: &str) -> (Client, Value) {
    let offer = agentwire_auth::testing::offer_header(&token(user));
    let (mut ws, _) = connect_raw(&node.url(query), Some(&offer), None)
        .await
        .expect("connect");
    let established = next_json(&mut ws).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    (ws, established)
}

fn start_agent(text: &str) -> Value {
    json!({"type": "start_agent", "payload": {"user_request": text}})
}

fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("a stream event: {frame}"))
}

/// Two `agentwire serve --redis-url` processes and a redis-server with a password: a run
/// started by the client on node A reaches the same user's client on node B with identical
/// frames; `/ws/config` and `/ws/health` show the engine, never the password, nor do the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_stream_through_redis() {
    const PASSWORD: &str = "cli-redis-password-4f1c";
    let redis = RedisServer::start(Some(PASSWORD));
    let a = NodeProcess::start(&redis, 0);
    let b = NodeProcess::start(&redis, 0);
    a.wait_healthy().await;
    b.wait_healthy().await;

    let (mut on_a, established_a) = connect_node(&a, "lou", "").await;
    let (mut on_b, established_b) = connect_node(&b, "lou", "").await;
    assert_eq!(
        established_a["payload"]["stream"],
        established_b["payload"]["stream"]
    );
    send_json(&mut on_a, &start_agent("from node A")).await;
    let run_a = read_run(&mut on_a).await;
    let run_b = read_run(&mut on_b).await;
    assert_eq!(run_a.len(), 5);
    assert_eq!(run_a, run_b, "identical frames on both nodes");
    assert_eq!(run_a.iter().map(seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);

    let expected_url = format!("redis://127.0.0.1:{}/0", redis.port);
    for node in [&a, &b] {
        let (status, _, config) = http_get(node.addr, "/ws/config", &[]).await;
        assert_eq!(status, 200);
        assert!(!config.contains(PASSWORD), "{config}");
        let config: Value = serde_json::from_str(&config).expect("JSON");
        assert_eq!(config["engine"]["kind"], "redis", "{config}");
        assert_eq!(config["engine"]["url"], expected_url.as_str(), "{config}");
        let (status, health) = health(node.addr).await;
        assert_eq!(status, 200);
        assert!(!health.to_string().contains(PASSWORD), "{health}");
    }
    // The streams live in Redis, under the user's keys.
    assert_eq!(redis.command("HGET aw:{lou}:m s\r\n"), "5");

    drop((on_a, on_b));
    for logs in [a.stop(), b.stop()] {
        assert!(logs.contains("streams are shared through Redis"), "{logs}");
        assert!(!logs.contains(PASSWORD), "{logs}");
    }
}

/// Node A (a real `agentwire serve` process) is killed with SIGKILL mid-run: the user's client
/// on node B keeps its stream (the events A emitted arrive, and B's own run continues the
/// seq), and a client that was on A resumes on B from the last seq it saw, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_leaves_the_stream_going_on_the_other() {
    let redis = RedisServer::start(None);
    // A pause between the demo's steps: the run is still going when node A dies.
    let mut a = NodeProcess::start(&redis, 300);
    let b = NodeProcess::start(&redis, 0);
    a.wait_healthy().await;
    b.wait_healthy().await;

    let (mut on_a, established) = connect_node(&a, "max", "").await;
    let epoch = established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let (mut on_b, _) = connect_node(&b, "max", "").await;
    send_json(&mut on_a, &start_agent("cut short")).await;
    let mut seen_on_a = Vec::new();
    while seen_on_a.len() < 2 {
        seen_on_a.push(next_json(&mut on_a).await);
    }
    let mut on_b_frames = vec![next_json(&mut on_b).await, next_json(&mut on_b).await];
    assert_eq!(seen_on_a, on_b_frames);
    a.kill();
    // Node A's client loses its connection without a close frame.
    let (_, close) = until_close(&mut on_a).await;
    assert_eq!(close_code(&close), None);

    // Node B's client stays: it answers, then B's own run continues the one seq order.
    send_json(&mut on_b, &json!({"type": "ping"})).await;
    loop {
        let frame = next_json(&mut on_b).await;
        if frame["type"] == "pong" {
            break;
        }
        on_b_frames.push(frame);
    }
    send_json(&mut on_b, &start_agent("on node B")).await;
    loop {
        let frame = next_json(&mut on_b).await;
        assert_ne!(frame["type"], "error", "{frame}");
        let done =
            frame["type"] == "agent_completed" && frame["run_id"] != on_b_frames[0]["run_id"];
        on_b_frames.push(frame);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = on_b_frames.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert!(
        seqs.len() >= 7,
        "A's events, then B's run of five: {seqs:?}"
    );
    let run_b_start = on_b_frames
        .iter()
        .position(|f| f["type"] == "agent_started" && f["run_id"] != on_b_frames[0]["run_id"])
        .expect("B's run");
    assert_eq!(on_b_frames.len() - run_b_start, 5);

    // The client that was on A resumes on B from the last seq it saw: the rest, once, as sent.
    let since = seq(seen_on_a.last().expect("frames"));
    let (mut resumed, established) =
        connect_node(&b, "max", &format!("?epoch={epoch}&since={since}")).await;
    let resume = &established["payload"]["resume"];
    assert_eq!(resume["status"], "resumed", "{established}");
    assert_eq!(resume["from_seq"], since + 1);
    assert_eq!(resume["to_seq"], *seqs.last().expect("seqs"));
    for expected in &on_b_frames[since as usize..] {
        assert_eq!(&next_json(&mut resumed).await, expected);
    }
    // Nothing more (no duplicate).
    send_json(&mut resumed, &json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut resumed).await["type"], "pong");

    // A node started after A died serves the whole stream too.
    let c = NodeProcess::start(&redis, 0);
    c.wait_healthy().await;
    let (mut on_c, established) = connect_node(&c, "max", &format!("?epoch={epoch}&since=0")).await;
    assert_eq!(
        established["payload"]["resume"]["status"], "resumed",
        "{established}"
    );
    for expected in &on_b_frames {
        assert_eq!(&next_json(&mut on_c).await, expected);
    }
    let _ = b.stop();
    let _ = c.stop();
}
