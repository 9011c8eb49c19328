//! Hostile clients against the real server over loopback: odd framing, slow and idle
//! handshakes, oversized heads, JSON bombs, huge numbers, bad UTF-8, floods and reconnect
//! storms. For each: the documented answer, another client is still served, active
//! connections return to zero, and no connection is ever closed 1011.
//!
//! Timeouts here are liveness bounds (see `common::PATIENCE`), never speed assertions.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use agentwire_auth::Token;
use agentwire_auth::testing::{Claims, offer_header};
use agentwire_events::parse_outbound;
use agentwire_server::Config;
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The upgrade request `raw_connect` sends.
fn upgrade_request(addr: SocketAddr, token: &Token) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        offer_header(token)
    )
}

/// Reads an HTTP response head (up to the blank line) byte by byte; what was read if the
/// stream ends first.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a response head in time");
    String::from_utf8_lossy(&head).into_owned()
}

/// One write per byte, each its own TCP segment, with a pause so the server reads them apart.
async fn write_bytewise(stream: &mut TcpStream, bytes: &[u8]) {
    for &byte in bytes {
        stream.write_all(&[byte]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Whether the server closed `stream` (end of stream or reset), reading and discarding
/// anything it sends first.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.unwrap_or(false)
}

/// A request that starts a run.
fn start_agent(text: &str) -> Value {
    json!({"type": "start_agent", "payload": {"user_request": text}})
}

/// Another client is served a full run, then everything closes: active connections return to
/// zero, and no connection was ever closed 1011.
async fn serves_another_client_then_drains(server: &TestServer) {
    let (mut ws, _) = connect(server, &token("bystander")).await;
    let events = run_agent(&mut ws, &start_agent("still there?")).await;
    assert_eq!(events.len(), 5);
    ws.close(None).await.expect("close");
    let _ = until_close(&mut ws).await;
    drop(ws);
    await_active(server.addr, 0).await;
    assert_no_1011(server.addr).await;
}

fn no_rate_limit() -> agentwire_server::ConfigBuilder {
    Config::builder().rate_limit_per_sec(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_written_one_byte_per_write_still_work() {
    let server = start(no_rate_limit().build().expect("config")).await;
    let token = token("byte-by-byte");

    // The upgrade request itself, one byte per write.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    write_bytewise(&mut stream, upgrade_request(server.addr, &token).as_bytes()).await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        raw_next_json(&mut stream).await["type"],
        "connection_established"
    );

    // Small frames, one byte per write: a ping, then a whole run.
    let ping = json!({"type": "ping", "message_id": "bytewise"}).to_string();
    write_bytewise(&mut stream, &raw_frame(true, 0x1, ping.as_bytes())).await;
    let pong = raw_next_json(&mut stream).await;
    assert_eq!(
        (&pong["type"], &pong["reply_to"]),
        (&json!("pong"), &json!("bytewise"))
    );
    let run = start_agent("one byte at a time").to_string();
    write_bytewise(&mut stream, &raw_frame(true, 0x1, run.as_bytes())).await;
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"agent_completed".to_owned()) {
        let frame = raw_next_json(&mut stream).await;
        kinds.push(frame["type"].as_str().expect("type").to_owned());
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");

    // The same small frame split in two at every byte boundary.
    let frame = raw_frame(true, 0x1, br#"{"type":"ping","message_id":"split"}"#);
    for at in 1..frame.len() {
        stream.write_all(&frame[..at]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(1)).await;
        stream.write_all(&frame[at..]).await.expect("write");
        let pong = raw_next_json(&mut stream).await;
        assert_eq!(pong["reply_to"], "split", "split at byte {at}: {pong}");
    }

    // A close frame, one byte per write, is answered with a close frame.
    write_bytewise(&mut stream, &raw_frame(true, 0x8, &1000u16.to_be_bytes())).await;
    assert_eq!(raw_close_code(&mut stream).await, Some(1000));
    drop(stream);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_messages_with_interleaved_pings_work() {
    let server = start(no_rate_limit().build().expect("config")).await;
    let token = token("fragments");
    let mut stream = raw_connect(server.addr, &token).await;
    assert_eq!(
        raw_next_json(&mut stream).await["type"],
        "connection_established"
    );

    // A text frame and two continuation frames.
    let text = br#"{"type":"ping","message_id":"three-parts"}"#;
    let mut bytes = raw_frame(false, 0x1, &text[..10]);
    bytes.extend(raw_frame(false, 0x0, &text[10..20]));
    bytes.extend(raw_frame(true, 0x0, &text[20..]));
    stream.write_all(&bytes).await.expect("write");
    assert_eq!(raw_next_json(&mut stream).await["reply_to"], "three-parts");

    // Fragments split inside multi-byte characters (valid UTF-8 only as a whole).
    let text = r#"{"type":"ping","message_id":"é€😀"}"#.as_bytes();
    let at = text.iter().position(|&b| b >= 0x80).expect("non-ASCII") + 1;
    let mut bytes = raw_frame(false, 0x1, &text[..at]);
    for chunk in text[at..text.len() - 1].chunks(3) {
        bytes.extend(raw_frame(false, 0x0, chunk));
    }
    bytes.extend(raw_frame(true, 0x0, &text[text.len() - 1..]));
    stream.write_all(&bytes).await.expect("write");
    assert_eq!(raw_next_json(&mut stream).await["reply_to"], "é€😀");

    // A run request in five fragments with a ping (control frame) between each two: every
    // ping is answered with a pong carrying its payload, then the run happens.
    let text = start_agent("fragmented, with pings in between").to_string();
    let parts: Vec<&[u8]> = text.as_bytes().chunks(text.len() / 5 + 1).collect();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        let fin = i == parts.len() - 1;
        stream
            .write_all(&raw_frame(fin, opcode, part))
            .await
            .expect("write");
        if !fin {
            let ping = format!("ping-{i}");
            stream
                .write_all(&raw_frame(true, 0x9, ping.as_bytes()))
                .await
                .expect("write");
        }
    }
    let mut pongs = Vec::new();
    let mut events = Vec::new();
    while events.last().map(|e: &Value| e["type"].clone()) != Some(json!("agent_completed")) {
        match raw_read_frame(&mut stream).await.expect("a frame") {
            (true, 0xA, payload) => pongs.push(String::from_utf8(payload).expect("UTF-8")),
            (true, 0x1, payload) => {
                let text = String::from_utf8(payload).expect("UTF-8");
                parse_outbound(&text).expect("a valid frame");
                events.push(serde_json::from_str(&text).expect("JSON"));
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let expected: Vec<String> = (0..parts.len() - 1).map(|i| format!("ping-{i}")).collect();
    assert_eq!(pongs, expected);
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(
        events[0]["payload"]["user_request"],
        "fragmented, with pings in between"
    );

    stream
        .write_all(&raw_frame(true, 0x8, &1000u16.to_be_bytes()))
        .await
        .expect("write");
    assert_eq!(raw_close_code(&mut stream).await, Some(1000));
    drop(stream);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_violations_close_with_1002_and_oversized_fragments_with_1009() {
    let config = Config::builder()
        .max_message_bytes(1024)
        .build()
        .expect("config");
    let server = start(config).await;
    let token = token("framing");
    let unmasked = {
        let mut frame = vec![0x81, 2];
        frame.extend_from_slice(b"{}");
        frame
    };
    let mut rsv = raw_frame(true, 0x1, b"{}");
    rsv[0] |= 0x40;
    let mut text_in_text = raw_frame(false, 0x1, b"{");
    text_in_text.extend(raw_frame(true, 0x1, b"{}"));
    let mut many_small = raw_frame(false, 0x1, b"[");
    for _ in 0..2000 {
        many_small.extend(raw_frame(false, 0x0, b"1"));
    }
    let cases: [(&str, Vec<u8>, u16); 8] = [
        (
            "continuation without a start",
            raw_frame(true, 0x0, b"{}"),
            1002,
        ),
        (
            "a new text frame inside a fragmented one",
            text_in_text,
            1002,
        ),
        ("a fragmented ping", raw_frame(false, 0x9, b"x"), 1002),
        (
            "a ping over 125 bytes",
            raw_frame(true, 0x9, &[b'x'; 126]),
            1002,
        ),
        ("an unmasked client frame", unmasked, 1002),
        ("a reserved bit", rsv, 1002),
        ("a reserved opcode", raw_frame(true, 0x3, b"{}"), 1002),
        ("fragments adding up past the limit", many_small, 1009),
    ];
    for (what, bytes, code) in cases {
        let mut stream = raw_connect(server.addr, &token).await;
        assert_eq!(
            raw_next_json(&mut stream).await["type"],
            "connection_established"
        );
        stream.write_all(&bytes).await.expect("write");
        assert_eq!(raw_close_code(&mut stream).await, Some(code), "{what}");
    }
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_handshake_is_closed_by_the_handshake_timeout() {
    let config = Config::builder()
        .handshake_timeout(Duration::from_secs(1))
        .build()
        .expect("config");
    let server = start(config).await;
    let request = upgrade_request(server.addr, &token("slowloris"));
    let addr = server.addr;
    let slow = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut sent = 0;
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        for &byte in request.as_bytes() {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            // One byte per second, unless the server closes first.
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => {
                    response.extend_from_slice(&buf[..n]);
                    assert!(closed_by_server(&mut stream).await);
                    break;
                }
            }
        }
        (sent, request.len(), response)
    });

    // Other clients are served meanwhile.
    serves_another_client_then_drains(&server).await;

    let (sent, len, response) = tokio::time::timeout(PATIENCE, slow)
        .await
        .expect("the server cut the slow handshake")
        .expect("slow client task");
    assert!(
        sent < len,
        "the whole request got through ({sent} of {len} bytes)"
    );
    // hyper closes a connection whose head is not complete in time, perhaps with a 408.
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 408"),
        "{response}"
    );
    await_active(server.addr, 0).await;
    assert_no_1011(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_silent_connects_are_closed_by_the_handshake_timeout() {
    // All from one address: the per-peer cap is raised so the handshake timeout, not the cap,
    // is what closes them (the cap has its own test in hostile_peers.rs).
    let config = Config::builder()
        .handshake_timeout(Duration::from_secs(1))
        .max_pending_handshakes_per_peer(4096)
        .build()
        .expect("config");
    let server = start(config).await;
    let mut silent = Vec::with_capacity(2000);
    for _ in 0..2000 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // The server answers HTTP and runs an agent while they sit there.
    let (status, health) = health(server.addr).await;
    assert_eq!((status, &health["status"]), (200, &json!("healthy")));
    let (mut ws, _) = connect(&server, &token("busy-neighbour")).await;
    let events = run_agent(&mut ws, &start_agent("with 2000 idle sockets around")).await;
    assert_eq!(events.len(), 5);

    // Every silent socket is closed by the server.
    for (i, stream) in silent.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream).await,
            "silent socket {i} still open"
        );
    }
    drop(silent);
    // The client that did handshake is unaffected.
    send_json(&mut ws, &json!({"type": "ping", "message_id": "after"})).await;
    assert_eq!(next_json(&mut ws).await["reply_to"], "after");
    ws.close(None).await.expect("close");
    drop(ws);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_with_100_kib_of_headers_gets_an_http_error() {
    let server = start(Config::default()).await;
    let base = upgrade_request(server.addr, &token("big-head"));
    let base = base
        .strip_suffix("\r\n")
        .expect("head ends with a blank line");
    let many_headers: String = (0..100)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(1024)))
        .collect();
    let one_long_header = format!("X-Pad: {}\r\n", "b".repeat(100 * 1024));
    for (what, padding) in [
        ("many headers", many_headers),
        ("one long header", one_long_header),
    ] {
        let request = format!("{base}{padding}\r\n");
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        // Written while the answer is read: the server may answer before reading it all.
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(request.as_bytes()).await;
            writer
        });
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("an answer in time");
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 431") || head.starts_with("HTTP/1.1 400"),
            "{what}: {head}"
        );
        drop(writing.await);
    }
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bombs_get_an_error_frame_and_the_connection_keeps_working() {
    let config = no_rate_limit()
        .max_message_bytes(512 * 1024)
        .build()
        .expect("config");
    let server = start(config).await;
    let (mut ws, _) = connect(&server, &token("bomber")).await;
    let deep = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    // Nesting the server reads is refused past serde_json's depth limit (128)...
    let refused = [
        "[".repeat(100_000),
        "{\"a\":".repeat(100_000),
        deep("[", "", "]", 100_000),
        format!("{{\"type\":\"ping\",\"payload\":{}", "[".repeat(100_000)),
        format!(
            "{{\"type\":\"start_agent\",\"payload\":{{\"user_request\":{}}}}}",
            deep("[", "", "]", 100_000)
        ),
        format!(
            "{{\"payload\":{{\"text\":{}}},\"type\":\"user_message\"}}",
            deep("{\"a\":", "1", "}", 50_000)
        ),
    ];
    for (i, bomb) in refused.iter().enumerate() {
        ws.send(Message::text(bomb.as_str())).await.expect("send");
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["type"], "error", "bomb {i}: {reply}");
        let code = reply["payload"]["code"].as_str().expect("code");
        assert!(
            matches!(code, "invalid_json" | "invalid_payload"),
            "bomb {i}: {reply}"
        );
        send_json(
            &mut ws,
            &json!({"type": "ping", "message_id": format!("after-{i}")}),
        )
        .await;
        let pong = next_json(&mut ws).await;
        assert_eq!(pong["reply_to"], format!("after-{i}"), "{pong}");
    }
    // ...so is nesting in the values it passes on unparsed (`context`, generic payloads),
    // past the session's depth limit (32)...
    let context = format!(
        "{{\"type\":\"start_agent\",\"payload\":{{\"user_request\":\"deep\",\"context\":{{\"a\":{}}}}}}}",
        deep("{\"a\":", "1", "}", 50_000)
    );
    ws.send(Message::text(context)).await.expect("send");
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["payload"]["code"], "invalid_payload", "{reply}");
    assert_eq!(reply["payload"]["field"], "payload.context");
    // ...while members it skips are only scanned, without recursion: bounded by
    // max_message_bytes alone.
    let unknown = format!(
        "{{\"type\":\"ping\",\"message_id\":\"skipped\",\"unknown\":{}}}",
        deep("[", "", "]", 100_000)
    );
    ws.send(Message::text(unknown)).await.expect("send");
    assert_eq!(next_json(&mut ws).await["reply_to"], "skipped");
    let generic = format!(
        "{{\"type\":\"jsonrpc_request\",\"message_id\":\"rpc\",\"payload\":{{\"params\":{}}}}}",
        deep("[", "", "]", 100_000)
    );
    ws.send(Message::text(generic)).await.expect("send");
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (&reply["payload"]["code"], &reply["reply_to"]),
        (&json!("unsupported_message_type"), &json!("rpc")),
        "{reply}"
    );
    ws.close(None).await.expect("close");
    drop(ws);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

/// Every path to a value in `value` (objects only; the root excluded).
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(map) = value {
        for (key, inner) in map {
            prefix.push(key.clone());
            out.push(prefix.clone());
            paths(inner, prefix, out);
            prefix.pop();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_numbers_in_every_field_get_a_documented_answer() {
    let server = start(no_rate_limit().build().expect("config")).await;
    let (mut ws, _) = connect(&server, &token("numbers")).await;
    let templates = [
        json!({"type": "ping", "message_id": "m", "thread_id": "t", "timestamp": 1.5, "payload": {"x": 1}}),
        json!({"type": "start_agent", "message_id": "m", "timestamp": "2025-01-02T03:04:05Z",
               "payload": {"user_request": "u", "agent_name": "a", "thread_id": "t", "context": {"k": 1}}}),
        json!({"type": "user_message", "data": {"message": "m", "text": "t"}}),
        json!({"type": "auth_refresh", "message_id": "m", "payload": {"token": "a.b.c"}}),
        json!({"type": "cancel_agent", "payload": {"run_id": "r"}}),
        json!({"type": "jsonrpc_request", "payload": {"id": 1}}),
    ];
    let nine_400 = "9".repeat(400);
    let minus_400 = format!("-{}", "1".repeat(400));
    let huge = [
        "1e999999",
        "-1e999999",
        "1e-999999",
        "1.7976931348623157e309",
        "123456789012345678901234567890",
        nine_400.as_str(),
        minus_400.as_str(),
    ];
    let mut sent = 0;
    for template in &templates {
        let mut all = Vec::new();
        paths(template, &mut Vec::new(), &mut all);
        for path in &all {
            let mut value = template.clone();
            let slot = path
                .iter()
                .fold(&mut value, |v, key| v.get_mut(key).expect("path"));
            *slot = json!("@HUGE@");
            for number in huge {
                let text = value.to_string().replace("\"@HUGE@\"", number);
                ws.send(Message::text(text.as_str())).await.expect("send");
                let sentinel = format!("sentinel-{sent}");
                send_json(&mut ws, &json!({"type": "ping", "message_id": sentinel})).await;
                sent += 1;
                // At most one direct answer (none when a run started), then the sentinel's.
                let mut answers = Vec::new();
                loop {
                    let frame = next_text(&mut ws).await;
                    parse_outbound(&frame).expect("every frame follows the contract");
                    let frame: Value = serde_json::from_str(&frame).expect("JSON");
                    if frame["reply_to"] == sentinel.as_str() {
                        break;
                    }
                    if frame.get("seq").is_none() {
                        answers.push(frame);
                    }
                }
                assert!(answers.len() <= 1, "{text}: {answers:?}");
                for answer in answers {
                    let kind = answer["type"].as_str().unwrap_or_default();
                    let code = answer["payload"]["code"].as_str().unwrap_or_default();
                    assert!(
                        matches!(kind, "pong" | "heartbeat_ack")
                            || matches!(
                                code,
                                "invalid_json"
                                    | "invalid_payload"
                                    | "unknown_run"
                                    | "too_many_runs"
                                    | "unsupported_message_type"
                                    | "malformed_token"
                                    | "invalid_signature"
                            ),
                        "{text}: {answer}"
                    );
                }
            }
        }
    }
    assert!(sent > 100, "{sent} frames");
    ws.close(None).await.expect("close");
    drop(ws);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_closes_1007() {
    let server = start(Config::default()).await;
    let token = token("bad-bytes");
    let single = |bytes: &[u8]| raw_frame(true, 0x1, bytes);
    let across_fragments = {
        let mut bytes = raw_frame(false, 0x1, b"{\"t\":\"\xE2\x82");
        bytes.extend(raw_frame(true, 0x0, b"\x28\"}"));
        bytes
    };
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "an overlong encoding",
            single(b"{\"type\":\"ping\",\"x\":\"\xC0\xAF\"}"),
        ),
        (
            "a surrogate",
            single(b"{\"type\":\"ping\",\"x\":\"\xED\xA0\x80\"}"),
        ),
        (
            "past U+10FFFF",
            single(b"{\"type\":\"ping\",\"x\":\"\xF4\x90\x80\x80\"}"),
        ),
        (
            "a sequence cut at the end",
            single(b"{\"type\":\"ping\"}\xE2\x82"),
        ),
        ("a lone continuation byte", single(b"\x80")),
        ("a bad sequence across fragments", across_fragments),
    ];
    for (what, bytes) in cases {
        let mut stream = raw_connect(server.addr, &token).await;
        assert_eq!(
            raw_next_json(&mut stream).await["type"],
            "connection_established"
        );
        stream.write_all(&bytes).await.expect("write");
        assert_eq!(raw_close_code(&mut stream).await, Some(1007), "{what}");
    }
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_in_one_write_gets_rate_limited_then_4429() {
    let config = Config::builder()
        .rate_limit_per_sec(5)
        .rate_limit_burst(5)
        .rate_limit_strikes(10)
        .build()
        .expect("config");
    let server = start(config).await;
    let mut stream = raw_connect(server.addr, &token("flood")).await;
    assert_eq!(
        raw_next_json(&mut stream).await["type"],
        "connection_established"
    );
    let flood: Vec<u8> = (0..1000)
        .flat_map(|i| {
            let ping = json!({"type": "ping", "message_id": format!("f{i}")}).to_string();
            raw_frame(true, 0x1, ping.as_bytes())
        })
        .collect();
    stream.write_all(&flood).await.expect("write");
    let (mut pongs, mut limited) = (0, 0);
    let close = loop {
        match raw_read_frame(&mut stream).await {
            Some((true, 0x1, payload)) => {
                let frame: Value = serde_json::from_slice(&payload).expect("JSON");
                match frame["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => {
                        assert_eq!(frame["payload"]["code"], "rate_limited", "{frame}");
                        assert!(frame["payload"]["retry_after_ms"].as_u64().is_some());
                        limited += 1;
                    }
                    _ => panic!("unexpected {frame}"),
                }
            }
            Some((_, 0x8, payload)) => {
                break (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
            Some((_, 0x9 | 0xA, _)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close, Some(4429));
    assert!(
        pongs >= 1 && limited >= 1,
        "{pongs} pongs, {limited} rate_limited"
    );
    assert!(pongs + limited < 1000, "closed before the end of the flood");
    drop(stream);
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}

/// One connect/disconnect cycle of a reconnect storm; `mode` picks how it ends.
async fn storm_cycle(addr: SocketAddr, url: String, i: usize) {
    let token = token(&format!("storm-{}", i % 40));
    let request = upgrade_request(addr, &token);
    match i % 8 {
        // A clean close.
        0 => {
            let offer = offer_header(&token);
            if let Ok((mut ws, _)) = connect_raw(&url, Some(&offer), None).await {
                let _ = ws.close(None).await;
                let _ = until_close(&mut ws).await;
            }
        }
        // Gone without a close frame, right after the 101 (or a 4409 close).
        1 => {
            let offer = offer_header(&token);
            drop(connect_raw(&url, Some(&offer), None).await);
        }
        // Aborted mid-handshake.
        2 => {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream
                .write_all(&request.as_bytes()[..request.len() / 2])
                .await;
        }
        // The whole request, gone before the answer.
        3 => {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.write_all(request.as_bytes()).await;
        }
        // A bad token: error frame and 4401 (read to the end).
        4 => {
            let expired = Claims::new("storm")
                .expires_at(1)
                .sign(&hmac_key())
                .expect("sign");
            let offer = offer_header(&expired);
            if let Ok((mut ws, _)) = connect_raw(&url, Some(&offer), None).await {
                let (_, close) = until_close(&mut ws).await;
                assert!(matches!(close_code(&close), Some(4401) | None), "{close:?}");
            }
        }
        // A run requested, then gone at once.
        5 => {
            let offer = offer_header(&token);
            if let Ok((mut ws, _)) = connect_raw(&url, Some(&offer), None).await {
                let _ = ws
                    .send(Message::text(start_agent("and gone").to_string()))
                    .await;
            }
        }
        // A TCP connect and nothing else.
        6 => drop(TcpStream::connect(addr).await.expect("connect")),
        // A reset (no FIN) right after the 101.
        _ => {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.write_all(request.as_bytes()).await;
            let _ = read_head(&mut stream).await;
            let _ = stream.set_zero_linger();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storms_leave_no_connection_behind() {
    let server = start(Config::default()).await;
    let url = server.url("/ws");
    for batch in 0..8 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in batch * 50..(batch + 1) * 50 {
            tasks.spawn(storm_cycle(server.addr, url.clone(), i));
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("storm cycle");
        }
    }
    await_active(server.addr, 0).await;
    let (status, health) = health(server.addr).await;
    assert_eq!(status, 200);
    assert!(
        health["connections"]["total"].as_u64().unwrap_or(0) >= 200,
        "{health}"
    );
    serves_another_client_then_drains(&server).await;
    server.stop().await;
}
