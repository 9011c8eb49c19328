//! Requests and their answers over a real socket: runs, aliases, errors, bad frames.

mod common;

use agentwire_server::Config;
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const FIVE: [&str; 5] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
];

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_run_request_produces_the_five_events() {
    let server = start(Config::default()).await;
    let (mut ws, established) = connect(&server, &token("erin")).await;
    let mut last_seq = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("stream seq");
    let requests = [
        json!({"type": "start_agent", "message_id": "m1", "payload": {"user_request": "one"}}),
        json!({"type": "execute_agent", "message_id": "m2", "payload": {"message": "two"}}),
        json!({"type": "EXECUTE_AGENT", "message_id": "m3", "payload": {"content": "three"}}),
        json!({"type": "user_message", "message_id": "m4", "payload": {"text": "four"}}),
        json!({"type": "chat_message", "message_id": "m5", "data": {"message": "five"}}),
        json!({"type": "agent_execute", "payload": {"user_request": "six"}, "thread_id": "t9"}),
    ];
    let mut run_ids = Vec::new();
    for request in &requests {
        let events = run_agent(&mut ws, request).await;
        assert_eq!(types(&events), FIVE, "{request}");
        let run_id = events[0]["run_id"].as_str().expect("run_id").to_owned();
        for event in &events {
            assert_eq!(event["run_id"], run_id.as_str(), "one run_id per run");
            let seq = event["seq"].as_u64().expect("stream events carry seq");
            assert_eq!(
                seq,
                last_seq + 1,
                "seq increases by one on the user's stream"
            );
            last_seq = seq;
            assert_eq!(event["reply_to"], request["message_id"], "{event}");
            assert!(event["event_id"].is_string() && event["timestamp"].is_string());
        }
        // The request text reaches the agent under any of its field names.
        let text = request["payload"]
            .as_object()
            .or(request["data"].as_object())
            .and_then(|p| p.values().find_map(Value::as_str))
            .expect("text");
        assert_eq!(events[0]["payload"]["user_request"], text);
        assert!(events[4]["payload"]["result"].to_string().contains(text));
        assert_eq!(events[3]["payload"]["tool_name"], "echo");
        assert!(events[3]["payload"].get("result").is_some());
        run_ids.push(run_id);
    }
    let last = run_ids.last().expect("runs");
    assert!(
        run_ids.iter().filter(|r| *r == last).count() == 1,
        "run ids are unique"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reaches_every_connection_of_the_user() {
    let server = start(Config::default()).await;
    let token = token("frank");
    let (mut first, _) = connect(&server, &token).await;
    let (mut second, _) = connect(&server, &token).await;
    let (mut stranger, _) = connect(&server, &common::token("grace")).await;
    let events = run_agent(
        &mut first,
        &json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    let mirrored = read_run(&mut second).await;
    assert_eq!(events, mirrored, "both connections get the same frames");
    // The other user gets nothing: a ping is answered first.
    send_json(&mut stranger, &json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut stranger).await["type"], "pong");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_error_and_the_connection_keeps_working() {
    let server = start(Config::default()).await;
    let (mut ws, _) = connect(&server, &token("heidi")).await;
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("{\"type\": \"start_agent\",", "invalid_json", None),
        (
            r#"{"type": "no_such_type", "message_id": "u1"}"#,
            "unknown_message_type",
            Some("u1"),
        ),
        (
            r#"{"type": "agent_started", "message_id": "u2"}"#,
            "unsupported_message_type",
            Some("u2"),
        ),
        (
            r#"{"type": "broadcast_test", "message_id": "u3"}"#,
            "unsupported_message_type",
            Some("u3"),
        ),
        (
            r#"{"type": "start_agent", "message_id": "u4", "payload": {"user_request": 7}}"#,
            "invalid_payload",
            Some("u4"),
        ),
        (
            r#"{"type": "user_typing", "message_id": "u5"}"#,
            "unsupported_message_type",
            Some("u5"),
        ),
    ];
    for (frame, code, reply_to) in cases {
        ws.send(Message::text(frame)).await.expect("send");
        let error = next_json(&mut ws).await;
        assert_eq!(error["type"], "error", "{frame}");
        assert_eq!(error["payload"]["code"], code, "{frame}: {error}");
        assert!(
            error["payload"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(error["reply_to"].as_str(), reply_to, "{frame}");
        assert!(error.get("seq").is_none());
        if code == "invalid_json" {
            let message = error["payload"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("line") && message.contains("column"),
                "{message}"
            );
        }
        if code == "invalid_payload" {
            assert!(
                error["payload"]["message"]
                    .to_string()
                    .contains("user_request"),
                "{error}"
            );
        }
    }
    // Still working.
    let events = run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "after"}}),
    )
    .await;
    assert_eq!(types(&events), FIVE);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_heartbeat_and_cancel() {
    let server = start_handler(
        Config::default(),
        agentwire_server::DemoAgent::new(std::time::Duration::from_secs(30)),
    )
    .await;
    let (mut ws, _) = connect(&server, &token("ivan")).await;
    send_json(&mut ws, &json!({"type": "ping", "message_id": "p"})).await;
    let pong = next_json(&mut ws).await;
    assert_eq!(
        (pong["type"].as_str(), pong["reply_to"].as_str()),
        (Some("pong"), Some("p"))
    );
    assert!(pong["payload"]["server_time"].is_string());
    send_json(&mut ws, &json!({"type": "heartbeat"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "heartbeat_ack");

    // A slow run, cancelled with the old frontend's spelling: it ends with agent_error.
    send_json(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "slow"}}),
    )
    .await;
    let started = next_json(&mut ws).await;
    assert_eq!(started["type"], "agent_started");
    let run_id = started["run_id"].as_str().expect("run_id");
    send_json(
        &mut ws,
        &json!({"type": "stop_processing", "payload": {"run_id": run_id}}),
    )
    .await;
    let end = next_json(&mut ws).await;
    assert_eq!(end["type"], "agent_error", "{end}");
    assert_eq!(end["payload"]["code"], "cancelled");
    assert_eq!(end["run_id"], run_id);
    // Cancelling again: nothing in flight.
    send_json(
        &mut ws,
        &json!({"type": "cancel_agent", "message_id": "c2", "payload": {"run_id": run_id}}),
    )
    .await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["payload"]["code"], "unknown_run");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_binary_and_invalid_utf8_frames_close_with_their_codes() {
    let config = Config::builder()
        .max_message_bytes(1024)
        .build()
        .expect("config");
    let server = start(config).await;
    let token = token("judy");

    let (mut ws, _) = connect(&server, &token).await;
    ws.send(Message::text("x".repeat(4096)))
        .await
        .expect("send");
    let (_, close) = until_close(&mut ws).await;
    assert_eq!(close_code(&close), Some(1009));

    let (mut ws, _) = connect(&server, &token).await;
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let (_, close) = until_close(&mut ws).await;
    assert_eq!(close_code(&close), Some(1003));

    let mut raw = raw_connect(server.addr, &token).await;
    raw.write_all(&raw_frame(true, 0x1, &[b'{', 0xFF, 0xFE, b'}']))
        .await
        .expect("write");
    assert_eq!(raw_close_code(&mut raw).await, Some(1007));

    await_active(server.addr, 0).await;
    let (_, _, metrics) = http_get(server.addr, "/metrics", &[]).await;
    assert!(
        !metrics.contains("code=\"1011\""),
        "no 1011 ever: {metrics}"
    );
    server.stop().await;
}
