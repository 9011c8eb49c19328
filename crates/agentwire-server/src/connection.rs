//! One WebSocket connection, from the upgrade to the close frame, on one task.
//!
//! This is the session's driver: the protocol rules live in [`agentwire_session::Session`],
//! which this task feeds the client's frames and its timer's expiries. The task waits on four
//! things at once: the socket, the user stream's queue, the session's timer and the shutdown
//! signal. Replies to the client's own requests (`pong`, `error`, ...) are written directly;
//! stream events arrive through the queue, which is bounded: a client that does not read is
//! closed 4008 instead of growing memory.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use agentwire_auth::{AuthError, Principal, Validator};
use agentwire_events::{Event, ResumeOutcome, Timestamp};
use agentwire_session::{Action, Close, Host, Message as Request, RunStart, Session, Timeout};
use agentwire_state::{CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters};
use agentwire_stream::{Decision, ResumeRequest};
use agentwire_types::MessageType;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout};

use crate::error::{AttachError, HandlerError};
use crate::handler::{MessageContext, Presence, Run, RunInner};
use crate::hub::{Attach, Attached, Attaching, Outbound, Registered, Registration};
use crate::queue;
use crate::server::{Shared, flipped};

/// What the handshake learned, handed to the connection task.
pub(crate) struct Accepted {
    pub(crate) auth: Result<Principal, AuthError>,
    /// The client's `?epoch=&since=`, boxed: most connections carry none, and the task holds
    /// this until it opens.
    pub(crate) resume: Option<Box<ResumeRequest>>,
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
    /// Send the session's last frame (if any), then its close frame (boxed: a cold path that
    /// would otherwise make every `End` as large as an event).
    Session(Box<Close>),
    /// The peer is gone or unresponsive: nothing more to send.
    Drop(CloseInfo),
}

struct Connection {
    shared: Arc<Shared>,
    socket: WebSocket,
    id: Arc<str>,
    /// The connection's place on the hub and in the run registry.
    serial: u64,
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
/// connection is built before the first await and held once, the link is held in place,
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
    let serial = shared.next_serial();
    let mut conn = Connection {
        shared,
        socket,
        id,
        serial,
        counters: Counters::new(),
        remote: accepted.remote,
        origin: accepted.origin,
        accepted_at: accepted.accepted_at,
        opened_at: Instant::now(),
    };
    let auth = accepted.auth;
    let resume = accepted.resume;
    // An async block, not an `async fn`: those copy their arguments into locals, and the
    // task would carry both copies.
    async move {
        let mut link: Option<Link> = None;
        let end = match Box::pin(conn.open(auth, resume, &mut link)).await {
            Ok(link) => conn.session(link).await,
            Err(end) => end,
        };
        // Leave the user's stream before the closing handshake.
        if let Some(link) = link
            && link.registration.leave()
        {
            conn.shared
                .handler
                .presence(&link.user_id, Presence::Offline);
        }
        // Boxed here and below: paths that run once per message or once per connection get
        // a short-lived allocation of their own instead of growing every idle connection's
        // task.
        Box::pin(conn.finish(end)).await;
        // Counted as active until the connection is gone.
        drop(active);
    }
}

/// An authenticated connection's state: the protocol session and its place on the user's
/// stream.
struct Link {
    session: Session,
    user_id: Arc<str>,
    queue: queue::Receiver<Outbound>,
    registration: Registration,
    /// Runs started on this connection that are still in flight.
    runs: Arc<AtomicUsize>,
}

/// What the session asks of the server, for one connection.
struct ConnectionHost<'a> {
    shared: &'a Shared,
    user_id: &'a str,
    serial: u64,
    runs: &'a AtomicUsize,
}

impl Host for ConnectionHost<'_> {
    fn validator(&self) -> &Validator {
        &self.shared.validator
    }

    fn handles(&self, message_type: MessageType) -> bool {
        self.shared.handler.handles(message_type)
    }

    fn runs_in_flight(&self) -> usize {
        self.runs.load(Relaxed)
    }

    fn cancel(&mut self, run_id: Option<&str>) -> bool {
        self.shared.runs.cancel(self.user_id, run_id, self.serial)
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

    /// Checks the handshake's authentication (or waits for in-band authentication),
    /// registers on the user's stream and sends `connection_established`: the link (put in
    /// `slot`, so the caller's task holds it in place), or how the connection ends.
    async fn open<'s>(
        &mut self,
        auth: Result<Principal, AuthError>,
        resume: Option<Box<ResumeRequest>>,
        slot: &'s mut Option<Link>,
    ) -> Result<&'s mut Link, End> {
        let config = Arc::clone(&self.shared.config.session);
        let session = match auth {
            Ok(principal) => Session::new(config, principal, Instant::now()),
            Err(AuthError::MissingToken { .. }) if self.shared.config.in_band_auth => {
                let mut session = Session::awaiting_auth(config, Instant::now());
                self.authenticate(&mut session).await?;
                session
            }
            Err(error) => {
                self.shared.metrics.handshake_rejected(error.code());
                return Err(End::Session(Box::new(Close::auth_failed(&error))));
            }
        };
        let Some(principal) = session.principal() else {
            // `authenticate` returns only once the session has a principal.
            return Err(End::Drop(CloseInfo::code_only(CloseCode::InternalError)));
        };
        let user_id: Arc<str> = Arc::from(principal.user_id());
        let limit = self.shared.config.max_connections_per_user;
        let attach = Attach::new(
            Arc::clone(&self.shared.hub),
            Arc::clone(&user_id),
            self.serial,
            limit,
            resume,
        );
        let registered = match self.shared.emitter.delivery().attach(attach) {
            Attaching::Ready(result) => result,
            pending => pending.wait().await,
        };
        let registered = match registered {
            Ok(Attached(registered)) => registered,
            Err(AttachError::TooManyConnections { .. }) => {
                return Err(End::Session(Box::new(Close::too_many_connections(limit))));
            }
            Err(error) => {
                return Err(End::Close(CloseInfo::new(
                    CloseCode::TryAgainLater,
                    error.code(),
                )));
            }
        };
        let Registered {
            registration,
            queue,
            position,
            resume,
        } = registered;
        self.shared
            .metrics
            .handshakes_accepted
            .fetch_add(1, Relaxed);
        if registration.was_first() {
            self.shared.handler.presence(&user_id, Presence::Online);
        }
        self.record(ConnectionState::Open, ConnectionState::Connecting)
            .with_user_id(&*user_id)
            .emit();
        let (outcome, replay) = match resume {
            Some((decision, frames)) => {
                let reason = match &decision {
                    Decision::Reset(reason) => reason.as_str(),
                    _ => "",
                };
                tracing::info!(
                    target: "agentwire::stream",
                    connection_id = &*self.id,
                    user_id = &*user_id,
                    status = decision.status(),
                    reason,
                    replayed = frames.len(),
                    "resume"
                );
                (Some(resume_outcome(&decision)), frames)
            }
            None => (None, Vec::new()),
        };
        if let Some(established) =
            session.established(&self.id, position, outcome, Timestamp::now())
        {
            self.send_event(established).await?;
        }
        if !replay.is_empty() {
            // The events the client missed, as first sent, before anything live: the hub
            // decided the replay and queued live events for this connection in one step.
            let write_timeout = self.shared.config.write_timeout;
            let written = write_within(write_timeout, async {
                for frame in replay {
                    self.feed(frame).await?;
                }
                self.socket.flush().await
            })
            .await;
            io_outcome(&self.shared, written)?;
        }
        Ok(slot.insert(Link {
            session,
            user_id,
            queue,
            registration,
            runs: Arc::new(AtomicUsize::new(0)),
        }))
    }

    /// Waits for a connection opened without credentials to authenticate in-band.
    async fn authenticate(&mut self, session: &mut Session) -> Result<(), End> {
        let deadline = sleep_until(session.poll_timeout().into());
        tokio::pin!(deadline);
        let mut shutdown = self.shared.shutdown.subscribe();
        let shutdown = flipped(&mut shutdown);
        tokio::pin!(shutdown);
        // No runs and no handler before authentication: the session only reads the token.
        let no_runs = AtomicUsize::new(0);
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    return Err(End::Close(CloseInfo::new(CloseCode::GoingAway, "server shutting down")));
                }
                () = &mut deadline => {
                    if let Some(Timeout::Close(close)) = session.handle_timeout(Instant::now()) {
                        self.shared.metrics.handshake_rejected("auth_timeout");
                        return Err(End::Session(Box::new(close)));
                    }
                    deadline.as_mut().reset(session.poll_timeout().into());
                }
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => {
                        self.counters.record_in(text.len());
                        let mut host = ConnectionHost {
                            shared: &self.shared,
                            user_id: "",
                            serial: self.serial,
                            runs: &no_runs,
                        };
                        let handled = session.handle_text(Instant::now(), text.as_str(), &mut host);
                        self.shared.metrics.frame_in(handled.message_type, text.len());
                        return match handled.action {
                            Action::Authenticated => Ok(()),
                            Action::Close(close) => {
                                if let Some(reply) = &close.reply
                                    && let agentwire_events::Payload::ErrorReply(error) = reply.payload()
                                {
                                    self.shared.metrics.handshake_rejected(intern_code(&error.code));
                                }
                                Err(End::Session(Box::new(close)))
                            }
                            _ => Err(End::Drop(CloseInfo::code_only(CloseCode::InternalError))),
                        };
                    }
                    Some(Ok(Message::Binary(_))) => return Err(End::Session(Box::new(session.handle_binary()))),
                    Some(Ok(Message::Ping(payload))) => self.on_control(session, payload.len(), true).await?,
                    Some(Ok(Message::Pong(payload))) => self.on_control(session, payload.len(), false).await?,
                    Some(Ok(Message::Close(frame))) => return Err(self.peer_closed(frame).await),
                    Some(Err(error)) => return Err(read_error(error)),
                    None => return Err(End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure))),
                },
            }
        }
    }

    async fn session(&mut self, link: &mut Link) -> End {
        let mut shutdown = self.shared.shutdown.subscribe();
        // One future for the whole session: re-creating it on every wake would register and
        // deregister a waiter on the shutdown signal each time.
        let shutdown = flipped(&mut shutdown);
        // One timer for everything the session waits for (ping, pong, token expiry), armed at
        // its earliest deadline. Handling a frame can only move that deadline later (a pong
        // clears the pong deadline) except for a refresh to a shorter-lived token, so the
        // timer is re-armed after a frame only when the deadline moved earlier; firing early
        // is harmless (the session says there is nothing to do yet).
        let mut armed = link.session.poll_timeout();
        let timer = sleep_until(armed.into());
        tokio::pin!(shutdown, timer);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return Box::pin(self.drain_then(link, CloseCode::GoingAway, "server shutting down")).await;
                }
                frame = link.queue.recv() => match frame {
                    Some(frame) => {
                        if let Err(end) = self.write_batch(frame, &mut link.queue).await {
                            return end;
                        }
                    }
                    // The hub ended this connection's queue: it was full, or the stream
                    // cannot be followed here any more and the client must resume.
                    None => return match link.queue.ended() {
                        Some(queue::Ended::StreamInterrupted) => End::Close(CloseInfo::new(
                            CloseCode::ServiceRestart,
                            "stream_interrupted",
                        )),
                        None => End::Session(Box::new(Close::slow_consumer())),
                    },
                },
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => {
                        // Handled within this poll (a run that finishes at once included),
                        // so the loop keeps no per-message state across an await; only a
                        // reply to send waits, boxed.
                        let send = {
                            let mut text = Some(text);
                            let handled = std::future::poll_fn(|cx| {
                                std::task::Poll::Ready(
                                    text.take().map(|text| self.on_text(cx, link, text)),
                                )
                            })
                            .await;
                            let due = link.session.poll_timeout();
                            if due < armed {
                                armed = due;
                                timer.as_mut().reset(armed.into());
                            }
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
                    Some(Ok(Message::Binary(_))) => return End::Session(Box::new(link.session.handle_binary())),
                    Some(Ok(Message::Ping(payload))) => {
                        if let Err(end) = self.on_control(&mut link.session, payload.len(), true).await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Pong(payload))) => {
                        if let Err(end) = self.on_control(&mut link.session, payload.len(), false).await {
                            return end;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return Box::pin(self.peer_closed(frame)).await,
                    Some(Err(error)) => return read_error(error),
                    None => return End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure)),
                },
                () = &mut timer => {
                    match link.session.handle_timeout(Instant::now()) {
                        Some(Timeout::Ping) => {
                            if let Err(end) = self.write(Message::Ping(Default::default())).await {
                                return end;
                            }
                        }
                        Some(Timeout::Close(close)) => return End::Session(Box::new(close)),
                        _ => {}
                    }
                    armed = link.session.poll_timeout();
                    timer.as_mut().reset(armed.into());
                }
            }
        }
    }

    /// A WebSocket ping or pong from the peer: counted, checked against the rate limit, and,
    /// for a ping, its pong (queued by tungstenite) flushed under the write timeout before
    /// anything else is read. A peer that sends pings and never reads the pongs is closed
    /// 4008 within the write timeout, and its pongs never pile up in memory: at most one
    /// waits beyond what the socket took.
    async fn on_control(
        &mut self,
        session: &mut Session,
        bytes: usize,
        ping: bool,
    ) -> Result<(), End> {
        self.counters.record_in(bytes);
        self.shared.metrics.control_frames_in.fetch_add(1, Relaxed);
        if let Some(close) = session.handle_control(Instant::now()) {
            return Err(End::Session(Box::new(close)));
        }
        if ping {
            self.io(|socket| socket.flush()).await?;
        }
        Ok(())
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
        if let agentwire_events::Payload::ErrorReply(reply) = event.payload() {
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

    /// Carries out one client text frame as far as it can without waiting: the session
    /// decides, a run is started (polled once with `cx`, see [`Self::start_run`]), a reply to
    /// send is returned. Not `async`: the session loop's own state stays all the state a
    /// message needs, with no future to allocate per message.
    fn on_text(
        &mut self,
        cx: &mut std::task::Context<'_>,
        link: &mut Link,
        text: Utf8Bytes,
    ) -> Result<Option<Event>, End> {
        self.counters.record_in(text.len());
        let mut host = ConnectionHost {
            shared: &self.shared,
            user_id: &link.user_id,
            serial: self.serial,
            runs: &link.runs,
        };
        let handled = link
            .session
            .handle_text(Instant::now(), text.as_str(), &mut host);
        self.shared
            .metrics
            .frame_in(handled.message_type, text.len());
        match handled.action {
            Action::Reply(event) => Ok(Some(event)),
            Action::Run(start) => Ok(self.start_run(cx, link, start)),
            Action::Message(request) => {
                self.on_message(link, request);
                Ok(None)
            }
            Action::Close(close) => Err(End::Session(Box::new(close))),
            // Nothing to send (`Authenticated` only comes before the session is open).
            _ => Ok(None),
        }
    }

    /// Hands a request to the handler's `on_message`, on a task of its own; an error it
    /// returns answers on this connection only.
    fn on_message(&self, link: &Link, request: Request<'_>) {
        let context = MessageContext {
            user_id: Arc::clone(&link.user_id),
            connection_id: Arc::clone(&self.id),
            message_id: request.reply_to.as_deref().map(str::to_owned),
            emitter: self.shared.emitter.clone(),
            hub: Arc::clone(&self.shared.hub),
            serial: self.serial,
        };
        let handler = Arc::clone(&self.shared.handler);
        let request = request.request.into_owned();
        tokio::spawn(async move {
            if let Err(error) = handler.on_message(context.clone(), request).await {
                context.reply(Event::error(error.code.clone(), error.to_string()));
            }
        });
    }

    /// Starts a run: polled once on this task, and given a task of its own (and a place in
    /// the run registry, where `cancel_agent` finds it) only if it has to wait. A request the
    /// handler refuses ([`Handler::accepts`](crate::Handler::accepts)) starts no run: the
    /// `error` reply is returned instead.
    fn start_run(
        &self,
        cx: &mut std::task::Context<'_>,
        link: &mut Link,
        start: RunStart<'_>,
    ) -> Option<Event> {
        if let Err(error) = self.shared.handler.accepts(start.kind, &start.request) {
            let mut reply = agentwire_events::ErrorReply::new(error.code, error.message);
            if let Some(retry_after_ms) = error.retry_after_ms {
                reply = reply.with_retry_after_ms(retry_after_ms);
            }
            let event = Event::new(reply);
            return Some(match start.reply_to {
                Some(reply_to) => event.with_reply_to(reply_to),
                None => event,
            });
        }
        let run_id = self.shared.next_id("run");
        let run = Run::from(RunInner {
            run_id: Arc::clone(&run_id),
            user_id: Arc::clone(&link.user_id),
            connection_id: Arc::clone(&self.id),
            thread_id: start.thread_id,
            reply_to: start.reply_to,
            kind: start.kind,
            request: start.request.into_owned(),
            emitter: self.shared.emitter.clone(),
            started: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            started_at: Instant::now(),
            default_agent_name: Arc::clone(&self.shared.default_agent_name),
        });
        let (cancel, cancelled) = oneshot::channel();
        self.shared.metrics.runs_started.fetch_add(1, Relaxed);
        let handler = Arc::clone(&self.shared.handler);
        let mut work: RunFuture = Box::pin(supervise(handler, run, cancelled));
        // This task looks at the queue right after: the run's events need not wake it.
        link.queue.quiet();
        if work.as_mut().poll(cx).is_pending() {
            // Registered before the task exists, so the guard always finds the entry.
            let guard =
                self.shared
                    .runs
                    .register(&link.user_id, &run_id, self.serial, cancel, &link.runs);
            tokio::spawn(async move {
                work.await;
                drop(guard);
            });
        }
        None
    }

    /// Writes whatever the stream queued, then closes with `code`.
    async fn drain_then(&mut self, link: &mut Link, code: CloseCode, reason: &'static str) -> End {
        // Every write path flushes, so once the queue is empty nothing is left buffered.
        while let Ok(first) = link.queue.try_recv() {
            if let Err(end) = self.write_batch(first, &mut link.queue).await {
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

    /// Sends the last frame and the close frame (if any), waits briefly for the peer's, and
    /// logs the record.
    async fn finish(mut self, end: End) {
        let (mut info, reply, mut send_close) = match end {
            End::Close(info) => (info, None, true),
            End::Session(close) => {
                let Close { reply, info, .. } = *close;
                (info, reply, true)
            }
            End::Drop(info) => (info, None, false),
        };
        if let Some(reply) = reply
            && let Err(failed) = self.send_event(reply).await
        {
            // The last frame could not be written: nor can the close frame.
            send_close = false;
            if let End::Close(failed) | End::Drop(failed) = failed {
                info = failed;
            }
        }
        if send_close {
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
        }
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

/// Maps a read error to how the connection ends (agentwire-state's rule): protocol violations
/// get their close code, never 1011; a peer that vanished gets nothing.
fn read_error(error: axum::Error) -> End {
    let inner = error.into_inner();
    match inner
        .downcast_ref::<tungstenite::Error>()
        .and_then(CloseInfo::for_tungstenite_error)
    {
        Some(info) => End::Close(info),
        None => End::Drop(CloseInfo::code_only(CloseCode::AbnormalClosure)),
    }
}

/// `connection_established.payload.resume` for a decision.
fn resume_outcome(decision: &Decision) -> ResumeOutcome {
    match decision {
        Decision::Resumed(replay) => ResumeOutcome::Resumed {
            replayed: replay.len(),
            from_seq: replay.from_seq(),
            to_seq: replay.to_seq(),
        },
        Decision::Reset(reason) => ResumeOutcome::Reset {
            reason: reason.as_str().to_owned(),
        },
        // `Decision` is non-exhaustive: a decision this server does not know proves nothing.
        _ => ResumeOutcome::Reset {
            reason: "unavailable".to_owned(),
        },
    }
}

/// An error code the server sends, as a static string for the metrics labels.
fn intern_code(code: &str) -> &'static str {
    agentwire_events::ErrorCode::parse(code)
        .map(agentwire_events::ErrorCode::as_str)
        .or_else(|| {
            agentwire_auth::AuthError::CODES
                .iter()
                .find(|known| **known == code)
                .copied()
        })
        .unwrap_or("other")
}
