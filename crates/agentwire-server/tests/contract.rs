//! The contract's liveness, reply-scoping and cancel rules (DESIGN.md "Liveness, limits,
//! shutdown"), each through a real WebSocket client over loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentwire_server::{
    Config, Delivered, Delivery, DeliveryError, DeliveryStatus, DemoAgent, EngineHealth, Event,
    Handler, HandlerError, LocalStreams, MessageContext, MessageType, OtherRequest, Run, Server,
};
use common::*;
use serde_json::{Value, json};

/// A handler for `user_typing`: `"fail"` in the payload is an error, anything else is answered
/// with a `system_message` through `MessageContext::reply`.
struct Typing;

impl Handler for Typing {
    async fn run(&self, run: Run) {
        // Slow enough to be cancelled from another connection.
        run.started("typing");
        tokio::time::sleep(PATIENCE).await;
        run.completed(json!("too late"));
    }

    fn handles(&self, message_type: MessageType) -> bool {
        message_type == MessageType::UserTyping
    }

    async fn on_message(
        &self,
        context: MessageContext,
        request: OtherRequest<'static>,
    ) -> Result<(), HandlerError> {
        if request.payload().is_some_and(|p| p.get().contains("fail")) {
            return Err(HandlerError::new("typing_refused", "no typing today"));
        }
        context.reply(Event::error("typing_seen", "seen"));
        Ok(())
    }
}

/// Sends a ping and returns every frame up to its pong: what else was waiting for this
/// connection.
async fn frames_until_pong(ws: &mut Client) -> Vec<Value> {
    send_json(ws, &json!({"type": "ping", "message_id": "probe"})).await;
    let mut before = Vec::new();
    loop {
        let frame = next_json(ws).await;
        if frame["type"] == "pong" && frame["reply_to"] == "probe" {
            return before;
        }
        before.push(frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_only_to_the_connection_that_asked() {
    let server = start_handler(Config::default(), Typing).await;
    let token = token("rita");
    let (mut asking, _) = connect(&server, &token).await;
    let (mut other, _) = connect(&server, &token).await;

    // The handler's error answers the asking connection, with reply_to.
    send_json(
        &mut asking,
        &json!({"type": "user_typing", "message_id": "t1", "payload": {"x": "fail"}}),
    )
    .await;
    let error = next_json(&mut asking).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "typing_refused");
    assert_eq!(error["reply_to"], "t1");
    assert!(error.get("seq").is_none(), "a reply is not a stream event");

    // So does what the handler sends with MessageContext::reply.
    send_json(
        &mut asking,
        &json!({"type": "user_typing", "message_id": "t2", "payload": {}}),
    )
    .await;
    let reply = next_json(&mut asking).await;
    assert_eq!(reply["payload"]["code"], "typing_seen", "{reply}");
    assert_eq!(reply["reply_to"], "t2");

    // The session's own replies too: an invalid frame, a pong, a heartbeat_ack.
    send_json(
        &mut asking,
        &json!({"type": "no_such_type", "message_id": "u1"}),
    )
    .await;
    assert_eq!(
        next_json(&mut asking).await["payload"]["code"],
        "unknown_message_type"
    );
    send_json(&mut asking, &json!({"type": "heartbeat"})).await;
    assert_eq!(next_json(&mut asking).await["type"], "heartbeat_ack");

    // The user's other connection got none of it.
    assert_eq!(frames_until_pong(&mut other).await, Vec::<Value>::new());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_run_started_on_another_connection_of_the_same_user() {
    let server = start_handler(Config::default(), Typing).await;
    let (mut starter, _) = connect(&server, &token("sam")).await;
    let (mut canceller, _) = connect(&server, &token("sam")).await;
    let (mut stranger, _) = connect(&server, &token("eve")).await;

    send_json(
        &mut starter,
        &json!({"type": "start_agent", "message_id": "go", "payload": {"user_request": "wait"}}),
    )
    .await;
    let started = next_json(&mut starter).await;
    assert_eq!(started["type"], "agent_started", "{started}");
    let run_id = started["run_id"].as_str().expect("run_id").to_owned();
    // The other connection sees the run on the user's stream.
    assert_eq!(next_json(&mut canceller).await["run_id"], run_id.as_str());

    // Another user cannot cancel it, even with its id.
    send_json(
        &mut stranger,
        &json!({"type": "cancel_agent", "message_id": "c0", "payload": {"run_id": run_id}}),
    )
    .await;
    let refused = next_json(&mut stranger).await;
    assert_eq!(refused["payload"]["code"], "unknown_run", "{refused}");

    // Without a run_id, cancel stops this connection's own runs: the canceller has none.
    send_json(
        &mut canceller,
        &json!({"type": "cancel_agent", "message_id": "c1"}),
    )
    .await;
    let none = next_json(&mut canceller).await;
    assert_eq!(none["payload"]["code"], "unknown_run", "{none}");
    assert_eq!(none["reply_to"], "c1");

    // With the run_id, from the user's other connection: the run ends on both.
    send_json(
        &mut canceller,
        &json!({"type": "cancel_agent", "message_id": "c2", "payload": {"run_id": run_id}}),
    )
    .await;
    for ws in [&mut starter, &mut canceller] {
        let end = next_json(ws).await;
        assert_eq!(end["type"], "agent_error", "{end}");
        assert_eq!(end["payload"]["code"], "cancelled");
        assert_eq!(end["run_id"], run_id.as_str());
    }
    // The run is gone: cancelling it again is unknown_run.
    send_json(
        &mut starter,
        &json!({"type": "cancel_agent", "message_id": "c3", "payload": {"run_id": run_id}}),
    )
    .await;
    assert_eq!(
        next_json(&mut starter).await["payload"]["code"],
        "unknown_run"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_without_run_id_stops_every_run_of_this_connection() {
    let server = start_handler(Config::default(), Typing).await;
    let (mut ws, _) = connect(&server, &token("cal")).await;
    let mut runs = Vec::new();
    for n in 0..2 {
        send_json(
            &mut ws,
            &json!({"type": "start_agent", "payload": {"user_request": format!("run {n}")}}),
        )
        .await;
        let started = next_json(&mut ws).await;
        runs.push(started["run_id"].as_str().expect("run_id").to_owned());
    }
    send_json(&mut ws, &json!({"type": "cancel_agent", "payload": {}})).await;
    let mut ended = Vec::new();
    for _ in 0..2 {
        let end = next_json(&mut ws).await;
        assert_eq!(end["payload"]["code"], "cancelled", "{end}");
        ended.push(end["run_id"].as_str().expect("run_id").to_owned());
    }
    ended.sort();
    runs.sort();
    assert_eq!(ended, runs);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_authenticates_is_closed_4408_auth_timeout() {
    let config = Config::builder()
        .in_band_auth(true)
        .auth_timeout(Duration::from_millis(300))
        .build()
        .expect("config");
    let server = start(config).await;

    // Offers only the marker, then says nothing.
    let (mut silent, response) = connect_raw(&server.url("/ws"), Some("jwt-auth"), None)
        .await
        .expect("the upgrade succeeds without credentials");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"jwt-auth"[..])
    );
    let (frames, close) = until_close(&mut silent).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["payload"]["code"], "auth_timeout");
    assert_eq!(close_code(&close), Some(4408));
    assert_eq!(close.expect("close").reason.as_str(), "auth_timeout");

    // Authenticates in-band: then the session is the usual one.
    let (mut late, _) = connect_raw(&server.url("/ws"), Some("jwt-auth"), None)
        .await
        .expect("upgrade");
    let token = token("ina");
    send_json(
        &mut late,
        &json!({"type": "auth_refresh", "payload": {"token": token.expose_secret()}}),
    )
    .await;
    let established = next_json(&mut late).await;
    assert_eq!(
        established["type"], "connection_established",
        "{established}"
    );
    assert_eq!(established["payload"]["user_id"], "ina");
    let frames = run_agent(
        &mut late,
        &json!({"type": "start_agent", "payload": {"user_request": "hello"}}),
    )
    .await;
    assert_eq!(frames.last().expect("terminal")["type"], "agent_completed");

    // Anything else first is refused: 4401 missing_token.
    let (mut rude, _) = connect_raw(&server.url("/ws"), Some("jwt-auth"), None)
        .await
        .expect("upgrade");
    send_json(&mut rude, &json!({"type": "ping"})).await;
    let (frames, close) = until_close(&mut rude).await;
    assert_eq!(frames[0]["payload"]["code"], "missing_token", "{frames:?}");
    assert_eq!(close_code(&close), Some(4401));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_in_band_auth_a_missing_credential_is_4401_at_once() {
    let server = start(Config::default()).await;
    let (mut ws, _) = connect_raw(&server.url("/ws"), Some("jwt-auth"), None)
        .await
        .expect("upgrade");
    let (frames, close) = until_close(&mut ws).await;
    assert_eq!(frames[0]["payload"]["code"], "missing_token", "{frames:?}");
    assert_eq!(close_code(&close), Some(4401));
    server.stop().await;
}

/// Counts events, then delivers them in-process.
struct Counting {
    local: LocalStreams,
    events: Arc<AtomicU64>,
}

impl Delivery for Counting {
    fn deliver(&self, user_id: &str, event: Event) -> Delivered {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.local.deliver(user_id, event)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_engine_plugged_in_through_the_builder_carries_every_event() {
    let events = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&events);
    let server = start_with(
        Server::builder(validator())
            .handler(DemoAgent::new(Duration::ZERO))
            .delivery(move |local| Counting {
                local,
                events: counter,
            }),
    )
    .await;
    let (mut ws, _) = connect(&server, &token("dee")).await;
    let frames = run_agent(
        &mut ws,
        &json!({"type": "start_agent", "payload": {"user_request": "count me"}}),
    )
    .await;
    assert_eq!(frames.len(), 5);
    assert_eq!(
        events.load(Ordering::Relaxed),
        5,
        "every run event went through the engine"
    );
    // The emitter goes through it too.
    let delivered = server
        .server
        .emitter()
        .emit("dee", Event::agent_thinking("run_x", "from a task"));
    assert_eq!(delivered.connections, 1);
    assert_eq!(next_json(&mut ws).await["run_id"], "run_x");
    assert_eq!(events.load(Ordering::Relaxed), 6);
    server.stop().await;
}

/// An engine that refuses every event, as a networked engine does while its store is
/// unreachable, and says so in health, config and metrics.
struct Refusing {
    local: LocalStreams,
}

impl Delivery for Refusing {
    fn deliver(&self, _user_id: &str, _event: Event) -> Delivered {
        Delivered::failed(DeliveryError::Unavailable)
    }

    fn health(&self) -> EngineHealth {
        EngineHealth::Degraded {
            reason: "store unreachable".to_owned(),
        }
    }

    fn describe(&self) -> serde_json::Value {
        json!({"kind": "refusing", "users": self.local.users()})
    }

    fn render_metrics(&self, out: &mut String) {
        out.push_str("agentwire_refusing_engine 1\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_reports_outcomes_health_config_and_metrics() {
    // In-process: confirmed at once with the seq, healthy, kind in_process.
    let server = start(Config::default()).await;
    let (mut ws, _) = connect(&server, &token("eli")).await;
    let emitter = server.server.emitter();
    let receipt = emitter
        .emit_confirmed("eli", Event::system_message("one"))
        .await
        .expect("in-process never fails");
    assert_eq!((receipt.seq, receipt.connections), (Some(1), 1));
    assert_eq!(next_json(&mut ws).await["seq"], 1);
    let delivered = emitter.emit("eli", Event::system_message("two"));
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.seq, Some(2));
    let (status, _, body) = http_get(server.addr, "/ws/health", &[]).await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, &health["status"]), (200, &json!("healthy")));
    assert_eq!(health["engine"], json!({"status": "healthy"}));
    let (_, _, body) = http_get(server.addr, "/ws/config", &[]).await;
    let config: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(config["engine"], json!({"kind": "in_process"}));
    drop(ws);
    server.stop().await;

    // An engine that refuses: the emitter and the run see the failure, health is degraded.
    let server = start_with(
        Server::builder(validator())
            .handler(DemoAgent::new(Duration::ZERO))
            .delivery(|local| Refusing { local }),
    )
    .await;
    let (_ws, _) = connect(&server, &token("fay")).await;
    let emitter = server.server.emitter();
    let delivered = emitter.emit("fay", Event::system_message("lost"));
    assert!(delivered.is_failed());
    assert_eq!(
        delivered.status,
        DeliveryStatus::Failed(DeliveryError::Unavailable)
    );
    assert_eq!(
        emitter
            .emit_confirmed("fay", Event::system_message("lost"))
            .await,
        Err(DeliveryError::Unavailable)
    );
    let (status, _, body) = http_get(server.addr, "/ws/health", &[]).await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, &health["status"]), (200, &json!("degraded")));
    assert_eq!(
        health["engine"],
        json!({"status": "degraded", "reason": "store unreachable"})
    );
    let (_, _, body) = http_get(server.addr, "/ws/config", &[]).await;
    let config: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(config["engine"], json!({"kind": "refusing", "users": 1}));
    assert!(
        server
            .server
            .metrics_text()
            .contains("agentwire_refusing_engine 1\n")
    );
    server.stop().await;
}

#[test]
fn docs_state_the_cancel_rules_these_tests_prove() {
    let doc = include_str!("../../../docs/protocol.md");
    let start = doc
        .find("### cancel_agent")
        .expect("a cancel_agent section");
    let section = &doc[start..start + doc[start..].find("```").expect("its example")];
    let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
    for rule in [
        "whichever of the user's connections started it",
        "another user's run is never found",
        "Without `run_id`: every run this connection started that is still in flight",
        "`unknown_run`",
    ] {
        assert!(
            section.contains(rule),
            "docs/protocol.md cancel_agent must say: {rule}"
        );
    }
}
