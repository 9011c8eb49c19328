//! parse_inbound: every accepted form and every error code.

use std::borrow::Cow;

use agentwire_events::{
    AuthRefresh, CancelAgent, ErrorCode, Inbound, InboundErrorKind, Payload, Request, RunRequest,
    Timestamp, parse_inbound,
};
use agentwire_types::{ALIASES, AliasTarget, MessageType};

fn run_request<'a>(inbound: &'a Inbound<'_>) -> &'a RunRequest<'a> {
    match inbound.request() {
        Request::StartAgent(r) | Request::UserMessage(r) => r,
        other => panic!("not a run request: {other:?}"),
    }
}

#[test]
fn start_agent_in_every_documented_form() {
    for text in [
        r#"{"type":"start_agent","payload":{"user_request":"hi"}}"#,
        r#"{"type":"start_agent","data":{"user_request":"hi"}}"#,
        r#"{"type":"execute_agent","payload":{"message":"hi"}}"#,
        r#"{"type":"EXECUTE_AGENT","payload":{"content":"hi"}}"#,
        r#"{"type":"Agent_Execute","payload":{"text":"hi"}}"#,
        r#"{"payload":{"text":"hi","user_request":null},"type":"start_agent"}"#,
        r#"{"type":"start_agent","payload":null,"data":{"user_request":"hi"}}"#,
        "  {\"type\" : \"start_agent\" ,\n \"payload\" : { \"user_request\" : \"hi\" } }\n ",
    ] {
        let inbound = parse_inbound(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(inbound.message_type(), MessageType::StartAgent, "{text}");
        assert!(
            matches!(inbound.request(), Request::StartAgent(_)),
            "{text}"
        );
        assert_eq!(run_request(&inbound).text, "hi", "{text}");
    }
}

#[test]
fn text_field_priority() {
    let both = r#"{"type":"start_agent","payload":{"text":"low","user_request":"high"}}"#;
    assert_eq!(run_request(&parse_inbound(both).unwrap()).text, "high");
    let chat = r#"{"type":"chat_message","payload":{"user_request":"low","message":"high"}}"#;
    let inbound = parse_inbound(chat).unwrap();
    assert_eq!(inbound.message_type(), MessageType::UserMessage);
    assert_eq!(run_request(&inbound).text, "high");
}

#[test]
fn user_message_aliases() {
    for name in [
        "user_message",
        "chat_message",
        "user",
        "user_input",
        "message",
        "chat",
    ] {
        let text = format!(r#"{{"type":"{name}","payload":{{"content":"hello"}}}}"#);
        let inbound = parse_inbound(&text).unwrap();
        assert!(matches!(inbound.request(), Request::UserMessage(r) if r.text == "hello"));
        assert_eq!(inbound.received_type(), name);
    }
}

#[test]
fn every_client_sendable_alias_parses_or_is_refused_with_a_code() {
    for alias in ALIASES {
        let text = format!(
            r#"{{"type":"{}","payload":{{"message":"x","token":"t"}}}}"#,
            alias.name
        );
        match (alias.target, parse_inbound(&text)) {
            (AliasTarget::Type(t), Ok(inbound)) => {
                assert!(t.direction().client_may_send(), "{}", alias.name);
                assert_eq!(inbound.message_type(), t);
            }
            (AliasTarget::Type(t), Err(e)) => {
                assert!(!t.direction().client_may_send(), "{}: {e}", alias.name);
                assert_eq!(e.code(), ErrorCode::UnsupportedMessageType);
                assert_eq!(e.message_type(), Some(t));
            }
            (AliasTarget::Rejected(_), Err(e)) => {
                assert_eq!(
                    e.code(),
                    ErrorCode::UnsupportedMessageType,
                    "{}",
                    alias.name
                );
                assert_eq!(e.received_type(), Some(alias.name));
            }
            (target, result) => panic!("{}: {target:?} gave {result:?}", alias.name),
        }
    }
}

#[test]
fn envelope_fields() {
    let text = r#"{"type":"ping","message_id":"m-1","thread_id":"t-1","timestamp":1735787045.678,
                   "extra":{"ignored":[1,2,{"deep":true}]},"payload":{"whatever":1}}"#;
    let inbound = parse_inbound(text).unwrap();
    assert_eq!(inbound.request(), &Request::Ping);
    assert_eq!(inbound.message_id(), Some("m-1"));
    assert_eq!(inbound.thread_id(), Some("t-1"));
    assert_eq!(
        inbound.timestamp(),
        Timestamp::from_unix_millis(1_735_787_045_678)
    );

    let numbered = parse_inbound(r#"{"type":"heartbeat","message_id":42}"#).unwrap();
    assert_eq!(numbered.request(), &Request::Heartbeat);
    assert_eq!(numbered.message_id(), Some("42"));

    let nulls = parse_inbound(
        r#"{"type":"ping","message_id":null,"thread_id":null,"timestamp":null,"payload":null}"#,
    )
    .unwrap();
    assert_eq!(nulls, Inbound::ping());
}

#[test]
fn timestamps_in_every_form() {
    let expected = Timestamp::from_unix_millis(1_735_787_045_678);
    for ts in [
        "1735787045.678",
        "1735787045678",
        "1.735787045678e9",
        r#""2025-01-02T03:04:05.678Z""#,
        r#""2025-01-02T04:04:05.678+01:00""#,
        r#""2025-01-02T03:04:05.678123""#,
    ] {
        let text = format!(r#"{{"type":"ping","timestamp":{ts}}}"#);
        assert_eq!(parse_inbound(&text).unwrap().timestamp(), expected, "{ts}");
    }
    for ts in [
        r#""yesterday""#,
        "true",
        "[]",
        "1e300",
        r#""2025-02-30T00:00:00Z""#,
    ] {
        let text = format!(r#"{{"type":"ping","message_id":"m","timestamp":{ts}}}"#);
        let err = parse_inbound(&text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload, "{ts}");
        assert_eq!(err.field(), Some("timestamp"), "{ts}");
        assert_eq!(err.message_id(), Some("m"));
    }
}

#[test]
fn run_request_optional_fields() {
    let text = r#"{"type":"start_agent","thread_id":"env","payload":{"user_request":"go",
                   "agent_name":"travel","thread_id":"t9","context":{"tz":"UTC","n":[1,2]}}}"#;
    let inbound = parse_inbound(text).unwrap();
    let run = run_request(&inbound);
    assert_eq!(run.agent_name.as_deref(), Some("travel"));
    assert_eq!(run.thread_id.as_deref(), Some("t9"));
    assert_eq!(
        run.context.as_ref().unwrap().get(),
        r#"{"tz":"UTC","n":[1,2]}"#
    );
    assert_eq!(
        run.context.as_ref().unwrap().to_value(),
        serde_json::json!({"tz": "UTC", "n": [1, 2]})
    );
    assert_eq!(inbound.thread_id(), Some("env"));
    assert_eq!(inbound.resolved_thread_id(), Some("t9"));

    let no_payload_thread =
        parse_inbound(r#"{"type":"start_agent","thread_id":"env","payload":{"text":"go"}}"#)
            .unwrap();
    assert_eq!(no_payload_thread.resolved_thread_id(), Some("env"));
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let text = r#"{"type":"start_agent","message_id":"m1","payload":{"user_request":"plain","agent_name":"esc\u0061ped"}}"#;
    let inbound = parse_inbound(text).unwrap();
    let run = run_request(&inbound);
    assert!(matches!(run.text, Cow::Borrowed("plain")));
    assert!(matches!(&run.agent_name, Some(Cow::Owned(s)) if s == "escaped"));
    // Detached from the input, the frame is equal.
    let owned: Inbound<'static> = inbound.clone().into_owned();
    assert_eq!(owned, inbound);
}

#[test]
fn auth_refresh_and_its_redaction() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl";
    let text =
        format!(r#"{{"type":"auth_refresh","message_id":"m","payload":{{"token":"{token}"}}}}"#);
    let inbound = parse_inbound(&text).unwrap();
    let Request::AuthRefresh(refresh) = inbound.request() else {
        panic!("not auth_refresh");
    };
    assert_eq!(refresh.token.expose(), token);
    for debug in [format!("{inbound:?}"), format!("{:#?}", inbound.request())] {
        assert!(!debug.contains(token), "{debug}");
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(debug.contains("redacted"));
    }
    // Errors about the token never carry it either.
    for bad in [
        r#"{"type":"auth_refresh","payload":{"token":12345678901234567890}}"#,
        r#"{"type":"auth_refresh","payload":{"token":""}}"#,
        r#"{"type":"auth_refresh","payload":{}}"#,
        r#"{"type":"auth_refresh"}"#,
    ] {
        let err = parse_inbound(bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload, "{bad}");
        assert_eq!(err.field(), Some("payload.token"), "{bad}");
        assert!(!err.message().contains("1234567890"), "{}", err.message());
    }
}

#[test]
fn cancel_agent() {
    let inbound = parse_inbound(r#"{"type":"stop_processing","payload":{"run_id":"r1"}}"#).unwrap();
    assert!(
        matches!(inbound.request(), Request::CancelAgent(c) if c.run_id.as_deref() == Some("r1"))
    );
    let current = parse_inbound(r#"{"type":"cancel_agent"}"#).unwrap();
    assert!(matches!(current.request(), Request::CancelAgent(c) if c.run_id.is_none()));

    // The bodies as a client builds them.
    assert_eq!(current.request(), &Request::CancelAgent(CancelAgent::new()));
    assert_eq!(CancelAgent::new(), CancelAgent::default());
    let named = Request::CancelAgent(CancelAgent::new().with_run_id(String::from("r1")));
    assert_eq!(inbound.request(), &named);
    assert_eq!(named.into_owned(), inbound.into_owned().into_request());
}

#[test]
fn auth_refresh_bodies_are_built_and_detached() {
    let token = String::from("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl");
    let owned: AuthRefresh<'static> = {
        let refresh = AuthRefresh::new(token.as_str());
        assert_eq!(refresh.token.expose(), token);
        refresh.into_owned()
    };
    drop(token);
    let frame = Inbound::new(Request::AuthRefresh(owned.clone()));
    assert_eq!(
        parse_inbound(&frame.to_json()).unwrap().request(),
        &Request::AuthRefresh(owned)
    );
}

#[test]
fn other_client_types_keep_their_raw_payload() {
    let inbound =
        parse_inbound(r#"{"type":"jsonrpc_request","data":{"jsonrpc":"2.0","id":1,"method":"x"}}"#)
            .unwrap();
    let Request::Other(other) = inbound.request() else {
        panic!("not generic");
    };
    assert_eq!(other.message_type(), MessageType::JsonrpcRequest);
    assert_eq!(
        other.payload().unwrap().get(),
        r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#
    );
    let typing = parse_inbound(r#"{"type":"typing"}"#).unwrap();
    assert!(matches!(typing.request(), Request::Other(o) if o.payload().is_none()));
    assert_eq!(typing.message_type(), MessageType::UserTyping);
}

#[test]
fn invalid_json_has_line_and_column() {
    let err = parse_inbound("{\"type\": \"ping\",\n  \"payload\": {oops}}").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidJson);
    assert_eq!(err.line_column(), Some((2, 15)));
    assert!(
        err.message().contains("line 2 column 15"),
        "{}",
        err.message()
    );
    assert_eq!(err.message_id(), None);

    for text in [
        "",
        "   ",
        "not json",
        "{",
        "[1,",
        "{\"type\":\"ping\"} trailing",
        "\u{feff}{}",
        r#"{"type":"start_agent","payload":{"text":"\ud800"}}"#,
    ] {
        let err = parse_inbound(text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidJson, "{text:?}");
        assert!(matches!(err.kind(), InboundErrorKind::InvalidJson { .. }));
    }
}

#[test]
fn wrong_shapes_name_the_field() {
    let cases = [
        ("[1,2]", ""),
        ("\"start_agent\"", ""),
        ("42", ""),
        ("null", ""),
        ("{}", "type"),
        (r#"{"type":7}"#, "type"),
        (r#"{"type":"ping","type":"ping"}"#, "type"),
        (r#"{"type":"ping","message_id":{"a":1}}"#, "message_id"),
        (r#"{"type":"ping","message_id":1.5}"#, "message_id"),
        (r#"{"type":"ping","thread_id":["t"]}"#, "thread_id"),
        (r#"{"type":"start_agent"}"#, "payload.user_request"),
        (
            r#"{"type":"start_agent","payload":{}}"#,
            "payload.user_request",
        ),
        (r#"{"type":"start_agent","data":{}}"#, "data.user_request"),
        (r#"{"type":"start_agent","payload":[]}"#, "payload"),
        (r#"{"type":"start_agent","payload":"hi"}"#, "payload"),
        (
            r#"{"type":"start_agent","payload":{"user_request":7}}"#,
            "payload.user_request",
        ),
        (
            r#"{"type":"start_agent","payload":{"message":{"text":"x"}}}"#,
            "payload.message",
        ),
        (
            r#"{"type":"start_agent","payload":{"user_request":"  "}}"#,
            "payload.user_request",
        ),
        (r#"{"type":"user_message","data":{}}"#, "data.message"),
        (
            r#"{"type":"user_message","payload":{"text":"a","text":"b"}}"#,
            "payload.text",
        ),
        (
            r#"{"type":"start_agent","payload":{"text":"a","agent_name":1}}"#,
            "payload.agent_name",
        ),
        (
            r#"{"type":"start_agent","payload":{"text":"a","thread_id":false}}"#,
            "payload.thread_id",
        ),
        (
            r#"{"type":"start_agent","payload":{"text":"a","context":"x"}}"#,
            "payload.context",
        ),
        (
            r#"{"type":"start_agent","payload":{"text":"a","context":[1]}}"#,
            "payload.context",
        ),
        (
            r#"{"type":"cancel_agent","payload":{"run_id":1}}"#,
            "payload.run_id",
        ),
    ];
    for (text, field) in cases {
        let err = parse_inbound(text).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload, "{text}: {err}");
        assert_eq!(err.field(), Some(field), "{text}: {err}");
        if !field.is_empty() {
            assert!(err.message().starts_with(field), "{text}: {err}");
        }
    }
}

#[test]
fn unknown_and_unsupported_types_carry_id_and_type() {
    let err =
        parse_inbound(r#"{"type":"factory_stuff","message_id":"m7","payload":{}}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownMessageType);
    assert_eq!(err.code().as_str(), "unknown_message_type");
    assert_eq!(err.message_id(), Some("m7"));
    assert_eq!(err.received_type(), Some("factory_stuff"));
    assert_eq!(err.message_type(), None);

    let err = parse_inbound(r#"{"message_id":"m8","type":"tool_completed"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedMessageType);
    assert_eq!(err.message_type(), Some(MessageType::ToolCompleted));
    assert_eq!(err.message_id(), Some("m8"));

    let err = parse_inbound(r#"{"type":"broadcast_test","message_id":9}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedMessageType);
    assert_eq!(err.message_id(), Some("9"));

    // A long type name is kept cut, on a character boundary.
    let long = "é".repeat(100);
    let err = parse_inbound(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
    assert_eq!(err.received_type().map(str::len), Some(64));

    // The id is still read when the type is missing.
    let err = parse_inbound(r#"{"message_id":"m9"}"#).unwrap_err();
    assert_eq!((err.field(), err.message_id()), (Some("type"), Some("m9")));
}

#[test]
fn error_events_answer_the_client() {
    let err = parse_inbound(r#"{"type":"nope","message_id":"m1"}"#).unwrap_err();
    let event = err.to_event();
    assert_eq!(event.message_type(), MessageType::Error);
    assert_eq!(event.reply_to(), Some("m1"));
    let Payload::ErrorReply(reply) = event.payload() else {
        panic!("not an error payload");
    };
    assert_eq!(reply.code, "unknown_message_type");
    assert_eq!(reply.received_type.as_deref(), Some("nope"));

    let err = parse_inbound("{\n").unwrap_err();
    let Payload::ErrorReply(reply) = err.to_event().into_payload() else {
        panic!("not an error payload");
    };
    assert_eq!(
        (reply.code.as_ref(), reply.line, reply.column),
        ("invalid_json", Some(2), Some(0))
    );

    let err = parse_inbound(r#"{"type":"start_agent","message_id":"m3"}"#).unwrap_err();
    let frame = err.to_event().stamp_control();
    let json = frame.to_json();
    assert!(json.contains(r#""reply_to":"m3""#), "{json}");
    assert!(json.contains(r#""field":"payload.user_request""#), "{json}");
    assert!(!json.contains("seq"), "{json}");
}

#[test]
fn deep_nesting_and_huge_input_do_not_panic() {
    let deep = format!(
        r#"{{"type":"ping","extra":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let _ = parse_inbound(&deep);
    let deep_payload = format!(
        r#"{{"type":"jsonrpc_request","payload":{}1{}}}"#,
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let _ = parse_inbound(&deep_payload);
    let unclosed = "{\"type\":".to_owned() + &"[".repeat(200_000);
    assert_eq!(
        parse_inbound(&unclosed).unwrap_err().code(),
        ErrorCode::InvalidJson
    );
}

#[test]
fn builders_write_the_canonical_form() {
    let frame = Inbound::user_message(
        RunRequest::new("hello")
            .with_thread_id("t1")
            .with_context(&serde_json::json!({"lang": "en"})),
    )
    .with_message_id("m1")
    .with_timestamp(Timestamp::from_unix_millis(0).unwrap());
    assert_eq!(
        frame.to_json(),
        r#"{"type":"user_message","message_id":"m1","timestamp":"1970-01-01T00:00:00.000Z","payload":{"message":"hello","thread_id":"t1","context":{"lang":"en"}}}"#
    );
    assert_eq!(Inbound::ping().to_json(), r#"{"type":"ping","payload":{}}"#);
    assert_eq!(
        Inbound::cancel_agent(Some("r1")).to_json(),
        r#"{"type":"cancel_agent","payload":{"run_id":"r1"}}"#
    );
    assert_eq!(
        Inbound::auth_refresh("tok").to_json(),
        r#"{"type":"auth_refresh","payload":{"token":"tok"}}"#
    );
}
