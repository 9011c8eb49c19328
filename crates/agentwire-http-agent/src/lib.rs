//! An agentwire [`Handler`](agentwire_server::Handler) that forwards each run to an agent
//! service over HTTP and relays the service's streamed events as the run's, in one of two
//! protocols chosen per service ([`Protocol`]): `ndjson` (agentwire's own events, one per
//! line) or `ag-ui` (AG-UI events over Server-Sent Events, mapped onto agentwire's).
//!
//! For every `start_agent` / `user_message` (and their aliases) [`HttpAgent`] POSTs the request
//! to the agent service chosen by `payload.agent_name` ([`HttpAgentBuilder::agent`]; the
//! [default service](HttpAgentBuilder::default_service) when the request names none) and turns
//! the streamed response into the run's events. Each event passes the run contract on the way
//! (agentwire's [`RunValidator`](agentwire_events::RunValidator): `agent_started` first, one
//! terminal event, nothing after it), then is stamped, sequenced and fanned out by the server
//! like any other. The run's id is agentwire's: the service's events carry only a type and a
//! payload.
//!
//! The HTTP client is hyper 1.x's HTTP/1.1 client connection (`hyper::client::conn::http1`:
//! keep-alive, chunked decoding and the rest are hyper's), with a connection pool of this
//! crate's own: the server already builds hyper, so it costs no new HTTP stack. Only `http://`
//! URLs are supported for now (no TLS: put the agent service on a private network or behind a
//! local proxy).
//!
//! # Connections
//!
//! Each run reads its response on its own task: it takes an idle connection to the service's
//! address (host and port) or opens one, sends the request, and drives hyper's connection
//! itself while it reads the body (no connection task, no hand-over of body chunks between
//! tasks). The connection goes back to the pool only when the response was read to its end and
//! hyper can send another request on it (keep-alive; not after `Connection: close`); any other
//! connection is closed, so a cancelled or failed run closes its connection and the service
//! sees the client disconnect.
//!
//! Idle connections are polled by no one. Before one is reused, hyper's connection is polled
//! once: one the service closed (its keep-alive timeout, a restart) is seen closed and
//! discarded ([`HttpAgent::idle_connections_found_closed`]). A close that crosses the next
//! request on the wire gets through: if hyper had not written the request yet, it gives it
//! back and the request is sent on another connection ([`HttpAgent::requests_resent`]; it
//! never reached the service); if the request was written, the run fails with
//! `agent_connection_failed` (recoverable) and is not sent again, since the service may have
//! started the run. A service whose keep-alive timeout is longer than
//! [`HttpAgentBuilder::pool_idle_timeout`] (30 s by default; uvicorn's is 5 s) avoids the race.
//!
//! The pool keeps at most [`HttpAgentBuilder::pool_max_idle`] idle connections per service
//! address ([`max_in_flight`](HttpAgentBuilder::max_in_flight) by default), reusing the most
//! recently used first; a task closes idle connections once they are older than the pool's
//! idle timeout or their service closed them.
//!
//! # The `ndjson` protocol ([`Protocol::Ndjson`])
//!
//! The request: `POST` to the service's URL, `Content-Type: application/json`,
//! `Accept: application/x-ndjson`, the service token in `Authorization: Bearer` (below), and
//! the body
//!
//! ```json
//! {"run_id": "run_...", "thread_id": "t1", "user_id": "user-1", "message_id": "m1",
//!  "type": "start_agent", "payload": {"text": "weather?", "agent_name": "weather",
//!  "context": {...}}}
//! ```
//!
//! (`type` is the canonical request type, `start_agent` or `user_message`; optional fields are
//! omitted when absent). The response: a 2xx status, `Content-Type: application/x-ndjson` (or
//! `application/jsonl`; parameters such as `charset` are ignored), one agentwire event per
//! line, `{"type": ..., "payload": {...}}`, with any name or alias of the type in any case
//! (normalized by `agentwire_types::normalize`, like inbound frames) and payloads as in
//! `docs/schema`. Blank lines are skipped, `\r\n` is accepted, the last line needs no newline,
//! other fields of a line are ignored. The run ends on the wire with the terminal event;
//! after it the response is read only to its end (briefly, blank lines only), so that the
//! connection goes back to the pool for the next run: a service should end its response right
//! after the terminal event. Anything else after it is ignored and the connection dropped.
//!
//! # The `ag-ui` protocol ([`Protocol::AgUi`])
//!
//! The request: `POST` to the service's URL, `Content-Type: application/json`,
//! `Accept: text/event-stream`, the service token as for `ndjson`, and an AG-UI
//! `RunAgentInput`:
//!
//! ```json
//! {"threadId": "t1", "runId": "run_...", "protocolVersion": "1.0", "state": {},
//!  "messages": [{"id": "m1", "role": "user", "content": "weather?"}],
//!  "tools": [], "context": [{"description": "locale", "value": "nb"}],
//!  "forwardedProps": {"agentwire": {"user_id": "user-1", "type": "start_agent",
//!                                   "agent_name": "weather", "message_id": "m1"}}}
//! ```
//!
//! `threadId` is the request's thread (the run id when it named none); the user message's `id`
//! is the request's `message_id` (`<runId>-user` when none); `context` has one entry per
//! member of `payload.context` (`description`: its name, `value`: its value, non-strings as
//! compact JSON); `forwardedProps.agentwire` is informational (the service token is the
//! verified identity).
//!
//! The response: a 2xx status, `Content-Type: text/event-stream`, AG-UI events as Server-Sent
//! Events (each event's JSON in its `data` lines; comments, `event`, `id` and `retry` fields
//! are read and ignored; `\r\n`, `\n` and `\r` line ends). They map onto agentwire's events:
//! `RUN_STARTED` → `agent_started`; `STEP_STARTED` → `agent_thinking`; each
//! `TEXT_MESSAGE_CONTENT` / `TEXT_MESSAGE_CHUNK` delta → `agent_response_chunk`;
//! `TOOL_CALL_START` / `ARGS` / `END` (or `TOOL_CALL_CHUNK`) → one `tool_executing` with the
//! arguments assembled from the deltas (a JSON object as `parameters`); `TOOL_CALL_RESULT` →
//! `tool_completed`; a reasoning message → `agent_thinking` with its text; `RUN_FINISHED` →
//! `agent_completed` whose `result` is `{"text": <the assembled text>, "result"?, "outcome"?,
//! "usage"?}`; `RUN_ERROR` → `agent_error` with its `code` (`run_error` when none). Every other
//! event (state, messages, activity, subagents, custom, raw, reasoning phases, unknown types) is carried
//! whole as an `agent_progress` frame, `{"source": "ag-ui", "ag_ui_type": ..., "event": {...}}`.
//! Every event read is counted by type ([`HttpAgent::ag_ui_events`], [`HttpAgent::metrics_text`]).
//! The full mapping table, one row per AG-UI event type, is in `docs/agents.md`.
//!
//! # The service token
//!
//! With [`HttpAgentBuilder::service_token_secret`], each request carries a JWT signed with
//! HS256 by that secret, valid [`SERVICE_TOKEN_TTL`] (60 s): `sub` is the user id, `run_id`
//! the run's id, `aud` is `agent-service`. The user's own JWT is never forwarded.
//!
//! # Failures
//!
//! A request that names an agent with no service here is refused with an `error` frame with
//! code `unknown_agent`, and no run starts; so is a request past the limit of forwarded runs in
//! flight, with code `agent_busy` (recoverable) and `retry_after_ms`. Every failure of a
//! forwarded run ends it with `agent_error` and one of these codes ([`AgentFailure::code`]),
//! with the HTTP connection closed; the WebSocket stays usable. A run that fails before the
//! service's `agent_started` still starts with one on the wire (the server's
//! [`Run::emit`](agentwire_server::Run::emit) puts it first: the request's `agent_name`, or
//! `default`):
//!
//! | code | when | recoverable |
//! |---|---|---|
//! | `agent_unreachable` | the connection could not be made (refused, DNS, connect timeout) | yes |
//! | `agent_http_status` | a status other than 2xx | for 5xx and 429 |
//! | `agent_content_type` | a Content-Type the protocol does not accept | no |
//! | `agent_malformed_line` | a line (`ndjson`) or SSE event (`ag-ui`) that is not an event | no |
//! | `agent_contract_broken` | an event that breaks the run contract (`ag-ui`: also the tool-call sequence) | no |
//! | `agent_line_too_large` | a line, SSE event or assembled text over the maximum line size | no |
//! | `agent_no_terminal` | the response ended without a terminal event | no |
//! | `agent_idle_timeout` | no headers or no bytes for longer than the idle timeout | yes |
//! | `agent_timeout` | the run exceeded the total timeout (when one is set) | yes |
//! | `agent_connection_failed` | the connection broke once the request was under way: before the response head (for example a kept connection the service closed as the request went out) or during the response | yes |
//! | `agent_busy` | the forwarded-run limit was reached between `accepts` and the run | yes |
//! | `agent_token_failed` | the service token could not be signed | no |
//!
//! `cancel_agent` drops the run: the in-flight response is dropped with it, which closes the
//! HTTP connection (the service sees the client disconnect), and the server ends the run with
//! `agent_error` / `cancelled`. Each failure is logged (`tracing`, with the run id, user id,
//! service URL ([`Service::display_url`]: no user, password or query) and code; never a
//! token or payload text) and counted ([`HttpAgent::failures`]). The server's `GET /metrics`
//! ends with the agent's counters ([`HttpAgent::metrics_text`], through
//! [`Handler::render_metrics`](agentwire_server::Handler::render_metrics)), and its
//! `GET /ws/config` shows the services and limits under `agent` (never the service-token
//! secret). The same contract for service authors is in `docs/agents.md`.
//!
//! ```no_run
//! use agentwire_http_agent::{HttpAgent, Service};
//! use agentwire_server::{Server, Validator};
//!
//! # fn demo(validator: Validator) -> Result<(), agentwire_http_agent::BuildError> {
//! let agent = HttpAgent::builder()
//!     .default_service(Service::ndjson("http://127.0.0.1:9000/run")?)
//!     .agent("weather", Service::ndjson("http://10.0.0.7:8000/agent")?)
//!     .agent("planner", Service::ag_ui("http://10.0.0.8:8000/agui")?)
//!     .service_token_secret("a secret of at least 32 bytes, from config")
//!     .build()?;
//! let server = Server::builder(validator).handler(agent).build();
//! # let _ = server; Ok(()) }
//! ```

mod agent;
mod agui;
mod error;
mod ndjson;
mod pool;
mod relay;
mod sse;
mod token;

pub use agent::{
    DEFAULT_BUSY_RETRY_AFTER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_LINE_BYTES, DEFAULT_POOL_IDLE_TIMEOUT, HttpAgent, HttpAgentBuilder, Protocol,
    SERVICE_TOKEN_AUDIENCE, SERVICE_TOKEN_TTL, Service, UNKNOWN_AGENT,
};
pub use error::{AgentFailure, BuildError};
