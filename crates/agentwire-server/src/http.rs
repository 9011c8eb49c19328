//! The HTTP endpoints next to the WebSocket: health, client configuration, metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::Shared;

/// `GET /ws/health`: 200 `healthy`, or 503 `draining` once shutdown has begun.
pub(crate) async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let draining = shared.is_draining();
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let metrics = &shared.metrics;
    let engine = shared.emitter.delivery().health();
    let (engine_status, engine_reason) = match &engine {
        crate::EngineHealth::Degraded { reason } => ("degraded", Some(reason.as_str())),
        _ => ("healthy", None),
    };
    let status_text = if draining { "draining" } else { engine_status };
    let mut engine_json = json!({ "status": engine_status });
    if let Some(reason) = engine_reason {
        engine_json["reason"] = json!(reason);
    }
    let body = json!({
        "status": status_text,
        "engine": engine_json,
        "service": shared.config.service_name,
        "version": env!("CARGO_PKG_VERSION"),
        "protocol_version": 1,
        "uptime_s": shared.started.elapsed().as_secs(),
        "connections": {
            "active": metrics.connections_active.load(Relaxed),
            "total": metrics.connections_total.load(Relaxed),
            "users": shared.hub.users(),
        },
    });
    (status, Json(body)).into_response()
}

/// `GET /ws/config`: what a client needs to connect. Never a secret.
pub(crate) async fn config(State(shared): State<Arc<Shared>>) -> Response {
    let c = &shared.config;
    let mut auth_methods = vec!["subprotocol", "bearer"];
    if c.allow_query_token {
        auth_methods.push("query");
    }
    let body = json!({
        "protocol_version": 1,
        "endpoints": ["/ws", "/websocket"],
        "subprotocol": agentwire_auth::MARKER_PROTOCOL,
        "token_protocol_prefixes": [
            agentwire_auth::JWT_PROTOCOL_PREFIX,
            agentwire_auth::BEARER_PROTOCOL_PREFIX,
        ],
        "auth_methods": auth_methods,
        "heartbeat_interval_ms": u64::try_from(c.heartbeat_interval().as_millis()).unwrap_or(u64::MAX),
        "max_message_bytes": c.max_message_bytes(),
        "limits": {
            "max_connections_per_user": c.max_connections_per_user,
            "rate_limit_per_sec": c.rate_limit_per_sec(),
            "rate_limit_burst": c.rate_limit_burst(),
            "outbound_queue_frames": c.outbound_queue_frames,
            "max_runs_per_connection": c.max_runs_per_connection(),
            "in_band_auth": c.in_band_auth(),
            "replay_max_events": c.replay().max_events,
            "replay_max_age_ms": u64::try_from(c.replay().max_age.as_millis()).unwrap_or(u64::MAX),
            "replay_max_bytes": c.replay().max_bytes,
            "max_json_depth": c.max_json_depth(),
            "auth_timeout_ms": u64::try_from(c.auth_timeout().as_millis()).unwrap_or(u64::MAX),
        },
        // Whether other services can publish to users' streams, and the limits; never a key.
        "publish": match &shared.publish {
            Some(p) => json!({
                "enabled": true,
                "path": crate::PUBLISH_PATH,
                "max_body_bytes": p.max_body_bytes(),
                "max_batch_events": p.max_batch_events(),
            }),
            None => json!({ "enabled": false }),
        },
        "engine": shared.emitter.delivery().describe(),
        // The handler: the demo agent, the agent services runs are forwarded to, ...
        "agent": shared.handler.describe(),
    });
    Json(body).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&shared),
    )
        .into_response()
}

/// Every metric: the counters, then the replay window's, the engine's and the handler's.
pub(crate) fn metrics_text(shared: &Shared) -> String {
    let mut text = shared.metrics.render();
    let (streams, stats) = shared.hub.window_stats();
    crate::metrics::render_window(&mut text, streams, stats);
    shared.emitter.delivery().render_metrics(&mut text);
    shared.handler.render_metrics(&mut text);
    text
}
