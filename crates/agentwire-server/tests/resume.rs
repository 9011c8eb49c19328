//! Resume after reconnect through real WebSocket clients over loopback: a run interrupted by a
//! disconnect is finished on the next connection exactly once, events emitted while the user
//! was away are replayed, and every case the server cannot prove continuity is a `reset`.

mod common;

use std::time::Duration;

use agentwire_auth::Token;
use agentwire_events::validate_run_json;
use agentwire_server::{Config, DemoAgent, Event, Server};
use common::*;
use serde_json::{Value, json};

/// Connects to `/ws?query` offering the token; returns the client and `connection_established`.
async fn connect_with(server: &TestServer, token: &Token, query: &str) -> (Client, Value) {
    let offer = agentwire_auth::testing::offer_header(token);
    let (mut ws, _) = connect_raw(&server.url(&format!("/ws?{query}")), Some(&offer), None)
        .await
        .expect("connect");
    let established = next_json(&mut ws).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    (ws, established)
}

fn epoch(established: &Value) -> String {
    established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned()
}

/// Reads text frames until `done` says so; returns them (raw text and JSON).
async fn read_until(ws: &mut Client, done: impl Fn(&Value) -> bool) -> Vec<(String, Value)> {
    let mut frames = Vec::new();
    loop {
        let text = next_text(ws).await;
        let value: Value = serde_json::from_str(&text).expect("JSON");
        let end = done(&value);
        frames.push((text, value));
        if end {
            return frames;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_a_disconnect_finishes_on_the_next_connection_exactly_once() {
    let server = start_with(
        Server::builder(validator())
            .config(Config::default())
            .handler(DemoAgent::new(Duration::from_millis(150))),
    )
    .await;
    let token = token("rory");
    let (mut first, established) = connect(&server, &token).await;
    let epoch = epoch(&established);
    send_json(
        &mut first,
        &json!({"type": "start_agent", "payload": {"user_request": "slow"}}),
    )
    .await;
    // Only the first event, then the connection drops mid-run.
    let before = read_until(&mut first, |_| true).await;
    assert_eq!(before[0].1["type"], "agent_started");
    let last_seen = before[0].1["seq"].as_u64().expect("seq");
    drop(first);

    let (mut second, established) =
        connect_with(&server, &token, &format!("epoch={epoch}&since={last_seen}")).await;
    let resume = &established["payload"]["resume"];
    assert_eq!(resume["status"], "resumed", "{established}");
    assert_eq!(resume["from_seq"], last_seen + 1);
    let after = read_until(&mut second, |v| v["type"] == "agent_completed").await;

    // What the client saw before and after is one well-formed run, each seq once, in order.
    let texts: Vec<&str> = before
        .iter()
        .chain(&after)
        .map(|(text, _)| text.as_str())
        .collect();
    let summary = validate_run_json(texts.iter().copied()).expect("one well-formed run");
    assert_eq!(summary.events, 5);
    let seqs: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|(_, v)| v["seq"].as_u64().expect("seq"))
        .collect();
    let expected: Vec<u64> = (last_seen..last_seen + 5).collect();
    assert_eq!(seqs, expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_emitted_while_away_are_replayed_only_to_a_resuming_connection() {
    let server = start(Config::default()).await;
    let token = token("ada");
    // Learn the stream's epoch, then leave.
    let (ws, established) = connect(&server, &token).await;
    let epoch = epoch(&established);
    let since = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");
    drop(ws);
    await_active(server.addr, 0).await;

    let emitter = server.server.emitter();
    let mut sent = Vec::new();
    for n in 0..3 {
        let delivered = emitter.emit("ada", Event::system_message(format!("while away {n}")));
        assert_eq!(delivered.connections, 0);
        sent.push(delivered.seq.expect("kept on the stream with a seq"));
    }
    assert_eq!(sent, [since + 1, since + 2, since + 3]);

    // Without the query: no resume member, nothing replayed (the next frame answers a ping).
    let (mut plain, established) = connect(&server, &token).await;
    assert!(
        established["payload"].get("resume").is_none(),
        "{established}"
    );
    assert_eq!(established["payload"]["stream"]["seq"], since + 3);
    send_json(&mut plain, &json!({"type": "ping", "message_id": "p"})).await;
    assert_eq!(next_json(&mut plain).await["type"], "pong");

    // With it: the three events, as first stamped, then live ones.
    let (mut resumed, established) =
        connect_with(&server, &token, &format!("epoch={epoch}&since={since}")).await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "resumed", "replayed": 3, "from_seq": since + 1, "to_seq": since + 3})
    );
    let replayed = read_until(&mut resumed, |v| v["seq"] == since + 3).await;
    let got: Vec<(u64, String)> = replayed
        .iter()
        .map(|(_, v)| {
            (
                v["seq"].as_u64().expect("seq"),
                v["payload"]["message"]
                    .as_str()
                    .expect("message")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        (0..3)
            .map(|n| (since + 1 + n, format!("while away {n}")))
            .collect::<Vec<_>>()
    );
    // A live event after the replay goes to both connections with the next seq.
    emitter.emit("ada", Event::system_message("live"));
    for ws in [&mut resumed, &mut plain] {
        let live = next_json(ws).await;
        assert_eq!(
            (live["seq"].as_u64(), live["payload"]["message"].as_str()),
            (Some(since + 4), Some("live"))
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_refusals() {
    let server = start(Config::default()).await;
    let token = token("ren");
    let (ws, established) = connect(&server, &token).await;
    let epoch = epoch(&established);
    drop(ws);

    // Another epoch (a previous server process): reset.
    let (_other, established) = connect_with(&server, &token, "epoch=ep_gone&since=4").await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "reset", "reason": "epoch_changed"})
    );
    // A seq this stream never reached: reset, never a silent gap.
    let (_ahead, established) =
        connect_with(&server, &token, &format!("epoch={epoch}&since=999")).await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "reset", "reason": "outside_window"})
    );
    // A user this server holds no stream for: the history is gone.
    let (_fresh, established) =
        connect_with(&server, &self::token("new-user"), "epoch=ep_x&since=1").await;
    assert_eq!(established["payload"]["resume"]["reason"], "epoch_changed");

    // Malformed values: HTTP 400 naming the parameter, before the upgrade.
    let offer = agentwire_auth::testing::offer_header(&token);
    for (query, parameter) in [
        (format!("epoch={epoch}&since=abc"), "since"),
        (format!("epoch={epoch}&since=-1"), "since"),
        (format!("epoch={epoch}&since={}", "9".repeat(40)), "since"),
        ("since=3".to_owned(), "epoch"),
        (format!("epoch={}&since=1", "e".repeat(500)), "epoch"),
    ] {
        let (status, head, body) = http_get(
            server.addr,
            &format!("/ws?{query}"),
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Protocol", &offer),
            ],
        )
        .await;
        assert_eq!(status, 400, "{query}: {head}");
        let body: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["error"]["code"], "invalid_resume_query", "{query}");
        assert_eq!(body["error"]["parameter"], parameter, "{query}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_resuming_while_another_receives_live_events_sees_the_same_order() {
    let server = start(Config::default()).await;
    let token = token("duo");
    let (mut live, established) = connect(&server, &token).await;
    let epoch = epoch(&established);
    let emitter = server.server.emitter();
    // Events keep coming while the second connection resumes from the middle (fewer than the
    // outbound queue holds, so the live client never falls behind far enough to be closed).
    let producer = tokio::spawn(async move {
        for n in 0..200u32 {
            emitter.emit("duo", Event::system_message(format!("e{n}")));
            if n % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let first = read_until(&mut live, |v| v["seq"] == 50).await;
    let since = first.last().expect("frames").1["seq"]
        .as_u64()
        .expect("seq");
    let (mut resumed, established) =
        connect_with(&server, &token, &format!("epoch={epoch}&since={since}")).await;
    assert_eq!(
        established["payload"]["resume"]["status"], "resumed",
        "{established}"
    );
    producer.await.expect("producer");
    let rest = read_until(&mut resumed, |v| v["seq"] == 200).await;
    let seqs: Vec<u64> = rest
        .iter()
        .map(|(_, v)| v["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (since + 1..=200).collect::<Vec<_>>(),
        "each seq once, in order"
    );
    let all = read_until(&mut live, |v| v["seq"] == 200).await;
    let live_seqs: Vec<u64> = first
        .iter()
        .chain(&all)
        .map(|(_, v)| v["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(live_seqs, (1..=200).collect::<Vec<_>>());
    server.stop().await;
}

/// A gauge or counter of `/metrics` (exact name, no labels).
async fn gauge(server: &TestServer, name: &str) -> u64 {
    metric(server.addr, &format!("{name} ")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_their_memory_go_away_once_the_window_expires() {
    let config = Config::builder()
        .replay_max_age(Duration::from_secs(1))
        .build()
        .expect("config");
    let server = start(config).await;
    let (ws, _) = connect(&server, &token("eve")).await;
    for n in 0..5 {
        server
            .server
            .emitter()
            .emit("eve", Event::system_message(format!("m{n}")));
    }
    drop(ws);
    await_active(server.addr, 0).await;
    // Emitted to a user nobody is connected as: kept too.
    server
        .server
        .emitter()
        .emit("ghost", Event::system_message("for later"));
    assert!(gauge(&server, "agentwire_streams").await >= 2);
    assert!(gauge(&server, "agentwire_replay_events").await >= 6);
    // After max_age, the sweep drops the events and the streams: nothing is held.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let streams = gauge(&server, "agentwire_streams").await;
        let bytes = gauge(&server, "agentwire_replay_bytes").await;
        if streams == 0 && bytes == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{streams} streams and {bytes} bytes still held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauge(&server, "agentwire_replay_events").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_resumes_leaves_no_connection_and_keeps_the_window_in_its_budget() {
    const BUDGET: usize = 256 * 1024;
    let config = Config::builder()
        .replay_max_events(50)
        .replay_max_bytes(BUDGET)
        .rate_limit_per_sec(0)
        .build()
        .expect("config");
    let server = start(config).await;
    let users: Vec<String> = (0..40).map(|n| format!("storm-{n}")).collect();
    // Events keep coming to every user, connected or not.
    let emitter = server.server.emitter();
    let emitting = users.clone();
    let producer = tokio::spawn(async move {
        for round in 0..200 {
            for user in &emitting {
                emitter.emit(
                    user,
                    Event::system_message(format!("{round} {}", "x".repeat(200))),
                );
            }
            tokio::task::yield_now().await;
        }
    });
    // Each user connects, resumes from what it saw last, reads a little, and leaves, again and
    // again, several users at once.
    let mut tasks = Vec::new();
    for user in users.clone() {
        let url = server.url("/ws");
        tasks.push(tokio::spawn(async move {
            let token = token(&user);
            let offer = agentwire_auth::testing::offer_header(&token);
            let mut position: Option<(String, u64)> = None;
            let mut resumed = 0;
            for _ in 0..25 {
                let query = match &position {
                    Some((epoch, seq)) => format!("{url}?epoch={epoch}&since={seq}"),
                    None => url.clone(),
                };
                let (mut ws, _) = connect_raw(&query, Some(&offer), None)
                    .await
                    .expect("connect");
                let established = next_json(&mut ws).await;
                let payload = &established["payload"];
                let mut seq = payload["stream"]["seq"].as_u64().expect("seq");
                match payload["resume"]["status"].as_str() {
                    Some("resumed") => {
                        resumed += 1;
                        // The replay starts right after what this client saw.
                        let from = payload["resume"]["from_seq"].as_u64().expect("from");
                        assert_eq!(Some(from - 1), position.as_ref().map(|p| p.1));
                        let replayed = payload["resume"]["replayed"].as_u64().expect("n");
                        let mut expected = from;
                        for _ in 0..replayed.min(5) {
                            let frame = next_json(&mut ws).await;
                            assert_eq!(frame["seq"], expected, "replayed in order");
                            expected += 1;
                        }
                        seq = expected - 1;
                    }
                    Some("reset") => {
                        // Budget or count evicted what it missed: told, not a silent gap.
                        let reason = payload["resume"]["reason"].as_str().expect("reason");
                        assert_eq!(reason, "outside_window", "{established}");
                    }
                    _ => assert!(position.is_none(), "{established}"),
                }
                position = Some((
                    payload["stream"]["epoch"]
                        .as_str()
                        .expect("epoch")
                        .to_owned(),
                    seq,
                ));
                drop(ws);
            }
            resumed
        }));
    }
    let mut resumed = 0;
    for task in tasks {
        resumed += task.await.expect("client task");
    }
    producer.await.expect("producer");
    await_active(server.addr, 0).await;
    assert!(resumed > 0, "some resumes were within the window");
    let held = gauge(&server, "agentwire_replay_bytes").await;
    assert!(
        held as usize <= BUDGET,
        "{held} bytes held, budget {BUDGET}"
    );
    assert_no_1011(server.addr).await;
    server.stop().await;
}
