//! The publish API through real HTTP requests over loopback, and what a real WebSocket client
//! connected as the user receives: authentication, every refusal with its code, dense `seq`s,
//! nothing half-applied, replay on resume, metrics and `/ws/config`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use agentwire_server::{
    Config, DemoAgent, Event, PublishConfig, PublishKey, ServeError, Server, ServerConfigError,
};
use common::*;
use serde_json::{Value, json};

const KEY: &str = "publish-test-key-0123456789abcdef";

struct Publishing {
    server: TestServer,
    /// The publish listener.
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Publishing {
    async fn post(&self, user: &str, body: &Value) -> (u16, Value) {
        self.post_raw(user, body.to_string().as_bytes()).await
    }

    async fn post_raw(&self, user: &str, body: &[u8]) -> (u16, Value) {
        let auth = format!("Bearer {KEY}");
        let (status, _, body) = http_request(
            self.addr,
            "POST",
            &format!("/api/v1/users/{user}/events"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
        (status, json_body(&body))
    }
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("a JSON body ({e}): {body:?}"))
}

fn publish_config() -> agentwire_server::PublishConfigBuilder {
    PublishConfig::builder().key(PublishKey::new(KEY).expect("key"))
}

async fn start_publishing(config: Config, publish: PublishConfig) -> Publishing {
    let server = start_with(
        Server::builder(validator())
            .config(config)
            .handler(DemoAgent::new(Duration::ZERO))
            .publish(publish),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.server.clone();
    tokio::spawn(async move {
        serving
            .serve_publish(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve_publish");
    });
    Publishing {
        server,
        addr,
        stop: Some(stop),
    }
}

async fn start_default() -> Publishing {
    start_publishing(
        Config::default(),
        publish_config().build().expect("publish"),
    )
    .await
}

/// `{"events": [...]}` of `n` system messages numbered from `from`.
fn notices(from: usize, n: usize) -> Value {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"type": "system_message", "payload": {"message": format!("notice {i}")}}))
        .collect();
    json!({ "events": events })
}

fn seqs(answer: &Value) -> Vec<Option<u64>> {
    answer["seqs"]
        .as_array()
        .unwrap_or_else(|| panic!("seqs in {answer}"))
        .iter()
        .map(Value::as_u64)
        .collect()
}

/// Asserts that the client's next frame is the answer to a `ping`: nothing else was sent to it.
async fn assert_nothing_received(ws: &mut Client) {
    send_json(ws, &json!({"type": "ping", "message_id": "probe"})).await;
    let next = next_json(ws).await;
    assert_eq!(next["type"], "pong", "nothing before the pong: {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_401_with_a_json_body() {
    let p = start_default().await;
    let path = "/api/v1/users/ann/events";
    let body = notices(0, 1).to_string();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "missing_api_key"),
        (
            &[("Authorization", "Basic dXNlcjpwYXNz")],
            "missing_api_key",
        ),
        (&[("Authorization", "Bearer")], "missing_api_key"),
        (
            &[("Authorization", "Bearer publish-test-key-0123456789abcdeX")],
            "invalid_api_key",
        ),
        (
            &[("Authorization", "Bearer publish-test-key-0123456789abcdef0")],
            "invalid_api_key",
        ),
        (&[("Authorization", "Bearer wrong")], "invalid_api_key"),
    ];
    for (headers, code) in cases {
        let (status, head, text) =
            http_request(p.addr, "POST", path, headers, body.as_bytes()).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
        assert_eq!(json_body(&text)["error"]["code"], code, "{headers:?}");
        assert!(
            header_value(&head, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
            "{head}"
        );
        assert!(!text.contains(KEY));
    }
    // The scheme is case-insensitive, and the right key is accepted.
    let auth = format!("bearer {KEY}");
    let (status, _, text) = http_request(
        p.addr,
        "POST",
        path,
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let addr = p.server.addr;
    assert_eq!(
        metric(
            addr,
            "agentwire_publish_refused_total{code=\"invalid_api_key\"}"
        )
        .await,
        3
    );
    assert_eq!(
        metric(
            addr,
            "agentwire_publish_refused_total{code=\"missing_api_key\"}"
        )
        .await,
        3
    );
    let (_, _, metrics) = http_get(addr, "/metrics", &[]).await;
    assert!(!metrics.contains(KEY));
}

/// A refused body: (body, code, index, field).
type Case = (Vec<u8>, &'static str, Option<u64>, Option<&'static str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batches_are_400_naming_the_problem_and_deliver_nothing() {
    let p = start_default().await;
    let (mut ws, _) = connect(&p.server, &token("bea")).await;
    let deep = (0..40).fold(json!(1), |inner, _| json!([inner]));
    // (body, code, index, field)
    let cases: Vec<Case> = vec![
        (b"{\"events\": [".to_vec(), "invalid_json", None, None),
        (b"not json".to_vec(), "invalid_json", None, None),
        (b"[]".to_vec(), "invalid_body", None, None),
        (br#"{"events": {}}"#.to_vec(), "invalid_body", None, Some("events")),
        (br#"{"evnts": []}"#.to_vec(), "invalid_body", None, Some("evnts")),
        (br#"{}"#.to_vec(), "invalid_body", None, Some("events")),
        (br#"{"events": []}"#.to_vec(), "empty_batch", None, Some("events")),
        (br#"{"events": [7]}"#.to_vec(), "invalid_event", Some(0), None),
        (
            br#"{"events": [{"payload": {}}]}"#.to_vec(),
            "invalid_event",
            Some(0),
            Some("type"),
        ),
        (
            br#"{"events": [{"type": "system_message", "payload": {"message": "a"}}, {"type": "agent_dancing", "payload": {}}]}"#.to_vec(),
            "unknown_message_type",
            Some(1),
            Some("type"),
        ),
        (
            br#"{"events": [{"type": "start_agent", "payload": {"user_request": "x"}}]}"#.to_vec(),
            "unsupported_message_type",
            Some(0),
            Some("type"),
        ),
        (
            br#"{"events": [{"type": "pong", "payload": {"server_time": "2025-01-01T00:00:00.000Z"}}]}"#.to_vec(),
            "unsupported_message_type",
            Some(0),
            Some("type"),
        ),
        (
            br#"{"events": [{"type": "system_message", "payload": {"message": "a"}}, {"type": "system_message", "payload": {"message": "b"}}, {"type": "tool_completed", "run_id": "r1", "payload": {}}]}"#.to_vec(),
            "invalid_payload",
            Some(2),
            Some("payload"),
        ),
        (
            br#"{"events": [{"type": "system_message", "payload": "text"}]}"#.to_vec(),
            "invalid_payload",
            Some(0),
            Some("payload"),
        ),
        (
            br#"{"events": [{"type": "agent_thinking", "payload": {"reasoning": "hm"}}]}"#.to_vec(),
            "missing_run_id",
            Some(0),
            Some("run_id"),
        ),
        (
            br#"{"events": [{"type": "system_message", "payload": {"message": "a"}, "reply_to": "m1"}]}"#.to_vec(),
            "invalid_event",
            Some(0),
            Some("reply_to"),
        ),
        (
            br#"{"events": [{"type": "system_message", "payload": {"message": "a"}, "run_id": ""}]}"#.to_vec(),
            "invalid_event",
            Some(0),
            Some("run_id"),
        ),
        (
            json!({"events": [{"type": "system_message", "payload": {"message": "a", "deep": deep}}]})
                .to_string()
                .into_bytes(),
            "invalid_payload",
            Some(0),
            Some("payload"),
        ),
    ];
    for (body, code, index, field) in &cases {
        let (status, answer) = p.post_raw("bea", body).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(status, 400, "{shown}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], *code, "{shown}: {answer}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        assert_eq!(error["index"].as_u64(), *index, "{shown}: {answer}");
        assert_eq!(error["field"].as_str(), *field, "{shown}: {answer}");
    }
    // The unknown type is echoed back, and a JSON syntax error has its position.
    let (_, answer) = p.post_raw("bea", &cases[9].0).await;
    assert_eq!(answer["error"]["received_type"], "agent_dancing");
    let (_, answer) = p.post_raw("bea", &cases[0].0).await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1 column")),
        "{answer}"
    );

    // A user id that is blank or not UTF-8 once decoded.
    for user in ["%20", "%FF"] {
        let (status, answer) = p.post(user, &notices(0, 1)).await;
        assert_eq!(status, 400, "{user}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_user_id");
    }

    assert_nothing_received(&mut ws).await;
    assert_eq!(
        metric(p.server.addr, "agentwire_publish_events_total").await,
        0
    );
    assert_eq!(
        metric(
            p.server.addr,
            "agentwire_publish_refused_total{code=\"unknown_message_type\"}"
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_event_delivers_nothing_and_takes_no_seq() {
    let p = start_default().await;
    let (mut ws, established) = connect(&p.server, &token("cal")).await;
    let start = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");
    let (status, answer) = p.post("cal", &notices(0, 2)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(seqs(&answer), [Some(start + 1), Some(start + 2)]);
    for _ in 0..2 {
        assert_eq!(next_json(&mut ws).await["type"], "system_message");
    }

    let mut bad = notices(2, 5);
    bad["events"][3] =
        json!({"type": "tool_executing", "run_id": "r", "payload": {"tool_name": 5}});
    let (status, answer) = p.post("cal", &bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_payload");
    assert_eq!(answer["error"]["index"], 3);
    assert_nothing_received(&mut ws).await;

    // The next good batch continues right after the last delivered event.
    let (status, answer) = p.post("cal", &notices(7, 1)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(seqs(&answer), [Some(start + 3)]);
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["seq"], start + 3);
    assert_eq!(frame["payload"]["message"], "notice 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_arrives_in_order_with_dense_seqs_and_normalized_types() {
    let p = start_default().await;
    let (mut ws, _) = connect(&p.server, &token("dee")).await;
    let batch = json!({"events": [
        {"type": "SYSTEM", "payload": {"message": "build started"}},
        {"type": "agent_started", "run_id": "job_1", "thread_id": "t9",
         "payload": {"agent_name": "nightly", "user_request": "rebuild"}},
        {"type": "Stream_Chunk", "run_id": "job_1", "payload": {"delta": "half", "index": 0}},
        {"type": "agent_completed", "run_id": "job_1", "payload": {"result": {"ok": true}, "duration_ms": 5}},
        {"type": "thread_updated", "payload": {"thread_id": "t9", "title": "Nightly"}},
    ]});
    let (status, answer) = p.post("dee", &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user_id"], "dee");
    assert_eq!(answer["connections"], 1);
    assert_eq!(answer["dropped"], 0);
    let seqs: Vec<u64> = seqs(&answer)
        .into_iter()
        .map(|s| s.expect("a seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "dense: {seqs:?}");

    let expected = [
        "system_message",
        "agent_started",
        "agent_response_chunk",
        "agent_completed",
        "thread_update",
    ];
    for (i, kind) in expected.iter().enumerate() {
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["type"], *kind, "{frame}");
        assert_eq!(frame["seq"], seqs[i], "{frame}");
        assert!(frame["event_id"].is_string() && frame["timestamp"].is_string());
        assert_eq!(frame["payload"], batch["events"][i]["payload"], "{frame}");
        if (1..=3).contains(&i) {
            assert_eq!(frame["run_id"], "job_1");
        }
    }
    assert_eq!(
        metric(p.server.addr, "agentwire_publish_events_total").await,
        5
    );
    assert_eq!(
        metric(p.server.addr, "agentwire_publish_batches_total").await,
        1
    );
}

/// Another task emits to the same user as fast as it can all along: every batch still gets
/// consecutive `seq`s, and the other events land between batches, never inside one. (With one
/// `deliver` per event instead of the batch under one lock, this fails.) The user is offline:
/// the seqs are the answer's, the stream the replay window's, and no client queue limits how
/// fast the other task goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_dense_while_other_events_interleave() {
    let p = start_default().await;
    let emitter = p.server.server.emitter();
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (stop, count) = (Arc::clone(&done), Arc::clone(&sent));
    let noise = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            emitter.emit("eve", Event::system_message("noise"));
            count.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
    let mut batches: Vec<Vec<u64>> = Vec::new();
    for batch in 0..10 {
        // At least one other event since the previous batch.
        let before = sent.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while sent.load(Ordering::Relaxed) == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the noise task runs"
            );
            tokio::task::yield_now().await;
        }
        let (status, answer) = p.post("eve", &notices(batch * 500, 500)).await;
        assert_eq!(status, 200, "{answer}");
        let seqs: Vec<u64> = seqs(&answer)
            .into_iter()
            .map(|s| s.expect("a seq"))
            .collect();
        assert_eq!(seqs.len(), 500);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "dense: {seqs:?}");
        batches.push(seqs);
    }
    done.store(true, Ordering::Relaxed);
    noise.await.expect("noise task");
    assert!(
        batches.windows(2).all(|w| w[1][0] > w[0][499] + 1),
        "other events landed between batches: {batches:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_user_is_offline_are_replayed_on_resume() {
    let p = start_default().await;
    let token = token("fay");
    let (ws, established) = connect(&p.server, &token).await;
    let epoch = established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let since = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");
    drop(ws);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while p.server.server.connections_of("fay") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the client left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (status, answer) = p.post("fay", &notices(0, 3)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["connections"], 0);
    assert_eq!(answer["dropped"], 0);
    assert_eq!(
        seqs(&answer),
        [Some(since + 1), Some(since + 2), Some(since + 3)]
    );

    let offer = agentwire_auth::testing::offer_header(&token);
    let url = p.server.url(&format!("/ws?epoch={epoch}&since={since}"));
    let (mut ws, _) = connect_raw(&url, Some(&offer), None)
        .await
        .expect("reconnect");
    let established = next_json(&mut ws).await;
    assert_eq!(
        established["payload"]["resume"]["status"], "resumed",
        "{established}"
    );
    for i in 0..3u64 {
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["seq"], since + 1 + i, "{frame}");
        assert_eq!(frame["payload"]["message"], format!("notice {i}"));
    }
    assert_nothing_received(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replay_off_events_for_an_offline_user_are_dropped_and_the_answer_says_so() {
    let config = Config::builder()
        .replay_max_events(0)
        .build()
        .expect("config");
    let p = start_publishing(config, publish_config().build().expect("publish")).await;
    let (status, answer) = p.post("gil", &notices(0, 2)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(seqs(&answer), [None, None]);
    assert_eq!(answer["dropped"], 2);
    assert_eq!(answer["connections"], 0);
    assert_eq!(
        metric(p.server.addr, "agentwire_publish_events_dropped_total").await,
        2
    );

    // Connected, the same user gets them, with seqs.
    let (mut ws, _) = connect(&p.server, &token("gil")).await;
    let (status, answer) = p.post("gil", &notices(2, 1)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dropped"], 0);
    let frame = next_json(&mut ws).await;
    assert_eq!(Some(frame["seq"].as_u64()), seqs(&answer).first().copied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_bodies_and_batches_are_413() {
    let publish = publish_config()
        .max_body_bytes(4096)
        .max_batch_events(3)
        .build()
        .expect("publish");
    let p = start_publishing(Config::default(), publish).await;
    let (mut ws, _) = connect(&p.server, &token("hal")).await;

    // Declared too large: refused before the body is read.
    let big =
        json!({"events": [{"type": "system_message", "payload": {"message": "x".repeat(5000)}}]});
    let (status, answer) = p.post("hal", &big).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "body_too_large");

    // Chunked, with no length announced: refused once it passes the limit.
    let auth = format!("Bearer {KEY}");
    let body = big.to_string();
    let mut request = format!(
        "POST /api/v1/users/hal/events HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, _, text) = http_raw(p.addr, &request).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(json_body(&text)["error"]["code"], "body_too_large");

    let (status, answer) = p.post("hal", &notices(0, 4)).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "batch_too_large");

    // At the limits, accepted.
    let (status, answer) = p.post("hal", &notices(0, 3)).await;
    assert_eq!(status, 200, "{answer}");
    for i in 0..3 {
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["payload"]["message"], format!("notice {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_408() {
    let publish = publish_config()
        .body_timeout(Duration::from_millis(300))
        .build()
        .expect("publish");
    let p = start_publishing(Config::default(), publish).await;
    let auth = format!("Bearer {KEY}");
    // Announces 100 bytes, sends 10, and waits.
    let request = format!(
        "POST /api/v1/users/ida/events HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Length: 100\r\n\r\n{{\"events\":"
    );
    let (status, _, text) = http_raw(p.addr, request.as_bytes()).await;
    assert_eq!(status, 408, "{text}");
    assert_eq!(json_body(&text)["error"]["code"], "body_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_are_405_and_other_paths_404_with_json_bodies() {
    let p = start_default().await;
    let auth = format!("Bearer {KEY}");
    let headers = [("Authorization", auth.as_str())];
    for method in ["GET", "PUT", "DELETE"] {
        let (status, head, text) =
            http_request(p.addr, method, "/api/v1/users/jo/events", &headers, b"").await;
        assert_eq!(status, 405, "{method}: {text}");
        assert_eq!(header_value(&head, "allow"), Some("POST"), "{head}");
        assert_eq!(json_body(&text)["error"]["code"], "method_not_allowed");
    }
    for path in [
        "/",
        "/api/v1/users/jo",
        "/api/v1/users/jo/events/x",
        "/ws",
        "/metrics",
    ] {
        let (status, _, text) = http_request(p.addr, "POST", path, &headers, b"{}").await;
        assert_eq!(status, 404, "{path}: {text}");
        assert_eq!(json_body(&text)["error"]["code"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_config_shows_the_publish_api_without_its_key() {
    let p = start_default().await;
    let (_, _, text) = http_get(p.server.addr, "/ws/config", &[]).await;
    let config = json_body(&text);
    assert_eq!(config["publish"]["enabled"], true, "{config}");
    assert_eq!(config["publish"]["path"], "/api/v1/users/{user_id}/events");
    assert_eq!(config["publish"]["max_body_bytes"], 1024 * 1024);
    assert_eq!(config["publish"]["max_batch_events"], 1000);
    assert!(!text.contains(KEY));

    let off = start(Config::default()).await;
    let (_, _, text) = http_get(off.addr, "/ws/config", &[]).await;
    assert_eq!(json_body(&text)["publish"], json!({"enabled": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_api_refuses_to_start_without_a_key() {
    assert_eq!(
        PublishConfig::builder().build().expect_err("no key"),
        ServerConfigError::MissingPublishKey
    );
    let server = Server::builder(validator())
        .handler(DemoAgent::default())
        .build();
    assert_eq!(
        server.publish_router::<()>().expect_err("no publish"),
        ServerConfigError::MissingPublishKey
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = tokio::time::timeout(PATIENCE, server.serve_publish(listener, async {}))
        .await
        .expect("returns at once")
        .expect_err("refused");
    assert!(
        matches!(
            error,
            ServeError::Config(ServerConfigError::MissingPublishKey)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("--publish-key-file"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_answers_publishes_503() {
    let mut p = start_default().await;
    p.server.trigger_stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, answer) = p.post("kit", &notices(0, 1)).await;
        if status == 503 {
            assert_eq!(answer["error"]["code"], "draining");
            break;
        }
        assert_eq!(status, 200, "{answer}");
        assert!(tokio::time::Instant::now() < deadline, "never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(stop) = p.stop.take() {
        let _ = stop.send(());
    }
}
