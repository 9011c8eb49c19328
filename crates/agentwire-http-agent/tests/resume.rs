//! Resume after reconnect through a bridged run: a client that goes away in the middle of a
//! run forwarded to an agent service comes back with `?epoch=&since=` and gets the rest of
//! the run exactly once (what was emitted while it was away, replayed, then the live rest),
//! ending with `agent_completed`; what it saw before and after is one well-formed run.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentwire_events::validate_run_json;
use agentwire_http_agent::Service;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use common::{Harness, PATIENCE, TOOL_RUN, http_get, kinds};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

fn line(kind: &str, payload: Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "payload": payload})))
}

/// The agent service: a run in three stretches, each one waiting for the test to open its
/// gate (one permit of `gate` per stretch), with a pause between events.
fn gated_service(gate: Arc<Semaphore>) -> Router<common::ServiceState> {
    Router::new().route(
        "/steps",
        post(move || {
            let gate = Arc::clone(&gate);
            async move {
                let stretches = [
                    vec![
                        line(
                            "agent_started",
                            json!({"agent_name": "steps", "user_request": "hi"}),
                        ),
                        line(
                            "agent_thinking",
                            json!({"reasoning": "counting", "step": 1}),
                        ),
                    ],
                    vec![
                        line(
                            "tool_executing",
                            json!({"tool_name": "count", "tool_call_id": "c1",
                                   "parameters": {"text": "hi"}}),
                        ),
                        line(
                            "tool_completed",
                            json!({"tool_name": "count", "tool_call_id": "c1", "status": "ok",
                                   "result": {"words": 1}, "duration_ms": 5}),
                        ),
                        line("agent_response_chunk", json!({"delta": "One ", "index": 0})),
                    ],
                    vec![
                        line(
                            "agent_response_chunk",
                            json!({"delta": "word.", "index": 1}),
                        ),
                        line(
                            "agent_completed",
                            json!({"result": {"text": "One word."}, "duration_ms": 40}),
                        ),
                    ],
                ];
                let (tx, rx) = mpsc::channel::<Bytes>(1);
                tokio::spawn(async move {
                    for stretch in stretches {
                        gate.acquire().await.expect("gate open").forget();
                        for event in stretch {
                            if tx.send(event).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                });
                let body = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv()
                        .await
                        .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
                });
                (
                    [(header::CONTENT_TYPE, "application/x-ndjson")],
                    Body::from_stream(body),
                )
                    .into_response()
            }
        }),
    )
}

/// The value of `metric` (a name without labels) in the server's `/metrics`.
async fn metric(h: &Harness, metric: &str) -> u64 {
    let (status, metrics) = http_get(h.server, "/metrics").await;
    assert_eq!(status, 200);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(metric)?.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} in\n{metrics}"))
}

/// Waits until `metric` is `value` (a liveness bound of PATIENCE).
async fn until_metric(h: &Harness, name: &str, value: u64) {
    for _ in 0..PATIENCE.as_millis() / 10 {
        if metric(h, name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never became {value}: {}", metric(h, name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_mid_run_resumes_and_gets_the_rest_exactly_once() {
    let gate = Arc::new(Semaphore::new(0));
    let mut h = Harness::start_with(gated_service(Arc::clone(&gate)), |b, service| {
        b.default_service(Service::ndjson(&format!("http://{service}/steps")).unwrap())
            // The service is silent while its gate is shut.
            .idle_timeout(PATIENCE)
    })
    .await;
    let epoch = h.established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();

    // The first stretch reaches the client, then it goes away in the middle of the run.
    h.send(json!({"type": "start_agent", "message_id": "m1",
                  "payload": {"user_request": "hi"}}))
        .await;
    gate.add_permits(1);
    let before = vec![h.next().await, h.next().await];
    assert_eq!(before[0]["type"], "agent_started", "{before:?}");
    assert_eq!(before[1]["type"], "agent_thinking", "{before:?}");
    let since = before[1]["seq"].as_u64().expect("seq");
    assert_eq!(metric(&h, "agentwire_events_emitted_total").await, 2);

    // The client goes away; once the server has closed its connection, the service's second
    // stretch is relayed while the user has none: three events wait in the replay window.
    h.disconnect().await;
    until_metric(&h, "agentwire_connections_active", 0).await;
    gate.add_permits(1);
    until_metric(&h, "agentwire_events_emitted_total", 5).await;

    // The client comes back asking for what it missed.
    let established = h.reconnect(&format!("epoch={epoch}&since={since}")).await;
    let resume = &established["payload"]["resume"];
    assert_eq!(
        *resume,
        json!({"status": "resumed", "replayed": 3, "from_seq": since + 1, "to_seq": since + 3}),
        "{established}"
    );
    // The replayed three, then the live rest once the service goes on.
    let mut after = vec![h.next().await, h.next().await, h.next().await];
    gate.add_permits(1);
    after.extend(h.run_frames().await);

    assert_eq!(kinds(before.iter().chain(&after)), TOOL_RUN);
    let seqs: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (since - 1..since + 6).collect();
    assert_eq!(seqs, expected, "each seq once, in order");
    let texts: Vec<String> = before.iter().chain(&after).map(Value::to_string).collect();
    let summary = validate_run_json(texts.iter().map(String::as_str))
        .unwrap_or_else(|violation| panic!("{violation}: {texts:#?}"));
    assert_eq!(summary.events, 7);
    let run_id = &before[0]["run_id"];
    assert!(
        after
            .iter()
            .all(|f| &f["run_id"] == run_id && f["reply_to"] == "m1")
    );
    // The answer arrived whole across the two connections.
    let text: String = before
        .iter()
        .chain(&after)
        .filter_map(|f| f["payload"]["delta"].as_str())
        .collect();
    assert_eq!(text, "One word.");
    assert_eq!(after.last().unwrap()["payload"]["result"]["text"], text);
    h.assert_usable().await;
    h.settled().await;
    assert_eq!(h.agent.completed_runs(), 1);
}
