//! Limits over a real socket: slow consumers, connections per user, rate limit, token expiry.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_auth::testing::Claims;
use agentwire_events::Event;
use agentwire_server::{Config, ConfigBuilder};
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_4008_and_slows_nobody() {
    let config = Config::builder()
        .outbound_queue_frames(8)
        .write_timeout(Duration::from_secs(60))
        .build()
        .expect("config");
    let server = start(config).await;
    let (mut slow, _) = connect(&server, &token("slow")).await;
    let (mut other, _) = connect(&server, &token("other")).await;

    // Flood the slow user's stream with large events while it reads nothing, until the hub
    // drops its queue (it then reaches no connection).
    let emitter = server.server.emitter();
    let blob = "x".repeat(60_000);
    let mut emitted = 0;
    loop {
        let delivered = emitter.emit("slow", Event::agent_thinking("run_flood", blob.clone()));
        emitted += 1;
        if delivered.connections == 0 {
            break;
        }
        assert!(emitted < 100_000, "the queue never filled");
        if emitted % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }

    // Meanwhile another user's run completes normally.
    let events = run_agent(
        &mut other,
        &json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    assert_eq!(events.len(), 5);

    // The slow client reads what was already queued, then the explanation and 4008.
    let (frames, close) = until_close(&mut slow).await;
    // Every event the hub accepted arrived, in order; the one it refused (the queue was full)
    // did not: memory stays bounded by the queue, not by the flood.
    let (last, events) = frames
        .split_last()
        .expect("an error frame before the close");
    assert_eq!(events.len(), emitted - 1);
    assert!(events.iter().all(|e| e["type"] == "agent_thinking"));
    let seqs: Vec<_> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "nothing lost in between"
    );
    assert_eq!(last["payload"]["code"], "slow_consumer", "{last}");
    assert_eq!(close_code(&close), Some(4008));
    let (_, _, metrics) = http_get(server.addr, "/metrics", &[]).await;
    assert!(
        metrics.contains("agentwire_outbound_queue_drops_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_user_limit_close_4409() {
    let config = Config::builder()
        .max_connections_per_user(2)
        .build()
        .expect("config");
    let server = start(config).await;
    let token = token("kate");
    let (first, _) = connect(&server, &token).await;
    let (_second, _) = connect(&server, &token).await;
    let offer = agentwire_auth::testing::offer_header(&token);
    let (mut third, _) = connect_raw(&server.url("/ws"), Some(&offer), None)
        .await
        .expect("handshake");
    let (frames, close) = until_close(&mut third).await;
    assert_eq!(frames[0]["payload"]["code"], "too_many_connections");
    assert_eq!(close_code(&close), Some(4409));
    // Another user is not affected, and a freed slot can be used again.
    let _ = connect(&server, &common::token("leo")).await;
    drop(first);
    await_active(server.addr, 2).await;
    let (_again, _) = connect(&server, &token).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_rate_limited_then_closes_sustained_abuse_4429() {
    let config = Config::builder()
        .rate_limit_per_sec(2)
        .rate_limit_burst(2)
        .rate_limit_strikes(5)
        .build()
        .expect("config");
    let server = start(config).await;
    let (mut ws, _) = connect(&server, &token("mallory")).await;
    for i in 0..4 {
        send_json(
            &mut ws,
            &json!({"type": "ping", "message_id": format!("p{i}")}),
        )
        .await;
    }
    let mut limited = 0;
    for _ in 0..4 {
        let frame = next_json(&mut ws).await;
        if frame["type"] == "error" {
            assert_eq!(frame["payload"]["code"], "rate_limited", "{frame}");
            assert!(
                frame["payload"]["retry_after_ms"]
                    .as_u64()
                    .is_some_and(|ms| ms > 0)
            );
            assert!(frame["reply_to"].is_string());
            limited += 1;
        }
    }
    assert!(limited >= 1, "four pings at once exceed a burst of two");
    // A flood without pause: closed 4429.
    for _ in 0..50 {
        if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    let (_, close) = until_close(&mut ws).await;
    assert_eq!(close_code(&close), Some(4429));
    server.stop().await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_closes_4401_unless_refreshed() {
    let server = start(Config::default()).await;
    let key = hmac_key();
    let short = || {
        Claims::new("nina")
            .expires_at(unix_now() + 2)
            .sign(&key)
            .expect("sign")
    };

    // Not refreshed: error token_expired, then 4401.
    let (mut ws, _) = connect(&server, &short()).await;
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(
        frames.last().expect("error frame")["payload"]["code"],
        "token_expired"
    );
    assert_eq!(close_code(&close), Some(4401));

    // Refreshed in time: stays open past the first token's expiry.
    let (mut ws, _) = connect(&server, &short()).await;
    let fresh = Claims::new("nina").sign(&key).expect("sign");
    send_json(&mut ws, &json!({"type": "auth_refresh", "message_id": "r1", "payload": {"token": fresh.expose_secret()}})).await;
    let refreshed = next_json(&mut ws).await;
    assert_eq!(refreshed["type"], "auth_refreshed", "{refreshed}");
    assert_eq!(refreshed["reply_to"], "r1");
    assert!(refreshed["payload"]["expires_at"].is_string());
    // A token for another user is refused, and changes nothing.
    let foreign = Claims::new("oscar").sign(&key).expect("sign");
    send_json(
        &mut ws,
        &json!({"type": "auth_refresh", "payload": {"token": foreign.expose_secret()}}),
    )
    .await;
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["payload"]["code"], "subject_mismatch", "{refused}");
    assert!(!refused.to_string().contains(foreign.expose_secret()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    send_json(&mut ws, &json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    server.stop().await;
}

/// The read buffer is small (1 KiB by default) and only bounds one socket read: a request of
/// many buffers' length arrives whole, at the default and at the smallest buffer, and the
/// connection keeps working after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_larger_than_the_read_buffer_arrive_whole() {
    for read_buffer in [None, Some(256)] {
        let mut builder = Config::builder();
        if let Some(bytes) = read_buffer {
            builder = builder.read_buffer_bytes(bytes);
        }
        let server = start(builder.build().expect("config")).await;
        let (mut ws, _) = connect(&server, &token("big")).await;
        // Multi-byte characters, so a read that splits one would show as a decoding error.
        let text: String = "Grüße aus Köln, 日本 🎉 ".repeat(1_500);
        assert!(text.len() > 40 * 1024);
        for request in [text.as_str(), "and a small one after it"] {
            let events = run_agent(
                &mut ws,
                &json!({"type": "start_agent", "payload": {"user_request": request}}),
            )
            .await;
            let types: Vec<_> = events.iter().map(|e| e["type"].as_str()).collect();
            assert_eq!(
                types.last(),
                Some(&Some("agent_completed")),
                "read buffer {read_buffer:?}"
            );
            assert_eq!(events[0]["payload"]["user_request"], request);
            assert_eq!(
                events.last().expect("events")["payload"]["result"]["response"],
                format!("You said: {request}")
            );
        }
        server.stop().await;
    }
}

#[test]
fn buffer_sizes_outside_their_ranges_are_refused() {
    type Setter = fn(ConfigBuilder, usize) -> ConfigBuilder;
    let settings: [(Setter, &str, [usize; 3]); 2] = [
        (
            ConfigBuilder::read_buffer_bytes,
            "read_buffer_bytes",
            [0, 255, 1024 * 1024 + 1],
        ),
        (
            ConfigBuilder::write_buffer_bytes,
            "write_buffer_bytes",
            [0, 511, 1024 * 1024 + 1],
        ),
    ];
    for (set, name, refused) in settings {
        for bytes in refused {
            let error = set(Config::builder(), bytes)
                .build()
                .expect_err("out of range");
            assert!(error.to_string().contains(name), "{error}");
        }
    }
    assert!(Config::builder().read_buffer_bytes(256).build().is_ok());
}
