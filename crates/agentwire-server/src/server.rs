//! The [`Server`]: shared state, the router, serving and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentwire_auth::Validator;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::{get, post};
use hyper::Request as HyperRequest;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tower_service::Service as _;

use crate::accept::{PendingPerPeer, RefusalLog};
use crate::config::Config;
use crate::error::{ServeError, ServerConfigError};
use crate::handler::{ErasedHandler, Handler};
use crate::hub::{Delivery, Emitter, Hub, LocalStreams};
use crate::metrics::Metrics;
use crate::publish::{self, PUBLISH_PATH, PublishConfig};
use crate::runs::RunRegistry;
use crate::{handshake, http};

/// State shared by every connection and endpoint of one server.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) validator: Validator,
    pub(crate) handler: Arc<dyn ErasedHandler>,
    /// The handler's `agent_name`, for the `agent_started` a run emits itself.
    pub(crate) default_agent_name: Arc<str>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) emitter: Emitter,
    pub(crate) runs: Arc<RunRegistry>,
    pub(crate) metrics: Arc<Metrics>,
    /// The publish API's keys and limits, when it is on.
    pub(crate) publish: Option<PublishConfig>,
    pub(crate) started: Instant,
    pub(crate) draining: AtomicBool,
    /// Flips to `true` once, when shutdown begins; every connection watches it.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Woken whenever a connection ends, so shutdown can wait for the last one.
    pub(crate) connection_ended: Notify,
    next_id: AtomicU64,
}

impl Shared {
    /// A process-unique number (the hub tells a user's connections apart by it).
    pub(crate) fn next_serial(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A process-unique id of `kind` (`conn`, `run`) from the process's id generator, the one
    /// event ids come from: `{kind}_{random}_{counter}` (see
    /// [`IdGenerator`](agentwire_events::IdGenerator)). Costs one allocation (once per run).
    pub(crate) fn next_id(&self, kind: &str) -> Arc<str> {
        agentwire_events::IdGenerator::global().next(kind)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// An agentwire server: the WebSocket endpoint, its HTTP endpoints, and the emitter.
///
/// Mount [`router`](Self::router) in any axum application (serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` to have remote addresses in the
/// logs), or let [`serve`](Self::serve) do it all: handshake timeouts, accept limits and
/// graceful shutdown.
///
/// ```no_run
/// use agentwire_server::{Config, DemoAgent, Key, Server, Validator};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = Validator::builder()
///     .key(Key::hmac(b"a secret of at least thirty-two bytes!!")?)
///     .build()?;
/// let server = Server::builder(validator)
///     .config(Config::default())
///     .handler(DemoAgent::default())
///     .build();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

/// The [`ServerBuilder`] before a handler is chosen: [`build`](ServerBuilder::build) needs
/// one, so set it with [`handler`](ServerBuilder::handler) (the demo agent is
/// [`DemoAgent`](crate::DemoAgent)).
#[derive(Debug, Clone, Copy)]
pub struct NoHandler;

type MakeDelivery = Box<dyn FnOnce(LocalStreams) -> Arc<dyn Delivery> + Send>;

/// Builds a [`Server`]. The handler is required: `Server::builder(validator).handler(h).build()`.
#[must_use]
pub struct ServerBuilder<H = NoHandler> {
    validator: Validator,
    config: Config,
    handler: H,
    delivery: Option<MakeDelivery>,
    publish: Option<PublishConfig>,
}

impl<H> ServerBuilder<H> {
    /// The limits and policies (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The handler that carries out runs and other requests.
    pub fn handler<H2: Handler>(self, handler: H2) -> ServerBuilder<H2> {
        ServerBuilder {
            validator: self.validator,
            config: self.config,
            handler,
            delivery: self.delivery,
            publish: self.publish,
        }
    }

    /// Turns the publish API on, with `publish`'s keys and limits: other services `POST`
    /// batches of events to a user's stream ([`Server::publish_router`], served on a
    /// listener of its own by [`Server::serve_publish`]). Off by default.
    pub fn publish(mut self, publish: PublishConfig) -> Self {
        self.publish = Some(publish);
        self
    }

    /// The delivery engine behind [`Server::emitter`] and every run's events (default: this
    /// node's [`LocalStreams`], in-process). `make` gets the node's [`LocalStreams`], through
    /// which the engine reaches the connections this server holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use agentwire_server::{Delivered, Delivery, DemoAgent, Event, LocalStreams, Server};
    /// # let validator = agentwire_server::Validator::builder()
    /// #     .key(agentwire_server::Key::hmac(b"a secret of at least thirty-two bytes!!").unwrap())
    /// #     .build().unwrap();
    ///
    /// /// Counts every event, then delivers it in-process.
    /// struct Counting { local: LocalStreams, events: Arc<AtomicU64> }
    ///
    /// impl Delivery for Counting {
    ///     fn deliver(&self, user_id: &str, event: Event) -> Delivered {
    ///         self.events.fetch_add(1, Ordering::Relaxed);
    ///         self.local.deliver(user_id, event)
    ///     }
    /// }
    ///
    /// let events = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&events);
    /// let server = Server::builder(validator)
    ///     .handler(DemoAgent::default())
    ///     .delivery(move |local| Counting { local, events: counter })
    ///     .build();
    /// server.emitter().emit("user_1", Event::agent_thinking("run_1", "hmm"));
    /// assert_eq!(events.load(Ordering::Relaxed), 1);
    /// ```
    pub fn delivery<D: Delivery>(
        mut self,
        make: impl FnOnce(LocalStreams) -> D + Send + 'static,
    ) -> Self {
        self.delivery = Some(Box::new(move |local| Arc::new(make(local))));
        self
    }
}

impl<H: Handler> ServerBuilder<H> {
    /// Builds the server. It accepts nothing until its router is served.
    pub fn build(self) -> Server {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(
            self.config.outbound_queue_frames,
            &self.config.replay,
            Arc::clone(&metrics),
        ));
        let local = LocalStreams::new(Arc::clone(&hub));
        let delivery: Arc<dyn Delivery> = match self.delivery {
            Some(make) => make(local),
            None => Arc::new(local),
        };
        let (shutdown, _) = watch::channel(false);
        Server {
            shared: Arc::new(Shared {
                config: self.config,
                validator: self.validator,
                default_agent_name: Arc::from(Handler::agent_name(&self.handler)),
                handler: Arc::new(self.handler),
                hub,
                emitter: Emitter::new(delivery),
                runs: Arc::new(RunRegistry::new()),
                metrics,
                publish: self.publish,
                started: Instant::now(),
                draining: AtomicBool::new(false),
                shutdown,
                connection_ended: Notify::new(),
                next_id: AtomicU64::new(1),
            }),
        }
    }
}

impl Server {
    /// A builder for a server that authenticates with `validator`; choose its handler with
    /// [`ServerBuilder::handler`].
    pub fn builder(validator: Validator) -> ServerBuilder {
        ServerBuilder {
            validator,
            config: Config::default(),
            handler: NoHandler,
            delivery: None,
            publish: None,
        }
    }

    /// Every route, at the standalone server's paths: [`websocket_router`](Self::websocket_router)
    /// and [`ops_router`](Self::ops_router) merged. It fits any application state `S`, so
    /// `Router::new().route(..).merge(server.router()).with_state(app_state)` compiles in the
    /// usual order.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.websocket_router().merge(self.ops_router())
    }

    /// Only the WebSocket endpoint: `GET /ws` and `GET /websocket` (the same endpoint). For an
    /// application that serves its own `/metrics` and health checks: mount this, and place the
    /// [`ops_router`](Self::ops_router) elsewhere (or render
    /// [`metrics_text`](Self::metrics_text) into its own `/metrics`).
    pub fn websocket_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/ws", get(handshake::upgrade))
            .route("/websocket", get(handshake::upgrade))
            .with_state(Arc::clone(&self.shared))
    }

    /// Only the operational endpoints: `GET /ws/health`, `GET /ws/config` and `GET /metrics`
    /// (Prometheus text). Nest it under a prefix of your own to keep your paths free:
    /// `app.nest("/agentwire", server.ops_router())` serves `/agentwire/metrics`.
    pub fn ops_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/ws/health", get(http::health))
            .route("/ws/config", get(http::config))
            .route("/metrics", get(http::metrics))
            .with_state(Arc::clone(&self.shared))
    }

    /// The publish API: `POST /api/v1/users/{user_id}/events` ([`PUBLISH_PATH`]), other
    /// methods on that path answered 405. Mount it where only other services reach it (its
    /// own listener, [`serve_publish`](Self::serve_publish), is the usual place); it fits any
    /// application state `S`, like [`router`](Self::router). Requests are authenticated with
    /// the [`PublishConfig`]'s keys; the body and every answer are in docs/operations.md,
    /// "Publish API".
    ///
    /// ```
    /// use agentwire_server::{DemoAgent, Key, PublishConfig, PublishKey, Server, Validator};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let validator = Validator::builder().key(Key::hmac(b"a secret of at least thirty-two bytes!!")?).build()?;
    /// let publish = PublishConfig::builder()
    ///     .key(PublishKey::new("a-key-other-services-send-0123")?)
    ///     .build()?;
    /// let server = Server::builder(validator).handler(DemoAgent::default()).publish(publish).build();
    /// let internal: axum::Router = axum::Router::new().nest("/internal", server.publish_router()?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ServerConfigError::MissingPublishKey`] when the server was built without
    /// [`ServerBuilder::publish`].
    pub fn publish_router<S: Clone + Send + Sync + 'static>(
        &self,
    ) -> Result<Router<S>, ServerConfigError> {
        if self.shared.publish.is_none() {
            return Err(ServerConfigError::MissingPublishKey);
        }
        Ok(Router::new()
            .route(
                PUBLISH_PATH,
                post(publish::publish).fallback(publish::method_not_allowed),
            )
            .with_state(Arc::clone(&self.shared)))
    }

    /// The publish API's settings, when it is on.
    pub fn publish_config(&self) -> Option<&PublishConfig> {
        self.shared.publish.as_ref()
    }

    /// Serves the publish API alone on `listener` (any other path answered 404 with a JSON
    /// body) until `signal` completes, with the accept-time protection of
    /// [`serve`](Self::serve): the head timeout and limit, the pending-connection caps. Run it
    /// next to [`serve`](Self::serve) on an address only other services reach. When `signal`
    /// completes it begins the server's shutdown, as `serve` does; while the server drains,
    /// publishes are answered 503 `draining`.
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`] with [`ServerConfigError::MissingPublishKey`] when the server
    /// was built without [`ServerBuilder::publish`]; otherwise as [`serve`](Self::serve).
    pub async fn serve_publish(
        &self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = self.publish_router()?.fallback(publish::not_found);
        self.serve_listener(listener, app, signal, Listener::Publish)
            .await
    }

    /// agentwire's metrics in the Prometheus text format (what `GET /metrics` answers), to
    /// append to an application's own `/metrics`. Every name starts with `agentwire_`.
    pub fn metrics_text(&self) -> String {
        http::metrics_text(&self.shared)
    }

    /// The emitter: sends events to a user's stream from any task.
    pub fn emitter(&self) -> Emitter {
        self.shared.emitter.clone()
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Open WebSocket connections.
    pub fn active_connections(&self) -> u64 {
        self.shared
            .metrics
            .connections_active
            .load(Ordering::Acquire)
    }

    /// How many connections `user_id` has open on this server (0: the user is offline here).
    pub fn connections_of(&self, user_id: &str) -> usize {
        self.shared.hub.connections(user_id)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// Begins shutdown and waits for it: new WebSocket upgrades get HTTP 503, `/ws/health`
    /// reports `draining` with 503, every connection writes what is queued for it and closes
    /// with 1001. Returns `true` when every connection closed within the configured
    /// [`shutdown_timeout`](Config::shutdown_timeout).
    pub async fn shutdown(&self) -> bool {
        let shared = &self.shared;
        shared.draining.store(true, Ordering::Release);
        shared.shutdown.send_replace(true);
        let all_closed = async {
            loop {
                let ended = shared.connection_ended.notified();
                if self.active_connections() == 0 {
                    return;
                }
                ended.await;
            }
        };
        tokio::time::timeout(shared.config.shutdown_timeout, all_closed)
            .await
            .is_ok()
    }

    /// Serves on `listener` until `signal` completes, then shuts down gracefully (see
    /// [`shutdown`](Self::shutdown)) and returns.
    ///
    /// Each accepted TCP connection gets the configured
    /// [`handshake_timeout`](Config::handshake_timeout) to send its request head, of at most
    /// [`max_header_bytes`](Config::max_header_bytes), and a send buffer of
    /// [`send_buffer_bytes`](Config::send_buffer_bytes); connections past
    /// [`max_pending_handshakes`](Config::max_pending_handshakes), past
    /// [`max_pending_handshakes_per_peer`](Config::max_pending_handshakes_per_peer) from one
    /// address (unless a [trusted proxy](Config::trusted_proxies)) or past
    /// [`max_connections`](Config::max_connections) are closed at accept (counted in
    /// `/metrics`, and logged at most every 10 s). HTTP endpoints keep
    /// answering while connections drain, so `/ws/health` can report `draining`.
    ///
    /// # Errors
    ///
    /// [`ServeError::Io`] if the listener fails for good (a bad or closed socket, not a
    /// passing shortage such as running out of file descriptors, which is logged and retried):
    /// the open connections are then shut down as above before it returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_app(listener, self.router(), signal).await
    }

    /// Serves `app`, an application's router with agentwire's mounted in it, with the same
    /// protection as [`serve`](Self::serve): the handshake timeout and head limit, the
    /// pending-handshake caps (in all and per peer), the connection limit, the socket send
    /// buffer, and graceful shutdown (agentwire's connections close 1001 first, then the
    /// application's HTTP connections finish). Connect info (`ConnectInfo<SocketAddr>`) is in
    /// every request's extensions.
    ///
    /// An application that serves with `axum::serve` instead gets none of the accept-time
    /// protection (docs/operations.md, "Embedding"), and must call
    /// [`shutdown`](Self::shutdown) from its graceful-shutdown signal for the 1001 closes.
    ///
    /// ```no_run
    /// use agentwire_server::{DemoAgent, Key, Server, Validator};
    /// use axum::{Router, extract::State, routing::get};
    ///
    /// #[derive(Clone)]
    /// struct AppState { greeting: &'static str }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let validator = Validator::builder().key(Key::hmac(b"a secret of at least thirty-two bytes!!")?).build()?;
    /// let agentwire = Server::builder(validator).handler(DemoAgent::default()).build();
    /// let app = Router::new()
    ///     .route("/hello", get(|State(s): State<AppState>| async move { s.greeting }))
    ///     .merge(agentwire.websocket_router())
    ///     .nest("/agentwire", agentwire.ops_router())
    ///     .with_state(AppState { greeting: "hi" });
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// agentwire.serve_app(listener, app, async { let _ = tokio::signal::ctrl_c().await; }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve).
    pub async fn serve_app(
        &self,
        listener: TcpListener,
        app: Router,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_listener(listener, app, signal, Listener::WebSocket)
            .await
    }

    async fn serve_listener(
        &self,
        listener: TcpListener,
        app: Router,
        signal: impl Future<Output = ()> + Send + 'static,
        kind: Listener,
    ) -> Result<(), ServeError> {
        let config = &self.shared.config;
        let router = app;
        // Flipped once the WebSocket connections have drained: keep-alive HTTP connections
        // then finish their request in flight and close.
        let (http_stop, http_stopped) = watch::channel(false);
        let pending = Arc::new(Semaphore::new(config.max_pending_handshakes));
        let per_peer = PendingPerPeer::new(config.max_pending_handshakes_per_peer);
        let refusals = RefusalLog::new(Duration::from_secs(10));
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.handshake_timeout)
            .max_buf_size(config.max_header_bytes);
        let drained = async {
            signal.await;
            self.shutdown().await
        };
        tokio::pin!(drained);
        let mut failed = None;
        let clean = loop {
            tokio::select! {
                clean = &mut drained => break clean,
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) if accept_error_is_transient(&error) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(target: "agentwire::server", %error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Err(error) => {
                            // The listener itself is broken: drain what is open, then report.
                            tracing::error!(target: "agentwire::server", %error, "listener failed");
                            failed = Some(error);
                            break self.shutdown().await;
                        }
                    };
                    let active = self.shared.metrics.connections_active.load(Ordering::Relaxed);
                    let peer = remote.ip();
                    let peer_permit = if config.trusted_proxies.iter().any(|net| net.contains(peer)) {
                        None
                    } else if let Some(permit) = per_peer.try_acquire(peer) {
                        Some(permit)
                    } else {
                        self.shared.metrics.handshake_rejected("too_many_pending_handshakes_from_peer");
                        refusals.refused("too_many_pending_handshakes_from_peer", peer);
                        continue;
                    };
                    let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
                        self.shared.metrics.handshake_rejected("too_many_pending_handshakes");
                        refusals.refused("too_many_pending_handshakes", peer);
                        continue;
                    };
                    if kind == Listener::WebSocket && active >= config.max_connections as u64 {
                        self.shared.metrics.handshake_rejected("server_full");
                        refusals.refused("server_full", peer);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if config.send_buffer_bytes > 0 {
                        let _ = socket2::SockRef::from(&stream)
                            .set_send_buffer_size(config.send_buffer_bytes);
                    }
                    let router = router.clone();
                    let service = service_fn(move |mut request: HyperRequest<Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(remote));
                        let mut router = router.clone();
                        router.call(request.map(Body::new))
                    });
                    let connection = http
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    let mut stopped = http_stopped.clone();
                    tokio::spawn(async move {
                        tokio::pin!(connection);
                        // Errors here are the peer's (a malformed request, a timeout, a reset);
                        // hyper has already answered what can be answered.
                        tokio::select! {
                            _ = &mut connection => {}
                            () = flipped(&mut stopped) => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                        }
                        drop(permit);
                        drop(peer_permit);
                    });
                }
            }
        };
        drop(listener);
        tracing::info!(
            target: "agentwire::server",
            clean,
            remaining = self.active_connections(),
            listener = kind.as_str(),
            "shutdown complete"
        );
        // Idle keep-alive HTTP connections close at once; give busy ones a moment.
        http_stop.send_replace(true);
        let all = u32::try_from(config.max_pending_handshakes).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(config.close_timeout, pending.acquire_many(all)).await;
        match failed {
            Some(error) => Err(ServeError::Io(error)),
            None => Ok(()),
        }
    }
}

/// What a listener serves: WebSocket connections count against
/// [`max_connections`](Config::max_connections), publish requests do not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    WebSocket,
    Publish,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::WebSocket => "websocket",
            Listener::Publish => "publish",
        }
    }
}

/// Whether an `accept` error concerns one connection or a passing shortage (keep serving), or
/// the listener itself (EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP, EFAULT: it will never accept
/// again).
fn accept_error_is_transient(error: &std::io::Error) -> bool {
    const EFAULT: i32 = 14;
    const EBADF: i32 = 9;
    const EINVAL: i32 = 22;
    const ENOTSOCK: i32 = 88;
    const EOPNOTSUPP: i32 = 95;
    !matches!(
        error.raw_os_error(),
        Some(EBADF | EFAULT | EINVAL | ENOTSOCK | EOPNOTSUPP)
    )
}

/// Completes once `flag` is `true` (at once if it already is); never, if its sender is gone.
pub(crate) async fn flipped(flag: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before anything else awaits.
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.shared.config)
            .field("active_connections", &self.active_connections())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_errors_that_concern_one_connection_are_transient() {
        use std::io::{Error, ErrorKind};
        for transient in [
            Error::from_raw_os_error(24),  // EMFILE
            Error::from_raw_os_error(23),  // ENFILE
            Error::from_raw_os_error(105), // ENOBUFS
            Error::from_raw_os_error(103), // ECONNABORTED
            Error::from(ErrorKind::ConnectionReset),
        ] {
            assert!(super::accept_error_is_transient(&transient), "{transient}");
        }
        for fatal in [9, 22, 88, 95] {
            let error = Error::from_raw_os_error(fatal);
            assert!(!super::accept_error_is_transient(&error), "{error}");
        }
    }
}
