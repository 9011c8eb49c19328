//! `ConnectionRecord`: JSON shape, round trips, severities, tracing output, and no token ever.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentwire_state::{
    CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters, MAX_ID_BYTES,
    MAX_ORIGIN_BYTES, MAX_REASON_BYTES, REDACTED, Severity, TRACING_TARGET,
};
use proptest::prelude::*;
use serde_json::Value;

fn closed_record() -> ConnectionRecord<'static> {
    ConnectionRecord::new("c-1f2e", ConnectionState::Closed)
        .with_previous_state(ConnectionState::Closing)
        .with_user_id("user-42")
        .with_close(CloseInfo::new(CloseCode::AuthFailed, "token_expired"))
        .with_remote_addr("203.0.113.9:50412".parse().unwrap())
        .with_origin("https://app.example.com")
        .with_counters(Counters::new().with_in(3, 310).with_out(5, 1204))
        .with_duration(Duration::from_millis(1520))
        .with_connected(Duration::from_millis(1490))
}

#[test]
fn json_shape_is_flat_with_severity_and_message_first() {
    let json = closed_record().to_json();
    assert_eq!(
        json,
        concat!(
            r#"{"severity":"NOTICE","message":"connection closed: 4401 auth_failed: token_expired","#,
            r#""target":"agentwire::connection","connection_id":"c-1f2e","user_id":"user-42","#,
            r#""state":"closed","previous_state":"closing","close_code":4401,"#,
            r#""close_name":"auth_failed","close_reason":"token_expired","#,
            r#""remote_addr":"203.0.113.9:50412","origin":"https://app.example.com","#,
            r#""frames_in":3,"frames_out":5,"bytes_in":310,"bytes_out":1204,"#,
            r#""duration_ms":1520,"connected_ms":1490}"#
        )
    );
    assert_eq!(serde_json::to_string(&closed_record()).unwrap(), json);
    let mut buf = b"prefix ".to_vec();
    closed_record().write_json(&mut buf);
    assert_eq!(&buf[7..], json.as_bytes());
}

#[test]
fn a_minimal_record_omits_what_is_not_set() {
    let record = ConnectionRecord::new("c-1", ConnectionState::Connecting);
    assert_eq!(
        record.to_json(),
        r#"{"severity":"DEBUG","message":"connection connecting","target":"agentwire::connection","connection_id":"c-1","state":"connecting","frames_in":0,"frames_out":0,"bytes_in":0,"bytes_out":0,"duration_ms":0}"#
    );
    assert_eq!(serde_json::to_string(&record).unwrap(), record.to_json());
    let back: ConnectionRecord<'_> = serde_json::from_str(&record.to_json()).unwrap();
    assert_eq!(back, record);
}

#[test]
fn the_two_writers_agree_on_awkward_strings() {
    let awkward = "q\"b\\n\n\u{1}\u{1f}\u{7f}é😀\u{2028}";
    let record = ConnectionRecord::new(awkward, ConnectionState::Failed)
        .with_user_id(awkward)
        .with_origin(awkward)
        .with_close(CloseInfo::new(CloseCode::from_u16(3999), awkward))
        .with_remote_addr("[fe80::1%7]:443".parse().unwrap())
        .with_connected(Duration::from_millis(u64::MAX));
    let json = record.to_json();
    assert_eq!(json, serde_json::to_string(&record).unwrap());
    let back: ConnectionRecord<'_> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
}

#[test]
fn severity_follows_state_and_close_code() {
    let rec = |state| ConnectionRecord::new("c", state);
    let closed = |code: u16| {
        rec(ConnectionState::Closed)
            .with_close(CloseInfo::code_only(CloseCode::from_u16(code)))
            .severity()
    };
    let failed = |code: u16| {
        rec(ConnectionState::Failed)
            .with_close(CloseInfo::code_only(CloseCode::from_u16(code)))
            .severity()
    };
    assert_eq!(rec(ConnectionState::Connecting).severity(), Severity::Debug);
    assert_eq!(rec(ConnectionState::Open).severity(), Severity::Info);
    assert_eq!(rec(ConnectionState::Closing).severity(), Severity::Debug);
    assert_eq!(rec(ConnectionState::Closed).severity(), Severity::Info);
    assert_eq!(rec(ConnectionState::Failed).severity(), Severity::Notice);
    assert_eq!(closed(1000), Severity::Info);
    assert_eq!(closed(1001), Severity::Info);
    assert_eq!(closed(1009), Severity::Notice);
    assert_eq!(closed(4401), Severity::Notice);
    assert_eq!(closed(4008), Severity::Warning);
    assert_eq!(closed(1011), Severity::Error);
    assert_eq!(failed(1000), Severity::Notice);
    assert_eq!(failed(1011), Severity::Error);
}

#[test]
fn counters_saturate() {
    let mut c = Counters::new();
    c.record_in(10);
    c.record_out(20);
    c.record_out(usize::MAX);
    c.record_out(usize::MAX);
    assert_eq!((c.frames_in, c.bytes_in, c.frames_out), (1, 10, 3));
    assert_eq!(c.bytes_out, u64::MAX);
}

#[test]
fn counters_set_at_once_equal_counters_counted() {
    let mut counted = Counters::new();
    for bytes in [4, 6] {
        counted.record_in(bytes);
    }
    counted.record_out(7);
    assert_eq!(counted, Counters::new().with_in(2, 10).with_out(1, 7));
    assert_eq!(Counters::new(), Counters::default());
}

#[test]
fn long_strings_are_cut_to_their_limits() {
    let record = ConnectionRecord::new("i".repeat(1000), ConnectionState::Open)
        .with_user_id("ü".repeat(1000))
        .with_origin("o".repeat(10_000))
        .with_close(CloseInfo::new(CloseCode::PolicyViolation, "r".repeat(1000)));
    assert_eq!(record.connection_id().len(), MAX_ID_BYTES);
    assert_eq!(record.user_id().unwrap().len(), MAX_ID_BYTES);
    assert_eq!(record.origin().unwrap().len(), MAX_ORIGIN_BYTES);
    assert_eq!(record.close().unwrap().reason().len(), MAX_REASON_BYTES);
}

#[test]
fn reading_ignores_derived_and_unknown_fields_and_accepts_legacy_states() {
    let json = r#"{"severity":"nonsense","message":42,"connection_id":"c-9","state":"CONNECTED",
        "previous_state":0,"close_name":"whatever","close_reason":"ignored without a code",
        "timestamp":"2025-01-01T00:00:00Z","extra":{"nested":[1,2]}}"#;
    let record: ConnectionRecord<'_> = serde_json::from_str(json).unwrap();
    assert_eq!(record.state(), ConnectionState::Open);
    assert_eq!(record.previous_state(), Some(ConnectionState::Connecting));
    assert_eq!(record.close(), None);
    assert_eq!(record.severity(), Severity::Info);
    // Required fields.
    assert!(serde_json::from_str::<ConnectionRecord<'_>>(r#"{"state":"open"}"#).is_err());
    assert!(serde_json::from_str::<ConnectionRecord<'_>>(r#"{"connection_id":"c"}"#).is_err());
}

#[test]
fn into_owned_keeps_the_record() {
    let id = String::from("c-borrowed");
    let record = ConnectionRecord::new(id.as_str(), ConnectionState::Open).with_user_id(&*id);
    let owned: ConnectionRecord<'static> = record.clone().into_owned();
    drop(id);
    assert_eq!(owned.connection_id(), "c-borrowed");
    assert_eq!(owned.user_id(), Some("c-borrowed"));
}

// ---------------------------------------------------------------------------------------------
// Tracing.

#[derive(Clone, Debug, PartialEq)]
enum Recorded {
    Str(String),
    U64(u64),
    Other(String),
}

#[derive(Debug)]
struct Captured {
    target: String,
    level: tracing::Level,
    fields: BTreeMap<String, Recorded>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields(BTreeMap<String, Recorded>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Recorded::Str(value.to_owned()));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), Recorded::U64(value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            Recorded::Other(format!("{value:?}")),
        );
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn capture(record: &ConnectionRecord<'_>) -> Captured {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || record.emit());
    let mut events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 1, "exactly one event");
    events.pop().unwrap()
}

#[test]
fn emit_is_one_event_with_typed_fields_and_a_stable_target() {
    let record = closed_record();
    let event = capture(&record);
    assert_eq!(event.target, TRACING_TARGET);
    assert_eq!(event.target, "agentwire::connection");
    assert_eq!(event.level, tracing::Level::INFO); // NOTICE
    let s = |v: &str| Recorded::Str(v.to_owned());
    let expected: BTreeMap<String, Recorded> = [
        (
            "message",
            Recorded::Other("connection closed: 4401 auth_failed: token_expired".into()),
        ),
        ("severity", s("NOTICE")),
        ("connection_id", s("c-1f2e")),
        ("user_id", s("user-42")),
        ("state", s("closed")),
        ("previous_state", s("closing")),
        ("close_code", Recorded::U64(4401)),
        ("close_name", s("auth_failed")),
        ("close_reason", s("token_expired")),
        ("remote_addr", Recorded::Other("203.0.113.9:50412".into())),
        ("origin", s("https://app.example.com")),
        ("frames_in", Recorded::U64(3)),
        ("frames_out", Recorded::U64(5)),
        ("bytes_in", Recorded::U64(310)),
        ("bytes_out", Recorded::U64(1204)),
        ("duration_ms", Recorded::U64(1520)),
        ("connected_ms", Recorded::U64(1490)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(event.fields, expected);
}

#[test]
fn emit_level_follows_severity_and_skips_absent_fields() {
    let cases = [
        (
            ConnectionRecord::new("c", ConnectionState::Connecting),
            tracing::Level::DEBUG,
        ),
        (
            ConnectionRecord::new("c", ConnectionState::Open),
            tracing::Level::INFO,
        ),
        (
            ConnectionRecord::new("c", ConnectionState::Closed)
                .with_close(CloseInfo::code_only(CloseCode::SlowConsumer)),
            tracing::Level::WARN,
        ),
        (
            ConnectionRecord::new("c", ConnectionState::Failed)
                .with_close(CloseInfo::code_only(CloseCode::InternalError)),
            tracing::Level::ERROR,
        ),
    ];
    for (record, level) in cases {
        let event = capture(&record);
        assert_eq!(event.level, level, "{}", record.to_json());
        assert_eq!(event.level, record.severity().tracing_level());
        for absent in [
            "user_id",
            "previous_state",
            "remote_addr",
            "origin",
            "connected_ms",
        ] {
            assert!(!event.fields.contains_key(absent), "{absent}");
        }
        assert!(!event.fields.contains_key("close_reason"));
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn any_state() -> impl Strategy<Value = ConnectionState> {
    prop::sample::select(ConnectionState::ALL)
}

fn any_record() -> impl Strategy<Value = ConnectionRecord<'static>> {
    let strings = (
        ".{0,150}",
        prop::option::of(".{0,150}"),
        prop::option::of(".{0,300}"),
        prop::option::of((any::<u16>(), ".{0,150}")),
    );
    let rest = (
        any_state(),
        prop::option::of(any_state()),
        prop::option::of(any::<SocketAddr>()),
        any::<[u64; 4]>(),
        any::<u64>(),
        prop::option::of(any::<u64>()),
    );
    (strings, rest).prop_map(
        |((id, user, origin, close), (state, prev, addr, counters, duration, connected))| {
            let mut r = ConnectionRecord::new(id, state)
                .with_counters(
                    Counters::new()
                        .with_in(counters[0], counters[2])
                        .with_out(counters[1], counters[3]),
                )
                .with_duration(Duration::from_millis(duration));
            if let Some(user) = user {
                r = r.with_user_id(user);
            }
            if let Some(origin) = origin {
                r = r.with_origin(origin);
            }
            if let Some((code, reason)) = close {
                r = r.with_close(CloseInfo::new(CloseCode::from_u16(code), reason));
            }
            if let Some(prev) = prev {
                r = r.with_previous_state(prev);
            }
            if let Some(addr) = addr {
                r = r.with_remote_addr(addr);
            }
            if let Some(ms) = connected {
                r = r.with_connected(Duration::from_millis(ms));
            }
            r
        },
    )
}

/// Arbitrary JSON, biased towards the record's own field names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(
            &[
                "open",
                "CONNECTED",
                "1.2.3.4:5",
                "[::1]:80",
                "4401",
                "error"
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let key = prop_oneof![
        prop::sample::select(
            &[
                "connection_id",
                "user_id",
                "state",
                "previous_state",
                "close_code",
                "close_reason",
                "remote_addr",
                "origin",
                "frames_in",
                "bytes_out",
                "duration_ms",
                "connected_ms",
                "severity",
                "message",
            ][..]
        )
        .prop_map(str::to_owned),
        ".{0,8}",
    ];
    leaf.prop_recursive(3, 32, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..12)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn records_serialize_to_one_flat_json_object_and_read_back_equal(record in any_record()) {
        let json = record.to_json();
        // The hand-written writer and the Serialize impl agree byte for byte.
        prop_assert_eq!(&json, &serde_json::to_string(&record).unwrap());
        let value: Value = serde_json::from_str(&json).expect("valid JSON");
        let object = value.as_object().expect("one object");
        prop_assert!(object.values().all(|v| v.is_string() || v.is_number()), "flat: {}", json);
        let severity = object["severity"].as_str().unwrap();
        prop_assert!(Severity::ALL.iter().any(|s| s.as_str() == severity));
        prop_assert_eq!(severity, record.severity().as_str());
        prop_assert_eq!(object["message"].as_str().unwrap(), record.message().to_string());
        prop_assert_eq!(object["state"].as_str().unwrap(), record.state().as_str());

        let back: ConnectionRecord<'_> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &record);
        prop_assert_eq!(back.to_json(), json);
        let from_value: ConnectionRecord<'_> = serde_json::from_value(value).unwrap();
        prop_assert_eq!(from_value, record);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_record_reader(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<ConnectionRecord<'_>>(&bytes);
        agentwire_state::fuzz_readers(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_the_record_reader(value in any_json()) {
        let text = value.to_string();
        if let Ok(record) = serde_json::from_str::<ConnectionRecord<'_>>(&text) {
            // Whatever was read is as safe to write as a built record.
            prop_assert!(serde_json::from_str::<Value>(&record.to_json()).is_ok());
        }
        agentwire_state::fuzz_readers(text.as_bytes());
        let _ = serde_json::from_value::<ConnectionRecord<'_>>(value);
    }
}

// ---------------------------------------------------------------------------------------------
// No token, ever.

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Jwt {
    token: String,
    header: String,
    signature: String,
}

fn any_jwt() -> impl Strategy<Value = Jwt> {
    let alg = prop::sample::select(&["HS256", "HS512", "RS256", "ES256", "EdDSA", "PS384"][..]);
    let layout = 0..6usize;
    (
        alg,
        layout,
        "[a-zA-Z0-9_@.-]{1,40}",
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 16..96),
    )
        .prop_map(|(alg, layout, sub, exp, sig)| {
            let header = match layout {
                0 => format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
                1 => format!(r#"{{"typ":"JWT","alg":"{alg}"}}"#),
                2 => format!(r#"{{ "alg": "{alg}" }}"#),
                3 => format!("{{\n  \"alg\": \"{alg}\",\n  \"kid\": \"k1\"\n}}"),
                4 => format!(r#" {{"alg":"{alg}"}}"#),
                _ => format!(r#"{{"kid":"2024-key","alg":"{alg}"}}"#),
            };
            let payload = format!(r#"{{"sub":"{sub}","exp":{exp}}}"#);
            let (header, payload, signature) = (
                b64url(header.as_bytes()),
                b64url(payload.as_bytes()),
                b64url(&sig),
            );
            Jwt {
                token: format!("{header}.{payload}.{signature}"),
                header,
                signature,
            }
        })
}

/// How the token is embedded in a field.
fn embed(jwt: &Jwt, form: usize) -> String {
    match form {
        0 => jwt.token.clone(),
        1 => format!("Bearer {}", jwt.token),
        2 => format!("jwt-auth, jwt.{}", jwt.token),
        3 => format!("bearer.{}", b64url(jwt.token.as_bytes())),
        4 => b64url(jwt.token.as_bytes()),
        5 => format!("https://x.example/cb?token={}&x=1", jwt.token),
        _ => format!("x{}", jwt.token),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_token_never_reaches_the_json_or_the_tracing_event(
        jwt in any_jwt(),
        form in 0..7usize,
        field in 0..4usize,
        prefix in ".{0,30}",
        suffix in ".{0,30}",
    ) {
        let value = format!("{prefix}{}{suffix}", embed(&jwt, form));
        let mut record = ConnectionRecord::new("c-1", ConnectionState::Closed);
        record = match field {
            0 => ConnectionRecord::new(value, ConnectionState::Closed),
            1 => record.with_user_id(value),
            2 => record.with_origin(value),
            _ => record.with_close(CloseInfo::new(CloseCode::AuthFailed, value)),
        };
        let wrapped = b64url(jwt.token.as_bytes());
        let json = record.to_json();
        let event = format!("{:?}", capture(&record).fields);
        for out in [&json, &event] {
            prop_assert!(!out.contains(&jwt.signature), "signature in {}", out);
            prop_assert!(!out.contains(&format!("{}.", jwt.header)), "header in {}", out);
            prop_assert!(!out.contains(&wrapped[..40]), "wrapped token in {}", out);
        }
    }
}

#[test]
fn a_token_in_a_record_read_from_json_is_redacted_too() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLWJ5dGVzLXNpZ25hdHVyZQ";
    let json = format!(
        r#"{{"connection_id":"{token}","user_id":"Bearer {token}","state":"closed",
        "close_code":4401,"close_reason":"{token}","origin":"https://a.example/?t={token}"}}"#
    );
    let record: ConnectionRecord<'_> = serde_json::from_str(&json).unwrap();
    assert_eq!(record.connection_id(), REDACTED);
    assert_eq!(record.user_id(), Some(REDACTED));
    assert_eq!(record.origin(), Some(REDACTED));
    assert_eq!(record.close().unwrap().reason(), REDACTED);
    assert!(!record.to_json().contains("c2lnbmF0dXJl"));
}
