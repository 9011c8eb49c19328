//! Writes the committed seed corpora under `fuzz/corpus/<target>/`.
//!
//! Run from `fuzz/`: `cargo +nightly run --example gen_corpus`. It overwrites the
//! files it owns (named `seed-*`) and leaves any other file alone, so a corpus merged from a
//! long fuzzing run stays. Every seed is real: frames from `docs/protocol.md` and the events
//! crate's builders, headers and tokens minted with `agentwire_auth::testing`, state names and
//! records from agentwire-state. Tokens that should validate expire in 2100.

use std::fs;
use std::path::{Path, PathBuf};

use agentwire_auth::testing::{
    Claims, SigningKey, bearer_header, offer_header, offer_header_base64url, unsecured_token,
};
use agentwire_auth::{Algorithm, Token};
use agentwire_events::{
    ConnectionEstablished, Event, StreamStamper, Timestamp, ToolCompleted, parse_inbound,
    parse_outbound,
};
use agentwire_state::{CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters};
use agentwire_types::{ALIASES, MessageType};
use serde_json::json;

/// 2100-01-01T00:00:00Z: fixture tokens in the corpus stay valid for a long time.
const FAR_FUTURE: u64 = 4_102_444_800;

struct Corpus {
    dir: PathBuf,
    count: usize,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Corpus {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        for entry in fs::read_dir(&dir).expect("read corpus dir") {
            let path = entry.expect("dir entry").path();
            let owned = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if owned {
                fs::remove_file(&path).expect("remove old seed");
            }
        }
        Corpus { dir, count: 0 }
    }

    fn add(&mut self, name: &str, bytes: impl AsRef<[u8]>) {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.dir.join(format!("seed-{:03}-{name}", self.count));
        fs::write(path, bytes).expect("write seed");
        self.count += 1;
    }
}

/// The fenced `json <tag>` blocks of docs/protocol.md: (tag, body).
fn doc_examples(root: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(root.join("../docs/protocol.md")).expect("docs/protocol.md");
    let mut examples = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                if let Some(info) = trimmed.strip_prefix("```json ") {
                    current = Some((info.trim().to_owned(), String::new()));
                }
            }
            Some((_, body)) => {
                if trimmed.starts_with("```") {
                    examples.extend(current.take());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    examples
}

fn outbound_frames() -> Vec<(String, String)> {
    let mut stream = StreamStamper::new();
    let established = ConnectionEstablished::new(
        "conn_1",
        "user-42",
        25_000,
        65_536,
        Timestamp::now(),
        stream.position(),
    );
    let events = [
        Event::connection_established(established),
        Event::agent_started("run_1", "demo", "weather in Oslo?")
            .with_thread_id("thread_1")
            .with_reply_to("msg_1"),
        Event::agent_thinking("run_1", "looking up the forecast"),
        Event::tool_executing(
            "run_1",
            "forecast",
            "call_1",
            json!({"city": "Oslo", "days": 2})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        Event::tool_completed("run_1", "forecast", "call_1", json!({"temp_c": 4.5}), 18),
        Event::in_run(
            "run_1",
            ToolCompleted::error("forecast", "call_2", json!("timeout"), 3000),
        ),
        Event::agent_response_chunk("run_1", "It is 4.5 \u{b0}C \u{2744}", 0),
        Event::agent_completed(
            "run_1",
            json!({"answer": "4.5 degrees", "n": [1, -2, 3e10]}),
            25,
        ),
        Event::agent_error("run_2", "cancelled", "the client cancelled the run", false),
        Event::pong(Timestamp::now()).with_reply_to("msg_ping_1"),
        Event::heartbeat_ack(),
        Event::error("rate_limited", "slow down"),
        Event::auth_refreshed(Timestamp::now()),
    ];
    events
        .into_iter()
        .map(|event| {
            let name = event.message_type().as_str().to_owned();
            let frame = if event.is_stream_event() {
                stream.stamp(event)
            } else {
                event.stamp_control()
            };
            (name, frame.to_json())
        })
        .collect()
}

/// Inbound frames: docs examples, every type name and alias, odd shapes and encodings.
fn inbound_frames(root: &Path) -> Vec<(String, String)> {
    let mut frames: Vec<(String, String)> = doc_examples(root)
        .into_iter()
        .filter(|(tag, _)| tag.starts_with("inbound"))
        .map(|(tag, body)| (format!("doc-{tag}"), body))
        .collect();
    for t in MessageType::ALL {
        let name = t.as_str();
        frames.push((
            format!("type-{name}"),
            json!({"type": name, "message_id": format!("m_{name}"), "payload": {"message": "hi"}})
                .to_string(),
        ));
    }
    for alias in ALIASES {
        frames.push((
            format!("alias-{}", alias.name),
            json!({"type": alias.name.to_ascii_uppercase(), "data": {"text": "hello"}}).to_string(),
        ));
    }
    let odd = [
        (
            "start-agent-full",
            r#"{"type":"start_agent","message_id":"m1","thread_id":"t1","timestamp":1735787041.5,"payload":{"user_request":"plan a trip","agent_name":"travel","thread_id":"t2","context":{"locale":"en","nested":[1,{"a":null}]}}}"#,
        ),
        (
            "user-message-content",
            r#"{"type":"user_message","payload":{"content":"hi","thread_id":"t9"},"timestamp":"2025-01-02T03:04:05.678+02:00"}"#,
        ),
        (
            "auth-refresh",
            r#"{"type":"auth_refresh","message_id":"r1","payload":{"token":"a.b.c"}}"#,
        ),
        ("cancel-all", r#"{"type":"cancel_agent","message_id":"c1"}"#),
        (
            "escapes",
            r#"{"type":"user_message","payload":{"message":"\u00e9\ud83d\ude00\n\t\"\\"}}"#,
        ),
        ("dup-field", r#"{"type":"ping","type":"heartbeat"}"#),
        ("payload-null", r#"{"type":"start_agent","payload":null}"#),
        ("payload-array", r#"{"type":"start_agent","payload":["x"]}"#),
        (
            "big-numbers",
            r#"{"type":"ping","message_id":123456789012345678901234567890,"timestamp":1e308}"#,
        ),
        (
            "neg-timestamp",
            r#"{"type":"heartbeat","timestamp":-1.5e300}"#,
        ),
        (
            "bad-timestamp",
            r#"{"type":"heartbeat","timestamp":"2025-13-40T99:99:99Z"}"#,
        ),
        ("not-object", r#"["ping"]"#),
        ("empty-type", r#"{"type":"","payload":{}}"#),
        ("type-number", r#"{"type":7}"#),
        (
            "truncated",
            r#"{"type":"start_agent","payload":{"user_request":"x"#,
        ),
        (
            "nested",
            r#"{"type":"ping","payload":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}"#,
        ),
        ("whitespace", " \t\r\n{ \"type\" : \"ping\" } \n"),
        ("bom", "\u{feff}{\"type\":\"ping\"}"),
        ("unicode-type", r#"{"type":"PİNG"}"#),
    ];
    frames.extend(odd.iter().map(|(n, f)| ((*n).to_owned(), (*f).to_owned())));
    frames
}

fn token_with(claims: Claims) -> Token {
    claims
        .sign(&SigningKey::fixture(Algorithm::HS256))
        .expect("sign")
}

/// Tokens: every algorithm, every claim failure, `alg: none`.
fn tokens() -> Vec<(String, Token)> {
    let long = || Claims::new("user-42").expires_at(FAR_FUTURE);
    let mut tokens: Vec<(String, Token)> = Algorithm::ALL
        .iter()
        .map(|&alg| {
            let token = long()
                .permissions(["agents:run"])
                .sign(&SigningKey::fixture(alg).with_kid(format!("kid-{}", alg.as_str())))
                .expect("sign");
            (format!("valid-{}", alg.as_str()), token)
        })
        .collect();
    let claims = [
        ("expired", Claims::new("u").expires_at(1)),
        ("not-yet-valid", long().not_before(FAR_FUTURE - 10)),
        ("no-sub", long().without("sub")),
        ("no-exp", Claims::new("u").without("exp")),
        (
            "iss-aud",
            long()
                .issuer("https://issuer.test")
                .audiences(["agentwire", "other"]),
        ),
        ("scope", long().scope("agents:run threads:read")),
        ("exp-string", long().claim("exp", "4102444800")),
        ("exp-float", long().claim("exp", 4.1e9)),
        ("sub-number", long().claim("sub", 42)),
        ("empty-claims", Claims::empty()),
    ];
    tokens.extend(
        claims
            .into_iter()
            .map(|(n, c)| (n.to_owned(), token_with(c))),
    );
    tokens.push(("alg-none".to_owned(), unsecured_token(&long())));
    tokens
}

/// A `session` fuzz script: the mode byte, each frame as a text step (two-byte length), then
/// time passing past a heartbeat and a pong timeout.
fn session_script(mode: u8, frames: &[&[u8]]) -> Vec<u8> {
    let mut script = vec![mode];
    for frame in frames {
        let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
        script.push(1);
        script.extend_from_slice(&len.to_le_bytes());
        script.extend_from_slice(&frame[..usize::from(len)]);
    }
    script.extend_from_slice(&[3, 250, 3, 250, 3, 250]);
    script
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus_root = root.join("corpus");

    // inbound_frame: the inbound frames; session: the same frames as session scripts.
    let inbound = inbound_frames(&root);
    let mut corpus = Corpus::new(&corpus_root, "inbound_frame");
    for (name, frame) in &inbound {
        corpus.add(name, frame);
    }
    corpus.add("invalid-utf8", b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}");
    println!("inbound_frame: {} seeds", corpus.count);
    let mut corpus = Corpus::new(&corpus_root, "session");
    for (name, frame) in &inbound {
        corpus.add(name, session_script(1, &[frame.as_bytes()]));
    }
    let refresh = format!(
        r#"{{"type":"auth_refresh","payload":{{"token":"{}"}}}}"#,
        Claims::new("fuzz-user")
            .sign(&SigningKey::fixture(Algorithm::HS256))
            .expect("sign")
            .expose_secret()
    );
    let run = br#"{"type":"start_agent","message_id":"m1","payload":{"user_request":"hi"}}"#;
    corpus.add("in-band-auth-then-run", session_script(0, &[refresh.as_bytes(), run]));
    corpus.add("refresh-then-run", session_script(1, &[refresh.as_bytes(), run]));
    println!("session: {} seeds", corpus.count);
    let parsed = inbound
        .iter()
        .filter(|(_, f)| parse_inbound(f).is_ok())
        .count();
    assert!(parsed > 30, "many inbound seeds parse ({parsed})");

    // event_roundtrip: outbound frames from the docs and the builders.
    let mut corpus = Corpus::new(&corpus_root, "event_roundtrip");
    for (tag, body) in doc_examples(&root) {
        if tag.starts_with("outbound") {
            parse_outbound(&body).expect("docs outbound examples parse");
            corpus.add(&format!("doc-{tag}"), body);
        }
    }
    for (name, frame) in outbound_frames() {
        parse_outbound(&frame).expect("builder frames parse");
        corpus.add(&name, frame);
    }
    println!("event_roundtrip: {} seeds", corpus.count);

    // token_validate: mode byte '0' (token as is) or '1' (claims signed by the target).
    let tokens = tokens();
    let mut corpus = Corpus::new(&corpus_root, "token_validate");
    for (name, token) in &tokens {
        corpus.add(
            &format!("token-{name}"),
            format!("0{}", token.expose_secret()),
        );
    }
    let claims = [
        (
            "valid",
            json!({"sub": "u1", "exp": FAR_FUTURE, "iat": 1_700_000_000}),
        ),
        (
            "aud-array",
            json!({"sub": "u1", "exp": FAR_FUTURE, "aud": ["a", "b"], "iss": "i"}),
        ),
        (
            "permissions",
            json!({"sub": "u1", "exp": FAR_FUTURE, "permissions": ["x", 1, null]}),
        ),
        (
            "nbf-float",
            json!({"sub": "u1", "exp": FAR_FUTURE, "nbf": 1.5}),
        ),
        ("huge-exp", json!({"sub": "u1", "exp": 1e300})),
        ("neg-exp", json!({"sub": "u1", "exp": -1})),
        ("nested", json!({"sub": {"id": 1}, "exp": [FAR_FUTURE]})),
    ];
    for (name, value) in claims {
        corpus.add(&format!("claims-{name}"), format!("1{value}"));
    }
    corpus.add(
        "claims-duplicate",
        format!("1{{\"sub\":\"a\",\"sub\":\"b\",\"exp\":{FAR_FUTURE}}}"),
    );
    corpus.add(
        "claims-escaped",
        format!("1{{\"s\\u0075b\":\"\\u0061\",\"exp\":{FAR_FUTURE}}}"),
    );
    println!("token_validate: {} seeds", corpus.count);

    // protocol_header: `authorization \0 query \0 line \n line ...`.
    let token = &tokens[0].1;
    let mut corpus = Corpus::new(&corpus_root, "protocol_header");
    let jwt = token.expose_secret();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("offer", format!("\0\0{}", offer_header(token)).into_bytes()),
        (
            "offer-base64url",
            format!("\0\0{}", offer_header_base64url(token)).into_bytes(),
        ),
        (
            "offer-two-lines",
            format!("\0\0jwt-auth\n jwt.{jwt} ").into_bytes(),
        ),
        (
            "offer-bearer-proto",
            format!("\0\0bearer.{jwt}, jwt-auth").into_bytes(),
        ),
        (
            "bearer",
            format!("{}\0\0", bearer_header(token)).into_bytes(),
        ),
        (
            "bearer-and-offer",
            format!("{}\0\0jwt-auth", bearer_header(token)).into_bytes(),
        ),
        (
            "bearer-lowercase",
            format!("bearer  {jwt}\0\0").into_bytes(),
        ),
        ("query", format!("\0token={jwt}&x=1\0").into_bytes()),
        (
            "query-percent",
            format!("\0a=b&token={}\0", jwt.replace('.', "%2E")).into_bytes(),
        ),
        (
            "query-twice",
            format!("\0token={jwt}&token={jwt}\0").into_bytes(),
        ),
        ("no-marker", format!("\0\0jwt.{jwt}").into_bytes()),
        (
            "two-tokens",
            format!("\0\0jwt-auth, jwt.{jwt}\nbearer.{jwt}").into_bytes(),
        ),
        ("other-protocol", b"\0\0chat.v2, graphql-ws".to_vec()),
        ("empty-elements", b"\0\0 , ,\t,jwt-auth,,".to_vec()),
        ("bad-bytes", b"\0\0jwt-auth, jwt.abc=, \"x\"".to_vec()),
        ("basic-auth", b"Basic dXNlcjpwYXNz\0\0".to_vec()),
        ("nothing", b"\0\0".to_vec()),
    ];
    for (name, bytes) in seeds {
        corpus.add(name, bytes);
    }
    for (name, token) in &tokens {
        corpus.add(
            &format!("offer-{name}"),
            format!("\0\0{}", offer_header(token)),
        );
    }
    println!("protocol_header: {} seeds", corpus.count);

    // state_read: every state and legacy spelling, close codes, close infos, records.
    let mut corpus = Corpus::new(&corpus_root, "state_read");
    for state in ConnectionState::ALL {
        corpus.add(&format!("state-{state}"), format!("\"{state}\""));
    }
    for (name, _) in ConnectionState::LEGACY_NAMES {
        corpus.add(&format!("legacy-{name}"), format!("\"{name}\""));
    }
    corpus.add("starlette-int", "3");
    for code in CloseCode::KNOWN {
        corpus.add(
            &format!("code-{}", code.as_u16()),
            code.as_u16().to_string(),
        );
        corpus.add(
            &format!("code-name-{}", code.name()),
            format!("\"{}\"", code.name()),
        );
        let info = CloseInfo::new(*code, "reason \u{e9}\u{1f600}");
        corpus.add(
            &format!("close-{}", code.name()),
            serde_json::to_string(&info).expect("close info JSON"),
        );
    }
    corpus.add("code-unknown", "4999");
    corpus.add(
        "close-long-reason",
        format!("{{\"code\":1000,\"reason\":\"{}\"}}", "\u{e9}".repeat(100)),
    );
    let mut counters = Counters::new();
    counters.record_in(120);
    counters.record_out(480);
    let records = [
        ConnectionRecord::new("conn_1", ConnectionState::Open)
            .with_previous_state(ConnectionState::Connecting)
            .with_user_id("user-42")
            .with_remote_addr("127.0.0.1:5555".parse().expect("addr"))
            .with_origin("https://app.example.com"),
        ConnectionRecord::new("conn_2", ConnectionState::Closed)
            .with_previous_state(ConnectionState::Closing)
            .with_close(CloseInfo::new(
                CloseCode::SlowConsumer,
                "outbound queue full",
            ))
            .with_counters(counters)
            .with_duration(std::time::Duration::from_secs(90))
            .with_connected(std::time::Duration::from_secs(89)),
        ConnectionRecord::new("conn_3", ConnectionState::Failed)
            .with_close(CloseInfo::code_only(CloseCode::InternalError)),
    ];
    for record in records {
        corpus.add(&format!("record-{}", record.state()), record.to_json());
    }
    println!("state_read: {} seeds", corpus.count);

    write_dicts(&root);
}

/// `dict/*.dict`: libFuzzer dictionaries (one quoted token a line).
fn write_dicts(root: &Path) {
    let dir = root.join("dict");
    fs::create_dir_all(&dir).expect("create dict dir");
    // One dictionary per target (`dict/<target>.dict`), so every command line is the same.
    let write = |targets: &[&str], about: &str, tokens: &mut Vec<String>| {
        tokens.sort();
        tokens.dedup();
        let mut text = format!(
            "# {about}\n# Written by `cargo +nightly run --example gen_corpus` (fuzz/README.md); do not edit.\n"
        );
        for token in tokens.iter() {
            let escaped: String = token
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' => format!("\\{}", b as char),
                    0x20..=0x7e => (b as char).to_string(),
                    _ => format!("\\x{b:02X}"),
                })
                .collect();
            text.push_str(&format!("\"{escaped}\"\n"));
        }
        for target in targets {
            fs::write(dir.join(format!("{target}.dict")), &text).expect("write dict");
            println!("dict/{target}.dict: {} tokens", tokens.len());
        }
    };

    let json_syntax = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\\",
        "\\u",
        "\\ud83d\\ude00",
        "true",
        "false",
        "null",
        "-0",
        "1e999",
        "-1e-999",
        "1.5",
        "18446744073709551616",
        "-9223372036854775809",
        "1E+2",
        "0.000001",
    ];
    let fields = [
        "type",
        "payload",
        "data",
        "message_id",
        "thread_id",
        "timestamp",
        "event_id",
        "run_id",
        "seq",
        "reply_to",
        "user_request",
        "message",
        "content",
        "text",
        "agent_name",
        "context",
        "token",
        "reasoning",
        "step",
        "tool_name",
        "tool_call_id",
        "parameters",
        "result",
        "duration_ms",
        "status",
        "ok",
        "error",
        "delta",
        "index",
        "code",
        "recoverable",
        "connection_id",
        "user_id",
        "protocol_version",
        "heartbeat_interval_ms",
        "max_message_bytes",
        "server_time",
        "stream",
        "epoch",
        "expires_at",
        "received_type",
        "retry_after_ms",
        "field",
    ];
    let timestamps = [
        "2025-01-02T03:04:05.678Z",
        "2025-01-02T03:04:05Z",
        "2025-01-02T03:04:05.678+02:00",
        "1735787041.5",
        "T",
        "Z",
        "+00:00",
        "-23:59",
    ];
    let mut frames: Vec<String> = json_syntax
        .iter()
        .chain(&timestamps)
        .map(|s| (*s).to_owned())
        .chain(fields.iter().map(|f| format!("\"{f}\":")))
        .chain(
            MessageType::ALL
                .iter()
                .map(|t| format!("\"{}\"", t.as_str())),
        )
        .chain(ALIASES.iter().map(|a| format!("\"{}\"", a.name)))
        .collect();
    write(
        &["inbound_frame", "session", "event_roundtrip"],
        "JSON syntax, envelope and payload fields, every message type name and alias.",
        &mut frames,
    );

    let mut headers: Vec<String> = [
        "jwt-auth",
        "jwt.",
        "bearer.",
        ", ",
        ",",
        " ",
        "\t",
        "\n",
        "\0",
        "Bearer ",
        "bearer ",
        "Basic ",
        "token=",
        "&token=",
        "%2E",
        "%",
        "=",
        "&",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJhbGciOiJub25lIn0",
        "eyJzdWIiOiJ1In0",
        ".",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    write(
        &["protocol_header"],
        "Sec-WebSocket-Protocol, Authorization and query tokens (protocol_header layout: auth \\0 query \\0 lines).",
        &mut headers,
    );

    let mut tokens: Vec<String> = [
        "0",
        "1",
        ".",
        "..",
        "eyJ",
        "\"alg\":",
        "\"kid\":",
        "\"crit\":",
        "\"typ\":\"JWT\"",
        "\"sub\":",
        "\"exp\":",
        "\"nbf\":",
        "\"iat\":",
        "\"iss\":",
        "\"aud\":",
        "\"permissions\":",
        "\"scope\":",
        "4102444800",
        "1e300",
        "-1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(Algorithm::ALL.iter().map(|a| format!("\"{}\"", a.as_str())))
    .chain(["none", "HS256", "ES256", "EdDSA"].map(|a| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"{a}\"}}"))
    }))
    .collect();
    write(
        &["token_validate"],
        "JWS structure, header and registered claim names, algorithms (mode byte 0: token, 1: claims).",
        &mut tokens,
    );

    let mut state: Vec<String> = ConnectionState::ALL
        .iter()
        .map(|s| format!("\"{s}\""))
        .chain(
            ConnectionState::LEGACY_NAMES
                .iter()
                .map(|(n, _)| format!("\"{n}\"")),
        )
        .chain(CloseCode::KNOWN.iter().map(|c| c.as_u16().to_string()))
        .chain(CloseCode::KNOWN.iter().map(|c| format!("\"{}\"", c.name())))
        .chain(
            [
                "\"code\":",
                "\"reason\":",
                "\"name\":",
                "\"severity\":",
                "\"message\":",
                "\"connection_id\":",
                "\"state\":",
                "\"previous_state\":",
                "\"user_id\":",
                "\"close_code\":",
                "\"close_name\":",
                "\"close_reason\":",
                "\"target\":",
                "\"NOTICE\"",
                "\"remote_addr\":",
                "\"origin\":",
                "\"duration_ms\":",
                "\"connected_ms\":",
                "\"frames_in\":",
                "\"frames_out\":",
                "\"bytes_in\":",
                "\"bytes_out\":",
                "\"INFO\"",
                "\"WARNING\"",
                "\"ERROR\"",
                "\"DEBUG\"",
                "{",
                "}",
                "null",
                "65535",
                "65536",
                "-1",
            ]
            .map(str::to_owned),
        )
        .collect();
    write(
        &["state_read"],
        "Connection states (canonical and legacy), close codes and names, record fields.",
        &mut state,
    );
}
