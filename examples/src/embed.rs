//! An existing axum service that mounts agentwire.
//!
//! The service has its own state ([`AppState`]), its own routes (`/api/hello`) and its own
//! `/metrics`, which appends agentwire's; agentwire's WebSocket endpoint is mounted at `/ws`
//! and its operational endpoints under `/agentwire` (`/agentwire/ws/health`, ...). The agent
//! ([`WeatherAgent`]) calls a tool, streams its answer in chunks, and fails with a code chosen
//! at run time when asked to. A background task pushes a `system_message` to every online user
//! ([`spawn_notifier`]), who it knows from presence. Two ways to serve it, both with graceful
//! shutdown that closes WebSocket clients with 1001: [`serve`] (agentwire's accept loop, with
//! its handshake timeout and pending-handshake caps) and [`serve_with_axum`] (`axum::serve`,
//! which has neither).

use std::collections::BTreeSet;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentwire_server::events::{AgentResponseChunk, ToolCompleted, ToolExecuting};
use agentwire_server::{
    Config, Event, Handler, HandlerError, Key, Presence, Run, Server, Validator,
};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Errors of the example: any error, sendable across tasks.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The users with a connection open, kept from [`Handler::presence`].
pub type Online = Arc<Mutex<BTreeSet<String>>>;

/// The service's own state: a request counter, who is online, and the agentwire server.
#[derive(Clone)]
pub struct AppState {
    /// Requests to `/api/hello`.
    pub hello_requests: Arc<AtomicU64>,
    /// Users with at least one open connection.
    pub online: Online,
    /// The mounted agentwire server (its emitter pushes notifications).
    pub agentwire: Server,
}

/// The agent: looks up a forecast with a tool, then streams its answer in chunks. A request
/// containing "fail" fails the run with a code chosen at run time.
pub struct WeatherAgent {
    online: Online,
}

impl Handler for WeatherAgent {
    async fn run(&self, run: Run) {
        run.started("weather");
        let text = run.request().text.to_string();
        if text.contains("fail") {
            // A code chosen at run time, as an agent service would relay it.
            let status = 503;
            let error =
                HandlerError::new(format!("forecast_{status}"), "the forecast service is down")
                    .recoverable();
            run.failed(&error);
            return;
        }
        let call_id = format!("call_{}", run.run_id());
        run.emit(ToolExecuting::new("forecast", call_id.clone()).with_parameter("city", "Oslo"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        run.emit(ToolCompleted::ok(
            "forecast",
            call_id,
            json!({"temp_c": 4}),
            5,
        ));
        for (index, delta) in ["It is ", "4 degrees ", "in Oslo."].into_iter().enumerate() {
            run.emit(AgentResponseChunk::new(delta, index as u32));
        }
        run.completed(json!({"answer": "It is 4 degrees in Oslo."}));
    }

    fn presence(&self, user_id: &str, presence: Presence) {
        let mut online = self.online.lock().unwrap_or_else(|e| e.into_inner());
        match presence {
            Presence::Online => {
                online.insert(user_id.to_owned());
            }
            _ => {
                online.remove(user_id);
            }
        }
    }
}

/// The service's router and state: its own routes, agentwire's WebSocket endpoint at `/ws`, and
/// agentwire's health, config and metrics under `/agentwire` (the service has its own
/// `/metrics`). Routes are added in the usual order, state last.
///
/// # Errors
///
/// A `secret` shorter than 32 bytes.
pub fn app(secret: &str, config: Config) -> Result<(Router, AppState), BoxError> {
    let validator = Validator::builder().key(Key::hmac(secret)?).build()?;
    let online = Online::default();
    let agentwire = Server::builder(validator)
        .config(config)
        .handler(WeatherAgent {
            online: Arc::clone(&online),
        })
        .build();
    let state = AppState {
        hello_requests: Arc::default(),
        online,
        agentwire: agentwire.clone(),
    };
    let router = Router::new()
        .route("/api/hello", get(hello))
        .route("/metrics", get(metrics))
        .merge(agentwire.websocket_router())
        .nest("/agentwire", agentwire.ops_router())
        .with_state(state.clone());
    Ok((router, state))
}

async fn hello(State(state): State<AppState>) -> String {
    let n = state.hello_requests.fetch_add(1, Ordering::Relaxed) + 1;
    format!("hello, request {n}")
}

/// The service's own metrics, then agentwire's.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let online = state.online.lock().map_or(0, |o| o.len());
    let mut text = format!(
        "# HELP app_hello_requests_total Requests to /api/hello.\n\
         # TYPE app_hello_requests_total counter\n\
         app_hello_requests_total {}\n\
         # HELP app_users_online Users with a WebSocket open.\n\
         # TYPE app_users_online gauge\n\
         app_users_online {online}\n",
        state.hello_requests.load(Ordering::Relaxed)
    );
    text.push_str(&state.agentwire.metrics_text());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Every `every`, sends a `system_message` to each online user (a notification outside any
/// run, on the user's stream).
pub fn spawn_notifier(state: &AppState, every: Duration) -> JoinHandle<()> {
    let emitter = state.agentwire.emitter();
    let online = Arc::clone(&state.online);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let users: Vec<String> = online
                .lock()
                .map(|o| o.iter().cloned().collect())
                .unwrap_or_default();
            for user in users {
                emitter.emit(
                    &user,
                    Event::system_message("maintenance tonight at 22:00 UTC"),
                );
            }
        }
    })
}

/// Serves the service with agentwire's accept loop ([`Server::serve_app`]): the handshake
/// timeout, the pending-handshake caps and the send buffer apply to every connection, and
/// `shutdown` closes WebSocket clients with 1001, then lets HTTP requests finish.
///
/// # Errors
///
/// As [`app`], or the listener failing.
pub async fn serve(
    listener: TcpListener,
    secret: &str,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let (router, state) = app(secret, config)?;
    let notifier = spawn_notifier(&state, Duration::from_millis(200));
    state
        .agentwire
        .serve_app(listener, router, shutdown)
        .await?;
    notifier.abort();
    Ok(())
}

/// Serves the service with `axum::serve`, for a service that keeps its own server: agentwire's
/// [`Server::shutdown`] is called from the graceful-shutdown signal, so WebSocket clients get
/// 1001 before axum stops. `axum::serve` applies none of agentwire's accept-time limits (no
/// handshake timeout, no pending-handshake caps, no send-buffer cap).
///
/// # Errors
///
/// As [`app`], or the listener failing.
pub async fn serve_with_axum(
    listener: TcpListener,
    secret: &str,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let (router, state) = app(secret, config)?;
    let notifier = spawn_notifier(&state, Duration::from_millis(200));
    let agentwire = state.agentwire.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // WebSocket connections are upgraded: axum does not track them. Close them first.
        agentwire.shutdown().await;
    })
    .await?;
    notifier.abort();
    Ok(())
}
