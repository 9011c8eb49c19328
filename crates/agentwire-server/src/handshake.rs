//! The WebSocket endpoint: checks before the upgrade, then the upgrade itself.
//!
//! Order of checks: the head's size (431), draining (503), `Origin` (403), the WebSocket
//! version (426), the shape of the subprotocol offer and credential (400), the WebSocket
//! upgrade headers (axum's rejection), then the token. A bad token does not refuse the upgrade: the connection opens (answering
//! `jwt-auth` when it was offered), gets one `error` frame and closes 4401, so a browser can
//! tell why.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use agentwire_auth::{AuthError, HandshakeRequest, ProtocolOffer};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use agentwire_stream::{ResumeQueryError, ResumeRequest};

use crate::accept::IpNet;
use crate::connection::{self, Accepted};
use crate::server::Shared;

/// Longest `Origin` kept for logs.
const MAX_LOGGED_ORIGIN: usize = 256;

pub(crate) async fn upgrade(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let accepted_at = Instant::now();
    let (mut parts, _body) = request.into_parts();

    // hyper's read-buffer limit is soft (a head that completes within the read that crosses
    // it passes): hold the head to the documented limit here.
    if head_bytes(&parts) > shared.config.max_header_bytes {
        shared
            .metrics
            .handshake_rejected("request_header_too_large");
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_too_large",
            "the request head is larger than the server accepts",
        );
    }

    if shared.is_draining() {
        shared.metrics.handshake_rejected("draining");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down; connect again shortly",
        );
    }

    let origin_header = parts.headers.get(header::ORIGIN);
    if let Some(origin) = origin_header
        && !shared.config.origin_allowed(origin.as_bytes())
    {
        shared.metrics.handshake_rejected("origin_not_allowed");
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this Origin is not on the server's allow-list",
        );
    }
    let origin = origin_header.and_then(|o| {
        let text = o.to_str().ok()?;
        Some(text.get(..MAX_LOGGED_ORIGIN).unwrap_or(text).to_owned())
    });

    // RFC 6455 section 4.4: a version the server does not speak is answered 426 with the
    // versions it does.
    if let Some(version) = parts.headers.get(header::SEC_WEBSOCKET_VERSION)
        && version.as_bytes() != b"13"
    {
        shared
            .metrics
            .handshake_rejected("unsupported_websocket_version");
        let mut response = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported_websocket_version",
            "this server speaks WebSocket version 13 (RFC 6455) only",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }

    // `?epoch=&since=`: a malformed resume request is refused before the upgrade, naming the
    // parameter.
    let resume = match ResumeRequest::from_query(parts.uri.query()) {
        Ok(resume) => resume.map(Box::new),
        Err(error) => {
            shared.metrics.handshake_rejected(error.code());
            return refuse_resume(&error);
        }
    };

    let negotiation = ProtocolOffer::parse(parts.headers.get_all(header::SEC_WEBSOCKET_PROTOCOL))
        .and_then(|offer| {
            HandshakeRequest::new()
                .offer(offer)
                .authorization(
                    parts
                        .headers
                        .get(header::AUTHORIZATION)
                        .map(HeaderValue::as_bytes),
                )
                .query(parts.uri.query())
                .allow_query_token(shared.config.allow_query_token)
                .max_token_bytes(shared.validator.max_token_bytes())
                .negotiate()
        });
    let negotiation = match negotiation {
        Ok(negotiation) => negotiation,
        Err(error) => {
            shared.metrics.handshake_rejected(error.code());
            return refuse_auth(&error);
        }
    };

    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            shared.metrics.handshake_rejected("not_a_websocket_upgrade");
            return rejection.into_response();
        }
    };

    let auth = shared.validator.authenticate(&negotiation);
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| client_addr(info.0, &parts.headers, &shared.config.trusted_proxies));

    let config = &shared.config;
    let mut upgrade = upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_message_size(config.max_message_bytes())
        .max_frame_size(config.max_message_bytes());
    if let Some(protocol) = negotiation.protocol() {
        // Only ever the marker: never a protocol that carries the token.
        upgrade = upgrade.protocols([protocol]);
    }
    drop(negotiation);

    let accepted = Accepted {
        auth,
        resume,
        remote,
        origin,
        accepted_at,
    };
    upgrade
        .on_failed_upgrade(|error| {
            tracing::debug!(target: "agentwire::handshake", %error, "upgrade failed");
        })
        .on_upgrade(move |socket| connection::serve(shared, socket, accepted))
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` address that is not itself a trusted proxy (port 0: the header has none).
fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .find(|ip| !is_trusted(*ip))
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// The size of a request head as sent: request line and header lines (`name: value\r\n`).
fn head_bytes(parts: &axum::http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = parts.method.as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    parts.headers.iter().fold(line, |sum, (name, value)| {
        sum + name.as_str().len() + value.len() + ": \r\n".len()
    })
}

/// An HTTP refusal with a JSON body `{code, message}`.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(refusal(code, message))).into_response()
}

/// The body of every HTTP refusal: `{"error": {"code", "message"}}`.
pub(crate) fn refusal(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

/// The HTTP refusal for a malformed `?epoch=&since=`: the usual body, plus the parameter.
fn refuse_resume(error: &ResumeQueryError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = refusal(error.code(), &error.to_string());
    body["error"]["parameter"] = error.parameter().as_str().into();
    (status, axum::Json(body)).into_response()
}

/// The HTTP refusal for an authentication error found before the upgrade.
fn refuse_auth(error: &AuthError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    refuse(status, error.code(), &error.to_string())
}
