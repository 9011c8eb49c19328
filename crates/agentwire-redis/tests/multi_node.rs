//! Two agentwire nodes sharing one real redis-server (started by the test on a free loopback
//! port), each driven by real WebSocket clients over loopback.

mod common;

use std::time::Duration;

use agentwire_server::{Config, DeliveryError, DeliveryStatus, Event};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn start_agent(text: &str) -> Value {
    json!({"type": "start_agent", "payload": {"user_request": text}})
}

/// Reads frames until the run's terminal event; their texts.
async fn read_run_texts(ws: &mut Client) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let text = next_text(ws).await;
        let value: Value = serde_json::from_str(&text).expect("JSON");
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        assert_ne!(kind, "error", "{value}");
        texts.push(text);
        if kind == "agent_completed" || kind == "agent_error" {
            return texts;
        }
    }
}

fn seqs(texts: &[String]) -> Vec<u64> {
    texts
        .iter()
        .map(|t| {
            serde_json::from_str::<Value>(t).expect("JSON")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_node_a_reaches_the_users_connection_on_node_b_byte_for_byte() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis, Duration::ZERO).await;
    let b = Node::start(&redis, Duration::ZERO).await;
    let (mut on_a, established_a) = connect(&a, "ada", "").await;
    let (mut on_b, established_b) = connect(&b, "ada", "").await;
    // One stream, one epoch, whichever node the client landed on.
    assert_eq!(
        established_a["payload"]["stream"],
        established_b["payload"]["stream"]
    );
    assert_eq!(established_a["payload"]["stream"]["seq"], 0);

    send_json(&mut on_a, &start_agent("hello from A")).await;
    let frames_a = read_run_texts(&mut on_a).await;
    let frames_b = read_run_texts(&mut on_b).await;
    assert_eq!(frames_a.len(), 5);
    assert_eq!(frames_a, frames_b, "identical frames on both nodes");
    assert_eq!(seqs(&frames_a), vec![1, 2, 3, 4, 5]);

    // The emitter of either node reaches both, continuing the one seq order.
    let receipt = b
        .server
        .emitter()
        .emit_confirmed("ada", Event::system_message("from B"))
        .await
        .expect("published");
    assert_eq!(receipt.seq, Some(6));
    assert_eq!(next_json(&mut on_a).await["seq"], 6);
    assert_eq!(next_json(&mut on_b).await["seq"], 6);
    let queued = a
        .server
        .emitter()
        .emit("ada", Event::system_message("from A"));
    assert_eq!(queued.status, DeliveryStatus::Queued);
    assert_eq!(next_text(&mut on_a).await, next_text(&mut on_b).await);

    // The stream lives in Redis under the user's keys, trimmed to the window.
    let mut redis_conn = redis.connection().await;
    let last: u64 = redis::cmd("HGET")
        .arg("aw:{ada}:m")
        .arg("s")
        .query_async(&mut redis_conn)
        .await
        .expect("HGET");
    assert_eq!(last, 7);
    let held: u64 = redis::cmd("LLEN")
        .arg("aw:{ada}:l")
        .query_async(&mut redis_conn)
        .await
        .expect("LLEN");
    assert_eq!(held, 7);
    let ttl: i64 = redis::cmd("PTTL")
        .arg("aw:{ada}:l")
        .query_async(&mut redis_conn)
        .await
        .expect("PTTL");
    assert!(ttl > 0, "history expires with the window: {ttl}");

    let metrics = a.server.metrics_text();
    assert!(metrics.contains("agentwire_redis_up 1"), "{metrics}");
    assert!(metrics.contains("agentwire_redis_publish_latency_seconds_count"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_node_a_mid_run_resumes_on_node_b_exactly_once() {
    let redis = RedisServer::start().await;
    // A pause between the demo's steps, so the run is still going when the client leaves.
    let a = Node::start(&redis, Duration::from_millis(150)).await;
    let b = Node::start(&redis, Duration::ZERO).await;
    let (mut on_a, established) = connect(&a, "bob", "").await;
    let epoch = established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    send_json(&mut on_a, &start_agent("a long one")).await;
    let first = next_json(&mut on_a).await;
    let second = next_json(&mut on_a).await;
    assert_eq!(
        (first["seq"].as_u64(), second["seq"].as_u64()),
        (Some(1), Some(2))
    );
    drop(on_a);

    let (mut on_b, established) = connect(&b, "bob", &format!("?epoch={epoch}&since=2")).await;
    let resume = &established["payload"]["resume"];
    assert_eq!(resume["status"], "resumed", "{established}");
    assert_eq!(resume["from_seq"], 3);
    // Replayed then live: every seq after 2 once, in order, through the terminal event.
    let rest = read_run_texts(&mut on_b).await;
    let got = seqs(&rest);
    assert_eq!(got, (3..=got.len() as u64 + 2).collect::<Vec<_>>());
    assert_eq!(*got.last().expect("frames"), 5);
    // Nothing more: no duplicate arrives after the run.
    b.server
        .emitter()
        .emit("bob", Event::system_message("after"));
    assert_eq!(next_json(&mut on_b).await["seq"], 6);

    // An unknown epoch is answered reset / epoch_changed on any node.
    let (_ws, established) = connect(&a, "bob", "?epoch=ep_other&since=1").await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "reset", "reason": "epoch_changed"})
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_mid_stream() {
    let mut redis = RedisServer::start().await;
    let a = Node::start(&redis, Duration::ZERO).await;
    let b = Node::start(&redis, Duration::ZERO).await;
    let (mut on_a, established) = connect(&a, "cyd", "").await;
    let epoch = established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let (mut on_b, _) = connect(&b, "cyd", "").await;
    for n in 1..=3u64 {
        a.server
            .emitter()
            .emit_confirmed("cyd", Event::system_message(format!("before {n}")))
            .await
            .expect("published");
        assert_eq!(next_json(&mut on_a).await["seq"], n);
        assert_eq!(next_json(&mut on_b).await["seq"], n);
    }

    redis.kill();
    let health = a.wait_health("degraded").await;
    assert_eq!(health["engine"]["status"], "degraded");
    assert!(
        health["engine"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{health}"
    );
    b.wait_health("degraded").await;
    // Both nodes tell their connections, which stay open.
    for ws in [&mut on_a, &mut on_b] {
        let notice = next_json(ws).await;
        assert_eq!(notice["type"], "error");
        assert_eq!(notice["payload"]["code"], "stream_unavailable");
        assert!(notice.get("seq").is_none());
        send_json(ws, &json!({"type": "ping"})).await;
        assert_eq!(next_json(ws).await["type"], "pong");
    }
    // Emits during the outage are reported failed, never silently dropped.
    let failed = a
        .server
        .emitter()
        .emit("cyd", Event::system_message("lost"));
    assert_eq!(
        failed.status,
        DeliveryStatus::Failed(DeliveryError::Unavailable)
    );
    assert_eq!(
        b.server
            .emitter()
            .emit_confirmed("cyd", Event::system_message("lost"))
            .await,
        Err(DeliveryError::Unavailable)
    );
    let metrics = a.server.metrics_text();
    assert!(metrics.contains("agentwire_redis_up 0"), "{metrics}");
    assert!(metrics.contains("agentwire_redis_publish_failures_total{reason=\"unavailable\"} 1"));
    // The notice is counted under its code (one connection on each node).
    assert!(
        metrics.contains("agentwire_errors_total{code=\"stream_unavailable\"} 1"),
        "{metrics}"
    );
    // A resume cannot be proven: reset / unavailable (the node still knows where cyd's
    // stream stood, so the connection opens); a user it knows nothing of cannot open (1013).
    let (_resumed, established) = connect(&b, "cyd", &format!("?epoch={epoch}&since=1")).await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "reset", "reason": "unavailable"})
    );
    assert_eq!(established["payload"]["stream"]["seq"], 3);
    let offer = agentwire_auth::testing::offer_header(&token("dan"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(a.url(""))
            .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer.parse().expect("header"));
    let (mut stranger, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let (_, close) = until_close(&mut stranger).await;
    let close = close.expect("a close frame");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1013, "stream_unavailable")
    );

    // Redis comes back empty: the nodes reconnect by themselves and restore the stream their
    // connections follow, which carry on with the next seq.
    redis.restart().await;
    a.wait_health("healthy").await;
    b.wait_health("healthy").await;
    let receipt = a
        .server
        .emitter()
        .emit_confirmed("cyd", Event::system_message("after"))
        .await
        .expect("published after the restart");
    assert_eq!(receipt.seq, Some(4));
    assert_eq!(next_json(&mut on_a).await["seq"], 4);
    assert_eq!(next_json(&mut on_b).await["seq"], 4);
    // The events before the restart are gone: a resume that needs them is reset.
    let (_late, established) = connect(&b, "cyd", &format!("?epoch={epoch}&since=1")).await;
    assert_eq!(
        established["payload"]["resume"],
        json!({"status": "reset", "reason": "outside_window"})
    );
    assert!(
        a.server
            .metrics_text()
            .contains("agentwire_redis_reconnects_total")
    );
    a.stop().await;
    b.stop().await;
}

/// `{"events": [...]}` of `n` system messages numbered from `from`.
fn notices(from: usize, n: usize) -> Value {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"type": "system_message", "payload": {"message": format!("notice {i}")}}))
        .collect();
    json!({ "events": events })
}

/// A batch published through node A's publish API is appended in one step: while node B
/// emits to the same user without pause, every batch gets consecutive seqs, B's events land
/// between batches (never inside one), and the user's connection on B gets every seq once,
/// in order, each batch's events at the seqs the API answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_batch_gets_dense_seqs_while_another_node_emits() {
    const BATCHES: usize = 8;
    const PER_BATCH: usize = 200;
    let redis = RedisServer::start().await;
    let a = Node::start_with(&redis, Config::default(), Duration::ZERO, true).await;
    let b = Node::start(&redis, Duration::ZERO).await;
    let (mut on_b, _) = connect(&b, "eve", "").await;
    // The client reads all along, so its queue never fills; it stops at `until`'s seq.
    let (until_tx, until_rx) = tokio::sync::oneshot::channel::<u64>();
    let reader = tokio::spawn(async move {
        let mut frames: Vec<Value> = Vec::new();
        let mut until_rx = until_rx;
        let mut until: Option<u64> = None;
        loop {
            if let Some(last) = until
                && frames.last().and_then(|f| f["seq"].as_u64()) >= Some(last)
            {
                return frames;
            }
            tokio::select! {
                frame = next_json(&mut on_b) => frames.push(frame),
                last = &mut until_rx, if until.is_none() => until = Some(last.expect("last seq")),
            }
        }
    });

    // Node B's noise: one confirmed emit after another, counting confirmations.
    let emitter = b.server.emitter();
    let confirmed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (count, stop) = (confirmed.clone(), done.clone());
    let noise = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let receipt = emitter
                .emit_confirmed("eve", Event::system_message("noise"))
                .await
                .expect("noise published");
            seqs.push(receipt.seq.expect("seq"));
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        seqs
    });
    let confirmations = || confirmed.load(std::sync::atomic::Ordering::Relaxed);

    let mut batches: Vec<Vec<u64>> = Vec::new();
    for batch in 0..BATCHES {
        // Two more noise confirmations: the second noise event was emitted after the
        // previous batch had its seqs, so it lands between that batch and this one.
        let before = confirmations();
        tokio::time::timeout(PATIENCE, async {
            while confirmations() < before + 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("node B's emits go on");
        let (status, answer) = publish(&a, "eve", &notices(batch * PER_BATCH, PER_BATCH)).await;
        assert_eq!(status, 200, "{answer}");
        let seqs: Vec<u64> = answer["seqs"]
            .as_array()
            .expect("seqs")
            .iter()
            .map(|s| s.as_u64().expect("a seq"))
            .collect();
        assert_eq!(seqs.len(), PER_BATCH);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "dense: {seqs:?}");
        batches.push(seqs);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let noise_seqs = noise.await.expect("noise task");
    for pair in batches.windows(2) {
        let (end, start) = (pair[0][PER_BATCH - 1], pair[1][0]);
        assert!(
            noise_seqs.iter().any(|s| *s > end && *s < start),
            "node B's events land between batches: {end} .. {start}"
        );
    }
    for seq in &noise_seqs {
        assert!(
            !batches
                .iter()
                .any(|b| b[0] <= *seq && *seq <= b[PER_BATCH - 1]),
            "a noise event inside a batch: {seq}"
        );
    }

    let last = noise_seqs
        .iter()
        .copied()
        .chain(batches.iter().map(|b| b[PER_BATCH - 1]))
        .max()
        .expect("events");
    until_tx.send(last).expect("reader waits");
    let frames = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the client gets every event")
        .expect("reader");
    let got: Vec<u64> = frames
        .iter()
        .map(|f| {
            f["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("a stream event: {f}"))
        })
        .collect();
    assert_eq!(
        got,
        (1..=last).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    for (batch, seqs) in batches.iter().enumerate() {
        for (i, seq) in seqs.iter().enumerate() {
            let frame = &frames[(*seq - 1) as usize];
            assert_eq!(
                frame["payload"]["message"],
                format!("notice {}", batch * PER_BATCH + i),
                "{frame}"
            );
        }
    }
    let metrics = a.server.metrics_text();
    assert!(
        metrics.contains(&format!(
            "agentwire_redis_published_total {}",
            BATCHES * PER_BATCH
        )),
        "{metrics}"
    );
    a.stop().await;
    b.stop().await;
}

/// Connects, resumes (each time on the other node, from the last seq seen), reads a little,
/// disconnects, while events are emitted from both nodes: at the end both nodes have no
/// connection and no subscription, Redis has no channel, every key Redis holds expires with
/// the window (and the history is trimmed to it), and once the window has passed Redis holds
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_across_two_nodes_leaves_no_connection_subscription_or_key_behind() {
    const USERS: usize = 40;
    const CYCLES: usize = 50;
    const MAX_EVENTS: usize = 50;
    const MAX_AGE: Duration = Duration::from_secs(3);
    let config = || {
        Config::builder()
            .replay_max_events(MAX_EVENTS)
            .replay_max_age(MAX_AGE)
            .rate_limit_per_sec(0)
            .build()
            .expect("config")
    };
    let redis = RedisServer::start().await;
    let a = Node::start_with(&redis, config(), Duration::ZERO, false).await;
    let b = Node::start_with(&redis, config(), Duration::ZERO, false).await;
    let nodes = std::sync::Arc::new([a, b]);
    let users: Vec<String> = (0..USERS).map(|n| format!("storm-{n}")).collect();

    // Events keep coming to every user, connected or not, from both nodes.
    let emitters = [nodes[0].server.emitter(), nodes[1].server.emitter()];
    let emitting = users.clone();
    let producer = tokio::spawn(async move {
        let mut emitted = 0u64;
        for round in 0..100 {
            for (i, user) in emitting.iter().enumerate() {
                let delivered =
                    emitters[(round + i) % 2].emit(user, Event::system_message(format!("{round}")));
                assert!(!delivered.is_failed(), "{delivered:?}");
                emitted += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        emitted
    });

    let mut tasks = Vec::new();
    for (n, user) in users.iter().cloned().enumerate() {
        let nodes = std::sync::Arc::clone(&nodes);
        tasks.push(tokio::spawn(async move {
            let mut position: Option<(String, u64)> = None;
            let mut resumed = 0;
            for cycle in 0..CYCLES {
                let node = &nodes[(n + cycle) % 2];
                let query = match &position {
                    Some((epoch, seq)) => format!("?epoch={epoch}&since={seq}"),
                    None => String::new(),
                };
                let (mut ws, established) = connect(node, &user, &query).await;
                let payload = &established["payload"];
                let mut seq = payload["stream"]["seq"].as_u64().expect("seq");
                match payload["resume"]["status"].as_str() {
                    Some("resumed") => {
                        resumed += 1;
                        let from = payload["resume"]["from_seq"].as_u64().expect("from");
                        assert_eq!(Some(from - 1), position.as_ref().map(|p| p.1));
                        let replayed = payload["resume"]["replayed"].as_u64().expect("n");
                        let mut expected = from;
                        for _ in 0..replayed.min(5) {
                            let frame = next_json(&mut ws).await;
                            assert_eq!(frame["seq"], expected, "replayed in order: {frame}");
                            expected += 1;
                        }
                        seq = expected - 1;
                    }
                    Some("reset") => {
                        // The count trimmed what it missed: told, never a silent gap.
                        assert_eq!(
                            payload["resume"]["reason"], "outside_window",
                            "{established}"
                        );
                    }
                    _ => assert!(position.is_none(), "{established}"),
                }
                let epoch = payload["stream"]["epoch"].as_str().expect("epoch");
                if let Some((before, _)) = &position {
                    assert_eq!(before, epoch, "one epoch across nodes and reconnects");
                }
                position = Some((epoch.to_owned(), seq));
                drop(ws);
            }
            resumed
        }));
    }
    let mut resumed = 0;
    for task in tasks {
        resumed += task.await.expect("client task");
    }
    let emitted = producer.await.expect("producer");
    assert!(resumed > 0, "some resumes were within the window");

    for node in nodes.iter() {
        node.wait_metric("agentwire_connections_active", 0).await;
        node.wait_metric("agentwire_redis_subscriptions", 0).await;
        node.wait_metric("agentwire_redis_queue_events", 0).await;
        let metrics = node.server.metrics_text();
        assert!(
            !metrics.contains("agentwire_closes_total{code=\"1011\""),
            "{metrics}"
        );
    }
    let published = nodes[0].metric("agentwire_redis_published_total")
        + nodes[1].metric("agentwire_redis_published_total");
    assert_eq!(published, emitted, "every emit published");

    let mut conn = redis.connection().await;
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query_async(&mut conn)
        .await
        .expect("PUBSUB");
    assert!(channels.is_empty(), "channels left: {channels:?}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(keys.len() <= 2 * USERS, "{} keys", keys.len());
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(
            ttl > 0 && ttl <= MAX_AGE.as_millis() as i64,
            "{key} expires with the window: PTTL {ttl}"
        );
        if key.ends_with(":l") {
            let held: usize = redis::cmd("LLEN")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("LLEN");
            assert!(held <= MAX_EVENTS, "{key} holds {held}");
        }
    }
    // Once the window has passed, Redis holds nothing.
    let empty = async {
        loop {
            let size: u64 = redis::cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .expect("DBSIZE");
            if size == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, empty)
        .await
        .expect("every key expires with the window");
    let Ok([a, b]) = std::sync::Arc::try_unwrap(nodes) else {
        panic!("the nodes are not shared any more")
    };
    a.stop().await;
    b.stop().await;
}

/// Emits of one user queued together (single events, a batch, and another user's events in
/// between) are appended by one script and published as one channel message: on the
/// channel one message each user; every emit is confirmed with its own seq, in emit order,
/// the batch's consecutive; and the user's connection on the other node gets every event
/// once, in order, byte for byte as stored.
#[tokio::test]
async fn emits_of_one_user_queued_together_are_one_append_and_one_message() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis, Duration::ZERO).await;
    let b = Node::start(&redis, Duration::ZERO).await;
    let (mut on_b, _) = connect(&b, "fay", "").await;
    let mut watcher = redis::Client::open(redis.url())
        .expect("url")
        .get_async_pubsub()
        .await
        .expect("subscribe");
    watcher
        .subscribe(&["aw:{fay}:c", "aw:{gus}:c"])
        .await
        .expect("subscribe");
    let mut messages = watcher.on_message();

    // This test runs on one thread: the publisher runs only once this block has queued all.
    let emitter = a.server.emitter();
    let mut confirmations = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10 {
        let text = format!("fay {i}");
        confirmations.push(emitter.emit_confirmed("fay", Event::system_message(&text)));
        expected.push(text);
        let _ = emitter.emit("gus", Event::system_message(format!("gus {i}")));
    }
    let batch = emitter.emit_batch(
        "fay",
        (0..3)
            .map(|i| Event::system_message(format!("fay batch {i}")))
            .collect(),
    );
    expected.extend((0..3).map(|i| format!("fay batch {i}")));
    confirmations.push(emitter.emit_confirmed("fay", Event::system_message("fay last")));
    expected.push("fay last".to_owned());

    let mut seqs = Vec::new();
    for confirmation in confirmations.drain(..10) {
        seqs.push(confirmation.await.expect("confirmed").seq.expect("seq"));
    }
    for receipt in batch.await {
        seqs.push(receipt.expect("confirmed").seq.expect("seq"));
    }
    for confirmation in confirmations {
        seqs.push(confirmation.await.expect("confirmed").seq.expect("seq"));
    }
    assert_eq!(
        seqs,
        (1..=14).collect::<Vec<u64>>(),
        "each emit its own seq, in order"
    );

    // One message per user on the channels.
    let mut by_channel = std::collections::HashMap::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(PATIENCE, messages.next())
            .await
            .expect("a channel message")
            .expect("subscribed");
        let payload: String = message.get_payload().expect("text");
        by_channel.insert(message.get_channel_name().to_owned(), payload);
    }
    let fay = &by_channel["aw:{fay}:c"];
    let gus = &by_channel["aw:{gus}:c"];
    assert!(
        fay.split_once('|').expect("epoch").1.starts_with("1|"),
        "{fay}"
    );
    assert_eq!(fay.matches("\"type\":\"system_message\"").count(), 14);
    assert_eq!(gus.matches("\"type\":\"system_message\"").count(), 10);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), messages.next())
            .await
            .is_err(),
        "no other message"
    );

    // Node B delivers each event once, in order, exactly as the message carries it.
    for (i, text) in expected.iter().enumerate() {
        let frame = next_text(&mut on_b).await;
        let value: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(value["seq"], i as u64 + 1, "{value}");
        assert_eq!(value["payload"]["message"], text.as_str(), "{value}");
        assert!(fay.contains(&format!("{}|{frame}", frame.len())), "{frame}");
    }
    a.stop().await;
    b.stop().await;
}

/// A TCP proxy in front of Redis that, on a connection where it has seen `first` sent to
/// Redis, holds Redis's answers until it has also seen `second`: the first command cannot be
/// answered until the second was sent. A client that waits for the first answer before it
/// sends the second never gets one.
struct OrderingProxy {
    port: u16,
    /// Bit 1: `first` seen; bit 2: `second` seen (on any connection).
    seen: tokio::sync::watch::Receiver<u8>,
}

impl OrderingProxy {
    async fn start(redis: &RedisServer, first: &'static str, second: &'static str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = redis.url();
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches("/0")
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (seen_tx, seen) = tokio::sync::watch::channel(0u8);
        let seen_tx = std::sync::Arc::new(seen_tx);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream)
                    .await
                    .expect("connect to Redis");
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // Which patterns this connection sent: bit 1 first, bit 2 second.
                let (mine_tx, mine) = tokio::sync::watch::channel(0u8);
                let seen_tx = std::sync::Arc::clone(&seen_tx);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut window: Vec<u8> = Vec::new();
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // The tail of the previous read too: a pattern split across reads.
                        let keep = window.len().saturating_sub(64);
                        window.drain(..keep);
                        window.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&window);
                        let mut bits = 0;
                        if text.contains(first) {
                            bits |= 1;
                        }
                        if text.contains(second) {
                            bits |= 2;
                        }
                        if bits != 0 {
                            mine_tx.send_modify(|b| *b |= bits);
                            seen_tx.send_modify(|b| *b |= bits);
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut mine = mine;
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // Answers wait while only the first was sent.
                        if mine.wait_for(|b| *b & 1 == 0 || *b & 2 != 0).await.is_err() {
                            return;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        OrderingProxy { port, seen }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Attaches of different users do not wait for each other's SUBSCRIBE: while Redis's
/// answer to the first user's SUBSCRIBE is held back (a proxy releases it only once the
/// second user's SUBSCRIBE was sent on the same connection), the second user's attach sends
/// its own; both connections then open and get their runs live. An engine that serialized
/// attaches across the SUBSCRIBE round trip would never send the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_of_different_users_subscribe_at_once() {
    let redis = RedisServer::start().await;
    let proxy = OrderingProxy::start(&redis, "aw:{slow}:c", "aw:{fast}:c").await;
    let mut engine = agentwire_redis::RedisConfig::new(&proxy.url()).expect("config");
    engine.timeout = PATIENCE;
    let node = Node::start_engine(engine, Config::default(), Duration::ZERO, false).await;

    let offer = agentwire_auth::testing::offer_header(&token("slow"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            node.url(""),
        )
        .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer.parse().expect("header"));
    let slow = tokio::spawn(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("handshake");
        let established = next_json(&mut ws).await;
        (ws, established)
    });
    // The slow user's SUBSCRIBE is out, its answer held.
    let mut seen = proxy.seen.clone();
    tokio::time::timeout(PATIENCE, seen.wait_for(|b| *b & 1 != 0))
        .await
        .expect("the first SUBSCRIBE in time")
        .expect("proxy running");
    assert!(
        !slow.is_finished(),
        "the first attach waits for its SUBSCRIBE"
    );

    let (mut fast, established) = connect(&node, "fast", "").await;
    assert_eq!(established["type"], "connection_established");
    let (mut slow, established) = tokio::time::timeout(PATIENCE, slow)
        .await
        .expect("the first attach completes")
        .expect("task");
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    assert_eq!(*proxy.seen.borrow(), 3);

    // Both are subscribed: runs arrive live, in order.
    for ws in [&mut fast, &mut slow] {
        send_json(ws, &start_agent("hello")).await;
        let texts = read_run_texts(ws).await;
        assert_eq!(seqs(&texts), vec![1, 2, 3, 4, 5]);
    }
    node.stop().await;
}

/// A Redis URL with a database number other than 0: every connection of the engine (the
/// publishing one included) uses that database, so a run's events are stored there and a
/// client resumes from them.
#[tokio::test]
async fn a_database_other_than_0_holds_the_streams() {
    let redis = RedisServer::start().await;
    let url = redis.url().replace("/0", "/3");
    let node = Node::start_engine(
        agentwire_redis::RedisConfig::new(&url).expect("config"),
        Config::default(),
        Duration::ZERO,
        false,
    )
    .await;
    let (mut ws, established) = connect(&node, "ida", "").await;
    send_json(&mut ws, &start_agent("hello")).await;
    let texts = read_run_texts(&mut ws).await;
    assert_eq!(seqs(&texts), vec![1, 2, 3, 4, 5]);
    drop(ws);

    let mut db3 = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let held: u64 = redis::cmd("LLEN")
        .arg("aw:{ida}:l")
        .query_async(&mut db3)
        .await
        .expect("LLEN");
    assert_eq!(held, 5);
    let mut db0 = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("aw:*")
        .query_async(&mut db0)
        .await
        .expect("KEYS");
    assert!(keys.is_empty(), "{keys:?}");

    // A resume on the same node replays from database 3.
    let epoch = established["payload"]["stream"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let (mut again, resumed) = connect(&node, "ida", &format!("?epoch={epoch}&since=2")).await;
    assert_eq!(
        resumed["payload"]["resume"]["status"], "resumed",
        "{resumed}"
    );
    let replayed: Vec<String> = vec![
        next_text(&mut again).await,
        next_text(&mut again).await,
        next_text(&mut again).await,
    ];
    assert_eq!(replayed, texts[2..].to_vec());
    node.stop().await;
}
