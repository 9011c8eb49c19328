//! A real agent service (axum on loopback, streaming NDJSON with pauses), an agentwire server
//! with an `HttpAgent`, and a real WebSocket client.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use agentwire_auth::{Key, Token, Validator};
use agentwire_http_agent::{HttpAgentBuilder, Service};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{
    Harness, PATIENCE, SERVICE_SECRET, ServiceState, TOOL_RUN, USER, http_get, kinds, record,
    stream, user_validator,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn line(kind: &str, payload: Value) -> String {
    format!("{}\n", json!({"type": kind, "payload": payload}))
}

fn started() -> String {
    line(
        "agent_started",
        json!({"agent_name": "svc", "user_request": "hi"}),
    )
}

fn completed() -> String {
    line(
        "agent_completed",
        json!({"result": {"ok": true}, "duration_ms": 3}),
    )
}

async fn agent_service(
    State(state): State<ServiceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(scenario): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, peer, &headers, &body);
    let nd = "application/x-ndjson";
    match scenario.as_str() {
        "happy" => stream(
            &state,
            "happy",
            nd,
            vec![
                // An alias in another case, and a run_id of the service's own (ignored).
                format!(
                    "{}\n",
                    json!({"type": "AGENT_START", "run_id": "the-services-own",
                           "payload": {"agent_name": "svc", "user_request": "hi"}})
                ),
                line("Agent_Thinking", json!({"reasoning": "hmm"})),
                // One line split across two writes, and a `\r\n` ending.
                "{\"type\":\"tool_started\",\"payload\":{\"tool_name\":\"echo\",".to_owned(),
                "\"tool_call_id\":\"c1\",\"parameters\":{}}}\r\n".to_owned(),
                line(
                    "tool_complete",
                    json!({"tool_name": "echo", "tool_call_id": "c1", "status": "ok",
                           "result": {"x": 1}, "duration_ms": 2}),
                ),
                // Two lines in one write, and a blank line.
                format!(
                    "{}\n{}",
                    line("Stream_Chunk", json!({"delta": "Hel", "index": 0})),
                    line("partial_result", json!({"delta": "lo", "index": 1}))
                ),
                // The last line without its newline.
                completed().trim_end().to_owned(),
            ],
            false,
        ),
        "status" => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        "content_type" => stream(&state, "content_type", "text/plain", vec![started()], false),
        "malformed" => stream(
            &state,
            "malformed",
            nd,
            vec![
                started(),
                "{\"type\": \"agent_thinking\", oops\n".to_owned(),
                completed(),
            ],
            true,
        ),
        "contract" => stream(
            &state,
            "contract",
            nd,
            vec![
                line("agent_thinking", json!({"reasoning": "before started"})),
                completed(),
            ],
            true,
        ),
        "too_large" => stream(
            &state,
            "too_large",
            nd,
            vec![
                started(),
                line("agent_thinking", json!({"reasoning": "x".repeat(4096)})),
                completed(),
            ],
            true,
        ),
        "no_terminal" => stream(
            &state,
            "no_terminal",
            nd,
            vec![
                started(),
                line("agent_thinking", json!({"reasoning": "..."})),
            ],
            false,
        ),
        "idle" => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(started())).await;
                // Nothing more, and the stream stays open until the client goes away.
                tx.closed().await;
            });
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
            });
            ([(header::CONTENT_TYPE, nd)], Body::from_stream(body)).into_response()
        }
        "slow" => stream(&state, "slow", nd, vec![started()], true),
        "lingering" => {
            // The run, then a blank line a while later, then the end of the response.
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from(started() + &completed())).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = tx.send(Bytes::from_static(b"\n")).await;
            });
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
            });
            ([(header::CONTENT_TYPE, nd)], Body::from_stream(body)).into_response()
        }
        "no_headers" => std::future::pending().await,
        "own_error" => stream(
            &state,
            "own_error",
            nd,
            vec![
                started(),
                line(
                    "agent_failed",
                    json!({"code": "quota_exceeded", "message": "no quota", "recoverable": true}),
                ),
            ],
            false,
        ),
        "keepalive" => stream(&state, "keepalive", nd, vec![started(), completed()], false),
        "broken" => {
            // A chunked body that fails after its first line: hyper aborts the connection.
            let body = futures_util::stream::iter([
                Ok(Bytes::from(started())),
                Err(std::io::Error::other("the service breaks")),
            ]);
            ([(header::CONTENT_TYPE, nd)], Body::from_stream(body)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl Harness {
    /// The NDJSON test service, a server whose agent maps every scenario name to the
    /// service's path of that name (plus `configure`), and a connected client.
    async fn start(
        configure: impl FnOnce(HttpAgentBuilder, SocketAddr) -> HttpAgentBuilder,
    ) -> Harness {
        let routes = Router::new().route("/{scenario}", post(agent_service));
        Harness::start_with(routes, |builder, service| {
            let mut builder = builder
                .default_service(Service::ndjson(&format!("http://{service}/happy")).unwrap());
            for scenario in [
                "happy",
                "status",
                "content_type",
                "malformed",
                "contract",
                "too_large",
                "no_terminal",
                "idle",
                "slow",
                "broken",
                "keepalive",
                "no_headers",
                "own_error",
                "lingering",
            ] {
                builder = builder.agent(
                    scenario,
                    Service::ndjson(&format!("http://{service}/{scenario}")).unwrap(),
                );
            }
            configure(builder, service)
        })
        .await
    }
}

#[tokio::test]
async fn happy_path_relays_normalized_events_in_order() {
    let mut h = Harness::start(|b, _| b).await;
    let message_id = h.ask("happy").await;
    let frames = h.run_frames().await;
    assert_eq!(kinds(&frames), TOOL_RUN);
    let run_id = frames[0]["run_id"].as_str().unwrap();
    assert!(run_id.starts_with("run_"), "{run_id}");
    let mut seq = None;
    for frame in &frames {
        assert_eq!(
            frame["run_id"], run_id,
            "agentwire's run id, not the service's"
        );
        assert_eq!(frame["reply_to"], message_id.as_str());
        let this = frame["seq"].as_u64().unwrap();
        if let Some(before) = seq {
            assert_eq!(this, before + 1);
        }
        seq = Some(this);
    }
    assert_eq!(frames[4]["payload"]["delta"], "Hel");
    assert_eq!(frames[5]["payload"]["delta"], "lo");
    assert_eq!(frames[6]["payload"]["result"], json!({"ok": true}));
    h.assert_usable().await;

    // The request body is agentwire's own JSON.
    let body = h.seen.lock().unwrap().requests[0].1.clone();
    assert_eq!(body["run_id"], run_id);
    assert_eq!(body["user_id"], USER);
    assert_eq!(body["message_id"], message_id.as_str());
    assert_eq!(body["type"], "start_agent");
    assert_eq!(body["payload"]["text"], "hi");
    assert_eq!(body["payload"]["agent_name"], "happy");
    h.settled().await;
    assert_eq!(h.agent.completed_runs(), 1);
}

#[tokio::test]
async fn the_service_token_names_the_user_and_the_run() {
    let mut h = Harness::start(|b, _| b).await;
    // No agent_name: the default service.
    h.send(json!({"type": "user_message", "payload": {"message": "hello"}}))
        .await;
    let frames = h.run_frames().await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    let run_id = frames[0]["run_id"].as_str().unwrap().to_owned();

    let seen = h.seen.lock().unwrap();
    let (authorization, body) = &seen.requests[0];
    assert_eq!(body["type"], "user_message");
    let authorization = authorization.as_deref().expect("an Authorization header");
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    assert_ne!(token, h.user_token.expose_secret(), "never the user's JWT");
    assert!(!authorization.contains(h.user_token.expose_secret()));
    let service_validator = Validator::builder()
        .key(Key::hmac(SERVICE_SECRET).unwrap())
        .audience("agent-service")
        .build()
        .unwrap();
    let principal = service_validator.validate(&Token::new(token)).unwrap();
    assert_eq!(principal.user_id(), USER);
    assert_eq!(principal.claim("run_id"), Some(&json!(run_id)));
    // The user's validator (another key) refuses it: it is not a user token.
    assert!(user_validator().validate(&Token::new(token)).is_err());
}

#[tokio::test]
async fn unknown_agent_name_is_an_error_frame_and_no_run() {
    let mut h = Harness::start(|b, _| b).await;
    let message_id = h.ask("nobody").await;
    let error = h.next().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "unknown_agent");
    assert_eq!(error["reply_to"], message_id.as_str());
    assert!(error.get("run_id").is_none(), "{error}");
    h.assert_usable().await;
    assert!(h.seen.lock().unwrap().requests.is_empty());
    assert_eq!(h.agent.refused(), (1, 0));
    assert!(
        h.agent
            .metrics_text()
            .contains("agentwire_agent_requests_refused_total{code=\"unknown_agent\"} 1\n")
    );
    assert_eq!(h.agent.forwarded_runs(), 0);
}

#[tokio::test]
async fn past_the_in_flight_limit_a_request_is_refused_with_retry_after() {
    let mut h = Harness::start(|b, _| {
        b.max_in_flight(1)
            .busy_retry_after(Duration::from_millis(1500))
            .idle_timeout(PATIENCE)
    })
    .await;
    h.ask("slow").await;
    let first = h.next().await;
    assert_eq!(first["type"], "agent_started", "{first}");
    let message_id = h.ask("happy").await;
    let error = h.next().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "agent_busy");
    assert_eq!(error["payload"]["retry_after_ms"], 1500);
    assert_eq!(error["reply_to"], message_id.as_str());
    // Cancelling the first frees the slot.
    h.send(json!({"type": "cancel_agent", "payload": {"run_id": first["run_id"]}}))
        .await;
    let cancelled = h.next().await;
    assert_eq!(cancelled["payload"]["code"], "cancelled", "{cancelled}");
    h.disconnect_of("slow").await;
    let mut frames = Vec::new();
    for _ in 0..PATIENCE.as_millis() / 50 {
        h.ask("happy").await;
        let first = h.next().await;
        if first["type"] == "error" {
            // The slot is freed when the cancelled run's future is dropped: soon.
            assert_eq!(first["payload"]["code"], "agent_busy");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        frames.push(first);
        frames.extend(h.run_frames().await);
        break;
    }
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
}

/// A run frees its slot when its terminal event goes out: a client that asks again as soon as
/// it has its answer is not refused, at a limit of one, while agentwire still reads the end
/// of the previous response (which the service sends a while after the terminal event).
#[tokio::test]
async fn the_next_run_gets_the_slot_as_soon_as_the_last_one_ended() {
    let mut h = Harness::start(|b, _| b.max_in_flight(1)).await;
    for _ in 0..3 {
        h.ask("lingering").await;
        let frames = h.run_frames().await;
        assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    }
    assert_eq!(h.agent.refused(), (0, 0));
    assert_eq!(h.agent.completed_runs(), 3);
    // Counted in flight until the end of each response is read.
    h.settled().await;
    assert_eq!(h.agent.in_flight(), 0);
}

#[tokio::test]
async fn cancel_aborts_the_http_request() {
    let mut h = Harness::start(|b, _| b.idle_timeout(PATIENCE)).await;
    h.ask("slow").await;
    let started = h.next().await;
    assert_eq!(started["type"], "agent_started", "{started}");
    h.send(json!({"type": "cancel_agent", "payload": {"run_id": started["run_id"]}}))
        .await;
    let error = h.next().await;
    assert_eq!(error["type"], "agent_error", "{error}");
    assert_eq!(error["payload"]["code"], "cancelled");
    assert_eq!(error["run_id"], started["run_id"]);
    h.disconnect_of("slow").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn unreachable_service() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut h = Harness::start(|b, _| {
        b.agent(
            "gone",
            Service::ndjson(&format!("http://{closed}/run")).unwrap(),
        )
    })
    .await;
    let (frames, code) = h.failing_run("gone").await;
    assert_eq!(code, "agent_unreachable");
    // The service said nothing: the server's own agent_started (named after the request's
    // agent), then the error; `failing_run` checked that the run is well formed.
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["type"], "agent_started");
    assert_eq!(
        frames[0]["payload"],
        json!({"agent_name": "gone", "user_request": "hi"})
    );
    assert_eq!(frames[1]["payload"]["recoverable"], true);
    h.assert_usable().await;
    assert_eq!(h.agent.failures("agent_unreachable"), 1);
    // The server's own /metrics carries the agent's counters.
    let (status, metrics) = http_get(h.server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("agentwire_runs_started_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agentwire_agent_run_failures_total{code=\"agent_unreachable\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agentwire_agent_runs_forwarded_total 1\n"),
        "{metrics}"
    );
}

/// A run that names no agent and fails before its service said anything starts, on the
/// wire, as agent `default`.
#[tokio::test]
async fn a_default_run_that_fails_at_once_starts_as_default() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut h = Harness::start(|b, _| {
        b.default_service(Service::ndjson(&format!("http://{closed}/run")).unwrap())
    })
    .await;
    h.send(json!({"type": "user_message", "payload": {"text": "anyone?"}}))
        .await;
    let frames = h.run_frames().await;
    let kinds = kinds(&frames);
    assert_eq!(kinds, ["agent_started", "agent_error"]);
    assert_eq!(
        frames[0]["payload"],
        json!({"agent_name": "default", "user_request": "anyone?"})
    );
    assert_eq!(frames[1]["payload"]["code"], "agent_unreachable");
    let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
    agentwire_events::validate_run_json(texts.iter().map(String::as_str)).unwrap();
    h.assert_usable().await;
}

/// `/ws/config` shows the agent services (default and named, with their protocols) and the
/// limits; never the service-token secret, nor a URL's user, password or query.
#[tokio::test]
async fn config_shows_the_agent_services_and_no_secret() {
    let mut h = Harness::start(|b, service| {
        b.agent(
            "private",
            Service::ag_ui(&format!("http://svc:pa55@{service}/agui?code=k3y")).unwrap(),
        )
        .total_timeout(Some(Duration::from_secs(120)))
    })
    .await;
    let (status, body) = http_get(h.server, "/ws/config").await;
    assert_eq!(status, 200);
    for secret in [SERVICE_SECRET, "pa55", "k3y", "svc:"] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    let config: Value = serde_json::from_str(&body).unwrap();
    let agent = &config["agent"];
    let service = h.service;
    assert_eq!(agent["kind"], "http", "{agent}");
    assert_eq!(
        agent["default"],
        json!({"url": format!("http://{service}/happy"), "protocol": "ndjson"})
    );
    assert_eq!(
        agent["agents"]["private"],
        json!({"url": format!("http://{service}/agui"), "protocol": "ag-ui"})
    );
    assert_eq!(
        agent["agents"]["slow"],
        json!({"url": format!("http://{service}/slow"), "protocol": "ndjson"})
    );
    assert_eq!(agent["agents"].as_object().unwrap().len(), 15, "{agent}");
    assert_eq!(agent["service_token"], true);
    assert_eq!(
        agent["limits"],
        json!({
            "max_in_flight": agentwire_http_agent::DEFAULT_MAX_IN_FLIGHT,
            "max_line_bytes": 1024,
            "connect_timeout_ms": 5000,
            "idle_timeout_ms": 1500,
            "total_timeout_ms": 120_000,
            "busy_retry_after_ms": 1000,
        })
    );
    h.assert_usable().await;
}

#[tokio::test]
async fn non_2xx_status() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("status").await;
    assert_eq!(code, "agent_http_status");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["payload"]["agent_name"], "status");
    h.assert_usable().await;
}

#[tokio::test]
async fn wrong_content_type() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("content_type").await;
    assert_eq!(code, "agent_content_type");
    assert_eq!(frames.len(), 2, "nothing of the body is relayed");
    assert_eq!(frames[0]["payload"]["agent_name"], "content_type");
    h.assert_usable().await;
}

#[tokio::test]
async fn malformed_line() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("malformed").await;
    assert_eq!(code, "agent_malformed_line");
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("malformed").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn an_event_that_breaks_the_run_contract() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("contract").await;
    assert_eq!(code, "agent_contract_broken");
    // The service's first event was not agent_started: not relayed; the server's own is.
    assert_eq!(frames.len(), 2, "the offending event is not relayed");
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("contract").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn line_over_the_size_limit() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("too_large").await;
    assert_eq!(code, "agent_line_too_large");
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("too_large").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn stream_ending_without_a_terminal_event() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("no_terminal").await;
    assert_eq!(code, "agent_no_terminal");
    assert_eq!(frames.len(), 3);
    h.assert_usable().await;
}

#[tokio::test]
async fn idle_service() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("idle").await;
    assert_eq!(code, "agent_idle_timeout");
    assert_eq!(frames[0]["type"], "agent_started");
    h.assert_usable().await;
    // Another run on the same agent still works.
    h.ask("happy").await;
    assert_eq!(
        h.run_frames().await.last().unwrap()["type"],
        "agent_completed"
    );
    let _ = h.service;
}

#[tokio::test]
async fn connection_broken_mid_response() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("broken").await;
    assert_eq!(code, "agent_connection_failed");
    // Whether the line before the break got through depends on the service's buffering.
    assert!(frames.len() <= 2, "{frames:?}");
    h.assert_usable().await;
}

#[tokio::test]
async fn total_timeout() {
    let mut h = Harness::start(|b, _| {
        b.idle_timeout(PATIENCE)
            .total_timeout(Some(Duration::from_millis(300)))
    })
    .await;
    let (frames, code) = h.failing_run("slow").await;
    assert_eq!(code, "agent_timeout");
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("slow").await;
    h.assert_usable().await;
    assert_eq!(h.agent.failures("agent_timeout"), 1);
}

#[tokio::test]
async fn a_completed_run_leaves_its_connection_to_the_next() {
    let mut h = Harness::start(|b, _| b).await;
    for _ in 0..2 {
        h.ask("keepalive").await;
        let frames = h.run_frames().await;
        assert_eq!(frames.last().unwrap()["type"], "agent_completed");
        h.settled().await;
    }
    let seen = h.seen.lock().unwrap();
    assert_eq!(seen.peers.len(), 2);
    assert_eq!(
        seen.peers[0], seen.peers[1],
        "one keep-alive connection for both runs"
    );
}

#[tokio::test]
async fn idle_before_the_response_headers() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("no_headers").await;
    assert_eq!(code, "agent_idle_timeout");
    assert_eq!(frames.len(), 2);
    h.assert_usable().await;
}

#[tokio::test]
async fn the_services_own_agent_error_ends_the_run() {
    let mut h = Harness::start(|b, _| b).await;
    let (frames, code) = h.failing_run("own_error").await;
    assert_eq!(code, "quota_exceeded");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1]["payload"]["recoverable"], true);
    h.assert_usable().await;
    h.settled().await;
    assert_eq!(h.agent.completed_runs(), 1);
}
