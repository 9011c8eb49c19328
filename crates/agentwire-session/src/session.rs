//! [`Session`]: one connection's protocol state, driven by the code that owns the socket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agentwire_auth::{AuthError, Principal, Token, Validator};
use agentwire_events::{
    AuthRefreshed, ConnectionEstablished, ErrorCode, ErrorReply, Event, OtherRequest, RawJson,
    Request, ResumeOutcome, RunRequest, StreamPosition, Timestamp, parse_inbound,
};
use agentwire_state::{CloseCode, CloseInfo};
use agentwire_types::MessageType;

use crate::config::SessionConfig;
use crate::ratelimit::{RateLimiter, Verdict};

/// What a [`Session`] asks of the code that runs it: the facts it does not own.
///
/// The server implements it over its handler and its registry of runs; a test or a fuzz target
/// implements it over a model.
pub trait Host {
    /// The validator that checks `auth_refresh` tokens (and in-band authentication).
    fn validator(&self) -> &Validator;

    /// Whether the application handles `message_type` (a client-sendable type other than the
    /// run requests and the session's own control messages); the session answers
    /// `unsupported_message_type` for the others.
    fn handles(&self, message_type: MessageType) -> bool;

    /// Runs started from this connection that are still in flight.
    fn runs_in_flight(&self) -> usize;

    /// Cancels run `run_id` of this connection's user, whichever of the user's connections
    /// started it, or, for `None`, every run this connection started that is still in flight.
    /// Returns whether any run was cancelled.
    fn cancel(&mut self, run_id: Option<&str>) -> bool;
}

/// One client frame, handled: its type (for metrics) and what the driver must do.
#[derive(Debug)]
#[must_use]
pub struct Handled<'a> {
    /// The normalized type, when the frame parsed.
    pub message_type: Option<MessageType>,
    /// What to do.
    pub action: Action<'a>,
}

/// What the driver does after a client frame.
#[derive(Debug)]
#[non_exhaustive]
#[must_use]
pub enum Action<'a> {
    /// Nothing to send (a cancel that found its run, for example).
    Nothing,
    /// Send this control frame to this connection only (`pong`, `heartbeat_ack`,
    /// `auth_refreshed`, `error`); its `reply_to` is set.
    Reply(Event),
    /// Start a run.
    Run(RunStart<'a>),
    /// Hand the request to the application's handler (a type [`Host::handles`] accepted).
    Message(Message<'a>),
    /// The connection, opened without credentials, has just authenticated in-band: register
    /// it on the user's stream and send [`Session::established`].
    Authenticated,
    /// Send the reply (if any) and close.
    Close(Close),
}

/// A run to start, decided by the session.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunStart<'a> {
    /// `start_agent` or `user_message`: what kind of request started it.
    pub kind: MessageType,
    /// The request.
    pub request: RunRequest<'a>,
    /// The thread the request names (envelope or payload).
    pub thread_id: Option<Arc<str>>,
    /// The client's `message_id`, for the run's events' `reply_to`.
    pub reply_to: Option<Arc<str>>,
}

/// A request for the application's handler.
#[derive(Debug)]
#[non_exhaustive]
pub struct Message<'a> {
    /// The request.
    pub request: OtherRequest<'a>,
    /// The client's `message_id`: an error the handler returns answers it, on this connection.
    pub reply_to: Option<Arc<str>>,
}

/// How the session ends a connection: a last frame to send, then the close frame.
#[derive(Debug)]
#[non_exhaustive]
pub struct Close {
    /// An `error` frame that says why, sent before the close frame.
    pub reply: Option<Event>,
    /// The close frame's code and reason.
    pub info: CloseInfo,
}

impl Close {
    /// A close with an `error` frame whose code is also the close reason.
    fn with_error(code: CloseCode, error: &'static str, message: impl Into<String>) -> Close {
        Close {
            reply: Some(Event::error(error, message)),
            info: CloseInfo::new(code, error),
        }
    }

    /// The close for a handshake whose authentication failed: one `error` frame with the
    /// error's code, then its close code (4401) with the code as reason.
    pub fn auth_failed(error: &AuthError) -> Close {
        Close {
            reply: Some(Event::error(error.code(), error.to_string())),
            info: CloseInfo::new(
                CloseCode::from_u16(error.close_code()),
                error.close_reason(),
            ),
        }
    }

    /// The close for a connection over its user's connection limit (4409).
    pub fn too_many_connections(limit: usize) -> Close {
        Close::with_error(
            CloseCode::TooManyConnections,
            ErrorCode::TooManyConnections.as_str(),
            format!("this user already has {limit} open connections"),
        )
    }

    /// The close for a connection that fell behind its outbound queue (4008).
    pub fn slow_consumer() -> Close {
        Close::with_error(
            CloseCode::SlowConsumer,
            ErrorCode::SlowConsumer.as_str(),
            "the connection's outbound queue was full: read faster, or reconnect",
        )
    }

    /// The close for a peer that kept exceeding the rate limit (4429).
    fn rate_limited() -> Close {
        Close {
            reply: None,
            info: CloseInfo::new(CloseCode::RateLimited, ErrorCode::RateLimited.as_str()),
        }
    }

    /// The close for a binary frame (1003): the protocol is JSON text frames.
    pub fn binary_frame() -> Close {
        Close {
            reply: None,
            info: CloseInfo::new(
                CloseCode::UnsupportedData,
                "binary frames are not supported: send JSON text frames",
            ),
        }
    }
}

/// What a timer expiry asks of the driver.
// Returned by value about once per heartbeat interval: boxing the close would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
#[must_use]
pub enum Timeout {
    /// Send a WebSocket ping.
    Ping,
    /// Close the connection.
    Close(Close),
}

enum Auth {
    /// Opened without credentials: waiting for `auth_refresh {token}` until `deadline`.
    Pending { deadline: Instant },
    /// Authenticated; the token expires at `expires`.
    Open {
        principal: Box<Principal>,
        expires: Instant,
    },
}

/// One connection's protocol state, without I/O (the quinn-proto idea): the driver feeds it
/// the client's frames and the timer's expiries, with the current time, and carries out what
/// it answers.
///
/// It owns every rule of a session: parsing and dispatch ([`handle_text`](Self::handle_text)),
/// the per-connection rate limit, cancel, token refresh, token expiry, in-band
/// authentication, heartbeats and their timeout. The driver owns the socket, the outbound
/// queue, the runs and one timer, armed at [`poll_timeout`](Self::poll_timeout).
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use agentwire_auth::{Validator, testing};
/// use agentwire_session::{Action, Host, Session, SessionConfig, Timeout};
/// use agentwire_types::MessageType;
///
/// struct Model { validator: Validator, runs: usize }
///
/// impl Host for Model {
///     fn validator(&self) -> &Validator { &self.validator }
///     fn handles(&self, _: MessageType) -> bool { false }
///     fn runs_in_flight(&self) -> usize { self.runs }
///     fn cancel(&mut self, _run_id: Option<&str>) -> bool { false }
/// }
///
/// let token = testing::Claims::new("user_1").sign(&testing::SigningKey::fixture(agentwire_auth::Algorithm::HS256))?;
/// let validator = testing::fixture_validator();
/// let principal = validator.validate(&token).unwrap();
/// let mut host = Model { validator, runs: 0 };
///
/// let start = Instant::now();
/// let mut session = Session::new(Arc::new(SessionConfig::default()), principal, start);
///
/// // A request: the session decides to start a run.
/// let handled = session.handle_text(start, r#"{"type": "execute_agent", "payload": {"message": "hi"}}"#, &mut host);
/// assert!(matches!(handled.action, Action::Run(_)));
///
/// // A ping: the session answers it on this connection.
/// let handled = session.handle_text(start, r#"{"type": "ping", "message_id": "p1"}"#, &mut host);
/// let Action::Reply(pong) = handled.action else { unreachable!() };
/// assert_eq!(pong.reply_to(), Some("p1"));
///
/// // Time passes: a WebSocket ping is due; unanswered, the connection is closed 4408.
/// let due = session.poll_timeout();
/// assert!(matches!(session.handle_timeout(due), Some(Timeout::Ping)));
/// let Some(Timeout::Close(close)) = session.handle_timeout(session.poll_timeout()) else { unreachable!() };
/// assert_eq!(close.info.code().as_u16(), 4408);
/// assert_eq!(close.info.reason(), "heartbeat_timeout");
/// # Ok::<(), agentwire_auth::ConfigError>(())
/// ```
pub struct Session {
    config: Arc<SessionConfig>,
    auth: Auth,
    limiter: Option<RateLimiter>,
    next_ping: Instant,
    /// Set when a ping went out and nothing has come from the peer since.
    pong_deadline: Option<Instant>,
}

impl Session {
    /// The session of a connection that authenticated in its handshake as `principal`.
    pub fn new(config: Arc<SessionConfig>, principal: Principal, now: Instant) -> Session {
        let expires = expiry_instant(&principal, now);
        Session::with_auth(
            config,
            Auth::Open {
                principal: Box::new(principal),
                expires,
            },
            now,
        )
    }

    /// The session of a connection opened without credentials, which must authenticate with
    /// `auth_refresh {token}` as its first frame within
    /// [`auth_timeout`](SessionConfig::auth_timeout), or is closed 4408 `auth_timeout`.
    pub fn awaiting_auth(config: Arc<SessionConfig>, now: Instant) -> Session {
        let deadline = now + config.auth_timeout;
        Session::with_auth(config, Auth::Pending { deadline }, now)
    }

    fn with_auth(config: Arc<SessionConfig>, auth: Auth, now: Instant) -> Session {
        let limiter = RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
            config.rate_limit_strikes,
            now,
        );
        Session {
            next_ping: now + config.heartbeat_interval,
            config,
            auth,
            limiter,
            pong_deadline: None,
        }
    }

    /// The session's settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The authenticated principal; `None` while in-band authentication is pending.
    pub fn principal(&self) -> Option<&Principal> {
        match &self.auth {
            Auth::Open { principal, .. } => Some(principal),
            Auth::Pending { .. } => None,
        }
    }

    /// The `connection_established` frame, the first the client gets once authenticated, with
    /// the answer to its resume request when it made one.
    pub fn established(
        &self,
        connection_id: &str,
        stream: StreamPosition,
        resume: Option<ResumeOutcome>,
        server_time: Timestamp,
    ) -> Option<Event> {
        let principal = self.principal()?;
        let mut payload = ConnectionEstablished::new(
            connection_id,
            principal.user_id(),
            millis(self.config.heartbeat_interval),
            self.config.max_message_bytes as u64,
            server_time,
            stream,
        );
        if let Some(resume) = resume {
            payload = payload.with_resume(resume);
        }
        Some(Event::connection_established(payload))
    }

    /// A WebSocket ping or pong from the peer: it is alive, and the frame counts toward the
    /// rate limit like any other (a ping makes the transport queue a pong, so a ping flood is
    /// a flood). Over the limit for too long: the close (4429).
    pub fn handle_control(&mut self, now: Instant) -> Option<Close> {
        self.pong_deadline = None;
        match self.limiter.as_mut()?.check(now) {
            Verdict::Abusive => Some(Close::rate_limited()),
            Verdict::Allow | Verdict::Limited { .. } => None,
        }
    }

    /// A binary frame from the peer: the protocol is JSON text, so the connection closes 1003.
    pub fn handle_binary(&mut self) -> Close {
        Close::binary_frame()
    }

    /// Handles one client text frame at `now`.
    pub fn handle_text<'a>(
        &mut self,
        now: Instant,
        text: &'a str,
        host: &mut impl Host,
    ) -> Handled<'a> {
        // Any frame from the peer proves it alive.
        self.pong_deadline = None;
        if let Auth::Pending { .. } = self.auth {
            return self.authenticate(now, text, host);
        }
        let inbound = match parse_inbound(text) {
            Ok(inbound) => inbound,
            Err(error) => {
                let action = match self.limit(now, error.message_id()) {
                    Some(action) => action,
                    None => Action::Reply(error.to_event()),
                };
                return Handled {
                    message_type: None,
                    action,
                };
            }
        };
        let message_type = Some(inbound.message_type());
        if let Some(action) = self.limit(now, inbound.message_id()) {
            return Handled {
                message_type,
                action,
            };
        }
        let reply_to: Option<Arc<str>> = inbound.message_id().map(Arc::from);
        let thread_id = match inbound.request() {
            Request::StartAgent(_) | Request::UserMessage(_) => {
                inbound.resolved_thread_id().map(Arc::from)
            }
            _ => None,
        };
        let reply = |event: Event| {
            Action::Reply(match &reply_to {
                Some(id) => event.with_reply_to(Arc::clone(id)),
                None => event,
            })
        };
        let action = match inbound.into_request() {
            Request::Ping => reply(Event::pong(Timestamp::now())),
            Request::Heartbeat => reply(Event::heartbeat_ack()),
            Request::StartAgent(request) | Request::UserMessage(request)
                if too_deep(request.context.as_ref().map(RawJson::get), &self.config) =>
            {
                reply(too_deep_reply("payload.context", &self.config))
            }
            Request::StartAgent(request) => {
                self.start(MessageType::StartAgent, request, thread_id, reply_to, host)
            }
            Request::UserMessage(request) => {
                self.start(MessageType::UserMessage, request, thread_id, reply_to, host)
            }
            Request::AuthRefresh(refresh) => {
                reply(self.refresh(now, &Token::new(refresh.token.expose()), host))
            }
            Request::CancelAgent(cancel) => {
                if host.cancel(cancel.run_id.as_deref()) {
                    Action::Nothing
                } else if cancel.run_id.is_some() {
                    reply(Event::error(
                        ErrorCode::UnknownRun.as_str(),
                        "no run with this run_id is in flight for this user",
                    ))
                } else {
                    reply(Event::error(
                        ErrorCode::UnknownRun.as_str(),
                        "no run started on this connection is in flight",
                    ))
                }
            }
            Request::Other(other)
                if host.handles(other.message_type())
                    && too_deep(other.payload().map(RawJson::get), &self.config) =>
            {
                reply(too_deep_reply("payload", &self.config))
            }
            Request::Other(other) if host.handles(other.message_type()) => {
                Action::Message(Message {
                    request: other,
                    reply_to,
                })
            }
            Request::Other(other) => {
                let t = other.message_type();
                reply(Event::new(
                    ErrorReply::new(
                        ErrorCode::UnsupportedMessageType.as_str(),
                        format!("this server does not handle {t} messages"),
                    )
                    .with_received_type(t.as_str()),
                ))
            }
            // `Request` is non-exhaustive: a request type this session does not know yet.
            _ => reply(Event::error(
                ErrorCode::UnsupportedMessageType.as_str(),
                "this server does not handle this message type",
            )),
        };
        Handled {
            message_type,
            action,
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has something to
    /// do: the next ping, the pong deadline, the token's expiry, or the in-band auth deadline.
    /// Calling it earlier is harmless.
    pub fn poll_timeout(&self) -> Instant {
        let due = match &self.auth {
            Auth::Pending { deadline } => return *deadline,
            Auth::Open { expires, .. } => (*expires).min(self.next_ping),
        };
        match self.pong_deadline {
            Some(deadline) => due.min(deadline),
            None => due,
        }
    }

    /// The timer fired at `now`: what is due, if anything.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        match &self.auth {
            Auth::Pending { deadline } => {
                return (now >= *deadline).then(|| {
                    Timeout::Close(Close::with_error(
                        CloseCode::Timeout,
                        ErrorCode::AuthTimeout.as_str(),
                        "no credentials in time: send auth_refresh {token} as the first frame, \
                         or authenticate in the handshake",
                    ))
                });
            }
            Auth::Open { expires, .. } if now >= *expires => {
                return Some(Timeout::Close(Close::with_error(
                    CloseCode::AuthFailed,
                    ErrorCode::TokenExpired.as_str(),
                    "the token expired: reconnect with a fresh one, or send auth_refresh before exp",
                )));
            }
            Auth::Open { .. } => {}
        }
        if let Some(deadline) = self.pong_deadline
            && now >= deadline
        {
            return Some(Timeout::Close(Close {
                reply: None,
                info: CloseInfo::new(CloseCode::Timeout, ErrorCode::HeartbeatTimeout.as_str()),
            }));
        }
        if now >= self.next_ping {
            self.next_ping = now + self.config.heartbeat_interval;
            if self.pong_deadline.is_none() {
                self.pong_deadline = Some(now + self.config.pong_timeout);
            }
            return Some(Timeout::Ping);
        }
        None
    }

    /// The rate limiter's answer when it refuses the frame.
    fn limit(&mut self, now: Instant, message_id: Option<&str>) -> Option<Action<'static>> {
        let limiter = self.limiter.as_mut()?;
        match limiter.check(now) {
            Verdict::Allow => None,
            Verdict::Limited { retry_after } => {
                let reply = Event::new(ErrorReply::rate_limited(millis(retry_after)));
                Some(Action::Reply(match message_id {
                    Some(id) => reply.with_reply_to(id),
                    None => reply,
                }))
            }
            Verdict::Abusive => Some(Action::Close(Close::rate_limited())),
        }
    }

    fn start<'a>(
        &self,
        kind: MessageType,
        request: RunRequest<'a>,
        thread_id: Option<Arc<str>>,
        reply_to: Option<Arc<str>>,
        host: &impl Host,
    ) -> Action<'a> {
        let limit = self.config.max_runs_per_connection;
        if host.runs_in_flight() >= limit {
            let refusal = Event::error(
                ErrorCode::TooManyRuns.as_str(),
                format!("this connection already has {limit} runs in flight"),
            );
            return Action::Reply(match reply_to {
                Some(id) => refusal.with_reply_to(id),
                None => refusal,
            });
        }
        Action::Run(RunStart {
            kind,
            request,
            thread_id,
            reply_to,
        })
    }

    /// `auth_refresh`: a valid token for the same user replaces the current one.
    fn refresh(&mut self, now: Instant, token: &Token, host: &impl Host) -> Event {
        let Auth::Open { principal, expires } = &mut self.auth else {
            let error = AuthError::MissingToken {
                query_token_ignored: false,
            };
            return Event::error(error.code(), error.to_string());
        };
        match host.validator().validate_refresh(token, principal) {
            Ok(fresh) => {
                *expires = expiry_instant(&fresh, now);
                let expires_at = expires_at(&fresh);
                **principal = fresh;
                Event::new(AuthRefreshed::new(expires_at))
            }
            Err(error) => Event::error(error.code(), error.to_string()),
        }
    }

    /// In-band authentication: the first frame must be `auth_refresh {token}`.
    fn authenticate<'a>(&mut self, now: Instant, text: &str, host: &impl Host) -> Handled<'a> {
        let inbound = parse_inbound(text).ok();
        let message_type = inbound.as_ref().map(|i| i.message_type());
        let close = match inbound.map(|i| i.into_request()) {
            Some(Request::AuthRefresh(refresh)) => {
                match host
                    .validator()
                    .validate(&Token::new(refresh.token.expose()))
                {
                    Ok(principal) => {
                        let expires = expiry_instant(&principal, now);
                        self.auth = Auth::Open {
                            principal: Box::new(principal),
                            expires,
                        };
                        self.next_ping = now + self.config.heartbeat_interval;
                        return Handled {
                            message_type,
                            action: Action::Authenticated,
                        };
                    }
                    Err(error) => Close::auth_failed(&error),
                }
            }
            _ => {
                let missing = AuthError::MissingToken {
                    query_token_ignored: false,
                };
                Close::with_error(
                    CloseCode::AuthFailed,
                    missing.code(),
                    "authenticate first: send auth_refresh {token} as the first frame",
                )
            }
        };
        Handled {
            message_type,
            action: Action::Close(close),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.principal().map(Principal::user_id))
            .field("poll_timeout", &self.poll_timeout())
            .finish_non_exhaustive()
    }
}

/// Whether `json` nests arrays and objects deeper than the configured maximum.
fn too_deep(json: Option<&str>, config: &SessionConfig) -> bool {
    json.is_some_and(|json| nesting_exceeds(json, config.max_json_depth))
}

fn too_deep_reply(field: &str, config: &SessionConfig) -> Event {
    Event::new(
        ErrorReply::new(
            ErrorCode::InvalidPayload,
            format!(
                "{field} nests arrays and objects deeper than {} levels",
                config.max_json_depth
            ),
        )
        .with_field(field),
    )
}

/// Whether valid JSON `text` nests arrays and objects more than `max` deep: one pass over the
/// bytes, skipping strings.
fn nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The largest time RFC 3339 can write (9999-12-31T23:59:59Z), in unix seconds.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// The token's `exp` as a timestamp, clamped to the largest one RFC 3339 can write.
fn expires_at(principal: &Principal) -> Timestamp {
    let secs = principal.expires_at().min(MAX_RFC3339_SECS);
    i64::try_from(secs)
        .ok()
        .and_then(|secs| Timestamp::from_unix_millis(secs.saturating_mul(1000)))
        .unwrap_or(Timestamp::MAX)
}

/// When the principal's token expires, on the monotonic clock of `now`. Far-future expiries
/// are capped at a year: the timer only needs to fire eventually.
fn expiry_instant(principal: &Principal, now: Instant) -> Instant {
    let left = principal
        .expires_at_time()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    now + left.min(Duration::from_secs(365 * 24 * 3600))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_is_counted_outside_strings_only() {
        use super::nesting_exceeds;
        assert!(!nesting_exceeds(r#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(nesting_exceeds(r#"{"a": [1, {"b": 2}]}"#, 2));
        assert!(!nesting_exceeds(r#"{"a": "[[[[{{{{\"[["}"#, 1));
        assert!(!nesting_exceeds(r#"[[], [], [[]]]"#, 3));
        assert!(nesting_exceeds(&"[".repeat(100_000), 32));
        assert!(!nesting_exceeds("42", 0));
    }
}
