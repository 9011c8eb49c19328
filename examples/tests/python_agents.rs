//! The Python agent examples (examples/agents/python) for real: the NDJSON and the AG-UI
//! services run under uvicorn in the venv that `scripts/setup/python.sh` makes, an agentwire
//! server forwards runs to them with `HttpAgent` and a service-token secret, and a WebSocket
//! client over loopback drives the runs. The examples' own Python tests (both services, the AG-UI one's events
//! parsed back with the `ag-ui-protocol` models) run from here too, so `cargo test` covers
//! them.
//!
//! Without the venv these tests fail (they never skip) and name the setup script.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use agentwire_http_agent::{HttpAgent, Service};
use agentwire_server::auth::Algorithm;
use agentwire_server::auth::mint::{Claims, SigningKey, offer_header};
use agentwire_server::events::validate_run_json;
use agentwire_server::{Key, Server, Validator};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The users' JWT secret (agentwire's `--jwt-secret`).
const USER_SECRET: &str = "the users' JWT secret, at least 32 bytes";
/// The agent-service secret (agentwire's `--agent-secret`, the service's
/// `AGENTWIRE_AGENT_SECRET`).
const SERVICE_SECRET: &str = "the agent-service secret, 32 bytes or more";
const USER: &str = "python-example-user";
/// A liveness bound, not a speed target.
const PATIENCE: Duration = Duration::from_secs(30);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/python")
}

/// The venv's interpreter; a panic naming the setup script when it is missing.
fn venv_python() -> PathBuf {
    let python = python_dir().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "no Python venv for the agent examples at {}: run scripts/setup/python.sh \
         (scripts/test.sh runs it before cargo test)",
        python.display()
    );
    python
}

/// A Python child process, killed (and reaped) when dropped, so that a failing test leaves no
/// uvicorn behind. Its output is collected for the failure messages.
struct PythonProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    /// Told each line the process writes (stdout and stderr).
    lines: mpsc::Receiver<String>,
}

impl PythonProcess {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> PythonProcess {
        let mut command = Command::new(venv_python());
        command
            .args(args)
            .current_dir(python_dir())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("AGENTWIRE_AGENT_SECRET")
            .env_remove("DEMO_DELAY_SECONDS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the venv's python");
        let output = Arc::new(Mutex::new(String::new()));
        let (tell, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for pipe in [stdout, stderr] {
            let output = Arc::clone(&output);
            let tell = tell.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                    drop(all);
                    let _ = tell.send(line);
                }
            });
        }
        PythonProcess {
            child,
            output,
            lines,
        }
    }

    /// What the process wrote so far.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the process to end (killing it past `within`): its exit status' success.
    fn wait(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "the process did not end within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A demo service of examples/agents/python under uvicorn on a free loopback port.
struct Uvicorn {
    process: PythonProcess,
    addr: SocketAddr,
}

impl Uvicorn {
    /// Starts `app` (`module:app`) and waits until it accepts connections: uvicorn picks the
    /// port (`--port 0`) and logs it once it listens.
    async fn start(app: &str, env: &[(&str, &str)]) -> Uvicorn {
        let process = PythonProcess::spawn(
            &["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"],
            env,
        );
        let marker = "Uvicorn running on http://";
        let deadline = Instant::now() + PATIENCE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match process.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once(marker) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        break addr.parse::<SocketAddr>().unwrap_or_else(|_| {
                            panic!("no address in {line:?}:\n{}", process.output())
                        });
                    }
                }
                Err(_) => panic!("uvicorn did not start {app}:\n{}", process.output()),
            }
        };
        let service = Uvicorn { process, addr };
        let (status, body) = service.get("/health").await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{}",
            service.process.output()
        );
        service
    }

    /// `GET path` over a fresh connection: (status, body).
    async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// The service's `GET /stats`.
    async fn stats(&self) -> Value {
        let (status, body) = self.get("/stats").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// Polls `/stats` until `done` holds for it (a liveness bound of PATIENCE).
    async fn stats_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the service never saw {what}: {stats}\n{}",
                self.process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `GET path` on `addr` over a fresh connection: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An agentwire server on loopback whose runs go to `agent`; stops when dropped.
struct Agentwire {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Agentwire {
    /// A server forwarding every run to the NDJSON service at `url`, signing service tokens
    /// with `service_secret`.
    async fn ndjson(url: &str, service_secret: &str) -> Agentwire {
        Agentwire::start(Service::ndjson(url).expect("service URL"), service_secret).await
    }

    /// A server forwarding every run to `service`, signing service tokens with
    /// `service_secret`.
    async fn start(service: Service, service_secret: &str) -> Agentwire {
        let agent = HttpAgent::builder()
            .default_service(service)
            .service_token_secret(service_secret)
            .build()
            .expect("agent");
        let validator = Validator::builder()
            .key(Key::hmac(USER_SECRET).expect("key"))
            .build()
            .expect("validator");
        let server = Server::builder(validator).handler(agent).build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Agentwire { addr, _stop: stop }
    }

    async fn connect(&self) -> Ws {
        let key = SigningKey::hmac(Algorithm::HS256, USER_SECRET).expect("key");
        let token = Claims::new(USER).sign(&key).expect("sign");
        let mut request = format!("ws://{}/ws", self.addr)
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
        let established = next(&mut ws).await;
        assert_eq!(
            established["type"], "connection_established",
            "{established}"
        );
        ws
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
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

/// The run's frames through its terminal event (the run is the only thing in flight).
async fn run_frames(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next(ws).await;
        assert!(frame["run_id"].is_string(), "not a run event: {frame}");
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

/// The run passes agentwire's run validator, as the client received it.
fn assert_valid_run(frames: &[Value]) {
    let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
    validate_run_json(texts.iter().map(String::as_str))
        .unwrap_or_else(|violation| panic!("{violation}: {frames:#?}"));
}

/// The WebSocket still answers.
async fn assert_usable(ws: &mut Ws) {
    send(ws, json!({"type": "ping", "message_id": "p"})).await;
    let pong = next(ws).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ndjson_example_streams_a_run_through_agentwire() {
    let service = Uvicorn::start(
        "ndjson_agent:app",
        &[
            ("AGENTWIRE_AGENT_SECRET", SERVICE_SECRET),
            ("DEMO_DELAY_SECONDS", "0.01"),
        ],
    )
    .await;
    let agentwire =
        Agentwire::ndjson(&format!("http://{}/run", service.addr), SERVICE_SECRET).await;
    let mut ws = agentwire.connect().await;

    let text = "how many words are in this question";
    send(
        &mut ws,
        json!({"type": "start_agent", "message_id": "m1",
               "payload": {"user_request": text, "context": {"locale": "en"}}}),
    )
    .await;
    let frames = run_frames(&mut ws).await;
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_completed"
        ],
        "{frames:#?}\n{}",
        service.process.output()
    );
    assert_valid_run(&frames);
    let run_id = frames[0]["run_id"].as_str().expect("run id");
    for frame in &frames {
        assert_eq!(frame["run_id"], run_id);
        assert_eq!(frame["reply_to"], "m1");
    }
    // The request reached the service: its text in the run's payloads.
    assert_eq!(frames[0]["payload"]["user_request"], text);
    assert_eq!(frames[2]["payload"]["parameters"], json!({"text": text}));
    assert_eq!(frames[3]["payload"]["result"], json!({"words": 7}));
    // The chunks, in order, make the answer that agent_completed carries.
    let chunks: Vec<&Value> = frames[4..8].iter().map(|f| &f["payload"]).collect();
    let indexes: Vec<u64> = chunks.iter().filter_map(|c| c["index"].as_u64()).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    let assembled: String = chunks.iter().filter_map(|c| c["delta"].as_str()).collect();
    assert_eq!(
        assembled,
        format!("You wrote 7 words: \"{text}\". Thanks for trying agentwire!")
    );
    assert_eq!(
        frames[8]["payload"]["result"]["response"],
        assembled.as_str()
    );

    // A second run on the same socket (agentwire reuses its pooled connection).
    send(
        &mut ws,
        json!({"type": "user_message", "payload": {"text": "again"}}),
    )
    .await;
    let second = run_frames(&mut ws).await;
    assert_eq!(second.len(), 9, "{second:#?}");
    assert_valid_run(&second);
    assert_ne!(second[0]["run_id"], run_id);
    assert_usable(&mut ws).await;

    // The service verified both requests' service tokens and finished both runs.
    let stats = service
        .stats_until("two completed runs", |s| s["completed"] == 2)
        .await;
    assert_eq!(stats["started"], 2, "{stats}");
    assert_eq!(stats["unauthorized"], 0, "{stats}");
    assert_eq!(stats["cancelled"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ag_ui_example_streams_a_run_through_agentwire() {
    let service = Uvicorn::start(
        "agui_agent:app",
        &[
            ("AGENTWIRE_AGENT_SECRET", SERVICE_SECRET),
            ("DEMO_DELAY_SECONDS", "0.01"),
        ],
    )
    .await;
    let agentwire = Agentwire::start(
        Service::ag_ui(&format!("http://{}/agui", service.addr)).expect("service URL"),
        SERVICE_SECRET,
    )
    .await;
    let mut ws = agentwire.connect().await;

    let text = "how many words are in this question";
    send(
        &mut ws,
        json!({"type": "start_agent", "message_id": "m1", "thread_id": "t1",
               "payload": {"user_request": text, "context": {"locale": "en"}}}),
    )
    .await;
    let frames = run_frames(&mut ws).await;
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    // RUN_STARTED; TOOL_CALL_START, ARGS, ARGS, END (one tool_executing), TOOL_CALL_RESULT;
    // TEXT_MESSAGE_START (folded), four TEXT_MESSAGE_CONTENT, TEXT_MESSAGE_END (folded);
    // RUN_FINISHED.
    assert_eq!(
        kinds,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_response_chunk",
            "agent_completed"
        ],
        "{frames:#?}\n{}",
        service.process.output()
    );
    assert_valid_run(&frames);
    let run_id = frames[0]["run_id"].as_str().expect("run id");
    for frame in &frames {
        assert_eq!(frame["run_id"], run_id);
        assert_eq!(frame["thread_id"], "t1");
        assert_eq!(frame["reply_to"], "m1");
    }
    // The RunAgentInput reached the service: its text, and agentwire's run id as runId (the
    // service names its tool call after it).
    assert_eq!(frames[0]["payload"]["agent_name"], "default");
    assert_eq!(frames[0]["payload"]["user_request"], text);
    let call_id = format!("call_{run_id}_1");
    let executing = &frames[1]["payload"];
    assert_eq!(executing["tool_name"], "word_count", "{executing}");
    assert_eq!(executing["tool_call_id"], call_id.as_str());
    // The arguments came in two deltas; the parameters are the JSON object they make.
    assert_eq!(executing["parameters"], json!({"text": text}));
    let completed = &frames[2]["payload"];
    assert_eq!(completed["tool_name"], "word_count", "{completed}");
    assert_eq!(completed["tool_call_id"], call_id.as_str());
    assert_eq!(completed["status"], "ok");
    assert_eq!(completed["result"], json!({"words": 7}));
    // The chunks, in order, make the answer that agent_completed carries.
    let chunks: Vec<&Value> = frames[3..7].iter().map(|f| &f["payload"]).collect();
    let indexes: Vec<u64> = chunks.iter().filter_map(|c| c["index"].as_u64()).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    let assembled: String = chunks.iter().filter_map(|c| c["delta"].as_str()).collect();
    assert_eq!(
        assembled,
        format!("You wrote 7 words: \"{text}\". Thanks for trying agentwire!")
    );
    assert_eq!(frames[7]["payload"]["result"]["text"], assembled.as_str());
    assert_usable(&mut ws).await;

    // The service verified the service token and finished the run; agentwire counted each
    // AG-UI event it read, by what it became.
    let stats = service
        .stats_until("a completed run", |s| s["completed"] == 1)
        .await;
    assert_eq!(stats["unauthorized"], 0, "{stats}");
    // The run counts as completed once agentwire has read the response to its end, just after
    // relaying RUN_FINISHED.
    let deadline = Instant::now() + PATIENCE;
    let metrics = loop {
        let (status, metrics) = http_get(agentwire.addr, "/metrics").await;
        assert_eq!(status, 200);
        if metrics
            .lines()
            .any(|l| l == "agentwire_agent_runs_completed_total 1")
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no completed run:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (ag_ui_type, relayed_as, count) in [
        ("RUN_STARTED", "agent_started", 1),
        ("TOOL_CALL_START", "folded", 1),
        ("TOOL_CALL_ARGS", "folded", 2),
        ("TOOL_CALL_END", "tool_executing", 1),
        ("TOOL_CALL_RESULT", "tool_completed", 1),
        ("TEXT_MESSAGE_START", "folded", 1),
        ("TEXT_MESSAGE_CONTENT", "agent_response_chunk", 4),
        ("TEXT_MESSAGE_END", "folded", 1),
        ("RUN_FINISHED", "agent_completed", 1),
    ] {
        let line = format!(
            "agentwire_agent_ag_ui_events_total{{type=\"{ag_ui_type}\",relayed_as=\"{relayed_as}\"}} {count}"
        );
        assert!(metrics.lines().any(|l| l == line), "no {line}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ndjson_example_refuses_a_wrong_service_token() {
    let service = Uvicorn::start(
        "ndjson_agent:app",
        &[
            ("AGENTWIRE_AGENT_SECRET", SERVICE_SECRET),
            ("DEMO_DELAY_SECONDS", "0"),
        ],
    )
    .await;
    let agentwire = Agentwire::ndjson(
        &format!("http://{}/run", service.addr),
        "not the service's secret, 32 bytes or more",
    )
    .await;
    let mut ws = agentwire.connect().await;
    send(
        &mut ws,
        json!({"type": "start_agent", "payload": {"user_request": "hello"}}),
    )
    .await;
    let frames = run_frames(&mut ws).await;
    // The 401 comes before any event of the service: the run ends with the HTTP status code
    // and nothing the service would have said, after agentwire's own agent_started (so that
    // the run is well formed).
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(kinds, ["agent_started", "agent_error"], "{frames:#?}");
    assert_eq!(
        frames[0]["payload"],
        json!({"agent_name": "default", "user_request": "hello"})
    );
    let last = &frames[1];
    assert_eq!(last["payload"]["code"], "agent_http_status", "{last}");
    assert_eq!(last["payload"]["recoverable"], false, "{last}");
    assert_valid_run(&frames);
    assert_usable(&mut ws).await;
    let stats = service.stats().await;
    assert_eq!(stats["unauthorized"], 1, "{stats}");
    assert_eq!(stats["started"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_agent_disconnects_the_python_service() {
    // Long pauses between events: the run is still in flight when the cancel arrives.
    let service = Uvicorn::start(
        "ndjson_agent:app",
        &[
            ("AGENTWIRE_AGENT_SECRET", SERVICE_SECRET),
            ("DEMO_DELAY_SECONDS", "5"),
        ],
    )
    .await;
    let agentwire =
        Agentwire::ndjson(&format!("http://{}/run", service.addr), SERVICE_SECRET).await;
    let mut ws = agentwire.connect().await;
    send(
        &mut ws,
        json!({"type": "start_agent", "message_id": "long",
               "payload": {"user_request": "take your time"}}),
    )
    .await;
    let started = next(&mut ws).await;
    assert_eq!(started["type"], "agent_started", "{started}");
    let run_id = started["run_id"].as_str().expect("run id").to_owned();
    service
        .stats_until("the run start", |s| s["started"] == 1)
        .await;

    send(
        &mut ws,
        json!({"type": "cancel_agent", "payload": {"run_id": run_id}}),
    )
    .await;
    let mut frames = vec![started];
    frames.extend(run_frames(&mut ws).await);
    let last = frames.last().expect("terminal");
    assert_eq!(last["type"], "agent_error", "{frames:#?}");
    assert_eq!(last["payload"]["code"], "cancelled", "{last}");
    assert_valid_run(&frames);
    assert_usable(&mut ws).await;

    // The service saw the client go away mid-run, for this run.
    let stats = service
        .stats_until("the disconnect", |s| s["cancelled"] == 1)
        .await;
    assert_eq!(stats["cancelled_run_ids"], json!([run_id]), "{stats}");
    assert_eq!(stats["completed"], 0, "{stats}");
    // The log line is written next to the stats update, and read by another thread: wait for
    // it (bounded, only against a hang).
    let line = format!("client disconnected: run {run_id} cancelled");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !service.process.output().contains(&line) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = service.process.output();
    assert!(output.contains(&line), "{output}");
}

#[test]
fn the_python_examples_own_tests_pass() {
    let mut pytest = PythonProcess::spawn(&["-m", "pytest", "-q", "-p", "no:cacheprovider"], &[]);
    let passed = pytest.wait(Duration::from_secs(300));
    let output = pytest.output();
    assert!(
        passed,
        "the Python tests failed (cd examples/agents/python && .venv/bin/python -m pytest):\n{output}"
    );
    assert!(output.contains(" passed"), "{output}");
}
