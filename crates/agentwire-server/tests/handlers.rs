//! Handlers that misbehave, over a real socket: whatever a handler does (panics before or
//! after its first wait, returns without a result, fails before it started, emits after its
//! terminal event), the run starts with `agent_started` and ends with exactly one terminal
//! event on the wire, and the connection keeps working.
//!
//! Runs that never wait are polled on the connection's own task and those that wait get a
//! task of their own, so each behaviour is tried both ways.

mod common;

use agentwire_server::{Config, Handler, Run};
use common::*;
use serde_json::{Value, json};

/// Picks its behaviour from the request text.
struct Unruly;

impl Handler for Unruly {
    async fn run(&self, run: Run) {
        let text = run.request().text.to_string();
        let (what, wait) = match text.strip_suffix(" after a wait") {
            Some(what) => (what.to_owned(), true),
            None => (text, false),
        };
        if wait {
            tokio::task::yield_now().await;
        }
        match what.as_str() {
            "panic" => panic!("the handler panics (on purpose, for the test)"),
            "nothing" => {}
            "fail" => {
                run.failed(&agentwire_server::HandlerError::new(
                    "no_backend",
                    "the backend is down",
                ));
            }
            "complete" => {
                run.completed(json!({ "n": 1 }));
            }
            "started only" => {
                run.started("unruly");
            }
            "twice" => {
                run.started("unruly");
                let first = run.completed(json!({ "n": 1 }));
                assert_eq!(first.connections, 1);
                let second = run.completed(json!({ "n": 2 }));
                assert_eq!(second.connections, 0, "a second terminal event is dropped");
                let late = run.emit(agentwire_events::AgentThinking::new("too late"));
                assert_eq!(late.connections, 0, "events after the end are dropped");
            }
            other => panic!("unknown test behaviour {other:?}"),
        }
    }
}

/// Sends a request with `text` and reads frames up to the run's terminal event.
async fn run_frames(ws: &mut Client, text: &str) -> Vec<Value> {
    send_json(
        ws,
        &json!({"type": "start_agent", "message_id": text, "payload": {"user_request": text}}),
    )
    .await;
    let mut frames = Vec::new();
    loop {
        let frame = next_json(ws).await;
        assert_eq!(frame["reply_to"], text, "{frame}");
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        frames.push(frame);
        if kind == "agent_completed" || kind == "agent_error" {
            return frames;
        }
    }
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().filter_map(|f| f["type"].as_str()).collect()
}

/// The run passes the run validator as the client received it.
fn assert_well_formed(frames: &[Value]) {
    let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
    agentwire_events::validate_run_json(texts.iter().map(String::as_str))
        .unwrap_or_else(|violation| panic!("{violation}: {frames:#?}"));
}

/// The connection still answers, and nothing of the last run arrives after its end.
async fn still_answers(ws: &mut Client) {
    send_json(ws, &json!({"type": "ping", "message_id": "alive"})).await;
    let pong = next_json(ws).await;
    assert_eq!(
        (pong["type"].as_str(), pong["reply_to"].as_str()),
        (Some("pong"), Some("alive")),
        "{pong}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_ends_with_exactly_one_terminal_event() {
    let server = start_handler(Config::default(), Unruly).await;
    let (mut ws, established) = connect(&server, &token("unruly")).await;
    let mut seq = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");
    for suffix in ["", " after a wait"] {
        // A run that ends before the handler's agent_started gets the server's own first.
        let cases: [(&str, &[&str], Option<&str>); 6] = [
            (
                "panic",
                &["agent_started", "agent_error"],
                Some("internal_error"),
            ),
            (
                "nothing",
                &["agent_started", "agent_error"],
                Some("no_result"),
            ),
            (
                "fail",
                &["agent_started", "agent_error"],
                Some("no_backend"),
            ),
            ("complete", &["agent_started", "agent_completed"], None),
            (
                "started only",
                &["agent_started", "agent_error"],
                Some("no_result"),
            ),
            ("twice", &["agent_started", "agent_completed"], None),
        ];
        for (what, expected, code) in cases {
            let text = format!("{what}{suffix}");
            let frames = run_frames(&mut ws, &text).await;
            assert_eq!(types(&frames), expected, "{text}: {frames:?}");
            assert_well_formed(&frames);
            let last = frames.last().expect("a terminal frame");
            if let Some(code) = code {
                assert_eq!(last["payload"]["code"], code, "{text}: {last}");
            } else {
                assert_eq!(last["payload"]["result"], json!({ "n": 1 }), "{text}");
            }
            // One run id throughout, and dropped events consumed no `seq`.
            let run_id = &frames[0]["run_id"];
            assert!(run_id.is_string(), "{text}: {frames:?}");
            for frame in &frames {
                assert_eq!(&frame["run_id"], run_id, "{text}");
                seq += 1;
                assert_eq!(frame["seq"], seq, "{text}: {frame}");
            }
            still_answers(&mut ws).await;
        }
    }
    server.stop().await;
}

/// Refuses requests for agent "nobody" (and, with a retry hint, "busy"); runs the others,
/// reporting the request's `message_id` in the result.
struct Picky;

impl Handler for Picky {
    async fn run(&self, run: Run) {
        run.started("picky");
        let message_id = run.message_id().map(str::to_owned);
        run.completed(json!({ "message_id": message_id }));
    }

    fn accepts(
        &self,
        kind: agentwire_server::MessageType,
        request: &agentwire_server::RunRequest<'_>,
    ) -> Result<(), agentwire_server::HandlerError> {
        assert!(
            matches!(
                kind,
                agentwire_server::MessageType::StartAgent
                    | agentwire_server::MessageType::UserMessage
            ),
            "{kind}"
        );
        match request.agent_name.as_deref() {
            Some("nobody") => Err(agentwire_server::HandlerError::new(
                "unknown_agent",
                "no such agent",
            )),
            Some("busy") => Err(agentwire_server::HandlerError::new("agent_busy", "busy")
                .recoverable()
                .retry_after(std::time::Duration::from_millis(750))),
            _ => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_gets_an_error_frame_and_starts_no_run() {
    let server = start_handler(Config::default(), Picky).await;
    let (mut ws, established) = connect(&server, &token("picky")).await;
    let seq = established["payload"]["stream"]["seq"]
        .as_u64()
        .expect("seq");
    for (agent, code, retry_after_ms) in [
        ("nobody", "unknown_agent", None),
        ("busy", "agent_busy", Some(750)),
    ] {
        send_json(
            &mut ws,
            &json!({"type": "user_message", "message_id": agent,
                    "payload": {"message": "hi", "agent_name": agent}}),
        )
        .await;
        let error = next_json(&mut ws).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["payload"]["code"], code, "{error}");
        assert_eq!(error["reply_to"], agent, "{error}");
        assert_eq!(error["payload"]["retry_after_ms"].as_u64(), retry_after_ms);
        assert!(
            error.get("run_id").is_none() && error.get("seq").is_none(),
            "{error}"
        );
        still_answers(&mut ws).await;
    }
    // An accepted request runs, and is the first stream event since the connection opened:
    // the refused ones started nothing.
    let frames = run_frames(&mut ws, "accepted").await;
    assert_eq!(types(&frames), ["agent_started", "agent_completed"]);
    assert_eq!(frames[0]["seq"], seq + 1, "{frames:?}");
    assert_eq!(
        frames[1]["payload"]["result"],
        json!({ "message_id": "accepted" })
    );
    server.stop().await;
}

/// Counts its runs and shows them in `/metrics`; describes itself in `/ws/config`.
#[derive(Default)]
struct Counting {
    runs: std::sync::atomic::AtomicU64,
}

impl Handler for Counting {
    async fn run(&self, run: Run) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        run.started("counting");
        run.completed(json!({}));
    }

    fn render_metrics(&self, out: &mut String) {
        let runs = self.runs.load(std::sync::atomic::Ordering::Relaxed);
        out.push_str(&format!(
            "# HELP counting_runs_total Runs.\n# TYPE counting_runs_total counter\n\
             counting_runs_total {runs}\n"
        ));
    }

    fn describe(&self) -> Value {
        json!({"kind": "counting", "unit": "runs"})
    }
}

/// `/metrics` ends with the handler's metrics and `/ws/config` shows the handler under
/// `agent`; a handler that says nothing is `{"kind": "custom"}` there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_adds_to_metrics_and_config() {
    let server = start_handler(Config::default(), Counting::default()).await;
    let (mut ws, _) = connect(&server, &token("counted")).await;
    for text in ["one", "two"] {
        assert_eq!(
            types(&run_frames(&mut ws, text).await),
            ["agent_started", "agent_completed"]
        );
    }
    let (status, _, metrics) = http_get(server.addr, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("agentwire_runs_started_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.ends_with("# TYPE counting_runs_total counter\ncounting_runs_total 2\n"),
        "{metrics}"
    );
    assert!(
        server
            .server
            .metrics_text()
            .ends_with("counting_runs_total 2\n")
    );
    let (_, _, body) = http_get(server.addr, "/ws/config", &[]).await;
    let config: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(config["agent"], json!({"kind": "counting", "unit": "runs"}));
    drop(ws);
    server.stop().await;

    let server = start_handler(Config::default(), Picky).await;
    let (_, _, body) = http_get(server.addr, "/ws/config", &[]).await;
    let config: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(config["agent"], json!({"kind": "custom"}));
    server.stop().await;
}

/// Fails at once without starting, or (for "wait") waits to be cancelled; says it is "quiet".
struct Quiet;

impl Handler for Quiet {
    fn agent_name(&self) -> &str {
        "quiet"
    }

    async fn run(&self, run: Run) {
        if run.request().text == "wait" {
            std::future::pending::<()>().await;
        }
        run.failed(&agentwire_server::HandlerError::new(
            "unavailable",
            "nothing to answer with",
        ));
    }
}

/// A run that ends before its handler emitted `agent_started`, by the handler's own
/// `agent_error` or by a cancel, starts on the wire with the server's `agent_started`: the
/// request's `agent_name`, else the handler's, and the request text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_before_it_started_gets_agent_started_first() {
    let server = start_handler(Config::default(), Quiet).await;
    let (mut ws, _) = connect(&server, &token("quiet")).await;
    for (agent_name, expected) in [(None, "quiet"), (Some("travel"), "travel")] {
        let mut payload = json!({"user_request": "fail"});
        if let Some(name) = agent_name {
            payload["agent_name"] = json!(name);
        }
        send_json(
            &mut ws,
            &json!({"type": "start_agent", "message_id": "f", "payload": payload}),
        )
        .await;
        let frames = vec![next_json(&mut ws).await, next_json(&mut ws).await];
        assert_eq!(
            types(&frames),
            ["agent_started", "agent_error"],
            "{frames:?}"
        );
        assert_eq!(
            frames[0]["payload"],
            json!({"agent_name": expected, "user_request": "fail"})
        );
        assert_eq!(frames[1]["payload"]["code"], "unavailable");
        assert!(frames.iter().all(|f| f["reply_to"] == "f"), "{frames:?}");
        assert_well_formed(&frames);
        still_answers(&mut ws).await;
    }
    // Cancelled before it started: the cancel's agent_error, after the server's agent_started.
    send_json(
        &mut ws,
        &json!({"type": "start_agent", "message_id": "w", "payload": {"user_request": "wait"}}),
    )
    .await;
    send_json(&mut ws, &json!({"type": "cancel_agent", "payload": {}})).await;
    let frames = vec![next_json(&mut ws).await, next_json(&mut ws).await];
    assert_eq!(
        types(&frames),
        ["agent_started", "agent_error"],
        "{frames:?}"
    );
    assert_eq!(
        frames[0]["payload"],
        json!({"agent_name": "quiet", "user_request": "wait"})
    );
    assert_eq!(frames[1]["payload"]["code"], "cancelled");
    assert_well_formed(&frames);
    still_answers(&mut ws).await;
    assert_no_1011(server.addr).await;
    server.stop().await;
}
