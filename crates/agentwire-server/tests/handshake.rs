//! The handshake over a real socket: endpoints, subprotocol answer, credentials, refusals.

mod common;

use std::time::Duration;

use agentwire_auth::testing::{
    Claims, SigningKey, bearer_header, offer_header, offer_header_base64url, unsecured_token,
};
use agentwire_auth::{Algorithm, Key, Validator};
use agentwire_server::{Config, DemoAgent, Server};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_endpoints_answer_the_marker_and_never_the_token() {
    let server = start(Config::default()).await;
    let token = token("alice");
    for path in ["/ws", "/websocket"] {
        let (mut ws, response) = connect_raw(&server.url(path), Some(&offer_header(&token)), None)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(response.status(), 101, "{path}");
        let protocols: Vec<_> = response
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .collect();
        assert_eq!(protocols, ["jwt-auth"], "{path}");
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or_default();
            assert!(
                !value.contains(token.expose_secret()),
                "{path}: token leaked in header {name}"
            );
        }
        let established = next_json(&mut ws).await;
        assert_eq!(established["type"], "connection_established");
        assert_eq!(established["payload"]["user_id"], "alice");
        assert_eq!(established["payload"]["protocol_version"], 1);
        assert!(
            established.get("seq").is_none(),
            "control frames carry no seq"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_header_and_base64url_token_authenticate() {
    let server = start(Config::default()).await;
    let token = token("bob");

    // Bearer header, no subprotocol offered: no protocol answered.
    let (mut ws, response) = connect_raw(&server.url("/ws"), None, Some(&bearer_header(&token)))
        .await
        .expect("bearer");
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    assert_eq!(next_json(&mut ws).await["payload"]["user_id"], "bob");

    // Bearer header while offering only the marker (a browser-like client): marker answered.
    let (mut ws, response) = connect_raw(
        &server.url("/ws"),
        Some("jwt-auth"),
        Some(&bearer_header(&token)),
    )
    .await
    .expect("bearer + marker");
    assert_eq!(response.headers()["sec-websocket-protocol"], "jwt-auth");
    assert_eq!(next_json(&mut ws).await["type"], "connection_established");

    // The token base64url-encoded inside the protocol.
    let (mut ws, response) = connect_raw(
        &server.url("/websocket"),
        Some(&offer_header_base64url(&token)),
        None,
    )
    .await
    .expect("base64url");
    assert_eq!(response.headers()["sec-websocket-protocol"], "jwt-auth");
    assert_eq!(next_json(&mut ws).await["payload"]["user_id"], "bob");

    // `bearer.<token>` as the token protocol.
    let offer = format!("jwt-auth, bearer.{}", token.expose_secret());
    let (mut ws, _) = connect_raw(&server.url("/ws"), Some(&offer), None)
        .await
        .expect("bearer. prefix");
    assert_eq!(next_json(&mut ws).await["payload"]["user_id"], "bob");
    server.stop().await;
}

/// Every authentication failure: the handshake completes, one `error` frame, close 4401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_failure_is_an_error_frame_then_4401() {
    let strict = Validator::builder()
        .key(Key::hmac(agentwire_auth::testing::FIXTURE_HMAC_SECRET).expect("key"))
        .algorithms([Algorithm::HS256])
        .issuer("https://issuer.example")
        .audience("agentwire")
        .leeway(Duration::ZERO)
        .build()
        .expect("validator");
    let server = start_with(Server::builder(strict).handler(DemoAgent::new(Duration::ZERO))).await;
    let key = hmac_key();
    let good = || {
        Claims::new("carol")
            .issuer("https://issuer.example")
            .audience("agentwire")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = |claims: Claims| claims.sign(&key).expect("sign");
    // One signature character changed, away from the last (which carries padding bits).
    let mut tampered = signed(good()).into_secret();
    let at = tampered.len() - 10;
    let replacement = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, replacement);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing_token", None),
        ("malformed_token", Some("not-a-jwt".to_owned())),
        ("invalid_signature", Some(tampered)),
        (
            "token_expired",
            Some(signed(good().expires_at(now - 60)).into_secret()),
        ),
        (
            "token_not_yet_valid",
            Some(signed(good().not_before(now + 3600)).into_secret()),
        ),
        (
            "invalid_issuer",
            Some(signed(good().issuer("https://evil.example")).into_secret()),
        ),
        (
            "invalid_audience",
            Some(signed(good().audience("someone-else")).into_secret()),
        ),
        (
            "missing_subject",
            Some(signed(good().without("sub")).into_secret()),
        ),
        (
            "disallowed_algorithm",
            Some(unsecured_token(&good()).into_secret()),
        ),
        (
            "disallowed_algorithm",
            Some(
                good()
                    .sign(&SigningKey::fixture(Algorithm::ES256))
                    .expect("sign")
                    .into_secret(),
            ),
        ),
    ];
    for (code, token) in cases {
        let offer = match &token {
            Some(token) => format!("jwt-auth, jwt.{token}"),
            None => "jwt-auth".to_owned(),
        };
        let (mut ws, response) = connect_raw(&server.url("/ws"), Some(&offer), None)
            .await
            .unwrap_or_else(|e| panic!("{code}: handshake must complete: {e}"));
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "jwt-auth",
            "{code}"
        );
        let (frames, close) = until_close(&mut ws).await;
        assert_eq!(frames.len(), 1, "{code}: one error frame, got {frames:?}");
        assert_eq!(frames[0]["type"], "error", "{code}");
        assert_eq!(frames[0]["payload"]["code"], code, "{code}: {}", frames[0]);
        assert_eq!(close_code(&close), Some(4401), "{code}");
        assert_eq!(close.as_ref().map(|c| c.reason.as_str()), Some(code));
        if let Some(token) = &token {
            assert!(
                !frames[0].to_string().contains(token.as_str()),
                "{code}: token echoed"
            );
        }
    }
    await_active(server.addr, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_shape_errors_are_http_400_and_origin_403() {
    let config = Config::builder()
        .allowed_origin("https://app.example.com")
        .build()
        .expect("config");
    let server = start(config).await;
    let token = token("dave");
    let jwt = token.expose_secret();
    let upgrade = |extra: &[(&'static str, String)]| {
        let mut headers: Vec<(&str, String)> = vec![
            ("Upgrade", "websocket".into()),
            ("Connection", "Upgrade".into()),
            ("Sec-WebSocket-Version", "13".into()),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ];
        headers.extend(extra.iter().cloned());
        headers
    };
    let cases = [
        (
            "missing_marker_protocol",
            vec![("Sec-WebSocket-Protocol", format!("jwt.{jwt}"))],
        ),
        (
            "multiple_tokens",
            vec![(
                "Sec-WebSocket-Protocol",
                format!("jwt-auth, jwt.{jwt}, bearer.{jwt}"),
            )],
        ),
        (
            "invalid_protocol_header",
            vec![("Sec-WebSocket-Protocol", "jwt-auth, {bad}".to_owned())],
        ),
    ];
    let documented = documented_refusal();
    for (code, extra) in cases {
        let headers = upgrade(&extra);
        let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, head, body) = http_get(server.addr, "/ws", &refs).await;
        assert_eq!(status, 400, "{code}: {head}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(
            shape(&body),
            shape(&documented),
            "{code}: the shape docs/auth.md shows"
        );
        if code == "missing_marker_protocol" {
            assert_eq!(
                body, documented,
                "docs/auth.md's example is the real refusal"
            );
        }
        assert_eq!(body["error"]["code"], code);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(
            !head.contains(jwt) && !body.to_string().contains(jwt),
            "{code}: token echoed"
        );
    }

    let offer = offer_header(&token);
    let evil = upgrade(&[
        ("Origin", "https://evil.example".to_owned()),
        ("Sec-WebSocket-Protocol", offer.clone()),
    ]);
    let refs: Vec<(&str, &str)> = evil.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, body) = http_get(server.addr, "/ws", &refs).await;
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(
        shape(&body),
        shape(&documented),
        "every refusal has one shape"
    );
    assert_eq!(body["error"]["code"], "origin_not_allowed");

    // The allowed origin, and no Origin at all (non-browser clients), both connect.
    let allowed = upgrade(&[
        ("Origin", "https://app.example.com".to_owned()),
        ("Sec-WebSocket-Protocol", offer),
    ]);
    let refs: Vec<(&str, &str)> = allowed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, head, _) = http_get(server.addr, "/ws", &refs).await;
    assert_eq!(status, 101, "{head}");
    let (mut ws, _) = connect(&server, &token).await;
    send_json(&mut ws, &json!({"type": "ping", "message_id": "p1"})).await;
    let pong = next_json(&mut ws).await;
    assert_eq!(
        (pong["type"].as_str(), pong["reply_to"].as_str()),
        (Some("pong"), Some("p1"))
    );
    server.stop().await;
}

/// The HTTP refusal body docs/auth.md shows (its `json http-refusal` block).
fn documented_refusal() -> serde_json::Value {
    let doc = include_str!("../../../docs/auth.md");
    let start = doc
        .find("```json http-refusal\n")
        .expect("docs/auth.md shows a refusal body")
        + "```json http-refusal\n".len();
    let end = start + doc[start..].find("```").expect("closing fence");
    serde_json::from_str(&doc[start..end]).expect("the documented body is JSON")
}

/// A JSON value's keys, recursively (values replaced by their kind).
fn shape(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), shape(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::String(_) => "string".into(),
        other => other.clone(),
    }
}
