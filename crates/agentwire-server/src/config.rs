//! Server configuration: limits, timeouts and handshake policy, with safe defaults.

use std::sync::Arc;
use std::time::Duration;

use agentwire_session::SessionConfig;
use agentwire_stream::WindowConfig;

use crate::accept::IpNet;
use crate::error::ServerConfigError;

/// Limits and policies of a [`Server`](crate::Server).
///
/// Build one with [`Config::builder`]; [`Config::default`] is the documented defaults.
///
/// ```
/// use std::time::Duration;
/// use agentwire_server::Config;
///
/// let config = Config::builder()
///     .heartbeat_interval(Duration::from_secs(20))
///     .max_connections_per_user(4)
///     .allowed_origin("https://app.example.com")
///     .build()
///     .unwrap();
/// assert_eq!(config.max_message_bytes(), 64 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// The per-connection rules (heartbeats, rate limit, runs, message size, auth timeout),
    /// shared by every session.
    pub(crate) session: Arc<SessionConfig>,
    pub(crate) max_connections_per_user: usize,
    pub(crate) outbound_queue_frames: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) in_band_auth: bool,
    pub(crate) replay: WindowConfig,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) allow_query_token: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) read_buffer_bytes: usize,
    pub(crate) write_buffer_bytes: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) max_pending_handshakes_per_peer: usize,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) send_buffer_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) service_name: String,
}

/// Default connections per user; the next one is closed 4409.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 10;
/// Default socket send buffer per connection (`SO_SNDBUF`; the kernel doubles it for its own
/// bookkeeping). See [`ConfigBuilder::send_buffer_bytes`].
pub const DEFAULT_SEND_BUFFER_BYTES: usize = 64 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            session: Arc::new(SessionConfig::default()),
            max_connections_per_user: DEFAULT_MAX_CONNECTIONS_PER_USER,
            outbound_queue_frames: 256,
            write_timeout: Duration::from_secs(10),
            in_band_auth: false,
            replay: WindowConfig::default(),
            allowed_origins: Vec::new(),
            allow_query_token: false,
            shutdown_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_pending_handshakes: 4096,
            max_pending_handshakes_per_peer: 1024,
            trusted_proxies: Vec::new(),
            send_buffer_bytes: DEFAULT_SEND_BUFFER_BYTES,
            max_connections: 100_000,
            service_name: "agentwire".to_owned(),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
            invalid: None,
        }
    }

    /// How often the server pings each connection.
    pub fn heartbeat_interval(&self) -> Duration {
        self.session.heartbeat_interval
    }

    /// How long a ping may go unanswered before the connection is closed 4408.
    pub fn pong_timeout(&self) -> Duration {
        self.session.pong_timeout
    }

    /// The largest inbound message; a larger one closes the connection with 1009.
    pub fn max_message_bytes(&self) -> usize {
        self.session.max_message_bytes
    }

    /// Open connections allowed per user; the next one is closed with 4409.
    pub fn max_connections_per_user(&self) -> usize {
        self.max_connections_per_user
    }

    /// Inbound messages per second per connection (0: no limit).
    pub fn rate_limit_per_sec(&self) -> u32 {
        self.session.rate_limit_per_sec
    }

    /// Messages a connection may send in a burst above the steady rate.
    pub fn rate_limit_burst(&self) -> u32 {
        self.session.rate_limit_burst
    }

    /// Frames that may wait for one connection before it is closed as a slow consumer (4008).
    pub fn outbound_queue_frames(&self) -> usize {
        self.outbound_queue_frames
    }

    /// Runs one connection may have in flight at once.
    pub fn max_runs_per_connection(&self) -> usize {
        self.session.max_runs_per_connection
    }

    /// How long a connection opened without credentials has to authenticate in-band, when
    /// [`in_band_auth`](ConfigBuilder::in_band_auth) is on.
    pub fn auth_timeout(&self) -> Duration {
        self.session.auth_timeout
    }

    /// Whether a connection may open without credentials and authenticate with its first
    /// frame (`auth_refresh {token}`) within the [`auth_timeout`](Self::auth_timeout).
    pub fn in_band_auth(&self) -> bool {
        self.in_band_auth
    }

    /// Browser origins allowed to connect; empty allows any.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Whether `?token=` is read (off by default: query strings end up in access logs).
    pub fn allow_query_token(&self) -> bool {
        self.allow_query_token
    }

    /// How long a shutdown waits for connections to close.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// How long a client may take to send its HTTP request head (the upgrade request).
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The largest HTTP request head (request line and headers) read before answering 431.
    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// TCP connections that may be in the HTTP phase (before the upgrade) at once; more are
    /// closed at accept.
    pub fn max_pending_handshakes(&self) -> usize {
        self.max_pending_handshakes
    }

    /// TCP connections one peer address may have in the HTTP phase at once; more from that
    /// address are closed at accept, while other peers are served. Trusted proxies are exempt.
    pub fn max_pending_handshakes_per_peer(&self) -> usize {
        self.max_pending_handshakes_per_peer
    }

    /// Load balancers and proxies in front of the server: exempt from the per-peer cap, and
    /// their `X-Forwarded-For` names the client in logs.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted_proxies
    }

    /// The socket send buffer set on each accepted connection (`SO_SNDBUF`), in bytes; 0
    /// leaves the kernel's auto-tuning on.
    pub fn send_buffer_bytes(&self) -> usize {
        self.send_buffer_bytes
    }

    /// Open WebSocket connections the server holds at most; more are closed at accept.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The service name reported by `/ws/health`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The deepest nesting of arrays and objects in JSON a request hands on unparsed.
    pub fn max_json_depth(&self) -> usize {
        self.session.max_json_depth
    }

    /// The replay window: events kept per user, for how long, and the server-wide memory
    /// budget (`max_events` 0: replay off).
    pub fn replay(&self) -> &WindowConfig {
        &self.replay
    }

    /// The per-connection rules every session runs with.
    pub fn session(&self) -> &SessionConfig {
        &self.session
    }

    pub(crate) fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin))
    }
}

/// Builds a [`Config`]; every setting starts at its default.
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
    /// A setter given a value it could not read: `build` reports it.
    invalid: Option<&'static str>,
}

impl ConfigBuilder {
    fn session(&mut self) -> &mut SessionConfig {
        Arc::make_mut(&mut self.config.session)
    }

    /// Lets a connection open without credentials and authenticate with `auth_refresh
    /// {token}` as its first frame (default off: a handshake without credentials is answered
    /// 4401 `missing_token`). A connection that has not authenticated within the
    /// [`auth_timeout`](Self::auth_timeout) is closed 4408 `auth_timeout`; any other first
    /// frame is answered 4401 `missing_token`.
    pub fn in_band_auth(mut self, allow: bool) -> Self {
        self.config.in_band_auth = allow;
        self
    }

    /// The replay window (default: the last 1,000 events and at most 5 minutes per user, 64 MiB
    /// server-wide, oldest evicted first). A reconnecting client that asks with
    /// `?epoch=&since=` gets what it missed within the window, or `reset` with a reason.
    pub fn replay(mut self, window: WindowConfig) -> Self {
        self.config.replay = window;
        self
    }

    /// Events kept per user for resume (default 1,000; 0 turns replay off).
    pub fn replay_max_events(mut self, events: usize) -> Self {
        self.config.replay.max_events = events;
        self
    }

    /// How long an event is kept for resume (default 5 minutes).
    pub fn replay_max_age(mut self, age: Duration) -> Self {
        self.config.replay.max_age = age;
        self
    }

    /// The server-wide memory budget of the replay window, in bytes (default 64 MiB); past it
    /// the oldest events are evicted first.
    pub fn replay_max_bytes(mut self, bytes: usize) -> Self {
        self.config.replay.max_bytes = bytes;
        self
    }

    /// The deepest nesting of arrays and objects allowed in JSON a request hands on to the
    /// handler unparsed (`payload.context`, other types' payloads; default 32); deeper is
    /// answered `invalid_payload`.
    pub fn max_json_depth(mut self, depth: usize) -> Self {
        self.session().max_json_depth = depth;
        self
    }

    /// How long a connection opened without credentials has to authenticate (default 10 s);
    /// see [`in_band_auth`](Self::in_band_auth).
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.session().auth_timeout = timeout;
        self
    }

    /// How often the server pings each connection (default 25 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.session().heartbeat_interval = interval;
        self
    }

    /// How long a ping may go unanswered (nothing at all from the peer) before the connection
    /// is closed 4408 `heartbeat_timeout` (default 10 s).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.session().pong_timeout = timeout;
        self
    }

    /// The largest inbound message (default 64 KiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.session().max_message_bytes = bytes;
        self
    }

    /// Open connections allowed per user (default 10).
    pub fn max_connections_per_user(mut self, max: usize) -> Self {
        self.config.max_connections_per_user = max;
        self
    }

    /// Inbound messages per second per connection; 0 turns the limit off (default 20).
    /// The burst allowance follows at twice the rate unless set after this.
    pub fn rate_limit_per_sec(mut self, per_sec: u32) -> Self {
        self.session().rate_limit_per_sec = per_sec;
        self.session().rate_limit_burst = per_sec.saturating_mul(2);
        self
    }

    /// Messages a connection may send in a burst above the steady rate.
    pub fn rate_limit_burst(mut self, burst: u32) -> Self {
        self.session().rate_limit_burst = burst;
        self
    }

    /// Rate-limited messages a connection may send, without a pause that refills its
    /// allowance, before it is closed with 4429 (default 50).
    pub fn rate_limit_strikes(mut self, strikes: u32) -> Self {
        self.session().rate_limit_strikes = strikes;
        self
    }

    /// Frames that may wait for one connection (default 256); past that it is closed 4008.
    pub fn outbound_queue_frames(mut self, frames: usize) -> Self {
        self.config.outbound_queue_frames = frames;
        self
    }

    /// How long one write may block before the peer is closed as a slow consumer (default 10 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// Runs one connection may have in flight at once (default 16).
    pub fn max_runs_per_connection(mut self, max: usize) -> Self {
        self.session().max_runs_per_connection = max;
        self
    }

    /// Allows a browser origin (repeatable). Once any is set, other origins get HTTP 403;
    /// requests without `Origin` (non-browser clients) still pass.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.config.allowed_origins.push(origin.into());
        self
    }

    /// Reads `?token=` as a last resort (default off: query strings end up in access logs).
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.config.allow_query_token = allow;
        self
    }

    /// How long a shutdown waits for connections to close (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long the server waits for the peer's answer to its close frame (default 2 s).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// Size of each connection's read buffer, and the most one socket read takes (default
    /// 1 KiB). Messages up to the maximum size are still read, in several reads; the buffer
    /// only grows while one is. Every connection keeps it while idle, so a smaller one saves
    /// memory (1 KiB instead of 4 KiB: 8.6 KB -> 5.6 KB per idle connection together with
    /// the allocator change); a larger one takes big messages, and bursts of small ones, in
    /// fewer reads (at 1 KiB about one small request in nine takes a second `recvfrom`; at
    /// 2 or 4 KiB none did, in docs/performance.md's load runs).
    pub fn read_buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.read_buffer_bytes = bytes;
        self
    }

    /// How many outbound bytes a connection gathers before it writes to the socket (default
    /// 4 KiB): a batch of frames under it leaves in one write.
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.write_buffer_bytes = bytes;
        self
    }

    /// How long a client may take to send its upgrade request head (default 10 s): slow or
    /// silent connections are closed after it.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// The largest HTTP request head accepted (default 64 KiB, at least 8 KiB).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.config.max_header_bytes = bytes;
        self
    }

    /// TCP connections allowed in the HTTP phase at once (default 4096).
    pub fn max_pending_handshakes(mut self, max: usize) -> Self {
        self.config.max_pending_handshakes = max;
        self
    }

    /// TCP connections one peer address may have in the HTTP phase at once (default 1024, a
    /// quarter of the total): one peer that opens connections and sends nothing cannot take
    /// every pending slot. Trusted proxies are exempt.
    pub fn max_pending_handshakes_per_peer(mut self, max: usize) -> Self {
        self.config.max_pending_handshakes_per_peer = max;
        self
    }

    /// Trusts a proxy or load balancer in front of the server (repeatable), as an address or a
    /// CIDR network (`10.0.0.0/8`): its connections are exempt from the per-peer pending cap
    /// (it carries many clients), and the client address in logs is taken from its
    /// `X-Forwarded-For` header (the rightmost address that is not a trusted proxy).
    /// [`build`](Self::build) refuses a value that is not an address or network.
    pub fn trusted_proxy(mut self, network: impl AsRef<str>) -> Self {
        match IpNet::parse(network.as_ref()) {
            Some(net) => self.config.trusted_proxies.push(net),
            None => self.invalid = Some("trusted_proxy"),
        }
        self
    }

    /// The socket send buffer of each accepted connection, in bytes (default 64 KiB; 0 keeps
    /// the kernel's auto-tuning, which grows it to megabytes). A small buffer keeps a client
    /// that stops reading from parking megabytes in the kernel where the server cannot see
    /// them: the backlog stays in the server's bounded queue, and the write timeout closes the
    /// client 4008. Applied by [`Server::serve`](crate::Server::serve).
    pub fn send_buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.send_buffer_bytes = bytes;
        self
    }

    /// Open WebSocket connections allowed in all (default 100,000).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// The service name `/ws/health` reports (default `agentwire`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = name.into();
        self
    }

    /// Checks the settings and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ServerConfigError`] naming the first setting out of range.
    pub fn build(self) -> Result<Config, ServerConfigError> {
        let c = self.config;
        let s = &*c.session;
        let check = |ok: bool, setting: &'static str, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ServerConfigError::OutOfRange { setting, expected })
            }
        };
        check(
            !s.heartbeat_interval.is_zero(),
            "heartbeat_interval",
            "more than zero",
        )?;
        check(!s.pong_timeout.is_zero(), "pong_timeout", "more than zero")?;
        check(!s.auth_timeout.is_zero(), "auth_timeout", "more than zero")?;
        check(s.max_json_depth >= 1, "max_json_depth", "at least 1")?;
        check(
            (256..=16 * 1024 * 1024).contains(&s.max_message_bytes),
            "max_message_bytes",
            "between 256 bytes and 16 MiB",
        )?;
        check(
            c.max_connections_per_user >= 1,
            "max_connections_per_user",
            "at least 1",
        )?;
        check(
            s.rate_limit_per_sec == 0 || s.rate_limit_burst >= 1,
            "rate_limit_burst",
            "at least 1 when a rate limit is set",
        )?;
        check(
            c.outbound_queue_frames >= 1,
            "outbound_queue_frames",
            "at least 1",
        )?;
        check(
            !c.write_timeout.is_zero(),
            "write_timeout",
            "more than zero",
        )?;
        check(
            s.max_runs_per_connection >= 1,
            "max_runs_per_connection",
            "at least 1",
        )?;
        check(
            (256..=1024 * 1024).contains(&c.read_buffer_bytes),
            "read_buffer_bytes",
            "between 256 bytes and 1 MiB",
        )?;
        check(
            (512..=1024 * 1024).contains(&c.write_buffer_bytes),
            "write_buffer_bytes",
            "between 512 bytes and 1 MiB",
        )?;
        check(
            !c.handshake_timeout.is_zero(),
            "handshake_timeout",
            "more than zero",
        )?;
        check(
            (8 * 1024..=1024 * 1024).contains(&c.max_header_bytes),
            "max_header_bytes",
            "between 8 KiB and 1 MiB",
        )?;
        check(
            c.max_pending_handshakes >= 1,
            "max_pending_handshakes",
            "at least 1",
        )?;
        check(c.max_connections >= 1, "max_connections", "at least 1")?;
        check(
            c.max_pending_handshakes_per_peer >= 1,
            "max_pending_handshakes_per_peer",
            "at least 1",
        )?;
        check(
            c.send_buffer_bytes == 0 || c.send_buffer_bytes >= 4096,
            "send_buffer_bytes",
            "0 (kernel auto-tuning) or at least 4 KiB",
        )?;
        if let Err(agentwire_stream::ConfigError::OutOfRange { setting, expected }) =
            c.replay.validate()
        {
            return Err(ServerConfigError::OutOfRange { setting, expected });
        }
        check(
            c.replay.max_events == 0 || c.replay.max_bytes >= 64 * 1024,
            "replay_max_bytes",
            "at least 64 KiB when replay is on",
        )?;
        if let Some(setting) = self.invalid {
            return Err(ServerConfigError::OutOfRange {
                setting,
                expected: "an IP address or a CIDR network such as 10.0.0.0/8",
            });
        }
        for origin in &c.allowed_origins {
            check(
                !origin.is_empty() && origin.bytes().all(|b| b.is_ascii_graphic()),
                "allowed_origin",
                "a non-empty origin such as https://app.example.com",
            )?;
        }
        Ok(c)
    }
}
