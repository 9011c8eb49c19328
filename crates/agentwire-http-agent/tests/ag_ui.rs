//! A real AG-UI agent service (axum on loopback, streaming Server-Sent Events with pauses), an
//! agentwire server with an `HttpAgent` speaking `ag-ui`, and a real WebSocket client.

mod common;

use std::net::SocketAddr;

use agentwire_http_agent::{HttpAgentBuilder, Service};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{Harness, ServiceState, TOOL_RUN, USER, kinds, record, stream};
use serde_json::{Value, json};

const SSE: &str = "text/event-stream";

/// One AG-UI event as an SSE event.
fn sse(event: &Value) -> String {
    format!("data: {event}\n\n")
}

fn run_started() -> String {
    sse(&json!({"type": "RUN_STARTED", "threadId": "t", "runId": "the-services-own"}))
}

fn run_finished() -> String {
    sse(&json!({"type": "RUN_FINISHED", "threadId": "t", "runId": "the-services-own"}))
}

async fn ag_ui_service(
    State(state): State<ServiceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(scenario): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, peer, &headers, &body);
    match scenario.as_str() {
        "happy" => stream(
            &state,
            "happy",
            // Parameters of the content type are ignored.
            "text/event-stream; charset=utf-8",
            vec![
                // A comment first, as services send to open the stream.
                ": stream open\n\n".to_owned(),
                run_started(),
                // `event` and `id` fields: read, and ignored (the JSON's type decides).
                format!(
                    "event: step\nid: 2\ndata: {}\n\n",
                    json!({"type": "STEP_STARTED", "stepName": "forecast"})
                ),
                sse(&json!({"type": "TOOL_CALL_START", "toolCallId": "c1",
                            "toolCallName": "forecast", "parentMessageId": "m0"})),
                // The arguments in two deltas; `\r\n` line ends.
                format!(
                    "data: {}\r\n\r\ndata: {}\r\n\r\n",
                    json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "{\"city\":"}),
                    json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": " \"Oslo\"}"}),
                ),
                sse(&json!({"type": "TOOL_CALL_END", "toolCallId": "c1"})),
                sse(
                    &json!({"type": "TOOL_CALL_RESULT", "messageId": "m1", "toolCallId": "c1",
                            "content": "{\"temp_c\": 4}", "role": "tool"}),
                ),
                sse(&json!({"type": "TEXT_MESSAGE_START", "messageId": "m2",
                            "role": "assistant"})),
                // One event split across two writes, its JSON over two data lines.
                "data: {\"type\": \"TEXT_MESSAGE_CONTENT\",\ndata: \"messageId\": \"m2\", "
                    .to_owned(),
                "\"delta\": \"4 degrees\"}\n\n".to_owned(),
                // `\r` line ends.
                format!(
                    "data: {}\r\r",
                    json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2",
                           "delta": " in Oslo"})
                ),
                sse(&json!({"type": "TEXT_MESSAGE_END", "messageId": "m2"})),
                sse(&json!({"type": "RUN_FINISHED", "threadId": "t",
                            "runId": "the-services-own", "result": {"source": "met.no"}})),
            ],
            false,
        ),
        "state" => stream(
            &state,
            "state",
            SSE,
            vec![
                run_started(),
                sse(&json!({"type": "STATE_SNAPSHOT", "snapshot": {"city": "Oslo"}})),
                sse(&json!({"type": "STATE_DELTA",
                            "delta": [{"op": "replace", "path": "/city", "value": "Bergen"}]})),
                sse(&json!({"type": "CUSTOM", "name": "confetti", "value": 3})),
                sse(&json!({"type": "A_TYPE_FROM_THE_FUTURE", "x": 1})),
                run_finished(),
            ],
            false,
        ),
        "run_error" => stream(
            &state,
            "run_error",
            SSE,
            vec![
                run_started(),
                sse(&json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "Let"})),
                sse(&json!({"type": "RUN_ERROR", "message": "no quota left",
                            "code": "quota_exceeded"})),
            ],
            false,
        ),
        "content_type" => stream(
            &state,
            "content_type",
            "application/x-ndjson",
            vec![run_started()],
            false,
        ),
        "malformed" => stream(
            &state,
            "malformed",
            SSE,
            vec![
                run_started(),
                "data: {\"type\": \"TEXT_MESSAGE_CONTENT\", oops\n\n".to_owned(),
                run_finished(),
            ],
            true,
        ),
        "not_an_event" => stream(
            &state,
            "not_an_event",
            SSE,
            vec![
                run_started(),
                // JSON, but a mapped type without the field agentwire reads.
                sse(&json!({"type": "TOOL_CALL_START", "toolCallId": "c1"})),
                run_finished(),
            ],
            true,
        ),
        "contract" => stream(
            &state,
            "contract",
            SSE,
            vec![
                run_started(),
                sse(
                    &json!({"type": "TOOL_CALL_RESULT", "messageId": "m", "toolCallId": "nope",
                            "content": "x"}),
                ),
                run_finished(),
            ],
            true,
        ),
        "too_large" => stream(
            &state,
            "too_large",
            SSE,
            vec![
                run_started(),
                sse(&json!({"type": "CUSTOM", "name": "big", "value": "x".repeat(4096)})),
                run_finished(),
            ],
            true,
        ),
        "no_terminal" => stream(
            &state,
            "no_terminal",
            SSE,
            vec![
                run_started(),
                sse(&json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "..."})),
            ],
            false,
        ),
        "slow" => stream(&state, "slow", SSE, vec![run_started()], true),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The request body of docs/agents.md's `ag-ui` example.
fn documented_request() -> Value {
    let doc = include_str!("../../../docs/agents.md");
    let section = &doc[doc.find("## The request (`ag-ui`)").unwrap()..];
    let block = section.split("```json\n").nth(1).unwrap();
    let block = &block[..block.find("```").unwrap()];
    serde_json::from_str(block).unwrap()
}

const SCENARIOS: &[&str] = &[
    "happy",
    "state",
    "run_error",
    "content_type",
    "malformed",
    "not_an_event",
    "contract",
    "too_large",
    "no_terminal",
    "slow",
];

/// The AG-UI test service, a server whose agent maps every scenario name to the service's
/// path of that name, speaking `ag-ui`, and a connected client.
async fn start(configure: impl FnOnce(HttpAgentBuilder) -> HttpAgentBuilder) -> Harness {
    let routes = Router::new().route("/{scenario}", post(ag_ui_service));
    Harness::start_with(routes, |mut builder, service| {
        // docs/agents.md's example names the agent `weather`.
        builder = builder.agent(
            "weather",
            Service::ag_ui(&format!("http://{service}/happy")).unwrap(),
        );
        for scenario in SCENARIOS {
            builder = builder.agent(
                *scenario,
                Service::ag_ui(&format!("http://{service}/{scenario}")).unwrap(),
            );
        }
        configure(builder)
    })
    .await
}

#[tokio::test]
async fn an_ag_ui_run_arrives_as_agentwire_events_in_order() {
    let mut h = start(|b| b).await;
    // The request of docs/agents.md's example.
    h.send(
        json!({"type": "start_agent", "message_id": "m1", "payload": {
        "user_request": "weather in Oslo?", "agent_name": "weather", "thread_id": "t1",
        "context": {"locale": "nb", "units": {"temp": "C"}}}}),
    )
    .await;
    let frames = h.run_frames().await;
    assert_eq!(kinds(&frames), TOOL_RUN);
    let run_id = frames[0]["run_id"].as_str().unwrap();
    let mut seq = None;
    for frame in &frames {
        assert_eq!(
            frame["run_id"], run_id,
            "agentwire's run id, not the service's"
        );
        assert_eq!(frame["reply_to"], "m1");
        assert_eq!(frame["thread_id"], "t1");
        let this = frame["seq"].as_u64().unwrap();
        if let Some(before) = seq {
            assert_eq!(this, before + 1);
        }
        seq = Some(this);
    }
    assert_eq!(
        frames[0]["payload"],
        json!({"agent_name": "weather", "user_request": "weather in Oslo?"})
    );
    assert_eq!(
        frames[1]["payload"],
        json!({"reasoning": "forecast", "step": 1})
    );
    assert_eq!(
        frames[2]["payload"],
        json!({"tool_name": "forecast", "tool_call_id": "c1", "parameters": {"city": "Oslo"}})
    );
    let completed_tool = &frames[3]["payload"];
    assert_eq!(completed_tool["tool_name"], "forecast");
    assert_eq!(completed_tool["tool_call_id"], "c1");
    assert_eq!(completed_tool["status"], "ok");
    assert_eq!(completed_tool["result"], json!({"temp_c": 4}));
    assert_eq!(
        frames[4]["payload"],
        json!({"delta": "4 degrees", "index": 0})
    );
    assert_eq!(
        frames[5]["payload"],
        json!({"delta": " in Oslo", "index": 1})
    );
    assert_eq!(
        frames[6]["payload"]["result"],
        json!({"text": "4 degrees in Oslo", "result": {"source": "met.no"}})
    );
    h.assert_usable().await;

    // The request: an AG-UI RunAgentInput, exactly docs/agents.md's example (but the run id).
    let (body, headers) = {
        let seen = h.seen.lock().unwrap();
        (seen.requests[0].1.clone(), seen.headers[0].clone())
    };
    let mut documented = documented_request();
    documented["runId"] = json!(run_id);
    assert_eq!(body, documented);
    assert_eq!(documented["forwardedProps"]["agentwire"]["user_id"], USER);
    assert_eq!(headers[header::ACCEPT], SSE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(
        headers[header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .starts_with("Bearer "),
        "the service token, as for ndjson"
    );
    h.settled().await;
    assert_eq!(h.agent.completed_runs(), 1);
    assert_eq!(h.agent.ag_ui_events("TOOL_CALL_ARGS"), 2);
    assert_eq!(h.agent.ag_ui_events("RUN_FINISHED"), 1);
}

#[tokio::test]
async fn a_request_without_message_or_thread_ids_still_is_a_run_agent_input() {
    let mut h = start(|b| b).await;
    h.send(json!({"type": "user_message", "payload": {"message": "hello", "agent_name": "happy"}}))
        .await;
    let frames = h.run_frames().await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    let run_id = frames[0]["run_id"].as_str().unwrap();
    let body = h.seen.lock().unwrap().requests[0].1.clone();
    assert_eq!(
        body["threadId"], run_id,
        "the run's id when the request named no thread"
    );
    assert_eq!(body["runId"], run_id);
    assert_eq!(
        body["messages"],
        json!([{"id": format!("{run_id}-user"), "role": "user", "content": "hello"}])
    );
    assert_eq!(body["context"], json!([]));
    assert_eq!(
        body["forwardedProps"],
        json!({"agentwire": {"user_id": USER, "type": "user_message", "agent_name": "happy"}})
    );
}

#[tokio::test]
async fn events_without_a_counterpart_arrive_as_agent_progress_and_are_counted() {
    let mut h = start(|b| b).await;
    h.ask("state").await;
    let frames = h.run_frames().await;
    let kinds = kinds(&frames);
    assert_eq!(
        kinds,
        [
            "agent_started",
            "agent_progress",
            "agent_progress",
            "agent_progress",
            "agent_progress",
            "agent_completed"
        ]
    );
    assert_eq!(
        frames[1]["payload"],
        json!({"source": "ag-ui", "ag_ui_type": "STATE_SNAPSHOT",
               "event": {"type": "STATE_SNAPSHOT", "snapshot": {"city": "Oslo"}}})
    );
    assert_eq!(frames[2]["payload"]["ag_ui_type"], "STATE_DELTA");
    assert_eq!(frames[2]["payload"]["event"]["delta"][0]["value"], "Bergen");
    assert_eq!(frames[3]["payload"]["event"]["name"], "confetti");
    assert_eq!(frames[4]["payload"]["ag_ui_type"], "A_TYPE_FROM_THE_FUTURE");
    assert_eq!(frames[5]["payload"]["result"], json!({"text": ""}));
    h.assert_usable().await;
    assert_eq!(h.agent.ag_ui_events("STATE_SNAPSHOT"), 1);
    assert_eq!(h.agent.ag_ui_events("other"), 1);
    let metrics = h.agent.metrics_text();
    for line in [
        "agentwire_agent_ag_ui_events_total{type=\"STATE_SNAPSHOT\",relayed_as=\"agent_progress\"} 1\n",
        "agentwire_agent_ag_ui_events_total{type=\"CUSTOM\",relayed_as=\"agent_progress\"} 1\n",
        "agentwire_agent_ag_ui_events_total{type=\"other\",relayed_as=\"agent_progress\"} 1\n",
        "agentwire_agent_ag_ui_events_total{type=\"RUN_STARTED\",relayed_as=\"agent_started\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn run_error_ends_the_run_with_agent_error_and_its_code() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("run_error").await;
    assert_eq!(code, "quota_exceeded");
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[1]["type"], "agent_response_chunk");
    assert_eq!(frames[2]["payload"]["message"], "no quota left");
    assert_eq!(frames[2]["payload"]["recoverable"], false);
    h.assert_usable().await;
    h.settled().await;
    assert_eq!(
        h.agent.completed_runs(),
        1,
        "the service's own terminal event"
    );
}

#[tokio::test]
async fn wrong_content_type() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("content_type").await;
    assert_eq!(code, "agent_content_type");
    // Nothing of the body is relayed: the server's own agent_started, then the error.
    assert_eq!(frames.len(), 2, "{frames:#?}");
    assert_eq!(frames[0]["type"], "agent_started");
    assert_eq!(frames[0]["payload"]["agent_name"], "content_type");
    assert!(
        frames[1]["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("text/event-stream"),
        "{}",
        frames[1]
    );
    h.assert_usable().await;
}

#[tokio::test]
async fn malformed_sse_data() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("malformed").await;
    assert_eq!(code, "agent_malformed_line");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("malformed").await;
    h.assert_usable().await;
    assert_eq!(h.agent.failures("agent_malformed_line"), 1);
}

#[tokio::test]
async fn a_mapped_event_without_its_fields() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("not_an_event").await;
    assert_eq!(code, "agent_malformed_line");
    let message = frames[1]["payload"]["message"].as_str().unwrap();
    assert!(message.contains("toolCallName"), "{message}");
    h.disconnect_of("not_an_event").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn a_tool_result_for_no_tool_call_breaks_the_contract() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("contract").await;
    assert_eq!(code, "agent_contract_broken");
    assert_eq!(frames.len(), 2);
    h.disconnect_of("contract").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn an_event_over_the_size_limit() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("too_large").await;
    assert_eq!(code, "agent_line_too_large");
    assert_eq!(frames[0]["type"], "agent_started");
    h.disconnect_of("too_large").await;
    h.assert_usable().await;
}

#[tokio::test]
async fn stream_ending_without_run_finished() {
    let mut h = start(|b| b).await;
    let (frames, code) = h.failing_run("no_terminal").await;
    assert_eq!(code, "agent_no_terminal");
    let kinds = kinds(&frames);
    assert_eq!(
        kinds,
        ["agent_started", "agent_response_chunk", "agent_error"]
    );
    h.assert_usable().await;
}

#[tokio::test]
async fn cancel_aborts_the_ag_ui_request() {
    let mut h = start(|b| b.idle_timeout(common::PATIENCE)).await;
    h.ask("slow").await;
    let started = h.next().await;
    assert_eq!(started["type"], "agent_started", "{started}");
    h.send(json!({"type": "cancel_agent", "payload": {"run_id": started["run_id"]}}))
        .await;
    let error = h.next().await;
    assert_eq!(error["type"], "agent_error", "{error}");
    assert_eq!(error["payload"]["code"], "cancelled");
    h.disconnect_of("slow").await;
    h.assert_usable().await;
}
