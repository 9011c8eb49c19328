//! `agentwire probe` (once and `--monitor`) and `agentwire load`, run as the binary against
//! servers started here: a healthy agentwire server, and small axum servers misconfigured the
//! ways production ones were (wrong path, no subprotocol answer, the token echoed back).
//! No timing thresholds: only what the tools report (times are checked to be there, never
//! against a bound).

// The server's own test helpers (a loopback server, a real client): one copy for both crates.
#[path = "../../agentwire-server/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use agentwire_auth::Algorithm;
use agentwire_auth::testing::{Claims, FIXTURE_HMAC_SECRET, SigningKey};
use agentwire_server::Config;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

/// Runs the binary off the runtime (the servers under test run on it).
async fn run_bin(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("AGENTWIRE_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run the binary")
    })
    .await
    .expect("join")
}

async fn probe_json(url: &str, token: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "probe".to_owned(),
        url.to_owned(),
        "--token".to_owned(),
        token.to_owned(),
        "--json".to_owned(),
        "--timeout-secs".to_owned(),
        "5".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let output = run_bin(args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

fn step<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// Serves `router` on a loopback port for the rest of the test.
async fn serve_axum(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A WebSocket that sends one frame that is no agentwire frame, then idles.
async fn idle_socket(mut socket: axum::extract::ws::WebSocket) {
    let _ = socket.send(Message::text(r#"{"hello":"world"}"#)).await;
    while let Some(Ok(_)) = socket.recv().await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_passes_against_a_healthy_server() {
    let server = start(
        Config::builder()
            .rate_limit_per_sec(0)
            .build()
            .expect("config"),
    )
    .await;
    let token = token("probe-user");
    let (output, report) = probe_json(&server.url("/ws"), token.expose_secret(), &[]).await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["failed_step"], Value::Null);
    let names: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "ok", "{s:#}");
            s["name"].as_str().expect("name")
        })
        .collect();
    assert_eq!(
        names,
        [
            "tcp_connect",
            "http_upgrade",
            "subprotocol",
            "connection_established",
            "agent_run",
            "ping",
            "close"
        ]
    );
    assert_eq!(
        step(&report, "connection_established")["data"]["user_id"],
        "probe-user"
    );
    assert_eq!(
        step(&report, "agent_run")["data"]["events"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(token.expose_secret()));

    // The /websocket alias, with the token as a bearer header and a short idle hold; the
    // human-readable report says PASS.
    let output = run_bin(vec![
        "probe".into(),
        server.url("/websocket"),
        "--token".into(),
        token.expose_secret().into(),
        "--bearer".into(),
        "--hold-secs".into(),
        "1".into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("hold") && text.trim_end().ends_with("PASS"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_an_unknown_path_and_suggests_ws() {
    let addr = serve_axum(axum::Router::new().route("/health", get(|| async { "ok" }))).await;
    let (output, report) = probe_json(&format!("ws://{addr}/socket"), "t", &[]).await;
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["failed_step"], "http_upgrade");
    assert!(
        report["cause"]
            .as_str()
            .expect("cause")
            .contains("try /ws or /websocket"),
        "{report:#}"
    );
    assert_eq!(step(&report, "http_upgrade")["data"]["status"], 404);
    assert_eq!(step(&report, "connection_established")["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_the_servers_400_explanation() {
    // agentwire answers a token protocol offered without the marker with 400 and a JSON body;
    // here a stand-in answers every upgrade that way.
    let body = r#"{"error":{"code":"marker_missing","message":"offer jwt-auth too"}}"#;
    let addr = serve_axum(axum::Router::new().route(
        "/ws",
        get(move || async move {
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                body,
            )
        }),
    ))
    .await;
    let (output, report) = probe_json(&format!("ws://{addr}/ws"), "t", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["failed_step"], "http_upgrade");
    let cause = report["cause"].as_str().expect("cause");
    assert!(
        cause.contains("marker_missing: offer jwt-auth too"),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_flags_a_missing_subprotocol_answer() {
    let addr = serve_axum(axum::Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(idle_socket) }),
    ))
    .await;
    let (output, report) = probe_json(&format!("ws://{addr}/ws"), "some.jwt.token", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["failed_step"], "subprotocol", "{report:#}");
    let detail = step(&report, "subprotocol")["detail"]
        .as_str()
        .expect("detail");
    assert!(
        detail.contains("server answered no subprotocol: browsers will refuse this handshake"),
        "{detail}"
    );
    // The probe goes on after a wrong answer: the next step tells this is no agentwire server.
    assert_eq!(step(&report, "connection_established")["status"], "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_flags_a_server_that_echoes_the_token_protocol() {
    async fn echo(ws: WebSocketUpgrade, headers: HeaderMap) -> impl IntoResponse {
        let token_protocol = headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|offer| {
                offer
                    .split(',')
                    .map(str::trim)
                    .find(|p| p.starts_with("jwt."))
            })
            .unwrap_or_default()
            .to_owned();
        ws.protocols([token_protocol]).on_upgrade(idle_socket)
    }
    let addr = serve_axum(axum::Router::new().route("/ws", get(echo))).await;
    let secret_token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let (output, report) = probe_json(&format!("ws://{addr}/ws"), secret_token, &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["failed_step"], "subprotocol", "{report:#}");
    let sub = step(&report, "subprotocol");
    assert_eq!(sub["data"]["answer_carries_token"], true);
    assert!(
        sub["detail"]
            .as_str()
            .expect("detail")
            .contains("ECHOED THE TOKEN"),
        "{sub:#}"
    );
    // The report itself never repeats the token.
    assert!(!String::from_utf8_lossy(&output.stdout).contains(secret_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_explains_a_refused_token() {
    let server = start(Config::default()).await;
    let other_key = SigningKey::hmac(
        Algorithm::HS256,
        "another secret of at least thirty-two bytes",
    )
    .expect("key");
    let foreign = Claims::new("mallory").sign(&other_key).expect("sign");
    let (output, report) = probe_json(&server.url("/ws"), foreign.expose_secret(), &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        report["failed_step"], "connection_established",
        "{report:#}"
    );
    let data = &step(&report, "connection_established")["data"];
    assert_eq!(data["close_code"], 4401, "{report:#}");
    assert!(data["error_code"].is_string());
    assert_eq!(step(&report, "agent_run")["status"], "skipped");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_tcp_and_tls_failures() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let (output, report) = probe_json(&format!("ws://{closed}/ws"), "t", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["failed_step"], "tcp_connect", "{report:#}");
    assert!(
        report["cause"]
            .as_str()
            .expect("cause")
            .contains("nothing listens")
    );

    // wss:// to a plain HTTP server.
    let addr = serve_axum(axum::Router::new().route("/ws", get(|| async { "plain" }))).await;
    let (output, report) = probe_json(&format!("wss://{addr}/ws"), "t", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["failed_step"], "tls", "{report:#}");
}

#[test]
fn probe_refuses_a_non_websocket_url() {
    let output = Command::new(BIN)
        .args(["probe", "http://127.0.0.1:1/ws", "--token", "t"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ws://"));
}

/// `probe --monitor --json`: the probe lines, then the summary line.
async fn monitor_json(url: &str, extra: &[&str]) -> (Output, Vec<Value>, Value) {
    let mut args: Vec<String> = ["probe", url, "--monitor", "--json", "--timeout-secs", "5"]
        .iter()
        .chain(["--interval-secs", "0.1", "--duration-secs", "60"].iter())
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(["--count".to_owned(), "3".to_owned()]);
    let output = run_bin(args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "not one JSON object per line ({e}): {line}\nstderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
        })
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["record"], "summary", "{summary:#}");
    assert!(lines.iter().all(|l| l["record"] == "probe"), "{lines:#?}");
    (output, lines, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_monitor_reports_full_availability_of_a_healthy_server() {
    let server = start(
        Config::builder()
            .rate_limit_per_sec(0)
            .build()
            .expect("config"),
    )
    .await;
    let token = token("monitor-user");
    let (output, probes, summary) =
        monitor_json(&server.url("/ws"), &["--token", token.expose_secret()]).await;
    assert!(output.status.success(), "{summary:#}");
    assert_eq!(probes.len(), 3, "--count 3");
    for (i, probe) in probes.iter().enumerate() {
        assert_eq!(probe["probe"], i + 1);
        assert_eq!(probe["ok"], true, "{probe:#}");
        assert!(probe["handshake_ms"].is_number(), "{probe:#}");
        assert!(probe["run_ms"].is_number(), "{probe:#}");
        assert_eq!(
            step(probe, "connection_established")["data"]["user_id"],
            "monitor-user"
        );
    }
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["probes"], 3);
    assert_eq!(summary["passed"], 3);
    assert_eq!(summary["availability_pct"], 100.0);
    assert_eq!(summary["handshake_ms"]["samples"], 3);
    assert!(summary["handshake_ms"]["p50"].is_number());
    assert!(summary["handshake_ms"]["p99"].is_number());
    assert_eq!(summary["run_ms"]["samples"], 3);
    assert!(summary["run_ms"]["p99"].is_number());
    assert_eq!(summary["failures"], serde_json::json!([]));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(token.expose_secret()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_monitor_reports_failures_by_step_and_fails_below_the_minimum() {
    let server = start(Config::default()).await;
    let url = server.url("/ws");
    // Tokens signed with a secret the server does not have: every probe is refused.
    let wrong = [
        "--token-secret",
        "another secret of at least thirty-two bytes",
    ];
    let (output, probes, summary) = monitor_json(&url, &wrong).await;
    assert_eq!(output.status.code(), Some(1), "{summary:#}");
    assert_eq!(probes.len(), 3);
    for probe in &probes {
        assert_eq!(probe["ok"], false);
        assert_eq!(probe["failed_step"], "connection_established", "{probe:#}");
        assert_eq!(probe["run_ms"], Value::Null);
    }
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["passed"], 0);
    assert_eq!(summary["availability_pct"], 0.0);
    assert_eq!(
        summary["failures_by_step"],
        serde_json::json!({ "connection_established": 3 })
    );
    let failures = summary["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{summary:#}");
    assert_eq!(failures[0]["count"], 3);
    assert!(
        failures[0]["cause"]
            .as_str()
            .expect("cause")
            .contains("signed with a key the server does not have"),
        "{summary:#}"
    );

    // The human-readable form says the same, one line per probe, then the verdict.
    let output = run_bin(
        [
            "probe",
            &url,
            "--monitor",
            "--interval-secs",
            "0.1",
            "--count",
            "2",
        ]
        .into_iter()
        .chain(wrong)
        .map(str::to_owned)
        .collect(),
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        2,
        "{text}"
    );
    assert!(text.contains("FAIL  connection_established"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("FAIL: availability 0.00 % is below the minimum 100 %"),
        "{text}"
    );

    // A minimum the probes meet: exit 0 although they failed.
    let (output, _, summary) =
        monitor_json(&url, &[wrong[0], wrong[1], "--min-availability", "0"]).await;
    assert!(output.status.success(), "{summary:#}");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["passed"], 0);
    server.stop().await;
}

fn load_args(url: String, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "load".into(),
        url,
        "--token-secret".into(),
        FIXTURE_HMAC_SECRET.into(),
        "--json".into(),
        "--timeout-secs".into(),
        "20".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn load_report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "load printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_completes_every_run_without_errors() {
    let server = start(
        Config::builder()
            .rate_limit_per_sec(0)
            .build()
            .expect("config"),
    )
    .await;
    // The server runs in this process: its /proc figures are this process's.
    let pid = std::process::id().to_string();
    let output = run_bin(load_args(
        server.url("/ws"),
        &["--connections", "20", "--runs", "20", "--server-pid", &pid],
    ))
    .await;
    let report = load_report(&output);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["connections"]["established"], 20);
    assert_eq!(report["connections"]["failed"], 0);
    assert_eq!(report["run"]["runs_completed"], 20);
    assert_eq!(report["run"]["runs_failed"], 0);
    assert_eq!(report["run"]["events"], 100, "five events per demo run");
    assert_eq!(report["run"]["latency_ms"]["samples"], 20);
    assert_eq!(report["errors"], serde_json::json!({}));
    assert_eq!(report["close_codes"], serde_json::json!({ "1000": 20 }));
    assert!(
        report["server"]["cpu_s_per_1k_events"].is_number(),
        "{report:#}"
    );
    assert!(report["server"]["rss_per_connection_bytes_after_ramp"].is_number());
    await_active(server.addr, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_in_open_loop_and_idle_modes() {
    let server = start(
        Config::builder()
            .rate_limit_per_sec(0)
            .build()
            .expect("config"),
    )
    .await;
    let output = run_bin(load_args(
        server.url("/ws"),
        &[
            "--connections",
            "10",
            "--rate",
            "50",
            "--runs",
            "10",
            "--threads",
            "2",
        ],
    ))
    .await;
    let report = load_report(&output);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["mode"], "open_loop");
    assert_eq!(report["run"]["runs_completed"], 10);

    let output = run_bin(load_args(
        server.url("/ws"),
        &["--connections", "10", "--idle", "--duration-secs", "0.5"],
    ))
    .await;
    let report = load_report(&output);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["mode"], "idle");
    assert_eq!(report["connections"]["established"], 10);
    assert_eq!(report["run"]["events"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_refused_handshakes_by_kind() {
    // All connections share one user: past the per-user limit (3 here) they are closed 4409.
    let server = start(
        Config::builder()
            .rate_limit_per_sec(0)
            .max_connections_per_user(3)
            .build()
            .expect("config"),
    )
    .await;
    let token = token("shared-user");
    let output = run_bin(vec![
        "load".into(),
        server.url("/ws"),
        "--token".into(),
        token.expose_secret().into(),
        "--connections".into(),
        "5".into(),
        "--handshake-concurrency".into(),
        "1".into(),
        "--runs".into(),
        "3".into(),
        "--json".into(),
    ])
    .await;
    let report = load_report(&output);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["connections"]["established"], 3);
    assert_eq!(report["connections"]["failed"], 2);
    assert_eq!(
        report["errors"]["established: error too_many_connections"], 2,
        "{report:#}"
    );
    // The shared user's runs reach all three connections; each still matches its own run.
    assert_eq!(report["run"]["runs_completed"], 3);
    server.stop().await;
}
