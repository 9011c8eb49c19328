//! Outbound frames: the exact text, the one envelope, encoding once, reading frames back.

use agentwire_events::{
    AgentThinking, ConnectionEstablished, ErrorCode, ErrorReply, Event, Frame, HeartbeatAck,
    OtherPayload, PROTOCOL_VERSION, Payload, Stamp, StreamPosition, StreamStamper, Timestamp,
    ToolCompleted, ToolExecuting, ToolStatus, parse_outbound,
};
use agentwire_types::MessageType;
use serde_json::{Value, json};

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms).unwrap()
}

fn stamp(id: &str, seq: Option<u64>) -> Stamp {
    let stamp = Stamp::new(id, at(1_735_787_045_678));
    match seq {
        Some(seq) => stamp.with_seq(seq),
        None => stamp,
    }
}

#[test]
fn tool_completed_exact_text() {
    let frame = Event::in_run(
        "run_1",
        ToolCompleted::ok("search", "call_1", json!({"hits": 3}), 12),
    )
    .with_thread_id("thread_9")
    .with_reply_to("m1")
    .stamp(stamp("evt_1", Some(17)));
    assert_eq!(
        frame.to_json(),
        r#"{"type":"tool_completed","event_id":"evt_1","timestamp":"2025-01-02T03:04:05.678Z","run_id":"run_1","thread_id":"thread_9","seq":17,"reply_to":"m1","payload":{"tool_name":"search","tool_call_id":"call_1","result":{"hits":3},"duration_ms":12,"status":"ok"}}"#
    );
}

#[test]
fn control_frames_exact_text() {
    let cases = [
        (
            Event::pong(at(0)).with_reply_to("m2"),
            r#"{"type":"pong","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","reply_to":"m2","payload":{"server_time":"1970-01-01T00:00:00.000Z"}}"#,
        ),
        (
            Event::heartbeat_ack(),
            r#"{"type":"heartbeat_ack","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","payload":{}}"#,
        ),
        (
            Event::new(ErrorReply::rate_limited(250)),
            r#"{"type":"error","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","payload":{"code":"rate_limited","message":"too many messages; wait retry_after_ms before sending again","retry_after_ms":250}}"#,
        ),
        (
            Event::auth_refreshed(at(1_000)),
            r#"{"type":"auth_refreshed","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","payload":{"expires_at":"1970-01-01T00:00:01.000Z"}}"#,
        ),
        (
            Event::connection_established(ConnectionEstablished::new(
                "c1",
                "u1",
                25_000,
                65_536,
                at(0),
                StreamPosition::new("ep1", 0),
            )),
            r#"{"type":"connection_established","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","payload":{"connection_id":"c1","user_id":"u1","protocol_version":1,"heartbeat_interval_ms":25000,"max_message_bytes":65536,"server_time":"1970-01-01T00:00:00.000Z","stream":{"epoch":"ep1","seq":0}}}"#,
        ),
    ];
    for (event, expected) in cases {
        let frame = event.stamp(stamp("e", None));
        assert_eq!(frame.to_json(), expected);
        assert_eq!(parse_outbound(expected).unwrap(), frame);
    }
}

#[test]
fn payloads_and_stamps_are_built_with_constructors() {
    let position = StreamPosition::new("ep1", 3);
    assert_eq!((position.epoch.as_str(), position.seq), ("ep1", 3));
    let established = ConnectionEstablished::new("c1", "u1", 25_000, 65_536, at(0), position);
    assert_eq!(established.protocol_version, PROTOCOL_VERSION);
    assert_eq!(established.connection_id, "c1");
    assert_eq!(established.user_id, "u1");
    assert_eq!(
        (
            established.heartbeat_interval_ms,
            established.max_message_bytes
        ),
        (25_000, 65_536)
    );
    assert_eq!(established.server_time, at(0));
    assert_eq!(established.stream, StreamPosition::new("ep1", 3));
    let next = established.clone().with_protocol_version(2);
    assert_eq!(next.protocol_version, 2);
    assert_ne!(next, established);

    assert_eq!(HeartbeatAck::new(), HeartbeatAck::default());

    let stamp = Stamp::new("e", at(5));
    assert_eq!(stamp.event_id, "e");
    assert_eq!((stamp.timestamp, stamp.seq), (at(5), None));
    assert_eq!(stamp.with_seq(9).seq, Some(9));
}

#[test]
fn every_frame_has_the_one_envelope() {
    let mut stream = StreamStamper::new();
    let events = [
        Event::agent_started("r", "demo", "q"),
        Event::in_run("r", AgentThinking::new("hmm").with_step(1)),
        Event::in_run("r", ToolExecuting::new("t", "c").with_parameter("k", 1)),
        Event::in_run(
            "r",
            ToolCompleted::error("t", "c", json!({"error": "boom"}), 5),
        ),
        Event::agent_response_chunk("r", "part", 0),
        Event::agent_completed("r", json!(null), 9),
        Event::agent_error("r", "cancelled", "cancelled by the client", false),
        Event::pong(at(0)),
        Event::heartbeat_ack(),
        Event::error(ErrorCode::InvalidPayload, "payload.x: bad"),
        Event::auth_refreshed(at(0)),
        Event::new(
            OtherPayload::new(
                MessageType::ThreadUpdate,
                json!({"title": "x"}).as_object().unwrap().clone(),
            )
            .unwrap(),
        ),
    ];
    let allowed = [
        "type",
        "event_id",
        "timestamp",
        "run_id",
        "thread_id",
        "seq",
        "reply_to",
        "payload",
    ];
    for event in events {
        let frame = stream.stamp(event);
        let value: Value = serde_json::from_str(&frame.to_json()).unwrap();
        let object = value.as_object().unwrap();
        for key in object.keys() {
            assert!(allowed.contains(&key.as_str()), "{key}");
        }
        for required in ["type", "event_id", "timestamp", "payload"] {
            assert!(object.contains_key(required), "{required} in {value}");
        }
        assert!(object["payload"].is_object());
        assert!(
            !frame.to_json().contains("null")
                || frame.message_type() == MessageType::AgentCompleted
        );
        assert_eq!(object.contains_key("seq"), frame.event().is_stream_event());
        assert_eq!(object["type"], frame.message_type().as_str());
        assert_eq!(parse_outbound(&frame.to_json()).unwrap(), frame);
    }
}

#[test]
fn encode_once_and_share() {
    let mut stream = StreamStamper::resume("ep", 16);
    let encoded = stream.emit(Event::tool_completed("r", "t", "c", json!([1, 2]), 3));
    let copies: Vec<_> = (0..100).map(|_| encoded.clone()).collect();
    let first: std::sync::Arc<str> = copies[0].text();
    assert!(copies.iter().all(|c| std::ptr::eq(c.as_str(), &*first)));
    assert_eq!(encoded.seq(), Some(17));
    assert_eq!(encoded.message_type(), MessageType::ToolCompleted);
    let frame = parse_outbound(encoded.as_str()).unwrap();
    assert_eq!(frame.seq(), Some(17));
    assert!(frame.event_id().starts_with("evt_"));
    let bytes: &[u8] = encoded.as_ref();
    assert_eq!(bytes, encoded.as_str().as_bytes());
}

#[test]
fn parse_outbound_is_strict() {
    let good = json!({
        "type": "agent_thinking", "event_id": "e1", "timestamp": "2025-01-02T03:04:05.678Z",
        "run_id": "r", "seq": 2, "payload": {"reasoning": "x"}
    });
    assert!(parse_outbound(&good.to_string()).is_ok());
    let bad = |patch: &dyn Fn(&mut Value)| {
        let mut value = good.clone();
        patch(&mut value);
        parse_outbound(&value.to_string()).unwrap_err()
    };
    type Patch = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Patch)> = vec![
        ("type", Box::new(|v| v["type"] = json!("agent_thinking_x"))),
        ("alias", Box::new(|v| v["type"] = json!("AGENT_THINKING"))),
        ("alias", Box::new(|v| v["type"] = json!("tool_started"))),
        (
            "never sent by a server",
            Box::new(|v| v["type"] = json!("start_agent")),
        ),
        (
            "event_id",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("event_id"))),
        ),
        (
            "timestamp",
            Box::new(|v| v["timestamp"] = json!(1_735_787_045)),
        ),
        (
            "timestamp",
            Box::new(|v| v["timestamp"] = json!("2025-01-02T03:04:05.678")),
        ),
        ("run_id", Box::new(|v| v["run_id"] = Value::Null)),
        ("seq", Box::new(|v| v["seq"] = json!(-1))),
        (
            "payload",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("payload"))),
        ),
        ("payload", Box::new(|v| v["payload"] = json!([]))),
        ("reasoning", Box::new(|v| v["payload"] = json!({"step": 1}))),
    ];
    for (needle, patch) in cases {
        let err = bad(&*patch);
        assert_eq!(err.code(), "invalid_frame");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    assert_eq!(parse_outbound("{").unwrap_err().code(), "invalid_json");
    // Unknown fields are ignored (forward compatibility).
    let mut extra = good.clone();
    extra["new_field"] = json!(1);
    extra["payload"]["new_field"] = json!(1);
    assert!(parse_outbound(&extra.to_string()).is_ok());
}

#[test]
fn frames_deserialize_through_serde() {
    let frame = Event::agent_completed("r", json!({"answer": 42}), 7).stamp(stamp("e9", Some(3)));
    let back: Frame = serde_json::from_value(serde_json::to_value(&frame).unwrap()).unwrap();
    assert_eq!(back, frame);
    assert!(matches!(back.payload(), Payload::AgentCompleted(p) if p.duration_ms == 7));
}

#[test]
fn other_payload_refuses_typed_and_client_types() {
    let empty = serde_json::Map::new();
    let err = OtherPayload::new(MessageType::ToolCompleted, empty.clone()).unwrap_err();
    assert_eq!(err.code(), "not_a_generic_type");
    assert!(OtherPayload::new(MessageType::StartAgent, empty.clone()).is_err());
    assert!(OtherPayload::new(MessageType::SystemMessage, empty).is_ok());
    assert_eq!(
        serde_json::to_string(&ToolStatus::Error).unwrap(),
        r#""error""#
    );
}

#[test]
fn error_codes_are_one_list() {
    let mut seen = std::collections::HashSet::new();
    for &code in ErrorCode::ALL {
        assert!(seen.insert(code.as_str()), "{code} twice");
        assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        assert_eq!(code.to_string(), code.as_str());
        let event = Event::error(code, "m");
        let Payload::ErrorReply(reply) = event.payload() else {
            panic!("{code}: not an error payload")
        };
        assert_eq!(reply.code, code.as_str());
        assert_eq!(reply.error_code(), Some(code));
    }
    assert_eq!(ErrorCode::parse("TOO_MANY_RUNS"), None);
    assert_eq!(ErrorCode::parse(""), None);

    // The codes of the other lists: an authentication code, a handler's own code.
    for (event, code) in [
        (Event::error("invalid_signature", "m"), "invalid_signature"),
        (
            Event::error(String::from("quota_exceeded"), "m"),
            "quota_exceeded",
        ),
    ] {
        let Payload::ErrorReply(reply) = event.payload() else {
            panic!("{code}: not an error payload")
        };
        assert_eq!(reply.code, code);
        assert_eq!(reply.error_code(), None);
    }
}

#[test]
fn error_reply_optional_fields() {
    let reply = ErrorReply::new(ErrorCode::InvalidPayload, "payload.user_request: missing")
        .with_received_type("start_agent")
        .with_field("payload.user_request")
        .with_position(1, 17)
        .with_retry_after_ms(5);
    let frame = Event::new(reply).stamp(stamp("e", None));
    assert_eq!(
        frame.to_json(),
        r#"{"type":"error","event_id":"e","timestamp":"2025-01-02T03:04:05.678Z","payload":{"code":"invalid_payload","message":"payload.user_request: missing","received_type":"start_agent","field":"payload.user_request","line":1,"column":17,"retry_after_ms":5}}"#
    );
    assert_eq!(parse_outbound(&frame.to_json()).unwrap(), frame);
}

#[test]
fn connection_established_carries_the_resume_outcome_and_reads_back() {
    use agentwire_events::{ConnectionEstablished, ResumeOutcome, StreamPosition, Timestamp};
    let base = || {
        ConnectionEstablished::new(
            "conn_1",
            "u1",
            25_000,
            65_536,
            Timestamp::from_unix_millis(1_735_787_045_000).expect("time"),
            StreamPosition::new("ep_1", 17),
        )
    };
    for (resume, json) in [
        (None, None),
        (
            Some(ResumeOutcome::Resumed {
                replayed: 3,
                from_seq: 15,
                to_seq: 17,
            }),
            Some(r#""resume":{"status":"resumed","replayed":3,"from_seq":15,"to_seq":17}"#),
        ),
        (
            Some(ResumeOutcome::Reset {
                reason: "epoch_changed".to_owned(),
            }),
            Some(r#""resume":{"status":"reset","reason":"epoch_changed"}"#),
        ),
    ] {
        let payload = match resume.clone() {
            Some(resume) => base().with_resume(resume),
            None => base(),
        };
        let frame = Event::connection_established(payload).stamp_control();
        let text = frame.to_json();
        match json {
            Some(json) => assert!(text.contains(json), "{text}"),
            None => assert!(!text.contains("resume"), "{text}"),
        }
        // The fast writer and serde agree, and a strict reader reads it back equal.
        assert_eq!(serde_json::to_string(&frame).expect("serde"), text);
        assert_eq!(parse_outbound(&text).expect("reads back"), frame);
    }
}
