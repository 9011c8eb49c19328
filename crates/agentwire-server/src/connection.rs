//! One WebSocket connection, from the upgrade to the close frame, on one task.
//!
//! The task waits on five things at once: the socket, the user stream's queue, the heartbeat
//! timer, the token's expiry and the shutdown signal. Replies to the client's own requests
//! (`pong`, `error`, ...) are written directly; stream events arrive through the queue, which
//! is bounded: a client that does not read is closed 4008 instead of growing memory.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use agentwire_auth::{AuthError, Principal};
use agentwire_events::{
    AuthRefreshed, ConnectionEstablished, ErrorReply, Event, RunRequest, Timestamp,
};
use agentwire_state::{CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters};
use agentwire_types::MessageType;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::sync::oneshot;
use tokio::time::{Sleep, sleep, sleep_until, timeout};

use crate::dispatch::{self, Action};
use crate::error::HandlerError;
use crate::handler::{MessageContext, Run, RunInner};
use crate::hub::{Outbound, Registration};
use crate::queue;
use crate::ratelimit::{RateLimiter, Verdict};
use crate::server::{Shared, flipped};

/// What the handshake learned, handed to the connection task.
pub(crate) struct Accepted {
    pub(crate) auth: Result<Principal, AuthError>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) origin: Option<String>,
    pub(crate) accepted_at: Instant,
}

/// Most frames written in one batch before a flush.
const WRITE_BATCH: usize = 32;

/// How a connection ends.
enum End {
    /// Send this close frame, then wait briefly for the peer's.
    Close(CloseInfo),
    /// The peer is gone or unresponsive: nothing more to send.
    Drop(CloseInfo),
}

struct Connection {
    shared: Arc<Shared>,
    socket: WebSocket,
    id: Arc<str>,
    counters: Counters,
    remote: Option<SocketAddr>,
    origin: Option<String>,
    accepted_at: Instant,
    opened_at: Instant,
}

/// Counts the connection as active while it lives, and wakes shutdown when it ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.metrics.connections_active.fetch_sub(1, Relaxed);
        self.0.connection_ended.notify_waiters();
    }
}

/// The connection task's body: the session (when the handshake authenticated), then the close.
///
/// Every idle connection pays for its task's largest state, so this keeps it small: the
/// connection is built before the first await and held once, the session is held in place,
/// and cold paths are boxed.
pub(crate) fn serve(
    shared: Arc<Shared>,
    socket: WebSocket,
    accepted: Accepted,
) -> impl Future<Output = ()> + Send + 'static {
    shared.metrics.connections_active.fetch_add(1, Relaxed);
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    let active = ActiveGuard(Arc::clone(&shared));
    let id = shared.next_id("conn");
    let mut conn = Connection {
        shared,
        socket,
        id,
        counters: Counters::new(),
        remote: accepted.remote,
        origin: accepted.origin,
        accepted_at: accepted.accepted_at,
        opened_at: Instant::now(),
    };
    let auth = accepted.auth;
    // An async block, not an `async fn`: those copy their arguments into locals, and the
    // task would carry both copies.
    async move {
        let mut session = None;
        let end = match conn.open(auth, &mut session).await {
            Ok(session) => conn.session(session).await,
            Err(end) => end,
        };
        // Leave the user's stream before the closing handshake.
        drop(session);
        // Boxed here and below: paths that run once per message or once per connection get
        // a short-lived allocation of their own instead of growing every idle connection's
        // task.
        Box::pin(conn.finish(end)).await;
        // Counted as active until the connection is gone.
        drop(active);
    }
}

impl Connection {
    fn record(&self, state: ConnectionState, previous: ConnectionState) -> ConnectionRecord<'_> {
        let mut record = ConnectionRecord::new(&*self.id, state)
            .with_previous_state(previous)
            .with_counters(self.counters)
            .with_duration(self.accepted_at.elapsed())
            .with_connected(self.opened_at.elapsed());
        if let Some(addr) = self.remote {
            record = record.with_remote_addr(addr);
        }
        if let Some(origin) = &self.origin {
            record = record.with_origin(origin.as_str());
        }
        record
    }

    /// Checks the handshake's authentication, registers on the user's stream and sends
    /// `connection_established`: the session (put in `slot`, so the caller's task holds it in
    /// place), or how the connection ends.
    async fn open<'s>(
        &mut self,
        auth: Result<Principal, AuthError>,
        slot: &'s mut Option<Session>,
    ) -> Result<&'s mut Session, End> {
        let principal = match auth {
            Ok(principal) => principal,
            Err(error) => {
                self.shared.metrics.handshake_rejected(error.code());
                let reply = Event::error(error.code(), error.to_string());
                Box::pin(self.send_event(reply)).await?;
                return Err(End::Close(CloseInfo::new(
                    CloseCode::from_u16(error.close_code()),
                    error.close_reason(),
                )));
            }
        };
        let user_id: Arc<str> = Arc::from(principal.user_id());
        let registered = self.shared.hub.register(
            &user_id,
            // Connection ids are unique per process; the hub only compares them.
            self.shared.next_serial(),
            self.shared.config.max_connections_per_user,
        );
        let Ok((registration, queue, position)) = registered else {
            let limit = self.shared.config.max_connections_per_user;
            let reply = Event::error(
                "too_many_connections",
                format!("this user already has {limit} open connections"),
            );
            Box::pin(self.send_event(reply)).await?;
            return Err(End::Close(CloseInfo::new(
                CloseCode::TooManyConnections,
                "too_many_connections",
            )));
        };
        self.shared
            .metrics
            .handshakes_accepted
            .fetch_add(1, Relaxed);
        self.record(ConnectionState::Open, ConnectionState::Connecting)
            .with_user_id(&*user_id)
            .emit();
        let established = Event::connection_established(ConnectionEstablished {
            connection_id: self.id.to_string(),
            user_id: user_id.to_string(),
            protocol_version: 1,
            heartbeat_interval_ms: millis(self.shared.config.heartbeat_interval),
            max_message_bytes: self.shared.config.max_message_bytes as u64,
            server_time: Timestamp::now(),
            stream: position,
        });
        Box::pin(self.send_event(established)).await?;
        Ok(slot.insert(Session {
            principal,
            user_id,
            queue,
            _registration: registration,
            limiter: RateLimiter::new(
                self.shared.config.rate_limit_per_sec,
                self.shared.config.rate_limit_burst,
                self.shared.config.rate_limit_strikes,
                Instant::now(),
            ),
            runs: HashMap::new(),
        }))
    }

    async fn session(&mut self, session: &mut Session) -> End {
        let config = &self.shared.config;
        let (heartbeat_interval, pong_timeout) = (config.heartbeat_interval, config.pong_timeout);
        let mut shutdown = self.shared.shutdown.subscribe();
        // One future for the whole session: re-creating it on every wake would register and
        // deregister a waiter on the shutdown signal each time.
        let shutdown = flipped(&mut shutdown);
        let mut awaiting_pong = false;
        let heartbeat = sleep(heartbeat_interval);
        let expiry = sleep_until(expiry_instant(&session.principal));
        tokio::pin!(shutdown, heartbeat, expiry);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return Box::pin(self.drain_then(session, CloseCode::GoingAway, "server shutting down")).await;
                }
                frame = session.queue.recv() => match frame {
                    Some(frame) => {
                        if let Err(end) = self.write_batch(frame, &mut session.queue).await {
                            return end;
                        }
                    }
                    None => {
                        // The hub dropped this connection's queue: it was full.
                        let reply = Event::error(
                            "slow_consumer",
                            "the connection's outbound queue was full: read faster, or reconnect",
                        );
                        let _ = Box::pin(self.send_event(reply)).await;
                        return End::Close(CloseInfo::new(CloseCode::SlowConsumer, "slow_consumer"));
                    }
                },
                message = self.socket.recv() => {
                    // Any frame from the peer proves it alive.
                    awaiting_pong = false;
                    heartbeat.as_mut().reset(tokio::time::Instant::now() + heartbeat_interval);
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            // Handled within this poll (a run that finishes at once included),
                            // so the loop keeps no per-message state across an await; only a
                            // reply to send waits, boxed.
                            let send = {
                                let mut text = Some(text);
                                let handled = std::future::poll_fn(|cx| {
                                    std::task::Poll::Ready(text.take().map(|text| {
                                        self.on_text(cx, session, text, expiry.as_mut())
                                    }))
                                })
                                .await;
                                match handled {
                                    Some(Ok(Some(reply))) => Box::pin(self.send_event(reply)),
                                    Some(Ok(None)) | None => continue,
                                    Some(Err(end)) => return end,
                                }
                            };
                            if let Err(end) = send.await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            return End::Close(CloseInfo::new(
                                CloseCode::UnsupportedData,
                                "binary frames are not supported: send JSON text frames",
                            ));
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(frame))) => return Box::pin(self.peer_closed(frame)).await,
                        Some(Err(error)) => return read_error(error),
                        None => return End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure)),
                    }
                }
                () = &mut heartbeat => {
                    if awaiting_pong {
                        return End::Drop(CloseInfo::new(
                            CloseCode::GoingAway,
                            "heartbeat timeout",
                        ));
                    }
                    if let Err(end) = self.write(Message::Ping(Default::default())).await {
                        return end;
                    }
                    awaiting_pong = true;
                    heartbeat.as_mut().reset(tokio::time::Instant::now() + pong_timeout);
                }
                () = &mut expiry => {
                    let reply = Event::error("token_expired", "the token expired: reconnect with a fresh one, or send auth_refresh before exp");
                    if let Err(end) = Box::pin(self.send_event(reply)).await {
                        return end;
                    }
                    return End::Close(CloseInfo::new(CloseCode::AuthFailed, "token_expired"));
                }
            }
        }
    }

    /// Writes `first` and whatever else is queued (up to a batch), then flushes once; the
    /// write timeout covers the whole batch.
    async fn write_batch(
        &mut self,
        first: Outbound,
        queue: &mut queue::Receiver<Outbound>,
    ) -> Result<(), End> {
        let write_timeout = self.shared.config.write_timeout;
        let written = write_within(write_timeout, async {
            let mut frame = first;
            for _ in 1..WRITE_BATCH {
                self.feed(frame).await?;
                match queue.try_recv() {
                    Ok(next) => frame = next,
                    Err(_) => return self.socket.flush().await,
                }
            }
            self.feed(frame).await?;
            self.socket.flush().await
        })
        .await;
        io_outcome(&self.shared, written)
    }

    /// Feeds one frame to the socket (no timeout of its own: see [`write_batch`]).
    async fn feed(&mut self, frame: Outbound) -> Result<(), axum::Error> {
        let len = frame.text.len();
        self.socket.feed(Message::Text(frame.text)).await?;
        self.shared.metrics.frame_out(frame.message_type, len);
        self.counters.record_out(len);
        Ok(())
    }

    async fn write(&mut self, message: Message) -> Result<(), End> {
        self.io(|socket| socket.send(message)).await
    }

    /// Runs one socket write with the write timeout: a peer that stays unwritable that long is
    /// a slow consumer.
    async fn io<'s, F>(&'s mut self, op: impl FnOnce(&'s mut WebSocket) -> F) -> Result<(), End>
    where
        F: Future<Output = Result<(), axum::Error>> + 's,
    {
        let outcome = write_within(self.shared.config.write_timeout, op(&mut self.socket)).await;
        io_outcome(&self.shared, outcome)
    }

    /// Stamps a connection-scoped control frame and writes it.
    async fn send_event(&mut self, event: Event) -> Result<(), End> {
        if let agentwire_events::Payload::Error(reply) = event.payload() {
            self.shared.metrics.error_sent(intern_code(&reply.code));
        }
        let message_type = event.message_type();
        let text = event.stamp_control().to_json();
        let len = text.len();
        self.write(Message::Text(text.into())).await?;
        self.shared.metrics.frame_out(message_type, len);
        self.counters.record_out(len);
        Ok(())
    }

    /// Carries out one client text frame as far as it can without waiting: a run is started
    /// (polled once with `cx`, see [`start_eagerly`]), a reply to send is returned. Not `async`:
    /// the session loop's own state stays all the state a message needs, with no future to
    /// allocate per message.
    fn on_text(
        &mut self,
        cx: &mut std::task::Context<'_>,
        session: &mut Session,
        text: Utf8Bytes,
        expiry: std::pin::Pin<&mut Sleep>,
    ) -> Result<Option<Event>, End> {
        self.counters.record_in(text.len());
        let handler = Arc::clone(&self.shared.handler);
        let decision = dispatch::decide(text.as_str(), |t| handler.handles(t));
        self.shared
            .metrics
            .frame_in(decision.message_type, text.len());
        let reply_to = decision.message_id;
        let with_reply = |event: Event| match &reply_to {
            Some(id) => event.with_reply_to(Arc::clone(id)),
            None => event,
        };
        if let Some(limiter) = &mut session.limiter {
            match limiter.check(Instant::now()) {
                Verdict::Allow => {}
                Verdict::Limited { retry_after } => {
                    let reply = Event::new(ErrorReply::rate_limited(millis(retry_after)));
                    return Ok(Some(with_reply(reply)));
                }
                Verdict::Abusive => {
                    return Err(End::Close(CloseInfo::new(
                        CloseCode::RateLimited,
                        "rate_limited",
                    )));
                }
            }
        }
        let reply = match decision.action {
            Action::Reply(event) => Some(event),
            Action::Run { kind, request } => {
                match self.start_run(session, kind, request, decision.thread_id, reply_to.clone()) {
                    RunStart::Ready(run) => {
                        // This task looks at the queue right after: the run's events need
                        // not wake it.
                        session.queue.quiet();
                        if start_eagerly(cx, run.work) == Started::Spawned {
                            // Only a run still in flight can be cancelled.
                            session.runs.insert(run.run_id, run.cancel);
                        }
                        None
                    }
                    RunStart::Refused(refusal) => Some(with_reply(refusal)),
                }
            }
            Action::Refresh(token) => {
                let event = match self
                    .shared
                    .validator
                    .validate_refresh(&token, &session.principal)
                {
                    Ok(principal) => {
                        expiry.reset(expiry_instant(&principal));
                        let expires_at = i64::try_from(principal.expires_at())
                            .ok()
                            .and_then(|secs| Timestamp::from_unix_millis(secs.saturating_mul(1000)))
                            .unwrap_or_else(Timestamp::now);
                        session.principal = principal;
                        Event::new(AuthRefreshed::new(expires_at))
                    }
                    Err(error) => Event::error(error.code(), error.to_string()),
                };
                Some(with_reply(event))
            }
            Action::Cancel(run_id) => session.cancel(run_id.as_deref()).map(with_reply),
            Action::Other(request) => {
                let context = MessageContext {
                    user_id: Arc::clone(&session.user_id),
                    connection_id: Arc::clone(&self.id),
                    message_id: reply_to.as_deref().map(str::to_owned),
                    emitter: self.shared.emitter.clone(),
                };
                let emitter = self.shared.emitter.clone();
                let user_id = Arc::clone(&session.user_id);
                let request = request.into_owned();
                tokio::spawn(async move {
                    if let Err(error) = handler.on_message(context, request).await {
                        let mut reply = Event::error(error.code(), error.to_string());
                        if let Some(id) = reply_to {
                            reply = reply.with_reply_to(id);
                        }
                        // Handler errors answer on the user's stream: the connection task
                        // may have moved on, or closed, by the time the handler returns.
                        emitter.emit(&user_id, reply);
                    }
                });
                None
            }
        };
        Ok(reply)
    }

    /// Prepares a run (see [`start_eagerly`]); an error reply instead when the connection has
    /// too many runs in flight.
    fn start_run(
        &self,
        session: &mut Session,
        kind: MessageType,
        request: RunRequest<'_>,
        thread_id: Option<Arc<str>>,
        reply_to: Option<Arc<str>>,
    ) -> RunStart {
        session.runs.retain(|_, cancel| !cancel.is_closed());
        let limit = self.shared.config.max_runs_per_connection;
        if session.runs.len() >= limit {
            return RunStart::Refused(Event::error(
                "too_many_runs",
                format!("this connection already has {limit} runs in flight"),
            ));
        }
        let run_id = self.shared.next_id("run");
        let run = Run::from(RunInner {
            run_id: Arc::clone(&run_id),
            user_id: Arc::clone(&session.user_id),
            connection_id: Arc::clone(&self.id),
            thread_id,
            reply_to,
            kind,
            request: request.into_owned(),
            emitter: self.shared.emitter.clone(),
            ended: AtomicBool::new(false),
            started_at: Instant::now(),
        });
        let (cancel, cancelled) = oneshot::channel();
        self.shared.metrics.runs_started.fetch_add(1, Relaxed);
        let handler = Arc::clone(&self.shared.handler);
        RunStart::Ready(ReadyRun {
            work: Box::pin(supervise(handler, run, cancelled)),
            run_id,
            cancel,
        })
    }

    /// Writes whatever the stream queued, then closes with `code`.
    async fn drain_then(
        &mut self,
        session: &mut Session,
        code: CloseCode,
        reason: &'static str,
    ) -> End {
        // Every write path flushes, so once the queue is empty nothing is left buffered.
        while let Ok(first) = session.queue.try_recv() {
            if let Err(end) = self.write_batch(first, &mut session.queue).await {
                return end;
            }
        }
        End::Close(CloseInfo::new(code, reason))
    }

    async fn peer_closed(&mut self, frame: Option<CloseFrame>) -> End {
        // tungstenite has queued the answering close frame; flushing sends it.
        let _ = timeout(self.shared.config.close_timeout, self.socket.flush()).await;
        let info = match frame {
            Some(frame) => CloseInfo::new(
                CloseCode::from_u16(frame.code),
                Cow::Owned(frame.reason.as_str().to_owned()),
            ),
            None => CloseInfo::code_only(CloseCode::NoStatusReceived),
        };
        End::Drop(info)
    }

    /// Sends the close frame (if any), waits briefly for the peer's, and logs the record.
    async fn finish(mut self, end: End) {
        let info = match end {
            End::Close(info) => {
                let frame = CloseFrame {
                    code: info.code().as_u16(),
                    reason: Utf8Bytes::from(info.reason()),
                };
                let close_timeout = self.shared.config.close_timeout;
                if let Ok(Ok(())) =
                    timeout(close_timeout, self.socket.send(Message::Close(Some(frame)))).await
                {
                    // Read until the peer's close frame (or anything else ends the stream).
                    let _ = timeout(close_timeout, async {
                        while let Some(Ok(message)) = self.socket.recv().await {
                            if matches!(message, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
                info
            }
            End::Drop(info) => info,
        };
        self.shared.metrics.closed(info.code().as_u16());
        let failed = matches!(
            info.code(),
            CloseCode::AbnormalClosure | CloseCode::InternalError
        );
        let state = if failed {
            ConnectionState::Failed
        } else {
            ConnectionState::Closed
        };
        self.record(state, ConnectionState::Open)
            .with_close(info)
            .emit();
    }
}

/// A connection's authenticated session.
struct Session {
    principal: Principal,
    user_id: Arc<str>,
    queue: queue::Receiver<Outbound>,
    _registration: Registration,
    limiter: Option<RateLimiter>,
    /// Runs started on this connection; a closed sender means the run is over.
    runs: HashMap<Arc<str>, oneshot::Sender<()>>,
}

impl Session {
    /// Cancels one run (or all of this connection's runs); an error reply if there is none.
    fn cancel(&mut self, run_id: Option<&str>) -> Option<Event> {
        self.runs.retain(|_, cancel| !cancel.is_closed());
        match run_id {
            Some(run_id) => match self.runs.remove(run_id) {
                Some(cancel) => {
                    let _ = cancel.send(());
                    None
                }
                None => Some(Event::error(
                    "unknown_run",
                    "no run with this run_id is in flight on this connection",
                )),
            },
            None if self.runs.is_empty() => Some(Event::error(
                "unknown_run",
                "no run is in flight on this connection",
            )),
            None => {
                for (_, cancel) in self.runs.drain() {
                    let _ = cancel.send(());
                }
                None
            }
        }
    }
}

/// How a socket write that ran under the write timeout ended: a peer that stays unwritable that
/// long is a slow consumer.
fn io_outcome(
    shared: &Shared,
    outcome: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>,
) -> Result<(), End> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure))),
        Err(_) => {
            shared.metrics.queue_drops.fetch_add(1, Relaxed);
            Err(End::Drop(CloseInfo::new(
                CloseCode::SlowConsumer,
                "write timed out",
            )))
        }
    }
}

/// A run's supervised handler future.
type RunFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A run ready to start, or the reply that refuses it.
enum RunStart {
    Ready(ReadyRun),
    Refused(Event),
}

/// A run ready to start, with what cancels it.
struct ReadyRun {
    work: RunFuture,
    run_id: Arc<str>,
    cancel: oneshot::Sender<()>,
}

/// Where [`start_eagerly`] left a run.
#[derive(Debug, PartialEq, Eq)]
enum Started {
    /// It ran to its end inline.
    Finished,
    /// It waits, on a task of its own.
    Spawned,
}

/// Polls a new run once on the connection's task, and gives it a task of its own only if it
/// has to wait. A run that finishes without waiting (a cached answer, an error, the demo agent
/// without pauses) then costs no task and no wake-up, and the connection writes its events in
/// the same pass. A run that waits continues on its own task, whose first poll registers its
/// own waker wherever the inline poll registered the connection's (a spurious wake-up of the
/// connection at most).
fn start_eagerly(cx: &mut std::task::Context<'_>, mut run: RunFuture) -> Started {
    if run.as_mut().poll(cx).is_ready() {
        Started::Finished
    } else {
        tokio::spawn(run);
        Started::Spawned
    }
}

/// Runs a socket write under `limit`, starting the clock only if the socket cannot take the
/// data at once: most writes complete on their first poll, and then no timer is set up.
async fn write_within<F: Future>(
    limit: Duration,
    write: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut write = std::pin::pin!(write);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => timeout(limit, write).await,
    }
}

/// Runs the handler (inline, then on its own task if it waits) and makes sure the run ends
/// with exactly one terminal event, whatever the handler does: returns without one, panics
/// (caught here), or is cancelled (its future is dropped).
async fn supervise(
    handler: Arc<dyn crate::handler::ErasedHandler>,
    run: Run,
    cancelled: oneshot::Receiver<()>,
) {
    use futures_util::FutureExt as _;
    let work = std::panic::AssertUnwindSafe(handler.run(run.clone())).catch_unwind();
    let outcome = tokio::select! {
        finished = work => match finished {
            // The usual case: the handler emitted its terminal event.
            Ok(()) if run.is_ended() => return,
            Ok(()) => HandlerError::new(
                "no_result",
                "the agent finished without a result",
            ),
            Err(_) => HandlerError::new("internal_error", "the agent failed unexpectedly"),
        },
        Ok(()) = cancelled => {
            HandlerError::new("cancelled", "the run was cancelled by the client")
        }
    };
    // No-op when the handler already emitted its terminal event.
    run.failed(&outcome);
}

/// Maps a read error to how the connection ends: protocol violations get their close code,
/// never 1011.
fn read_error(error: axum::Error) -> End {
    use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            End::Close(CloseInfo::new(CloseCode::MessageTooBig, "message too big"))
        }
        Some(WsError::Capacity(_)) => {
            End::Close(CloseInfo::new(CloseCode::MessageTooBig, "frame too big"))
        }
        Some(WsError::Utf8(_)) => End::Close(CloseInfo::new(
            CloseCode::InvalidPayloadData,
            "text frame is not valid UTF-8",
        )),
        // The peer vanished without a close frame: nothing to answer.
        Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
            End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure))
        }
        Some(WsError::Protocol(_)) => End::Close(CloseInfo::new(
            CloseCode::ProtocolError,
            "WebSocket protocol error",
        )),
        _ => End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure)),
    }
}

/// When the principal's token expires, as a tokio instant.
fn expiry_instant(principal: &Principal) -> tokio::time::Instant {
    let left = principal
        .expires_at_time()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    // Far-future expiries are capped (a year): the timer only needs to fire eventually.
    tokio::time::Instant::now() + left.min(Duration::from_secs(365 * 24 * 3600))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The error codes the server sends, as static strings for the metrics labels.
fn intern_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "invalid_json",
        "unknown_message_type",
        "unsupported_message_type",
        "invalid_payload",
        "rate_limited",
        "too_many_runs",
        "too_many_connections",
        "unknown_run",
        "slow_consumer",
        "token_expired",
    ];
    KNOWN
        .iter()
        .chain(agentwire_auth::AuthError::CODES)
        .find(|known| **known == code)
        .copied()
        .unwrap_or("other")
}
