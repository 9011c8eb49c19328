//! [`HttpAgent`]: the handler, its builder, and one forwarded run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::Poll;
use std::time::{Duration, Instant};

use agentwire_events::RunRequest;
use agentwire_server::{Handler, HandlerError, MessageType, Run};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::agui;
use crate::error::{AgentFailure, BuildError};
use crate::ndjson;
use crate::pool::{Conn, Pool, PoolConfig, PoolStats, SendError};
use crate::relay::{Relay, Sink};
use crate::token;

/// The default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default idle timeout: the longest wait for the response headers or the next bytes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default maximum line size of a response, in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// The default limit on forwarded runs in flight per [`HttpAgent`] (per node).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// The default `retry_after_ms` of an `agent_busy` refusal.
pub const DEFAULT_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The default time an idle connection is kept for the next run.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The lifetime of a service token.
pub const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(60);
/// The `aud` claim of a service token.
pub const SERVICE_TOKEN_AUDIENCE: &str = "agent-service";
/// The code of the `error` frame that refuses a request naming an unknown agent.
pub const UNKNOWN_AGENT: &str = "unknown_agent";

/// The protocol an agent service speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// agentwire's request JSON out; `application/x-ndjson` back, one agentwire event per
    /// line (see the crate docs).
    Ndjson,
    /// An AG-UI `RunAgentInput` out; `text/event-stream` of AG-UI events back, mapped onto
    /// agentwire's events (see the crate docs).
    AgUi,
}

impl Protocol {
    /// The protocol's name in configuration: `ndjson` or `ag-ui`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ndjson => "ndjson",
            Protocol::AgUi => "ag-ui",
        }
    }

    /// The response Content-Types the protocol accepts (parameters aside); the first is
    /// the request's `Accept`.
    pub fn content_types(self) -> &'static [&'static str] {
        match self {
            Protocol::Ndjson => ndjson::CONTENT_TYPES,
            Protocol::AgUi => agui::CONTENT_TYPES,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = BuildError;

    /// Reads `ndjson` or `ag-ui` (also `agui`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("ndjson") {
            Ok(Protocol::Ndjson)
        } else if s.eq_ignore_ascii_case("ag-ui") || s.eq_ignore_ascii_case("agui") {
            Ok(Protocol::AgUi)
        } else {
            Err(BuildError::UnknownProtocol(s.to_owned()))
        }
    }
}

/// An agent service: where to POST, and in which protocol.
#[derive(Clone, PartialEq, Eq)]
pub struct Service {
    uri: Uri,
    protocol: Protocol,
    /// The URL for logs and `/ws/config`: no user information, no query.
    display_url: String,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("url", &self.display_url)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Service {
    /// A service at `url` (an absolute `http://` URL: no TLS yet) speaking `protocol`.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidUrl`] for anything else.
    pub fn new(url: &str, protocol: Protocol) -> Result<Self, BuildError> {
        let invalid = |reason| BuildError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(invalid("only http:// is supported")),
            None => return Err(invalid("not absolute (http://host:port/path)")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let display_url = display_url(&uri);
        Ok(Service {
            uri,
            protocol,
            display_url,
        })
    }

    /// A service at `url` speaking [`Protocol::Ndjson`].
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn ndjson(url: &str) -> Result<Self, BuildError> {
        Service::new(url, Protocol::Ndjson)
    }

    /// A service at `url` speaking [`Protocol::AgUi`].
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn ag_ui(url: &str) -> Result<Self, BuildError> {
        Service::new(url, Protocol::AgUi)
    }

    /// The service's URL.
    pub fn url(&self) -> &Uri {
        &self.uri
    }

    /// The service's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The URL as logs and `/ws/config` show it: without the user name and password, if it
    /// had them, and without the query (services such as Azure Functions carry a key there).
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The host (as in the URL: an IPv6 address in brackets) and port (80 by default) that
    /// requests go to.
    fn address(&self) -> (&str, u16) {
        (
            self.uri.host().unwrap_or_default(),
            self.uri.port_u16().unwrap_or(80),
        )
    }

    /// What `/ws/config` shows of the service.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "url": self.display_url, "protocol": self.protocol.as_str() })
    }
}

/// `http://host[:port]/path` of `uri`: no user information, no query.
fn display_url(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let mut url = format!("{}://{host}", uri.scheme_str().unwrap_or("http"));
    if let Some(port) = uri.port_u16() {
        url.push_str(&format!(":{port}"));
    }
    url.push_str(uri.path());
    url
}

/// A service with what its requests need: its connection pool, the `Host` header and the
/// request target (origin form: the path and query).
struct Route {
    service: Service,
    pool: Arc<Pool>,
    host: HeaderValue,
    target: Uri,
}

impl Route {
    fn new(service: Service, pools: &HashMap<(String, u16), Arc<Pool>>) -> Route {
        let (host, port) = service.address();
        let pool = Arc::clone(&pools[&(host.to_owned(), port)]);
        // As hyper-util's client wrote it: the host, and the port unless it is the default.
        let host_header = match service.uri.port_u16() {
            Some(port) if port != 80 => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        let host = HeaderValue::try_from(host_header).unwrap_or(HeaderValue::from_static(""));
        let target = service
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        Route {
            service,
            pool,
            host,
            target,
        }
    }
}

/// Builds an [`HttpAgent`].
#[derive(Debug, Clone)]
pub struct HttpAgentBuilder {
    default: Option<Service>,
    named: HashMap<String, Service>,
    secret: Option<Vec<u8>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    total_timeout: Option<Duration>,
    max_line_bytes: usize,
    max_in_flight: usize,
    busy_retry_after: Duration,
    pool_max_idle: Option<usize>,
    pool_idle_timeout: Duration,
}

impl Default for HttpAgentBuilder {
    fn default() -> Self {
        HttpAgentBuilder {
            default: None,
            named: HashMap::new(),
            secret: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            total_timeout: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            busy_retry_after: DEFAULT_BUSY_RETRY_AFTER,
            pool_max_idle: None,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        }
    }
}

impl HttpAgentBuilder {
    /// The service for requests that name no agent (`payload.agent_name` absent).
    pub fn default_service(mut self, service: Service) -> Self {
        self.default = Some(service);
        self
    }

    /// The service for requests with `payload.agent_name` equal to `name` (exactly). A
    /// request naming an agent that has no service here is refused with an `error` frame
    /// with code `unknown_agent`, and no run starts.
    pub fn agent(mut self, name: impl Into<String>, service: Service) -> Self {
        self.named.insert(name.into(), service);
        self
    }

    /// The HMAC secret (HS256) that signs each request's service token. Without one, requests
    /// carry no `Authorization` header and the service cannot tell they came from agentwire.
    pub fn service_token_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// How long connecting to a service may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait for the response headers or for the next bytes of the body
    /// ([`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// A bound on a whole run, from the request to the terminal event (none by default).
    pub fn total_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// The longest response line accepted, in bytes, newline excluded
    /// ([`DEFAULT_MAX_LINE_BYTES`]). For `ag-ui` services it bounds each SSE event (its lines,
    /// line ends excluded) and what agentwire assembles from the events: the answer's text,
    /// the arguments of the open tool calls together, a reasoning message.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// How many forwarded runs may be in flight at once ([`DEFAULT_MAX_IN_FLIGHT`]); past
    /// it a request is refused with an `error` frame with code `agent_busy` and
    /// `retry_after_ms`. A run holds its slot until its terminal event went out (the rest of
    /// its response, read briefly to reuse the connection, does not count).
    pub fn max_in_flight(mut self, runs: usize) -> Self {
        self.max_in_flight = runs;
        self
    }

    /// The `retry_after_ms` of an `agent_busy` refusal ([`DEFAULT_BUSY_RETRY_AFTER`]).
    pub fn busy_retry_after(mut self, retry_after: Duration) -> Self {
        self.busy_retry_after = retry_after;
        self
    }

    /// How many idle HTTP connections are kept per agent service address (host and port)
    /// for the next runs (by default [`max_in_flight`](Self::max_in_flight)); past it, the
    /// connection idle longest is closed. 0 keeps none: every run opens its own connection.
    pub fn pool_max_idle(mut self, connections: usize) -> Self {
        self.pool_max_idle = Some(connections);
        self
    }

    /// How long an idle HTTP connection is kept for the next run
    /// ([`DEFAULT_POOL_IDLE_TIMEOUT`]): an expired one is not reused, and a sweep closes
    /// expired connections (and those the service closed) within about twice this time.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// The agent.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] for a zero limit or timeout.
    pub fn build(self) -> Result<HttpAgent, BuildError> {
        for (setting, zero) in [
            ("max_line_bytes", self.max_line_bytes == 0),
            ("max_in_flight", self.max_in_flight == 0),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("pool_idle_timeout", self.pool_idle_timeout.is_zero()),
            (
                "total_timeout",
                self.total_timeout.is_some_and(|t| t.is_zero()),
            ),
        ] {
            if zero {
                return Err(BuildError::Zero { setting });
            }
        }
        if let Some(secret) = &self.secret
            && secret.len() < token::MIN_SECRET_LEN
        {
            return Err(BuildError::ShortSecret { len: secret.len() });
        }
        let key = self.secret.as_deref().map(token::Signer::new);
        let pool_stats = Arc::new(PoolStats::default());
        let config = PoolConfig {
            connect_timeout: self.connect_timeout,
            max_idle: self.pool_max_idle.unwrap_or(self.max_in_flight),
            idle_timeout: self.pool_idle_timeout,
            stats: Arc::clone(&pool_stats),
        };
        let pools = Pool::for_addresses(
            self.default
                .iter()
                .chain(self.named.values())
                .map(Service::address),
            &config,
        );
        let route = |service: Service| Route::new(service, &pools);
        Ok(HttpAgent {
            inner: Arc::new(Inner {
                connect_timeout: self.connect_timeout,
                default: self.default.map(route),
                named: self
                    .named
                    .into_iter()
                    .map(|(name, service)| (name, route(service)))
                    .collect(),
                pools: pools.into_values().collect(),
                pool_config: config,
                pool_stats,
                key,
                idle_timeout: self.idle_timeout,
                total_timeout: self.total_timeout,
                max_line_bytes: self.max_line_bytes,
                permits: Arc::new(Semaphore::new(self.max_in_flight)),
                max_in_flight: self.max_in_flight,
                busy_retry_after: self.busy_retry_after,
                stats: Stats::default(),
            }),
        })
    }
}

/// A [`Handler`] that forwards each run to an agent service over HTTP and relays the
/// service's streamed events as the run's. Cheap to clone (a reference count).
#[derive(Clone)]
pub struct HttpAgent {
    inner: Arc<Inner>,
}

struct Inner {
    connect_timeout: Duration,
    default: Option<Route>,
    named: HashMap<String, Route>,
    /// One per service address.
    pools: Vec<Arc<Pool>>,
    pool_config: PoolConfig,
    pool_stats: Arc<PoolStats>,
    key: Option<token::Signer>,
    idle_timeout: Duration,
    total_timeout: Option<Duration>,
    max_line_bytes: usize,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    busy_retry_after: Duration,
    stats: Stats,
}

/// Counters per outcome, read with [`HttpAgent::failures`] and friends.
struct Stats {
    forwarded: AtomicU64,
    completed: AtomicU64,
    refused_unknown: AtomicU64,
    refused_busy: AtomicU64,
    /// Runs whose terminal event went out, while the rest of their response is read.
    draining: AtomicUsize,
    failures: [AtomicU64; AgentFailure::CODES.len()],
    /// AG-UI events read, by type (see `agui::EVENT_TYPES`, then the others).
    ag_ui: Box<[AtomicU64]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            forwarded: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            refused_unknown: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            draining: AtomicUsize::new(0),
            failures: Default::default(),
            ag_ui: agui::counters(),
        }
    }
}

impl std::fmt::Debug for HttpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAgent")
            .field("default", &self.inner.default.as_ref().map(|r| &r.service))
            .field(
                "named",
                &self
                    .inner
                    .named
                    .iter()
                    .map(|(name, route)| (name, &route.service))
                    .collect::<HashMap<_, _>>(),
            )
            .field("service_token", &self.inner.key.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpAgent {
    /// A builder with the defaults and no service.
    pub fn builder() -> HttpAgentBuilder {
        HttpAgentBuilder::default()
    }

    /// The service a request naming `agent_name` (or none) goes to, if any.
    pub fn service_for(&self, agent_name: Option<&str>) -> Option<&Service> {
        self.route_for(agent_name).map(|route| &route.service)
    }

    fn route_for(&self, agent_name: Option<&str>) -> Option<&Route> {
        match agent_name {
            None => self.inner.default.as_ref(),
            Some(name) => self.inner.named.get(name),
        }
    }

    /// HTTP connections opened to agent services so far.
    pub fn connections_opened(&self) -> u64 {
        self.inner.pool_stats.opened.load(Relaxed)
    }

    /// Requests sent on an idle connection taken from the pool (kept from an earlier run).
    pub fn connections_reused(&self) -> u64 {
        self.inner.pool_stats.reused.load(Relaxed)
    }

    /// Idle connections found closed by their service when about to be reused (and so not
    /// used).
    pub fn idle_connections_found_closed(&self) -> u64 {
        self.inner.pool_stats.closed_idle.load(Relaxed)
    }

    /// Requests that hyper gave back unwritten because their pooled connection had closed,
    /// and that were sent on another connection (they had not reached the service).
    pub fn requests_resent(&self) -> u64 {
        self.inner.pool_stats.resent.load(Relaxed)
    }

    /// Idle connections kept for the next runs now, over all services.
    pub fn idle_connections(&self) -> usize {
        self.inner.pools.iter().map(|pool| pool.idle()).sum()
    }

    /// Runs forwarded to a service so far.
    pub fn forwarded_runs(&self) -> u64 {
        self.inner.stats.forwarded.load(Relaxed)
    }

    /// Forwarded runs that ended with the service's own terminal event.
    pub fn completed_runs(&self) -> u64 {
        self.inner.stats.completed.load(Relaxed)
    }

    /// Forwarded runs that failed with `code` (one of [`AgentFailure::CODES`]; 0 for others).
    pub fn failures(&self, code: &str) -> u64 {
        AgentFailure::CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.inner.stats.failures[i].load(Relaxed))
    }

    /// AG-UI events read from `ag-ui` services with type `ag_ui_type` (an AG-UI event type
    /// such as `STATE_SNAPSHOT`, in any case), or with a type agentwire does not know for
    /// `other`.
    pub fn ag_ui_events(&self, ag_ui_type: &str) -> u64 {
        let index = if ag_ui_type == agui::OTHER_TYPE {
            Some(agui::EVENT_TYPES.len())
        } else {
            agui::EVENT_TYPES
                .iter()
                .position(|(name, _)| name.eq_ignore_ascii_case(ag_ui_type))
        };
        index
            .and_then(|i| self.inner.stats.ag_ui.get(i))
            .map_or(0, |count| count.load(Relaxed))
    }

    /// Requests refused with `error` code `unknown_agent` and `agent_busy`.
    pub fn refused(&self) -> (u64, u64) {
        (
            self.inner.stats.refused_unknown.load(Relaxed),
            self.inner.stats.refused_busy.load(Relaxed),
        )
    }

    /// Forwarded runs in flight now, from the request to the end of the response: those
    /// holding a slot of [`max_in_flight`](HttpAgentBuilder::max_in_flight), and those whose
    /// terminal event went out while the rest of their response is read.
    pub fn in_flight(&self) -> usize {
        let max = self.inner.max_in_flight;
        let holding = max - self.inner.permits.available_permits().min(max);
        holding + self.inner.stats.draining.load(Relaxed)
    }

    /// The agent's counters in the Prometheus text format, to append to the server's
    /// `/metrics` (as an embedding service appends its own): runs forwarded and completed,
    /// failures by code, refusals by code, runs in flight, and AG-UI events read by type with
    /// what they were relayed as.
    pub fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.write_metrics(&mut out);
        out
    }

    /// Appends [`metrics_text`](Self::metrics_text) to `out`.
    fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let stats = &self.inner.stats;
        let mut metric = |name: &str, kind: &str, help: &str, values: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in values {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "agentwire_agent_runs_forwarded_total",
            "counter",
            "Runs forwarded to an agent service.",
            &[("", stats.forwarded.load(Relaxed))],
        );
        metric(
            "agentwire_agent_runs_completed_total",
            "counter",
            "Forwarded runs that ended with the service's own terminal event.",
            &[("", stats.completed.load(Relaxed))],
        );
        let labels: Vec<String> = AgentFailure::CODES
            .iter()
            .map(|code| format!("{{code=\"{code}\"}}"))
            .collect();
        let failures: Vec<(&str, u64)> = labels
            .iter()
            .zip(&stats.failures)
            .map(|(labels, count)| (labels.as_str(), count.load(Relaxed)))
            .collect();
        metric(
            "agentwire_agent_run_failures_total",
            "counter",
            "Forwarded runs ended with agent_error, by code.",
            &failures,
        );
        metric(
            "agentwire_agent_requests_refused_total",
            "counter",
            "Run requests refused with an error frame, by code.",
            &[
                (
                    "{code=\"unknown_agent\"}",
                    stats.refused_unknown.load(Relaxed),
                ),
                ("{code=\"agent_busy\"}", stats.refused_busy.load(Relaxed)),
            ],
        );
        metric(
            "agentwire_agent_runs_in_flight",
            "gauge",
            "Forwarded runs in flight.",
            &[("", self.in_flight() as u64)],
        );
        metric(
            "agentwire_agent_connections_opened_total",
            "counter",
            "HTTP connections opened to agent services.",
            &[("", self.connections_opened())],
        );
        metric(
            "agentwire_agent_connections_reused_total",
            "counter",
            "Requests sent on an idle HTTP connection kept from an earlier run.",
            &[("", self.connections_reused())],
        );
        metric(
            "agentwire_agent_idle_connections_closed_total",
            "counter",
            "Idle HTTP connections found closed by their service when about to be reused.",
            &[("", self.idle_connections_found_closed())],
        );
        metric(
            "agentwire_agent_requests_resent_total",
            "counter",
            "Requests given back unwritten by a pooled connection that had closed, sent on \
             another.",
            &[("", self.requests_resent())],
        );
        metric(
            "agentwire_agent_connections_idle",
            "gauge",
            "Idle HTTP connections kept for the next runs.",
            &[("", self.idle_connections() as u64)],
        );
        let labels: Vec<String> = agui::EVENT_TYPES
            .iter()
            .copied()
            .chain([(agui::OTHER_TYPE, "agent_progress")])
            .map(|(ty, relayed_as)| format!("{{type=\"{ty}\",relayed_as=\"{relayed_as}\"}}"))
            .collect();
        let ag_ui: Vec<(&str, u64)> = labels
            .iter()
            .zip(stats.ag_ui.iter())
            .map(|(labels, count)| (labels.as_str(), count.load(Relaxed)))
            .collect();
        metric(
            "agentwire_agent_ag_ui_events_total",
            "counter",
            "AG-UI events read from agent services, by type and the agentwire event they were \
             relayed as (folded: into another event).",
            &ag_ui,
        );
    }

    fn fail(&self, run: &Run, service: Option<&Service>, failure: &AgentFailure) {
        if let Some(i) = AgentFailure::CODES
            .iter()
            .position(|c| *c == failure.code())
        {
            self.inner.stats.failures[i].fetch_add(1, Relaxed);
        }
        tracing::warn!(
            run_id = run.run_id(),
            user_id = run.user_id(),
            service = service.map(Service::display_url),
            code = failure.code(),
            "forwarded run failed: {failure}"
        );
        let mut error = HandlerError::new(failure.code(), failure.to_string());
        if failure.is_recoverable() {
            error = error.recoverable();
        }
        run.failed(&error);
    }

    /// One forwarded run, to its terminal event or a failure: with the connection, and the
    /// rest of the response when the terminal event came before its end.
    async fn forward(&self, run: &Run, route: &Route) -> Result<Forwarded, AgentFailure> {
        let inner = &*self.inner;
        let service = &route.service;
        let body = match service.protocol {
            Protocol::Ndjson => serde_json::to_vec(&ndjson::RequestBody::new(run)),
            Protocol::AgUi => agui::request_body(run),
        }
        .map_err(|_| AgentFailure::Connection)?;
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = route.target.clone();
        let headers = request.headers_mut();
        headers.reserve(4);
        headers.insert(HOST, route.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(service.protocol.content_types()[0]),
        );
        if let Some(key) = &inner.key {
            let mut value = HeaderValue::try_from(key.bearer(run.user_id(), run.run_id()))
                .map_err(|_| AgentFailure::Token)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let idle = inner.idle_timeout;
        let (response, mut conn) = timeout(idle, send(&route.pool, &inner.pool_stats, request))
            .await
            .map_err(|_| AgentFailure::IdleTimeout(idle))??;
        let status = response.status();
        if !status.is_success() {
            return Err(AgentFailure::HttpStatus {
                status: status.as_u16(),
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !service
            .protocol
            .content_types()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(essence))
        {
            return Err(AgentFailure::ContentType {
                found: content_type.chars().take(100).collect(),
                expected: service.protocol.content_types()[0],
            });
        }
        let mut body = response.into_body();
        let mut relay = Relay::new(run);
        let max = inner.max_line_bytes;
        let started = Instant::now()
            .checked_sub(run.elapsed())
            .unwrap_or_else(Instant::now);
        let mut decoder = match service.protocol {
            Protocol::Ndjson => Decoder::Ndjson(ndjson::Decoder::new(max)),
            Protocol::AgUi => Decoder::AgUi(Box::new(agui::Decoder::new(
                max,
                &inner.stats.ag_ui,
                run.request(),
                started,
            ))),
        };
        loop {
            // What the service sent in one go goes out together: the connection is driven
            // (the socket read) each time the next body frame is asked for, so while a frame
            // is there the events wait in the relay; they go out before waiting for more.
            let frame = match poll_now(conn.frame(&mut body)).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    relay.flush();
                    timeout(idle, conn.frame(&mut body))
                        .await
                        .map_err(|_| AgentFailure::IdleTimeout(idle))?
                }
            };
            let frame = match frame {
                None => break,
                Some(Err(_)) => return Err(AgentFailure::Connection),
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if decoder.feed(&data, &mut relay)? {
                relay.flush();
                return Ok(Forwarded::Rest(body, conn));
            }
        }
        if decoder.finish(&mut relay)? {
            relay.flush();
            return Ok(Forwarded::Ended(conn));
        }
        Err(AgentFailure::NoTerminal)
    }
}

/// A forwarded run that reached its terminal event.
enum Forwarded {
    /// The response ended with it: the connection can serve the next run.
    Ended(Conn),
    /// The rest of the response, still to read before the connection can be reused.
    Rest(hyper::body::Incoming, Conn),
}

/// Sends `request` on an idle connection of `pool` or a new one, and reads the response
/// head.
///
/// A request hyper gives back unwritten (a pooled connection closed before it was written)
/// is sent on the next idle connection, or a new one: it never reached the service. A request
/// that was written is never sent again, even when its pooled connection closed before any
/// response byte (the service may have started the run): the run fails with
/// `agent_connection_failed`.
async fn send(
    pool: &Pool,
    stats: &PoolStats,
    mut request: Request<Full<Bytes>>,
) -> Result<(hyper::Response<hyper::body::Incoming>, Conn), AgentFailure> {
    loop {
        let mut conn = match pool.take() {
            Some(conn) => conn,
            None => pool.connect().await?,
        };
        match conn.send(request).await {
            Ok(response) => return Ok((response, conn)),
            Err(SendError::NotSent(unsent)) if conn.reused() => {
                stats.resent.fetch_add(1, Relaxed);
                tracing::debug!("pooled agent service connection closed; request sent on another");
                request = *unsent;
            }
            Err(SendError::NotSent(_)) => return Err(AgentFailure::Connection),
            Err(SendError::Failed(error)) => {
                tracing::debug!(
                    %error,
                    reused = conn.reused(),
                    "agent service connection failed before the response head"
                );
                return Err(AgentFailure::Connection);
            }
        }
    }
}

/// Polls `future` once: its output if it is ready now, else `Pending` (its waker registered).
async fn poll_now<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// A response body's reader, by protocol.
enum Decoder<'s> {
    Ndjson(ndjson::Decoder),
    AgUi(Box<agui::Decoder<'s>>),
}

impl Decoder<'_> {
    /// Feeds body bytes: `Ok(true)` once the terminal event went out.
    fn feed(&mut self, chunk: &[u8], sink: &mut dyn Sink) -> Result<bool, AgentFailure> {
        match self {
            Decoder::Ndjson(decoder) => decoder.feed(chunk, sink),
            Decoder::AgUi(decoder) => decoder.feed(chunk, sink),
        }
    }

    /// The end of the body: `Ok(true)` if the terminal event went out.
    fn finish(&mut self, sink: &mut dyn Sink) -> Result<bool, AgentFailure> {
        match self {
            Decoder::Ndjson(decoder) => decoder.finish(sink),
            Decoder::AgUi(decoder) => decoder.finish(sink),
        }
    }
}

/// Counts a run in `Stats::draining` while it lives.
struct Draining<'c>(&'c AtomicUsize);

impl<'c> Draining<'c> {
    fn new(count: &'c AtomicUsize) -> Self {
        count.fetch_add(1, Relaxed);
        Draining(count)
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// How long to wait for the end of a response after its terminal event.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Reads what follows the terminal event, briefly and up to `max` bytes, so that a response
/// that ends right after it leaves its connection to the pool for the next run (returned);
/// anything else is dropped with the connection (and logged when it is not blank: the run is
/// over).
async fn drain(
    run: &Run,
    mut body: hyper::body::Incoming,
    mut conn: Conn,
    within: Duration,
    max: usize,
) -> Option<Conn> {
    let mut read = 0;
    let drained = timeout(within, async {
        while let Some(Ok(frame)) = conn.frame(&mut body).await {
            if let Ok(data) = frame.into_data() {
                read += data.len();
                if read > max || !data.iter().all(u8::is_ascii_whitespace) {
                    return false;
                }
            }
        }
        true
    })
    .await;
    if matches!(drained, Ok(true)) {
        return Some(conn);
    }
    tracing::debug!(
        run_id = run.run_id(),
        "agent service response continued after the terminal event; connection dropped"
    );
    None
}

impl Handler for HttpAgent {
    async fn run(&self, run: Run) {
        // Refused requests never get here; these are the races between `accepts` and now.
        let Ok(permit) = Arc::clone(&self.inner.permits).try_acquire_owned() else {
            self.fail(&run, None, &AgentFailure::Busy);
            return;
        };
        let agent_name = run.request().agent_name.as_deref();
        let Some(route) = self.route_for(agent_name) else {
            run.failed(&HandlerError::new(
                UNKNOWN_AGENT,
                "no agent service by that name",
            ));
            return;
        };
        self.inner.stats.forwarded.fetch_add(1, Relaxed);
        let forwarding = self.forward(&run, route);
        let outcome = match self.inner.total_timeout {
            Some(total) => timeout(total, forwarding)
                .await
                .unwrap_or(Err(AgentFailure::TotalTimeout(total))),
            None => forwarding.await,
        };
        match outcome {
            Ok(Forwarded::Ended(conn)) => {
                self.inner.stats.completed.fetch_add(1, Relaxed);
                route.pool.put(conn);
                tracing::debug!(run_id = run.run_id(), "forwarded run ended");
            }
            Ok(Forwarded::Rest(body, conn)) => {
                self.inner.stats.completed.fetch_add(1, Relaxed);
                // The run is over on the wire: its slot goes to the next run while the end
                // of the response is read (counted in `in_flight` meanwhile).
                let _draining = Draining::new(&self.inner.stats.draining);
                drop(permit);
                let within = self.inner.idle_timeout.min(DRAIN_TIMEOUT);
                if let Some(conn) = drain(&run, body, conn, within, self.inner.max_line_bytes).await
                {
                    route.pool.put(conn);
                }
                tracing::debug!(run_id = run.run_id(), "forwarded run ended");
            }
            Err(failure) => self.fail(&run, Some(&route.service), &failure),
        }
    }

    fn accepts(&self, _kind: MessageType, request: &RunRequest<'_>) -> Result<(), HandlerError> {
        if self.service_for(request.agent_name.as_deref()).is_none() {
            self.inner.stats.refused_unknown.fetch_add(1, Relaxed);
            let message = match request.agent_name {
                Some(_) => "no agent service by that name",
                None => "no default agent service: name one with payload.agent_name",
            };
            return Err(HandlerError::new(UNKNOWN_AGENT, message));
        }
        if self.inner.permits.available_permits() == 0 {
            self.inner.stats.refused_busy.fetch_add(1, Relaxed);
            tracing::warn!(code = "agent_busy", "forwarded-run limit reached");
            return Err(
                HandlerError::new("agent_busy", AgentFailure::Busy.to_string())
                    .recoverable()
                    .retry_after(self.inner.busy_retry_after),
            );
        }
        Ok(())
    }

    /// `default`, as in the `agent_started` of an `ag-ui` run that named no agent: the name of
    /// the `agent_started` the server puts before the `agent_error` of a run that failed
    /// before its service said anything (unreachable, a non-2xx status, a wrong content
    /// type, ...).
    fn agent_name(&self) -> &str {
        agui::DEFAULT_AGENT_NAME
    }

    /// [`metrics_text`](HttpAgent::metrics_text), for the server's `/metrics`.
    fn render_metrics(&self, out: &mut String) {
        self.write_metrics(out);
    }

    /// The agent services and the limits, for `/ws/config`: never the service-token secret
    /// (only whether there is one), URLs as [`Service::display_url`] shows them.
    fn describe(&self) -> serde_json::Value {
        let inner = &*self.inner;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let agents: serde_json::Map<String, serde_json::Value> = inner
            .named
            .iter()
            .map(|(name, route)| (name.clone(), route.service.describe()))
            .collect();
        serde_json::json!({
            "kind": "http",
            "default": inner.default.as_ref().map(|route| route.service.describe()),
            "agents": agents,
            "service_token": inner.key.is_some(),
            "limits": {
                "max_in_flight": inner.max_in_flight,
                "max_line_bytes": inner.max_line_bytes,
                "connect_timeout_ms": ms(inner.connect_timeout),
                "idle_timeout_ms": ms(inner.idle_timeout),
                "total_timeout_ms": inner.total_timeout.map(ms),
                "busy_retry_after_ms": ms(inner.busy_retry_after),
            },
            "pool": {
                "max_idle_per_service": inner.pool_config.max_idle,
                "idle_timeout_ms": ms(inner.pool_config.idle_timeout),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_are_absolute_http() {
        let service = Service::ndjson("http://127.0.0.1:9000/run").unwrap();
        assert_eq!(service.url().path(), "/run");
        assert_eq!(service.protocol(), Protocol::Ndjson);
        for bad in [
            "https://host/run",
            "/run",
            "host:9000",
            "http://",
            "not a url",
        ] {
            assert!(
                matches!(Service::ndjson(bad), Err(BuildError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn display_urls_have_no_credentials_nor_query() {
        let service = Service::ag_ui("http://svc:pa55@agents.internal:9000/run?code=k3y").unwrap();
        assert_eq!(service.display_url(), "http://agents.internal:9000/run");
        assert_eq!(service.url().host(), Some("agents.internal"));
        let debug = format!("{service:?}");
        assert!(!debug.contains("pa55") && !debug.contains("k3y"), "{debug}");
        let plain = Service::ndjson("http://127.0.0.1/").unwrap();
        assert_eq!(plain.display_url(), "http://127.0.0.1/");
    }

    #[test]
    fn a_service_token_secret_under_32_bytes_is_refused() {
        let built = HttpAgent::builder()
            .default_service(Service::ndjson("http://a:1/run").unwrap())
            .service_token_secret("x".repeat(31))
            .build();
        assert_eq!(built.err(), Some(BuildError::ShortSecret { len: 31 }));
        let secret = "x".repeat(32);
        assert!(
            HttpAgent::builder()
                .default_service(Service::ndjson("http://a:1/run").unwrap())
                .service_token_secret(&secret)
                .build()
                .is_ok()
        );
    }

    #[test]
    fn describe_shows_services_and_limits_and_no_secret() {
        let agent = HttpAgent::builder()
            .default_service(Service::ndjson("http://u:p@a:1/run").unwrap())
            .agent("b", Service::ag_ui("http://b/agui").unwrap())
            .service_token_secret("a secret of at least 32 bytes, from config")
            .total_timeout(Some(Duration::from_secs(90)))
            .build()
            .unwrap();
        let described = Handler::describe(&agent);
        assert_eq!(
            described,
            serde_json::json!({
                "kind": "http",
                "default": {"url": "http://a:1/run", "protocol": "ndjson"},
                "agents": {"b": {"url": "http://b/agui", "protocol": "ag-ui"}},
                "service_token": true,
                "limits": {
                    "max_in_flight": DEFAULT_MAX_IN_FLIGHT,
                    "max_line_bytes": DEFAULT_MAX_LINE_BYTES,
                    "connect_timeout_ms": 5000,
                    "idle_timeout_ms": 60000,
                    "total_timeout_ms": 90000,
                    "busy_retry_after_ms": 1000,
                },
                "pool": {"max_idle_per_service": DEFAULT_MAX_IN_FLIGHT, "idle_timeout_ms": 30000},
            })
        );
        let mut metrics = String::new();
        Handler::render_metrics(&agent, &mut metrics);
        assert_eq!(metrics, agent.metrics_text());
    }

    #[test]
    fn protocols_by_name() {
        assert_eq!("NDJSON".parse::<Protocol>().unwrap(), Protocol::Ndjson);
        assert_eq!(Protocol::Ndjson.as_str(), "ndjson");
        assert_eq!("ag-ui".parse::<Protocol>().unwrap(), Protocol::AgUi);
        assert_eq!("AG-UI".parse::<Protocol>().unwrap(), Protocol::AgUi);
        assert_eq!("agui".parse::<Protocol>().unwrap(), Protocol::AgUi);
        assert_eq!(Protocol::AgUi.as_str(), "ag-ui");
        assert_eq!(Protocol::AgUi.to_string(), "ag-ui");
        assert_eq!(Protocol::AgUi.content_types(), ["text/event-stream"]);
        assert!(matches!(
            "sse".parse::<Protocol>(),
            Err(BuildError::UnknownProtocol(_))
        ));
    }

    #[test]
    fn zero_limits_are_refused() {
        let zero = |b: HttpAgentBuilder| match b.build() {
            Err(BuildError::Zero { setting }) => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            zero(HttpAgent::builder().max_line_bytes(0)),
            "max_line_bytes"
        );
        assert_eq!(zero(HttpAgent::builder().max_in_flight(0)), "max_in_flight");
        assert_eq!(
            zero(HttpAgent::builder().idle_timeout(Duration::ZERO)),
            "idle_timeout"
        );
        assert_eq!(
            zero(HttpAgent::builder().total_timeout(Some(Duration::ZERO))),
            "total_timeout"
        );
    }

    #[test]
    fn names_pick_services() {
        let agent = HttpAgent::builder()
            .default_service(Service::ndjson("http://a/run").unwrap())
            .agent("b", Service::ndjson("http://b/run").unwrap())
            .build()
            .unwrap();
        assert_eq!(agent.service_for(None).unwrap().url().host(), Some("a"));
        assert_eq!(
            agent.service_for(Some("b")).unwrap().url().host(),
            Some("b")
        );
        assert!(agent.service_for(Some("B")).is_none());
        let request = RunRequest::new("hi").with_agent_name("c");
        let refused = agent
            .accepts(MessageType::StartAgent, &request)
            .unwrap_err();
        assert_eq!(refused.code(), UNKNOWN_AGENT);
        assert!(
            agent
                .accepts(MessageType::StartAgent, &RunRequest::new("hi"))
                .is_ok()
        );
    }

    #[test]
    fn every_failure_has_a_listed_code() {
        for failure in [
            AgentFailure::Unreachable,
            AgentFailure::HttpStatus { status: 500 },
            AgentFailure::NoTerminal,
            AgentFailure::Busy,
            AgentFailure::Token,
            AgentFailure::Connection,
            AgentFailure::IdleTimeout(Duration::from_secs(1)),
            AgentFailure::TotalTimeout(Duration::from_secs(1)),
            AgentFailure::LineTooLarge { limit: 1 },
        ] {
            assert!(AgentFailure::CODES.contains(&failure.code()), "{failure:?}");
        }
        assert!(AgentFailure::HttpStatus { status: 503 }.is_recoverable());
        assert!(!AgentFailure::HttpStatus { status: 404 }.is_recoverable());
    }
}
