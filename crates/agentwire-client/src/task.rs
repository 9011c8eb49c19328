//! The connection task: one per [`Client`](crate::Client). It owns the socket, routes every
//! frame the server sends (to a run, to a pending call, or to the connection events), sends
//! what the client asks, keeps the connection alive (heartbeats, token refresh), and
//! reconnects with resume when the connection is lost.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use agentwire_events::{
    ConnectionEstablished, ErrorReply, Frame, Inbound, Payload, ResumeOutcome, StreamPosition,
};
use agentwire_state::{CloseCode, CloseInfo};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, Sleep, sleep, sleep_until};

use crate::credentials::Credentials;
use crate::error::Error;
use crate::events::ConnectionEvent;
use crate::raw::{RawConnection, RawMessage, parse_frame};
use crate::reconnect::Reconnect;
use crate::run::{RunIdCell, RunItem};
use crate::transport::{self, Target, TlsSetting};

/// The stable tracing target of the client's logs.
pub(crate) const LOG_TARGET: &str = "agentwire_client";

/// A token source for refreshes: the callback of
/// [`ClientBuilder::refresh_with`](crate::ClientBuilder::refresh_with).
pub(crate) type RefreshFn = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// A refresh callback's future.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// How the connection checks that the server is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Twice the server's heartbeat interval plus 5 s.
    Derived,
    /// A fixed silence limit.
    Fixed(Duration),
    /// No check.
    Off,
}

/// Everything the builder decided.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) reconnect: Option<Reconnect>,
    pub(crate) refresh: Option<RefreshFn>,
    pub(crate) refresh_before: Option<Duration>,
    pub(crate) app_heartbeats: bool,
    pub(crate) liveness: Liveness,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: TlsSetting,
}

/// What the client asks of the connection task.
pub(crate) enum Command {
    /// Send a run request and route the run's events to `tx`.
    Start {
        text: String,
        message_id: Arc<str>,
        tx: mpsc::UnboundedSender<RunItem>,
        run_id: RunIdCell,
        ack: oneshot::Sender<Result<(), Error>>,
    },
    /// Cancel the run of this request.
    Cancel { message_id: Arc<str> },
    /// Send a request and hand its reply (matched by `reply_to`) back.
    Call {
        text: String,
        message_id: String,
        /// For `auth_refresh`: the token to use from now on, once accepted.
        token: Option<String>,
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    /// Send a frame as it is.
    Send {
        text: String,
        ack: oneshot::Sender<Result<(), Error>>,
    },
    /// Close the connection.
    Close { ack: oneshot::Sender<()> },
}

/// What the client handles and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
    /// The subscription made at connect time, for the first `Client::events` call: it has
    /// everything since the connection opened.
    pub(crate) first_events: Mutex<Option<broadcast::Receiver<ConnectionEvent>>>,
}

/// The connection's current facts.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) established: ConnectionEstablished,
    pub(crate) position: StreamPosition,
    /// Why the connection is closed for good, once it is.
    pub(crate) closed: Option<Error>,
}

impl Shared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error for a command that found the task gone.
    pub(crate) fn closed_error(&self) -> Error {
        self.state().closed.clone().unwrap_or(Error::ClientClosed)
    }

    fn emit(&self, event: ConnectionEvent) {
        // No subscriber: nobody to tell.
        let _ = self.events.send(event);
    }
}

/// One run in flight.
struct RunSlot {
    tx: mpsc::UnboundedSender<RunItem>,
    run_id_cell: RunIdCell,
    run_id: Option<String>,
    /// Some event of the run arrived.
    acknowledged: bool,
    /// `cancel()` was called before the run id was known.
    cancel_pending: bool,
    /// The connection (generation) the request was written on.
    generation: u64,
}

/// A request waiting for its reply.
struct PendingCall {
    reply: Option<oneshot::Sender<Result<Frame, Error>>>,
    token: Option<String>,
}

/// Why driving a connection stopped.
enum Exit {
    /// The client asked to close.
    Close(oneshot::Sender<()>),
    /// Every handle is gone.
    Dropped,
    /// The connection was lost.
    Lost(Error),
}

/// What woke the driver.
enum Wake {
    Message(Result<Option<RawMessage>, Error>),
    Command(Option<Command>),
    Heartbeat,
    Silence,
    RefreshDue,
    Token(Result<String, String>),
}

/// The state of the connection task.
pub(crate) struct Task {
    settings: Settings,
    credentials: Credentials,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Commands taken from the channel while reconnecting, run first once connected.
    deferred: VecDeque<Command>,
    runs: HashMap<Arc<str>, RunSlot>,
    by_run_id: HashMap<String, Arc<str>>,
    calls: HashMap<String, PendingCall>,
    epoch: String,
    seq: u64,
    /// Replayed events still to come after a resume.
    replay_left: u64,
    /// Counts connections: runs written on an earlier one may have been lost with it.
    generation: u64,
    heartbeat_every: Option<Duration>,
    silence_limit: Option<Duration>,
    last_received: Instant,
    refresh_at: Option<Instant>,
    refreshing: Option<TokenFuture>,
    /// The last `error` frame without `reply_to`: the reason of a close that follows it.
    last_error: Option<ErrorReply>,
    /// `finish` ran.
    finished: bool,
}

/// Opens a connection and reads `connection_established`, within the connect timeout.
pub(crate) async fn connect_once(
    target: &Target,
    credentials: &Credentials,
    tls: &TlsSetting,
    timeout: Duration,
) -> Result<(RawConnection, ConnectionEstablished), Error> {
    let started = Instant::now();
    let (mut connection, response) = transport::open(target, credentials, tls, timeout).await?;
    // Offered `jwt-auth, jwt.<token>`: the answer must be the marker (browsers insist).
    let answer = response.header("sec-websocket-protocol");
    let expected = credentials.offers_subprotocol().then_some("jwt-auth");
    if answer != expected {
        return Err(Error::Subprotocol {
            answer: answer.map(str::to_owned),
        });
    }
    let left = timeout.saturating_sub(started.elapsed());
    let (_, established) = tokio::time::timeout(left, connection.read_established())
        .await
        .map_err(|_| Error::Timeout {
            what: "connection_established",
        })??;
    Ok((connection, established))
}

impl Task {
    pub(crate) fn new(
        settings: Settings,
        credentials: Credentials,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        established: &ConnectionEstablished,
        resume_from: Option<&StreamPosition>,
    ) -> Task {
        let mut task = Task {
            settings,
            credentials,
            shared,
            commands,
            deferred: VecDeque::new(),
            runs: HashMap::new(),
            by_run_id: HashMap::new(),
            calls: HashMap::new(),
            epoch: String::new(),
            seq: 0,
            replay_left: 0,
            generation: 0,
            heartbeat_every: None,
            silence_limit: None,
            last_received: Instant::now(),
            refresh_at: None,
            refreshing: None,
            last_error: None,
            finished: false,
        };
        if let Some(position) = resume_from {
            // Replayed events continue from the saved position.
            task.epoch = position.epoch.clone();
            task.seq = position.seq;
        }
        task.install(established);
        task
    }

    /// Drives connections until the client closes, every handle is dropped, or a lost
    /// connection cannot be replaced.
    pub(crate) async fn run(mut self, mut connection: RawConnection) {
        let error = loop {
            match self.drive(&mut connection).await {
                Exit::Close(ack) => {
                    close_gracefully(&mut connection).await;
                    self.finish(None);
                    let _ = ack.send(());
                    return;
                }
                Exit::Dropped => {
                    close_gracefully(&mut connection).await;
                    break None;
                }
                Exit::Lost(error) => {
                    tracing::debug!(target: LOG_TARGET, code = error.code(), %error, "connection lost");
                    self.fail_calls(&error);
                    match self.reconnect(error).await {
                        Ok(new) => connection = new,
                        Err(Error::ClientClosed) => break None,
                        Err(error) => break Some(error),
                    }
                }
            }
        };
        self.finish(error);
    }

    /// Reads, writes and keeps time on one connection.
    async fn drive(&mut self, connection: &mut RawConnection) -> Exit {
        while let Some(command) = self.deferred.pop_front() {
            if let Some(exit) = self.on_command(command, connection).await {
                return exit;
            }
        }
        const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
        let far = || Instant::now() + FAR;
        let mut heartbeat: Pin<Box<Sleep>> = Box::pin(sleep(self.heartbeat_every.unwrap_or(FAR)));
        let mut silence: Pin<Box<Sleep>> = Box::pin(sleep(self.silence_limit.unwrap_or(FAR)));
        let mut refresh: Pin<Box<Sleep>> =
            Box::pin(sleep_until(self.refresh_at.unwrap_or_else(far)));
        self.last_received = Instant::now();
        loop {
            let wake = {
                let refreshing = &mut self.refreshing;
                let token = async {
                    match refreshing.as_mut() {
                        Some(future) => future.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    message = connection.recv() => Wake::Message(message),
                    command = self.commands.recv() => Wake::Command(command),
                    () = heartbeat.as_mut() => Wake::Heartbeat,
                    () = silence.as_mut() => Wake::Silence,
                    () = refresh.as_mut() => Wake::RefreshDue,
                    token = token => Wake::Token(token),
                }
            };
            match wake {
                Wake::Message(Ok(Some(message))) => {
                    self.last_received = Instant::now();
                    match message {
                        RawMessage::Text(text) => {
                            if let Some(exit) = self.on_text(&text, connection).await {
                                return exit;
                            }
                        }
                        RawMessage::Close(close) => {
                            let close =
                                close.unwrap_or(CloseInfo::code_only(CloseCode::NoStatusReceived));
                            return Exit::Lost(Error::Closed {
                                close,
                                error: self.last_error.take().map(Box::new),
                            });
                        }
                        RawMessage::Binary(bytes) => {
                            self.shared.emit(ConnectionEvent::InvalidFrame {
                                text: String::from_utf8_lossy(&bytes).into_owned(),
                                error: Error::InvalidFrame {
                                    code: "unexpected_frame",
                                    message: format!("a binary frame of {} bytes", bytes.len()),
                                },
                            })
                        }
                        // Answered by the WebSocket layer; they only prove liveness.
                        RawMessage::Ping(_) | RawMessage::Pong(_) => {}
                    }
                }
                Wake::Message(Ok(None)) => {
                    return Exit::Lost(Error::lost("the connection ended without a close frame"));
                }
                Wake::Message(Err(error)) => return Exit::Lost(error),
                Wake::Command(None) => return Exit::Dropped,
                Wake::Command(Some(command)) => {
                    let had_refresh = self.refresh_at;
                    if let Some(exit) = self.on_command(command, connection).await {
                        return exit;
                    }
                    if self.refresh_at != had_refresh {
                        refresh.as_mut().reset(self.refresh_at.unwrap_or_else(far));
                    }
                }
                Wake::Heartbeat => {
                    if let Some(every) = self.heartbeat_every {
                        heartbeat.as_mut().reset(Instant::now() + every);
                        if let Err(error) =
                            connection.send_text(Inbound::heartbeat().to_json()).await
                        {
                            return Exit::Lost(error);
                        }
                    }
                }
                Wake::Silence => {
                    let Some(limit) = self.silence_limit else {
                        silence.as_mut().reset(far());
                        continue;
                    };
                    let deadline = self.last_received + limit;
                    if deadline > Instant::now() {
                        silence.as_mut().reset(deadline);
                        continue;
                    }
                    return Exit::Lost(Error::lost(format!(
                        "nothing received for {} ms (no ping, no frame): the connection is dead",
                        limit.as_millis()
                    )));
                }
                Wake::RefreshDue => {
                    self.refresh_at = None;
                    refresh.as_mut().reset(far());
                    if let Some(callback) = &self.settings.refresh
                        && self.refreshing.is_none()
                    {
                        tracing::debug!(target: LOG_TARGET, "refreshing the token");
                        self.refreshing = Some(callback());
                    }
                }
                Wake::Token(token) => {
                    self.refreshing = None;
                    match token {
                        Ok(token) => {
                            let message_id = next_message_id();
                            let text = Inbound::auth_refresh(token.as_str())
                                .with_message_id(message_id.as_str())
                                .to_json();
                            self.calls.insert(
                                message_id,
                                PendingCall {
                                    reply: None,
                                    token: Some(token),
                                },
                            );
                            if let Err(error) = connection.send_text(text).await {
                                return Exit::Lost(error);
                            }
                        }
                        Err(message) => {
                            self.shared.emit(ConnectionEvent::RefreshFailed {
                                error: Error::Token { message },
                            });
                            self.schedule_retry_refresh();
                            refresh.as_mut().reset(self.refresh_at.unwrap_or_else(far));
                        }
                    }
                }
            }
            // A reply may have moved the refresh time (auth_refreshed, a refused token).
            if let Some(at) = self.refresh_at
                && at != refresh.deadline()
            {
                refresh.as_mut().reset(at);
            }
        }
    }

    /// Carries out a command; `Some` when the connection can no longer be used.
    async fn on_command(
        &mut self,
        command: Command,
        connection: &mut RawConnection,
    ) -> Option<Exit> {
        match command {
            Command::Start {
                text,
                message_id,
                tx,
                run_id,
                ack,
            } => {
                if let Err(error) = connection.send_text(text.as_str()).await {
                    // Nothing complete reached the server: send it again on the next
                    // connection (or fail it if there is none).
                    self.deferred.push_front(Command::Start {
                        text,
                        message_id,
                        tx,
                        run_id,
                        ack,
                    });
                    return Some(Exit::Lost(error));
                }
                self.runs.insert(
                    message_id,
                    RunSlot {
                        tx,
                        run_id_cell: run_id,
                        run_id: None,
                        acknowledged: false,
                        cancel_pending: false,
                        generation: self.generation,
                    },
                );
                let _ = ack.send(Ok(()));
            }
            Command::Cancel { message_id } => {
                let slot = self.runs.get_mut(&message_id)?;
                match slot.run_id.clone() {
                    Some(run_id) => {
                        if let Err(error) = send_cancel(connection, &run_id).await {
                            return Some(Exit::Lost(error));
                        }
                    }
                    None => slot.cancel_pending = true,
                }
            }
            Command::Call {
                text,
                message_id,
                token,
                reply,
            } => {
                if let Err(error) = connection.send_text(text).await {
                    let _ = reply.send(Err(error.clone()));
                    return Some(Exit::Lost(error));
                }
                self.calls.insert(
                    message_id,
                    PendingCall {
                        reply: Some(reply),
                        token,
                    },
                );
            }
            Command::Send { text, ack } => {
                if let Err(error) = connection.send_text(text).await {
                    let _ = ack.send(Err(error.clone()));
                    return Some(Exit::Lost(error));
                }
                let _ = ack.send(Ok(()));
            }
            Command::Close { ack } => return Some(Exit::Close(ack)),
        }
        None
    }

    /// Routes one text frame; `Some` when the connection can no longer be used.
    async fn on_text(&mut self, text: &str, connection: &mut RawConnection) -> Option<Exit> {
        let frame = match parse_frame(text) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(target: LOG_TARGET, %error, "the server sent an invalid frame");
                self.shared.emit(ConnectionEvent::InvalidFrame {
                    text: text.to_owned(),
                    error,
                });
                return None;
            }
        };
        if let Some(seq) = frame.seq() {
            let replay_done = if self.replay_left > 0 {
                self.replay_left -= 1;
                self.replay_left == 0
            } else {
                false
            };
            let fresh = seq > self.seq;
            if fresh {
                if seq != self.seq + 1 {
                    self.shared.emit(ConnectionEvent::Gap {
                        expected: self.seq + 1,
                        received: seq,
                    });
                }
                self.seq = seq;
                self.shared.state().position.seq = seq;
            } else {
                tracing::debug!(target: LOG_TARGET, seq, "dropped an event seen before");
            }
            let exit = if fresh {
                self.route_stream_event(frame, connection).await
            } else {
                None
            };
            if replay_done {
                self.replay_finished();
            }
            return exit;
        }
        match frame.payload() {
            Payload::ErrorReply(reply) => {
                let reply = reply.clone();
                self.on_error_reply(frame.reply_to(), reply);
            }
            Payload::AuthRefreshed(_) | Payload::Pong(_) => {
                let Some(call) = frame.reply_to().and_then(|id| self.calls.remove(id)) else {
                    // The answer to a request sent with `Client::send`.
                    self.shared.emit(ConnectionEvent::Event(frame));
                    return None;
                };
                if let Payload::AuthRefreshed(refreshed) = frame.payload() {
                    if let Some(token) = call.token {
                        self.credentials = self.credentials.with_token(token);
                        self.schedule_refresh();
                    }
                    self.shared.emit(ConnectionEvent::TokenRefreshed {
                        expires_at: refreshed.expires_at,
                    });
                }
                if let Some(reply) = call.reply {
                    let _ = reply.send(Ok(frame));
                }
            }
            Payload::HeartbeatAck(_) => {}
            // Control frames not answering anything, stream events without a seq (a server
            // that stamps none): treat as stream events.
            _ => return self.route_stream_event(frame, connection).await,
        }
        None
    }

    fn on_error_reply(&mut self, reply_to: Option<&str>, reply: ErrorReply) {
        let Some(reply_to) = reply_to else {
            self.last_error = Some(reply.clone());
            self.shared.emit(ConnectionEvent::Error(reply));
            return;
        };
        if let Some(call) = self.calls.remove(reply_to) {
            let error = Error::Refused {
                reply: Box::new(reply),
            };
            if call.token.is_some() {
                self.shared.emit(ConnectionEvent::RefreshFailed {
                    error: error.clone(),
                });
                if call.reply.is_none() {
                    self.schedule_retry_refresh();
                }
            }
            if let Some(tx) = call.reply {
                let _ = tx.send(Err(error));
            }
            return;
        }
        if self
            .runs
            .get(reply_to)
            .is_some_and(|slot| !slot.acknowledged)
            && let Some(slot) = self.runs.remove(reply_to)
        {
            let _ = slot.tx.send(RunItem::Failed(Error::Refused {
                reply: Box::new(reply),
            }));
            return;
        }
        self.shared.emit(ConnectionEvent::Error(reply));
    }

    /// A run's event to its handle, anything else to the connection events.
    async fn route_stream_event(
        &mut self,
        frame: Frame,
        connection: &mut RawConnection,
    ) -> Option<Exit> {
        let key = frame
            .reply_to()
            .and_then(|id| self.runs.get_key_value(id).map(|(k, _)| Arc::clone(k)))
            .or_else(|| {
                frame
                    .run_id()
                    .and_then(|id| self.by_run_id.get(id).cloned())
            });
        let Some(key) = key else {
            self.shared.emit(ConnectionEvent::Event(frame));
            return None;
        };
        let Some(slot) = self.runs.get_mut(&key) else {
            self.shared.emit(ConnectionEvent::Event(frame));
            return None;
        };
        slot.acknowledged = true;
        let mut cancel = None;
        if slot.run_id.is_none()
            && let Some(run_id) = frame.run_id()
        {
            slot.run_id = Some(run_id.to_owned());
            *slot.run_id_cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(run_id.to_owned());
            self.by_run_id.insert(run_id.to_owned(), Arc::clone(&key));
            if slot.cancel_pending {
                slot.cancel_pending = false;
                cancel = Some(run_id.to_owned());
            }
        }
        let terminal = frame.message_type().is_terminal_event();
        let _ = slot.tx.send(RunItem::Event(frame));
        if terminal && let Some(slot) = self.runs.remove(&key) {
            if let Some(run_id) = slot.run_id {
                self.by_run_id.remove(&run_id);
            }
            // A cancel of a run that just ended has nothing left to do.
            cancel = None;
        }
        if let Some(run_id) = cancel
            && let Err(error) = send_cancel(connection, &run_id).await
        {
            return Some(Exit::Lost(error));
        }
        None
    }

    /// The replayed events are all in: a request written on a lost connection that none of
    /// them answered may never have reached the server.
    fn replay_finished(&mut self) {
        let generation = self.generation;
        let interrupted: Vec<Arc<str>> = self
            .runs
            .iter()
            .filter(|(_, slot)| !slot.acknowledged && slot.generation < generation)
            .map(|(key, _)| Arc::clone(key))
            .collect();
        for key in interrupted {
            if let Some(slot) = self.runs.remove(&key) {
                let _ = slot.tx.send(RunItem::Failed(Error::Interrupted));
            }
        }
    }

    /// Takes in a new connection's `connection_established`.
    fn install(&mut self, established: &ConnectionEstablished) {
        self.generation += 1;
        let interval = Duration::from_millis(established.heartbeat_interval_ms);
        let has_interval = !interval.is_zero();
        self.heartbeat_every = (self.settings.app_heartbeats && has_interval).then_some(interval);
        self.silence_limit = match self.settings.liveness {
            Liveness::Derived if has_interval => Some(interval * 2 + Duration::from_secs(5)),
            Liveness::Derived | Liveness::Off => None,
            Liveness::Fixed(limit) => Some(limit),
        };
        self.last_error = None;
        let stream = &established.stream;
        match &established.resume {
            Some(ResumeOutcome::Resumed { replayed, .. }) => {
                self.replay_left = *replayed;
            }
            Some(ResumeOutcome::Reset { reason }) => {
                let error = Error::StreamReset {
                    reason: reason.clone(),
                };
                for (_, slot) in self.runs.drain() {
                    let _ = slot.tx.send(RunItem::Failed(error.clone()));
                }
                self.by_run_id.clear();
                self.seq = stream.seq;
                self.replay_left = 0;
            }
            // Not resuming (the first connection, without a position to resume from).
            _ => {
                self.seq = stream.seq;
                self.replay_left = 0;
            }
        }
        self.epoch = stream.epoch.clone();
        {
            let mut state = self.shared.state();
            state.established = established.clone();
            state.position = StreamPosition::new(self.epoch.clone(), self.seq);
        }
        if self.replay_left == 0 {
            self.replay_finished();
        }
        self.schedule_refresh();
    }

    /// Plans the next refresh before the current token's `exp`.
    fn schedule_refresh(&mut self) {
        self.refresh_at = None;
        if self.settings.refresh.is_none() {
            return;
        }
        let Some(expires) = self.credentials.expires_at() else {
            return;
        };
        let left = expires
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let lead = self
            .settings
            .refresh_before
            .unwrap_or_else(|| (left / 3).min(Duration::from_secs(60)));
        self.refresh_at = Some(Instant::now() + left.saturating_sub(lead));
    }

    /// After a failed refresh: try again halfway to the expiry, if there is time.
    fn schedule_retry_refresh(&mut self) {
        self.refresh_at = None;
        let Some(expires) = self.credentials.expires_at() else {
            return;
        };
        let left = expires
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left > Duration::from_secs(2) {
            self.refresh_at = Some(Instant::now() + (left / 2).max(Duration::from_secs(1)));
        }
    }

    /// Replies that can no longer come (they belong to the lost connection).
    fn fail_calls(&mut self, error: &Error) {
        for (_, call) in self.calls.drain() {
            if let Some(reply) = call.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.refreshing = None;
    }

    /// Connects again after `cause`, as the reconnect policy allows.
    async fn reconnect(&mut self, cause: Error) -> Result<RawConnection, Error> {
        let Some(policy) = self.settings.reconnect.clone() else {
            return Err(cause);
        };
        let can_refresh = self.settings.refresh.is_some();
        let worth_trying =
            |error: &Error| error.is_retryable() || (error.is_auth_failure() && can_refresh);
        if !worth_trying(&cause) {
            return Err(cause);
        }
        self.shared.emit(ConnectionEvent::Disconnected {
            error: cause.clone(),
        });
        let mut last = cause;
        let mut attempt = 0u32;
        loop {
            if policy.attempts().is_some_and(|max| attempt >= max) {
                return Err(last);
            }
            self.wait(policy.backoff(attempt)).await?;
            attempt = attempt.saturating_add(1);
            let expired = self
                .credentials
                .expires_at()
                .is_some_and(|exp| exp <= SystemTime::now() + Duration::from_secs(5));
            if let Some(callback) = self.settings.refresh.clone()
                && (expired || last.is_auth_failure())
            {
                match tokio::time::timeout(self.settings.connect_timeout, callback()).await {
                    Ok(Ok(token)) => self.credentials = self.credentials.with_token(token),
                    Ok(Err(message)) => {
                        last = Error::Token { message };
                        self.shared.emit(ConnectionEvent::RefreshFailed {
                            error: last.clone(),
                        });
                        continue;
                    }
                    Err(_) => {
                        last = Error::Timeout {
                            what: "the token refresh callback",
                        };
                        continue;
                    }
                }
            }
            let target = self.settings.target.with_resume(&self.epoch, self.seq);
            tracing::debug!(target: LOG_TARGET, attempt, since = self.seq, "reconnecting");
            match connect_once(
                &target,
                &self.credentials,
                &self.settings.tls,
                self.settings.connect_timeout,
            )
            .await
            {
                Ok((connection, established)) => {
                    let resume = established.resume.clone().unwrap_or(ResumeOutcome::Reset {
                        reason: "unavailable".to_owned(),
                    });
                    self.install(&established);
                    self.shared.emit(ConnectionEvent::Reconnected {
                        connection_id: established.connection_id.clone(),
                        resume,
                    });
                    return Ok(connection);
                }
                Err(error) => {
                    tracing::debug!(target: LOG_TARGET, code = error.code(), %error, "reconnect failed");
                    if !worth_trying(&error) {
                        return Err(error);
                    }
                    last = error;
                }
            }
        }
    }

    /// Waits `backoff`, keeping the commands that come meanwhile; `Err` when the client
    /// closes or every handle is gone.
    async fn wait(&mut self, backoff: Duration) -> Result<(), Error> {
        let until = sleep(backoff);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = until.as_mut() => return Ok(()),
                command = self.commands.recv() => match command {
                    None => return Err(Error::ClientClosed),
                    Some(Command::Close { ack }) => {
                        self.finish(None);
                        let _ = ack.send(());
                        return Err(Error::ClientClosed);
                    }
                    Some(command) => self.deferred.push_back(command),
                },
            }
        }
    }

    /// Ends everything in flight with `error` (`None`: the client closed) and says so.
    fn finish(&mut self, error: Option<Error>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let failure = error.clone().unwrap_or(Error::ClientClosed);
        for (_, slot) in self.runs.drain() {
            let _ = slot.tx.send(RunItem::Failed(failure.clone()));
        }
        self.by_run_id.clear();
        self.fail_calls(&failure);
        for command in self.deferred.drain(..) {
            fail_command(command, &failure);
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            fail_command(command, &failure);
        }
        {
            let mut state = self.shared.state();
            if state.closed.is_none() {
                state.closed = Some(failure);
            }
        }
        self.shared.emit(ConnectionEvent::Closed { error });
    }
}

fn fail_command(command: Command, error: &Error) {
    match command {
        Command::Start { ack, .. } | Command::Send { ack, .. } => {
            let _ = ack.send(Err(error.clone()));
        }
        Command::Call { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Command::Close { ack } => {
            let _ = ack.send(());
        }
        Command::Cancel { .. } => {}
    }
}

async fn send_cancel(connection: &mut RawConnection, run_id: &str) -> Result<(), Error> {
    let text = Inbound::cancel_agent(Some(run_id))
        .with_message_id(next_message_id())
        .to_json();
    connection.send_text(text).await
}

/// Sends 1000 and waits a little for the answer.
async fn close_gracefully(connection: &mut RawConnection) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        connection.close(CloseInfo::code_only(CloseCode::NormalClosure)),
    )
    .await;
}

/// A `message_id` unique across processes (the requests of other connections of the same
/// user reach this one too).
pub(crate) fn next_message_id() -> String {
    agentwire_events::IdGenerator::global()
        .next("msg")
        .to_string()
}
