//! The errors of this crate: building an [`HttpAgent`](crate::HttpAgent), and the ways a
//! forwarded run fails.

use std::time::Duration;

/// A configuration the builder refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A service URL that is not an absolute `http://` URL.
    #[error("invalid agent service url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A service-token secret shorter than 32 bytes (RFC 7518 section 3.2: an HS256 key has
    /// at least as many bytes as the hash's output).
    #[error("the service-token secret is {len} bytes; at least 32 are required")]
    ShortSecret {
        /// The secret's length in bytes.
        len: usize,
    },
    /// A protocol name other than `ndjson` and `ag-ui`.
    #[error("unknown agent protocol {0:?} (expected ndjson or ag-ui)")]
    UnknownProtocol(String),
    /// A limit set to zero.
    #[error("invalid setting {setting}: must be greater than zero")]
    Zero {
        /// The setting's name.
        setting: &'static str,
    },
}

/// Why a forwarded run failed: each ends the run with `agent_error` and the variant's
/// [`code`](Self::code). Messages name what went wrong, never a token or payload text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentFailure {
    /// The connection to the service could not be made (refused, DNS, connect timeout).
    #[error("the agent service is unreachable")]
    Unreachable,
    /// The service answered a status other than 2xx.
    #[error("the agent service answered HTTP {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// The response's Content-Type is not the protocol's.
    #[error("the agent service answered Content-Type {found:?}, expected {expected}")]
    ContentType {
        /// The Content-Type received (empty when absent).
        found: String,
        /// What the protocol expects.
        expected: &'static str,
    },
    /// A line of the response is not an event (not JSON, no known type, a bad payload).
    #[error("line {line} of the agent service's response is not an event: {reason}")]
    MalformedLine {
        /// The 1-based line number.
        line: u64,
        /// Why (the parser's message; no payload text).
        reason: String,
    },
    /// An SSE event of an `ag-ui` response is not an AG-UI event (not JSON, no string
    /// `type`, a mapped event without the fields agentwire reads). Same code as
    /// [`MalformedLine`](Self::MalformedLine).
    #[error("SSE event {event} of the agent service's response is not an AG-UI event: {reason}")]
    MalformedEvent {
        /// The 1-based number of the SSE event (counting events with data).
        event: u64,
        /// Why (no payload text).
        reason: String,
    },
    /// An event breaks the run contract (started first, one terminal event, nothing after).
    #[error("event {index} from the agent service breaks the run contract: {reason}")]
    ContractBroken {
        /// The 0-based index of the event in the run.
        index: usize,
        /// The rule broken.
        reason: String,
    },
    /// A line (`ndjson`), an SSE event or an assembled text, tool-call arguments or reasoning
    /// (`ag-ui`) is longer than the limit.
    #[error(
        "a line, event or assembled text of the agent service's response exceeds {limit} bytes"
    )]
    LineTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The response ended without a terminal event.
    #[error(
        "the agent service's response ended without a terminal event \
         (agent_completed or agent_error; RUN_FINISHED or RUN_ERROR)"
    )]
    NoTerminal,
    /// No data arrived for longer than the idle timeout.
    #[error("the agent service sent nothing for {0:?}")]
    IdleTimeout(Duration),
    /// The run took longer than the total timeout.
    #[error("the agent service did not finish within {0:?}")]
    TotalTimeout(Duration),
    /// The connection failed once the request was under way: before the response head (a kept
    /// connection the service closed as the request went out; the request is not sent again)
    /// or during the response (reset, truncated chunk).
    #[error("the connection to the agent service failed mid-response")]
    Connection,
    /// The forwarded-run limit of this node was reached.
    #[error("too many forwarded runs in flight, retry later")]
    Busy,
    /// The service-token could not be signed.
    #[error("the service token could not be signed")]
    Token,
}

impl AgentFailure {
    /// Every code [`code`](Self::code) returns.
    pub const CODES: &'static [&'static str] = &[
        "agent_unreachable",
        "agent_http_status",
        "agent_content_type",
        "agent_malformed_line",
        "agent_contract_broken",
        "agent_line_too_large",
        "agent_no_terminal",
        "agent_idle_timeout",
        "agent_timeout",
        "agent_connection_failed",
        "agent_busy",
        "agent_token_failed",
    ];

    /// The stable machine code, sent as the `agent_error` payload's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            AgentFailure::Unreachable => "agent_unreachable",
            AgentFailure::HttpStatus { .. } => "agent_http_status",
            AgentFailure::ContentType { .. } => "agent_content_type",
            AgentFailure::MalformedLine { .. } | AgentFailure::MalformedEvent { .. } => {
                "agent_malformed_line"
            }
            AgentFailure::ContractBroken { .. } => "agent_contract_broken",
            AgentFailure::LineTooLarge { .. } => "agent_line_too_large",
            AgentFailure::NoTerminal => "agent_no_terminal",
            AgentFailure::IdleTimeout(_) => "agent_idle_timeout",
            AgentFailure::TotalTimeout(_) => "agent_timeout",
            AgentFailure::Connection => "agent_connection_failed",
            AgentFailure::Busy => "agent_busy",
            AgentFailure::Token => "agent_token_failed",
        }
    }

    /// Whether the client may retry the same request: the service was unreachable, busy,
    /// slow or answered 5xx/429, as opposed to a service that answers wrongly.
    pub fn is_recoverable(&self) -> bool {
        match self {
            AgentFailure::Unreachable
            | AgentFailure::IdleTimeout(_)
            | AgentFailure::TotalTimeout(_)
            | AgentFailure::Connection
            | AgentFailure::Busy => true,
            AgentFailure::HttpStatus { status } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
