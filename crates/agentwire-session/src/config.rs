//! [`SessionConfig`]: the per-connection limits and timers, with their defaults.

use std::time::Duration;

/// Default heartbeat interval: inside the 30 s idle timeout common load balancers use.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(25);
/// Default time a ping may go unanswered before the connection is closed 4408.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection opened without credentials has to authenticate in-band.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest inbound message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Default inbound messages per second per connection.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 20;
/// Default runs in flight per connection.
pub const DEFAULT_MAX_RUNS_PER_CONNECTION: usize = 16;
/// Default deepest nesting of arrays and objects in the JSON a request hands on unparsed
/// (`payload.context`, other types' payloads).
pub const DEFAULT_MAX_JSON_DEPTH: usize = 32;

/// The limits and timers of one session. [`Default`] is the documented defaults; the server's
/// `Config` builds one from its own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// How often the session asks for a WebSocket ping.
    pub heartbeat_interval: Duration,
    /// How long a ping may go unanswered (nothing at all from the peer) before the session
    /// closes the connection with 4408 `heartbeat_timeout`.
    pub pong_timeout: Duration,
    /// How long a connection opened without credentials has to send `auth_refresh {token}`
    /// before it is closed with 4408 `auth_timeout`.
    pub auth_timeout: Duration,
    /// Inbound messages per second (0: no limit).
    pub rate_limit_per_sec: u32,
    /// Messages allowed in a burst above the steady rate.
    pub rate_limit_burst: u32,
    /// Refused messages in a row, without a pause, before the connection is closed 4429.
    pub rate_limit_strikes: u32,
    /// Runs started from one connection that may be in flight at once.
    pub max_runs_per_connection: usize,
    /// The largest inbound message, announced in `connection_established` (the transport
    /// enforces it).
    pub max_message_bytes: usize,
    /// The deepest nesting of arrays and objects allowed in JSON a request hands on to the
    /// application unparsed (`payload.context` of a run, the payload of a type the handler
    /// takes); deeper is answered `invalid_payload`. Agent services in other languages parse
    /// it recursively (Python's `json.loads` raises `RecursionError` near 1,000 levels).
    pub max_json_depth: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_burst: 2 * DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_strikes: 50,
            max_runs_per_connection: DEFAULT_MAX_RUNS_PER_CONNECTION,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
        }
    }
}
