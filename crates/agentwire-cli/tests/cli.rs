//! The `agentwire` binary: refusal without a key, `token`, `serve --dev`, and SIGTERM.

// The server's own test helpers (a loopback server, a real client): one copy for both crates.
#[path = "../../agentwire-server/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agentwire_auth::Token;
use common::*;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

#[test]
fn serve_without_a_key_refuses_to_start() {
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("AGENTWIRE_JWT_SECRET")
        .env_remove("AGENTWIRE_DEV")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--jwt-secret") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[test]
fn token_mints_a_token_the_server_accepts() {
    let output = Command::new(BIN)
        .args([
            "token",
            "--sub",
            "tess",
            "--ttl-secs",
            "600",
            "--jwt-secret",
        ])
        .arg(agentwire_auth::testing::FIXTURE_HMAC_SECRET)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let jwt = String::from_utf8(output.stdout).expect("utf-8");
    let principal = validator()
        .validate(&Token::new(jwt.trim()))
        .expect("valid");
    assert_eq!(principal.user_id(), "tess");
}

/// `serve --dev` prints a ready token; SIGTERM closes connections with 1001 and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_serves_with_the_printed_token_and_sigterm_drains() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--demo-step-ms",
            "0",
        ])
        .args(["--log-format", "json", "--shutdown-timeout-secs", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (url, jwt) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut url = None;
        let mut jwt = None;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("agentwire dev mode: listening on ") {
                url = rest.split_whitespace().next().map(str::to_owned);
            } else if line.starts_with("token (") {
                jwt = lines.next().and_then(Result::ok);
            }
            if url.is_some() && jwt.is_some() {
                break;
            }
        }
        (url.expect("url line"), jwt.expect("token line"))
    })
    .await
    .expect("banner");

    let token = Token::new(jwt);
    let offer = agentwire_auth::testing::offer_header(&token);
    let (mut ws, response) = connect_raw(&url, Some(&offer), None)
        .await
        .expect("connect");
    assert_eq!(response.headers()["sec-websocket-protocol"], "jwt-auth");
    assert_eq!(next_json(&mut ws).await["payload"]["user_id"], "dev-user");
    let events = run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    assert_eq!(events.len(), 5);

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (_, close) = until_close(&mut ws).await;
    assert_eq!(close_code(&close), Some(1001));
    let status = tokio::task::spawn_blocking(move || {
        // Bounded by the shutdown deadline plus the close timeout; PATIENCE only guards a hang.
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("waiter");
    let status = status.expect("the process exits after SIGTERM");
    assert!(status.success(), "{status}");
}

/// docs/operations.md's flags table: every flag, variable and default as `serve --help` has
/// them, and every flag of `serve --help` in the table.
#[test]
fn the_operations_flags_table_matches_serve_help() {
    let output = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).replace('\n', " ");
    let doc = include_str!("../../../docs/operations.md");
    let start = doc
        .find("## Flags and environment variables")
        .expect("the flags section");
    let section = &doc[start..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let mut documented = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (flag, variable, default) = (
            cells[1].trim_matches('`'),
            cells[2].trim_matches('`'),
            cells[3],
        );
        documented.push(flag.to_owned());
        let at = help
            .find(&format!("{flag} "))
            .unwrap_or_else(|| panic!("serve --help has no {flag}"));
        let entry = &help[at..];
        let entry = &entry[..entry[2..].find(" --").map_or(entry.len(), |end| end + 2)];
        assert!(
            entry.contains(&format!("[env: {variable}")),
            "{flag}: docs say {variable}, help says {entry}"
        );
        if default.chars().all(|c| c.is_ascii_digit()) {
            assert!(
                entry.contains(&format!("[default: {default}]")),
                "{flag}: docs say {default}, help says {entry}"
            );
        }
    }
    for word in help.split_whitespace() {
        if let Some(flag) = word.strip_prefix("--")
            && !flag.is_empty()
            && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            && flag != "help"
        {
            let flag = format!("--{flag}");
            assert!(
                documented.contains(&flag),
                "{flag} is missing from docs/operations.md's flags table"
            );
        }
    }
}

/// `serve --agent-url`: runs go to an NDJSON agent service (here a small axum one), named
/// agents to theirs (one of them speaking AG-UI: `NAME=ag-ui+URL`), and an unknown name gets
/// `unknown_agent` with no run. `/metrics` has the agent's counters, `/ws/config` the
/// services (no secret, no URL credentials), and no log line holds the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_forwards_runs_to_the_agent_service_of_agent_url() {
    use axum::routing::post;

    // The agent service: answers every run with three NDJSON events naming itself.
    async fn service(name: &'static str, body: String) -> impl axum::response::IntoResponse {
        let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = request["payload"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lines = [
            json!({"type": "agent_started", "payload": {"agent_name": name, "user_request": text}}),
            json!({"type": "STREAM_CHUNK", "payload": {"delta": format!("{name} says hi"), "index": 0}}),
            json!({"type": "agent_completed", "payload": {"result": name, "duration_ms": 1}}),
        ]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>();
        ([("content-type", "application/x-ndjson")], lines)
    }
    // An AG-UI service: the user's text back as the answer, over Server-Sent Events.
    async fn ag_ui(body: String) -> impl axum::response::IntoResponse {
        let input: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = input["messages"][0]["content"].as_str().unwrap_or_default();
        let events = [
            json!({"type": "RUN_STARTED", "threadId": input["threadId"], "runId": input["runId"]}),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": format!("ag-ui: {text}")}),
            json!({"type": "RUN_FINISHED", "threadId": input["threadId"], "runId": input["runId"]}),
        ]
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect::<String>();
        ([("content-type", "text/event-stream")], events)
    }
    let app = axum::Router::new()
        .route("/default", post(|body: String| service("default", body)))
        .route("/weather", post(|body: String| service("weather", body)))
        .route("/agui", post(ag_ui));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let agents = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let secret = agentwire_auth::testing::FIXTURE_HMAC_SECRET;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--agent-url", &format!("http://{agents}/default")])
        .args([
            "--agent",
            &format!("weather=http://wx:pa55@{agents}/weather"),
        ])
        .args(["--agent", &format!("agui=ag-ui+http://{agents}/agui")])
        .args(["--agent-secret", AGENT_SECRET])
        .args(["--log-format", "json"])
        .env("AGENTWIRE_JWT_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let url = format!("ws://127.0.0.1:{port}/ws");
    let offer = agentwire_auth::testing::offer_header(&token("fwd"));
    let mut ws = None;
    for _ in 0..200 {
        if let Ok((client, _)) = connect_raw(&url, Some(&offer), None).await {
            ws = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = ws.expect("the server listens");
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");
    for (agent, expected) in [(None, "default"), (Some("weather"), "weather")] {
        let mut payload = json!({"user_request": "hello"});
        if let Some(agent) = agent {
            payload["agent_name"] = json!(agent);
        }
        let events = run_agent(&mut ws, &json!({"type": "start_agent", "payload": payload})).await;
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            kinds,
            ["agent_started", "agent_response_chunk", "agent_completed"]
        );
        assert_eq!(events[2]["payload"]["result"], expected);
    }
    let events = run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "hello", "agent_name": "agui"}}),
    )
    .await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["agent_started", "agent_response_chunk", "agent_completed"]
    );
    assert_eq!(events[2]["payload"]["result"]["text"], "ag-ui: hello");
    futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text(
        json!({"type": "start_agent", "message_id": "u", "payload": {"user_request": "x", "agent_name": "nobody"}}).to_string(),
    ))
    .await
    .expect("send");
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["payload"]["code"], "unknown_agent", "{refused}");
    assert_eq!(refused["reply_to"], "u");

    let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (status, _, metrics) = http_get(listen, "/metrics", &[]).await;
    assert_eq!(status, 200);
    for line in [
        "agentwire_agent_runs_forwarded_total 3",
        "agentwire_agent_runs_completed_total 3",
        "agentwire_agent_requests_refused_total{code=\"unknown_agent\"} 1",
        "agentwire_agent_ag_ui_events_total{type=\"RUN_FINISHED\",relayed_as=\"agent_completed\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in {metrics}");
    }
    let (status, _, body) = http_get(listen, "/ws/config", &[]).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains(AGENT_SECRET) && !body.contains("pa55"),
        "{body}"
    );
    let config: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let agent = &config["agent"];
    assert_eq!(agent["kind"], "http", "{config}");
    assert_eq!(
        agent["default"],
        json!({"url": format!("http://{agents}/default"), "protocol": "ndjson"})
    );
    assert_eq!(
        agent["agents"],
        json!({
            "weather": {"url": format!("http://{agents}/weather"), "protocol": "ndjson"},
            "agui": {"url": format!("http://{agents}/agui"), "protocol": "ag-ui"},
        })
    );
    assert_eq!(agent["service_token"], true);
    assert_eq!(agent["limits"]["max_in_flight"], 1024);
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.join().expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.contains("runs are forwarded to the agent service")
                && l.contains(&format!("http://{agents}/default"))),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .all(|l| !l.contains(AGENT_SECRET) && !l.contains("pa55")),
        "{logs:?}"
    );
}

/// The `--agent-secret` of the forwarding test.
const AGENT_SECRET: &str = "the agent-service secret of the CLI test, 32+ bytes";

/// `serve --publish-addr` without a key refuses to start, saying where a key comes from.
#[test]
fn serve_with_publish_addr_and_no_key_refuses_to_start() {
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--publish-addr",
            "127.0.0.1:0",
        ])
        .env(
            "AGENTWIRE_JWT_SECRET",
            agentwire_auth::testing::FIXTURE_HMAC_SECRET,
        )
        .env_remove("AGENTWIRE_PUBLISH_KEY")
        .env_remove("AGENTWIRE_PUBLISH_KEY_FILE")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--publish-key-file") && stderr.contains("AGENTWIRE_PUBLISH_KEY"),
        "{stderr}"
    );
}

/// `serve --publish-addr --publish-key-file`: another service publishes a batch over HTTP and
/// the user's WebSocket client receives it; `/ws/config` shows the publish API, never its key;
/// the startup log says where it listens, and no log line holds the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_publish_addr_accepts_a_publish() {
    const KEY: &str = "cli-publish-key-0123456789abcdef";
    let dir = std::env::temp_dir().join(format!("agentwire-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key_file = dir.join("publish.key");
    std::fs::write(&key_file, format!("# the publish key\n{KEY}\n")).expect("key file");
    let free_port = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let (listen, publish) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &listen.to_string()])
        .args(["--publish-addr", &publish.to_string()])
        .arg("--publish-key-file")
        .arg(&key_file)
        .args(["--log-format", "json"])
        .env(
            "AGENTWIRE_JWT_SECRET",
            agentwire_auth::testing::FIXTURE_HMAC_SECRET,
        )
        .env("RUST_LOG", "agentwire=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let url = format!("ws://{listen}/ws");
    let offer = agentwire_auth::testing::offer_header(&token("pia"));
    let mut ws = None;
    for _ in 0..200 {
        if let Ok((client, _)) = connect_raw(&url, Some(&offer), None).await {
            ws = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = ws.expect("the server listens");
    let established = next_json(&mut ws).await;
    let seq = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");

    let batch = json!({"events": [
        {"type": "system_message", "payload": {"message": "deploy finished"}},
        {"type": "THREAD_UPDATED", "payload": {"thread_id": "t1", "title": "Deploys"}},
    ]});
    let auth = format!("Bearer {KEY}");
    let (status, _, body) = http_request(
        publish,
        "POST",
        "/api/v1/users/pia/events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        batch.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["seqs"], json!([seq + 1, seq + 2]), "{answer}");
    assert_eq!(answer["connections"], 1);
    for (i, kind) in ["system_message", "thread_update"].iter().enumerate() {
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["type"], *kind, "{frame}");
        assert_eq!(frame["seq"], seq + 1 + i as u64);
    }

    let (status, _, body) = http_request(
        publish,
        "POST",
        "/api/v1/users/pia/events",
        &[("Authorization", "Bearer not-the-key-0123456789")],
        batch.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // The publish API is on its own listener only.
    let (status, _, _) = http_request(listen, "POST", "/api/v1/users/pia/events", &[], b"{}").await;
    assert_eq!(status, 404);

    let (_, _, config) = http_get(listen, "/ws/config", &[]).await;
    let config: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    assert_eq!(config["publish"]["enabled"], true, "{config}");
    assert!(!config.to_string().contains(KEY));

    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.join().expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.contains("publish API listening") && l.contains(&publish.to_string())),
        "{logs:?}"
    );
    assert!(logs.iter().all(|l| !l.contains(KEY)), "{logs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
