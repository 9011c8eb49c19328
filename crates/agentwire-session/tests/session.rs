//! The session's rules through its public API, with a model of the driver and a clock the test
//! moves by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_auth::testing::{Claims, SigningKey, fixture_validator};
use agentwire_auth::{Algorithm, Principal, Token, Validator};
use agentwire_events::{Event, StreamPosition, Timestamp};
use agentwire_session::{Action, Handled, Host, Session, SessionConfig, Timeout};
use agentwire_state::CloseCode;
use agentwire_types::MessageType;
use serde_json::{Value, json};

/// The driver, modelled: runs are a count; cancels are recorded and succeed when `found`.
struct Model {
    validator: Validator,
    runs: usize,
    found: bool,
    cancels: Vec<Option<String>>,
}

impl Model {
    fn new() -> Model {
        Model {
            validator: fixture_validator(),
            runs: 0,
            found: false,
            cancels: Vec::new(),
        }
    }
}

impl Host for Model {
    fn validator(&self) -> &Validator {
        &self.validator
    }

    fn handles(&self, message_type: MessageType) -> bool {
        message_type == MessageType::UserTyping
    }

    fn runs_in_flight(&self) -> usize {
        self.runs
    }

    fn cancel(&mut self, run_id: Option<&str>) -> bool {
        self.cancels.push(run_id.map(str::to_owned));
        self.found
    }
}

/// The default settings, changed by `change`.
fn settings(change: impl FnOnce(&mut SessionConfig)) -> SessionConfig {
    let mut config = SessionConfig::default();
    change(&mut config);
    config
}

fn sign(claims: Claims) -> Token {
    claims
        .sign(&SigningKey::fixture(Algorithm::HS256))
        .expect("sign")
}

fn principal(claims: Claims) -> Principal {
    fixture_validator()
        .validate(&sign(claims))
        .expect("a valid token")
}

fn session_with(config: SessionConfig, now: Instant) -> Session {
    Session::new(Arc::new(config), principal(Claims::new("ann")), now)
}

/// The frame a reply event becomes on the wire, as JSON.
fn wire(event: Event) -> Value {
    serde_json::from_str(&event.stamp_control().to_json()).expect("JSON")
}

fn reply(handled: Handled<'_>) -> Value {
    match handled.action {
        Action::Reply(event) => wire(event),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn requests_are_dispatched_by_their_normalized_type() {
    let now = Instant::now();
    let mut session = session_with(SessionConfig::default(), now);
    let mut host = Model::new();

    for text in [
        r#"{"type": "start_agent", "payload": {"user_request": "a"}}"#,
        r#"{"type": "EXECUTE_AGENT", "data": {"message": "b"}, "thread_id": "t9"}"#,
        r#"{"type": "chat", "payload": {"content": "c"}}"#,
    ] {
        let handled = session.handle_text(now, text, &mut host);
        let Action::Run(run) = handled.action else {
            panic!("{text}: expected a run, got {:?}", handled.action);
        };
        assert!(matches!(
            run.kind,
            MessageType::StartAgent | MessageType::UserMessage
        ));
        assert!(!run.request.text.is_empty());
        if text.contains("t9") {
            assert_eq!(run.thread_id.as_deref(), Some("t9"));
        }
    }

    let pong = reply(session.handle_text(now, r#"{"type": "PING", "message_id": "p"}"#, &mut host));
    assert_eq!(
        (pong["type"].as_str(), pong["reply_to"].as_str()),
        (Some("pong"), Some("p"))
    );
    let ack = reply(session.handle_text(now, r#"{"type": "heartbeat"}"#, &mut host));
    assert_eq!(ack["type"], "heartbeat_ack");

    let bad = reply(session.handle_text(now, "{not json", &mut host));
    assert_eq!(bad["payload"]["code"], "invalid_json");
    let unknown = reply(session.handle_text(
        now,
        r#"{"type": "warp_drive", "message_id": "w"}"#,
        &mut host,
    ));
    assert_eq!(unknown["payload"]["code"], "unknown_message_type");
    assert_eq!(unknown["reply_to"], "w");
    let unsupported =
        reply(session.handle_text(now, r#"{"type": "agent_status_request"}"#, &mut host));
    assert_eq!(unsupported["payload"]["code"], "unsupported_message_type");
    assert_eq!(
        unsupported["payload"]["received_type"],
        "agent_status_request"
    );

    // A type the host handles goes to it, with the message id to answer.
    let handled = session.handle_text(
        now,
        r#"{"type": "user_typing", "message_id": "k"}"#,
        &mut host,
    );
    let Action::Message(message) = handled.action else {
        panic!("expected a message for the handler");
    };
    assert_eq!(message.reply_to.as_deref(), Some("k"));
    assert_eq!(message.request.message_type(), MessageType::UserTyping);

    // A binary frame closes 1003.
    assert_eq!(
        session.handle_binary().info.code(),
        CloseCode::UnsupportedData
    );
}

#[test]
fn the_rate_limit_answers_then_closes_4429_and_a_pause_forgives() {
    let start = Instant::now();
    let config = settings(|c| {
        c.rate_limit_per_sec = 10;
        c.rate_limit_burst = 2;
        c.rate_limit_strikes = 2;
    });
    let mut session = session_with(config, start);
    let mut host = Model::new();
    let ping = r#"{"type": "ping", "message_id": "x"}"#;
    for _ in 0..2 {
        assert_eq!(
            reply(session.handle_text(start, ping, &mut host))["type"],
            "pong"
        );
    }
    for _ in 0..2 {
        let limited = reply(session.handle_text(start, ping, &mut host));
        assert_eq!(limited["payload"]["code"], "rate_limited");
        assert_eq!(limited["reply_to"], "x");
        assert!(
            limited["payload"]["retry_after_ms"]
                .as_u64()
                .expect("retry_after_ms")
                > 0
        );
    }
    // Invalid frames count too.
    let handled = session.handle_text(start, "nope", &mut host);
    let Action::Close(close) = handled.action else {
        panic!("sustained flooding closes");
    };
    assert_eq!(close.info.code(), CloseCode::RateLimited);

    let mut session = session_with(
        settings(|c| {
            c.rate_limit_per_sec = 10;
            c.rate_limit_burst = 1;
            c.rate_limit_strikes = 5;
        }),
        start,
    );
    assert_eq!(
        reply(session.handle_text(start, ping, &mut host))["type"],
        "pong"
    );
    assert_eq!(
        reply(session.handle_text(start, ping, &mut host))["payload"]["code"],
        "rate_limited"
    );
    let later = start + Duration::from_millis(200);
    assert_eq!(
        reply(session.handle_text(later, ping, &mut host))["type"],
        "pong"
    );
}

#[test]
fn runs_are_refused_past_the_limit_and_cancel_asks_the_host() {
    let now = Instant::now();
    let config = settings(|c| {
        c.max_runs_per_connection = 2;
    });
    let mut session = session_with(config, now);
    let mut host = Model::new();
    let start = r#"{"type": "start_agent", "message_id": "s", "payload": {"user_request": "go"}}"#;
    host.runs = 2;
    let refused = reply(session.handle_text(now, start, &mut host));
    assert_eq!(refused["payload"]["code"], "too_many_runs");
    assert_eq!(refused["reply_to"], "s");
    host.runs = 1;
    assert!(matches!(
        session.handle_text(now, start, &mut host).action,
        Action::Run(_)
    ));

    // The host says whether it found the run.
    let cancel = r#"{"type": "stop_agent", "payload": {"run_id": "run_1"}}"#;
    let unknown = reply(session.handle_text(now, cancel, &mut host));
    assert_eq!(unknown["payload"]["code"], "unknown_run");
    host.found = true;
    assert!(matches!(
        session.handle_text(now, cancel, &mut host).action,
        Action::Nothing
    ));
    let all = r#"{"type": "cancel_agent"}"#;
    assert!(matches!(
        session.handle_text(now, all, &mut host).action,
        Action::Nothing
    ));
    assert_eq!(
        host.cancels,
        [Some("run_1".to_owned()), Some("run_1".to_owned()), None]
    );
}

#[test]
fn refresh_replaces_the_token_and_reports_its_exp_clamped_to_rfc3339() {
    let now = Instant::now();
    let mut session = session_with(SessionConfig::default(), now);
    let mut host = Model::new();
    let refresh = |token: &Token| {
        json!({"type": "auth_refresh", "message_id": "r", "payload": {"token": token.expose_secret()}})
            .to_string()
    };

    let exp = 4_102_444_800; // 2100-01-01T00:00:00Z
    let text = refresh(&sign(Claims::new("ann").expires_at(exp)));
    let refreshed = reply(session.handle_text(now, &text, &mut host));
    assert_eq!(refreshed["type"], "auth_refreshed", "{refreshed}");
    assert_eq!(
        refreshed["payload"]["expires_at"],
        "2100-01-01T00:00:00.000Z"
    );
    assert_eq!(refreshed["reply_to"], "r");

    // Far-future expiries: the largest time RFC 3339 writes, never the current time.
    for far in [json!(253_402_300_800u64), json!(1e300)] {
        let text = refresh(&sign(Claims::new("ann").claim("exp", far.clone())));
        let refreshed = reply(session.handle_text(now, &text, &mut host));
        assert_eq!(
            refreshed["payload"]["expires_at"], "9999-12-31T23:59:59.000Z",
            "exp {far}: {refreshed}"
        );
    }

    // Another user's token is refused; the connection stays as it was.
    let text = refresh(&sign(Claims::new("bob")));
    let refused = reply(session.handle_text(now, &text, &mut host));
    assert_eq!(refused["payload"]["code"], "subject_mismatch");
    assert_eq!(session.principal().map(Principal::user_id), Some("ann"));
}

#[test]
fn an_expired_token_closes_4401_unless_refreshed_first() {
    let start = Instant::now();
    let config = Arc::new(SessionConfig::default());
    let soon = principal(Claims::new("ann").expires_in(Duration::from_secs(60)));
    let mut session = Session::new(Arc::clone(&config), soon, start);
    let due = session.poll_timeout();
    assert!(due <= start + Duration::from_secs(60));
    // The first deadline is the heartbeat (25 s): a ping, no close.
    assert!(matches!(session.handle_timeout(due), Some(Timeout::Ping)));
    // A frame arrives, so the pong deadline is cleared; then the token runs out.
    let mut host = Model::new();
    let _ = session.handle_text(due, r#"{"type": "heartbeat"}"#, &mut host);
    let at = start + Duration::from_secs(61);
    let Some(Timeout::Close(close)) = session.handle_timeout(at) else {
        panic!("the expired token closes the connection");
    };
    assert_eq!(close.info.code(), CloseCode::AuthFailed);
    assert_eq!(close.info.reason(), "token_expired");
    let error = wire(close.reply.expect("an error frame first"));
    assert_eq!(error["payload"]["code"], "token_expired");

    // Refreshed in time: no close at the old expiry.
    let soon = principal(Claims::new("ann").expires_in(Duration::from_secs(60)));
    let mut session = Session::new(config, soon, start);
    let text = json!({"type": "auth_refresh", "payload": {"token": sign(Claims::new("ann")).expose_secret()}});
    let _ = session.handle_text(start, &text.to_string(), &mut host);
    assert!(session.poll_timeout() <= start + Duration::from_secs(25));
    let _ = session.handle_timeout(start + Duration::from_secs(25));
    let _ = session.handle_text(
        start + Duration::from_secs(26),
        r#"{"type":"heartbeat"}"#,
        &mut host,
    );
    assert!(
        !matches!(
            session.handle_timeout(start + Duration::from_secs(61)),
            Some(Timeout::Close(_))
        ),
        "the refreshed token lasts an hour"
    );
}

#[test]
fn heartbeats_ping_every_interval_and_close_4408_when_nothing_answers() {
    let start = Instant::now();
    let config = settings(|c| {
        c.heartbeat_interval = Duration::from_secs(25);
        c.pong_timeout = Duration::from_secs(10);
    });
    let mut session = session_with(config, start);
    let mut host = Model::new();
    let at = |secs| start + Duration::from_secs(secs);
    assert_eq!(session.poll_timeout(), at(25));
    assert!(
        session.handle_timeout(at(24)).is_none(),
        "nothing due early"
    );
    assert!(matches!(
        session.handle_timeout(at(25)),
        Some(Timeout::Ping)
    ));
    assert_eq!(session.poll_timeout(), at(35), "the pong deadline");
    // A pong (or any frame) in time clears it.
    assert!(session.handle_control(at(30)).is_none());
    assert!(session.handle_timeout(at(35)).is_none());
    assert!(matches!(
        session.handle_timeout(at(50)),
        Some(Timeout::Ping)
    ));
    let _ = session.handle_text(at(55), r#"{"type":"heartbeat"}"#, &mut host);
    assert!(matches!(
        session.handle_timeout(at(75)),
        Some(Timeout::Ping)
    ));
    // Nothing answers this one.
    let Some(Timeout::Close(close)) = session.handle_timeout(at(85)) else {
        panic!("an unanswered ping closes the connection");
    };
    assert_eq!(close.info.code(), CloseCode::Timeout);
    assert_eq!(close.info.code().as_u16(), 4408);
    assert_eq!(close.info.reason(), "heartbeat_timeout");
    assert!(
        close.reply.is_none(),
        "a close frame only: the peer is not listening"
    );
}

#[test]
fn in_band_authentication_within_the_auth_timeout() {
    let start = Instant::now();
    let config = Arc::new(settings(|c| {
        c.auth_timeout = Duration::from_secs(5);
    }));
    let mut host = Model::new();
    let position = StreamPosition::new("ep_1", 0);

    // Silent: closed 4408 auth_timeout at the deadline, with an error frame.
    let mut silent = Session::awaiting_auth(Arc::clone(&config), start);
    assert!(silent.principal().is_none());
    assert!(
        silent
            .established("c", position.clone(), None, Timestamp::now())
            .is_none()
    );
    assert_eq!(silent.poll_timeout(), start + Duration::from_secs(5));
    assert!(
        silent
            .handle_timeout(start + Duration::from_secs(4))
            .is_none()
    );
    let Some(Timeout::Close(close)) = silent.handle_timeout(start + Duration::from_secs(5)) else {
        panic!("auth timeout");
    };
    assert_eq!(
        (close.info.code().as_u16(), close.info.reason()),
        (4408, "auth_timeout")
    );
    assert_eq!(
        wire(close.reply.expect("error frame"))["payload"]["code"],
        "auth_timeout"
    );

    // A valid token first: authenticated, then the usual session.
    let mut session = Session::awaiting_auth(Arc::clone(&config), start);
    let text = json!({"type": "auth_refresh", "payload": {"token": sign(Claims::new("ina")).expose_secret()}})
        .to_string();
    let handled = session.handle_text(start, &text, &mut host);
    assert!(matches!(handled.action, Action::Authenticated));
    let established = wire(
        session
            .established("conn_1", position, None, Timestamp::now())
            .expect("established once authenticated"),
    );
    assert_eq!(established["payload"]["user_id"], "ina");
    assert_eq!(established["payload"]["heartbeat_interval_ms"], 25_000);
    assert!(matches!(
        session
            .handle_text(start, r#"{"type":"ping"}"#, &mut host)
            .action,
        Action::Reply(_)
    ));

    // Anything else first, or a bad token: 4401 with the reason.
    for (text, code) in [
        (r#"{"type": "ping"}"#.to_owned(), "missing_token"),
        ("garbage".to_owned(), "missing_token"),
        (
            json!({"type": "auth_refresh", "payload": {"token": "a.b.c"}}).to_string(),
            "malformed_token",
        ),
    ] {
        let mut session = Session::awaiting_auth(Arc::clone(&config), start);
        let Action::Close(close) = session.handle_text(start, &text, &mut host).action else {
            panic!("{text}: closes");
        };
        assert_eq!(close.info.code(), CloseCode::AuthFailed, "{text}");
        let error = wire(close.reply.expect("error frame"));
        assert_eq!(error["payload"]["code"], code, "{text}");
    }
}
