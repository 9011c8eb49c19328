//! The client: one connection (replaced on reconnect), shared by any number of tasks.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentwire_events::{
    ConnectionEstablished, Frame, Inbound, Payload, RunRequest, StreamPosition, Timestamp,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::credentials::Credentials;
use crate::error::Error;
use crate::events::Events;
use crate::reconnect::Reconnect;
use crate::run::RunHandle;
use crate::task::{
    Command, Liveness, RefreshFn, Settings, Shared, State, Task, connect_once, next_message_id,
};
use crate::transport::{Target, TlsSetting};

/// A connection to an agentwire server: start runs, each a [`RunHandle`] with its own
/// events; read what else happens with [`events`](Self::events).
///
/// Cloning is cheap and every clone uses the same connection: start runs from as many tasks
/// as you like. One task owns the socket: it routes each frame to its run, answers pings,
/// sends heartbeats, refreshes the token and, when asked to, reconnects and resumes the
/// stream. It needs a tokio runtime. The connection closes with
/// [`close`](Self::close), or when every clone and every run handle is dropped.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("Client")
            .field("connection_id", &state.established.connection_id)
            .field("user_id", &state.established.user_id)
            .field("position", &state.position)
            .field("closed", &state.closed.is_some())
            .finish()
    }
}

impl Client {
    /// Connects to `url` with `credentials` and the default settings (no reconnect, no token
    /// refresh, heartbeats as the server announces them) and reads
    /// `connection_established`.
    ///
    /// # Errors
    ///
    /// Every way a connection can fail, typed: [`Error::InvalidUrl`], [`Error::Resolve`],
    /// [`Error::Connect`], [`Error::Tls`], [`Error::Upgrade`] (an HTTP refusal with the
    /// server's code), [`Error::Subprotocol`], [`Error::Closed`] (4401 with the reason and
    /// the server's `error` frame when the token is refused; 4409 at the connection limit),
    /// [`Error::Timeout`].
    pub async fn connect(url: &str, credentials: Credentials) -> Result<Client, Error> {
        Client::builder(url, credentials).connect().await
    }

    /// A builder for the other settings (reconnect, refresh, heartbeats, timeouts, TLS).
    pub fn builder(url: impl Into<String>, credentials: Credentials) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            credentials,
            reconnect: None,
            refresh: None,
            refresh_before: None,
            app_heartbeats: true,
            liveness: Liveness::Derived,
            connect_timeout: Duration::from_secs(30),
            resume_from: None,
            tls: TlsSetting::Default,
            event_capacity: 1024,
        }
    }

    /// The current connection's `connection_established`: connection and user ids, protocol
    /// version, heartbeat interval, largest message, stream position, and after a reconnect
    /// the `resume` outcome.
    pub fn established(&self) -> ConnectionEstablished {
        self.shared.state().established.clone()
    }

    /// The stream position processed so far: the epoch and the `seq` of the last event
    /// routed (what a reconnect resumes from). Persist it to resume in another process
    /// ([`ClientBuilder::resume_from`]).
    pub fn position(&self) -> StreamPosition {
        self.shared.state().position.clone()
    }

    /// Why the connection is closed for good, once it is.
    pub fn closed(&self) -> Option<Error> {
        self.shared.state().closed.clone()
    }

    /// A subscription to the [`ConnectionEvent`](crate::ConnectionEvent)s. The first one
    /// has every event since the connection opened (events replayed by a
    /// [`resume_from`](ClientBuilder::resume_from) included); later ones start when they are
    /// made.
    pub fn events(&self) -> Events {
        let first = self
            .shared
            .first_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match first {
            Some(rx) => Events { rx, done: false },
            None => Events {
                rx: self.shared.events.subscribe(),
                // Once closed, nothing more happens.
                done: self.shared.state().closed.is_some(),
            },
        }
    }

    /// Sends `start_agent` and returns the run's handle once the frame is written.
    ///
    /// # Errors
    ///
    /// The connection is closed or lost without a reconnect ([`Error::ClientClosed`],
    /// [`Error::Closed`], [`Error::ConnectionLost`]). A refusal by the server
    /// (`too_many_runs`, `rate_limited`, ...) comes from the handle's
    /// [`result`](RunHandle::result).
    pub fn start_agent<'a>(
        &self,
        request: impl Into<RunRequest<'a>>,
    ) -> impl Future<Output = Result<RunHandle, Error>> + Send + 'static {
        let message_id = next_message_id();
        let text = Inbound::start_agent(request)
            .with_message_id(message_id.as_str())
            .to_json();
        self.start(text, message_id)
    }

    /// Sends `user_message` (a chat turn; it starts a run too) and returns the run's handle.
    ///
    /// # Errors
    ///
    /// As [`start_agent`](Self::start_agent).
    pub fn user_message<'a>(
        &self,
        request: impl Into<RunRequest<'a>>,
    ) -> impl Future<Output = Result<RunHandle, Error>> + Send + 'static {
        let message_id = next_message_id();
        let text = Inbound::user_message(request)
            .with_message_id(message_id.as_str())
            .to_json();
        self.start(text, message_id)
    }

    fn start(
        &self,
        text: String,
        message_id: String,
    ) -> impl Future<Output = Result<RunHandle, Error>> + Send + 'static {
        let commands = self.commands.clone();
        let shared = Arc::clone(&self.shared);
        async move {
            let message_id: Arc<str> = message_id.into();
            let (tx, rx) = mpsc::unbounded_channel();
            let run_id = Arc::new(Mutex::new(None));
            let (ack, acked) = oneshot::channel();
            commands
                .send(Command::Start {
                    text,
                    message_id: Arc::clone(&message_id),
                    tx,
                    run_id: Arc::clone(&run_id),
                    ack,
                })
                .map_err(|_| shared.closed_error())?;
            acked.await.map_err(|_| shared.closed_error())??;
            Ok(RunHandle::new(message_id, rx, commands, run_id))
        }
    }

    /// Sends `ping` and waits for `pong`; returns the round trip.
    ///
    /// # Errors
    ///
    /// The connection is closed or was lost before the answer.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let message_id = next_message_id();
        let text = Inbound::ping()
            .with_message_id(message_id.as_str())
            .to_json();
        let started = Instant::now();
        self.call(text, message_id, None).await?;
        Ok(started.elapsed())
    }

    /// Sends `auth_refresh` with `token` (same `sub`) and waits for `auth_refreshed`; from
    /// then on the connection (and any reconnect) uses the new token. With
    /// [`ClientBuilder::refresh_with`] this happens by itself before each `exp`.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] with the authentication code when the server refuses the token
    /// (the connection keeps its current token).
    pub async fn refresh_token(&self, token: impl Into<String>) -> Result<Timestamp, Error> {
        let token: String = token.into();
        let message_id = next_message_id();
        let text = Inbound::auth_refresh(token.as_str())
            .with_message_id(message_id.as_str())
            .to_json();
        let frame = self.call(text, message_id, Some(token)).await?;
        match frame.payload() {
            Payload::AuthRefreshed(refreshed) => Ok(refreshed.expires_at),
            other => Err(Error::InvalidFrame {
                code: "unexpected_frame",
                message: format!(
                    "auth_refresh answered with {}",
                    other.message_type().as_str()
                ),
            }),
        }
    }

    async fn call(
        &self,
        text: String,
        message_id: String,
        token: Option<String>,
    ) -> Result<Frame, Error> {
        let (reply, replied) = oneshot::channel();
        self.commands
            .send(Command::Call {
                text,
                message_id,
                token,
                reply,
            })
            .map_err(|_| self.shared.closed_error())?;
        replied.await.map_err(|_| self.shared.closed_error())?
    }

    /// Sends any request frame (a custom message type for a service's handler, a
    /// `cancel_agent` without run id, a `ping`). Its answers and the events it causes arrive
    /// as [`ConnectionEvent`](crate::ConnectionEvent)s (`heartbeat_ack` excepted: the client
    /// sends heartbeats of its own). A `message_id` is added when the frame has none.
    ///
    /// # Errors
    ///
    /// The connection is closed.
    pub async fn send(&self, frame: Inbound<'_>) -> Result<(), Error> {
        let frame = if frame.message_id().is_some() {
            frame
        } else {
            frame.with_message_id(next_message_id())
        };
        let (ack, acked) = oneshot::channel();
        self.commands
            .send(Command::Send {
                text: frame.to_json(),
                ack,
            })
            .map_err(|_| self.shared.closed_error())?;
        acked.await.map_err(|_| self.shared.closed_error())?
    }

    /// Closes the connection (1000, waiting up to 5 s for the server's answer). Runs in
    /// flight end with [`Error::ClientClosed`] (on the server they go on: a run belongs to
    /// the user's stream, not to the connection).
    pub async fn close(&self) {
        let (ack, acked) = oneshot::channel();
        if self.commands.send(Command::Close { ack }).is_ok() {
            let _ = acked.await;
        }
    }
}

/// Settings of a [`Client`], from [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use agentwire_client::{Client, Credentials, Reconnect};
///
/// # async fn mint_token() -> Result<String, std::io::Error> { Ok(String::new()) }
/// # async fn f() -> Result<(), agentwire_client::Error> {
/// let client = Client::builder("wss://chat.example.com/ws", Credentials::bearer("eyJ..."))
///     .reconnect(Reconnect::new())
///     .refresh_with(|| async { mint_token().await })
///     .connect_timeout(Duration::from_secs(10))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct ClientBuilder {
    url: String,
    credentials: Credentials,
    reconnect: Option<Reconnect>,
    refresh: Option<RefreshFn>,
    refresh_before: Option<Duration>,
    app_heartbeats: bool,
    liveness: Liveness,
    connect_timeout: Duration,
    resume_from: Option<StreamPosition>,
    tls: TlsSetting,
    event_capacity: usize,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("credentials", &self.credentials)
            .field("reconnect", &self.reconnect)
            .field("refresh", &self.refresh.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Reconnects after a connection is lost (see [`Reconnect`]): the stream resumes from
    /// the last `seq` processed, each event arriving once; a `reset` is reported. Off by
    /// default.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// A token source: called before the current token's `exp` (by a third of the time
    /// left, at most 60 s before; see [`refresh_before`](Self::refresh_before)); its token
    /// goes to the server in `auth_refresh` and is used by reconnects. Also called when a
    /// reconnect finds the token expired or refused.
    pub fn refresh_with<F, Fut, E>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        let callback = Arc::new(callback);
        self.refresh = Some(Arc::new(move || {
            let future = callback();
            Box::pin(async move { future.await.map_err(|e| e.to_string()) })
        }));
        self
    }

    /// Refresh this long before `exp` instead.
    pub fn refresh_before(mut self, lead: Duration) -> Self {
        self.refresh_before = Some(lead);
        self
    }

    /// Whether to send `heartbeat` at the interval `connection_established` announces (on
    /// by default; the answers also show the server is alive).
    pub fn app_heartbeats(mut self, on: bool) -> Self {
        self.app_heartbeats = on;
        self
    }

    /// How long the connection may stay silent (no frame, no ping) before it counts as
    /// lost: by default twice the announced heartbeat interval plus 5 s; `None` turns the
    /// check off.
    pub fn liveness_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.liveness = match timeout {
            Some(limit) => Liveness::Fixed(limit),
            None => Liveness::Off,
        };
        self
    }

    /// How long a connection attempt may take, up to `connection_established` (30 s by
    /// default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Resume a stream position saved earlier ([`Client::position`]) on the first
    /// connection: the events after it are replayed, or `resume` says `reset`
    /// ([`Client::established`]).
    pub fn resume_from(mut self, position: StreamPosition) -> Self {
        self.resume_from = Some(position);
        self
    }

    /// The rustls configuration for `wss://` (a private CA, client certificates); by default
    /// the Mozilla roots ([`transport::default_tls_config`](crate::transport::default_tls_config)).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = TlsSetting::Custom(config);
        self
    }

    /// How many [`ConnectionEvent`](crate::ConnectionEvent)s a subscription buffers before it loses the oldest
    /// (it is then told how many, with [`ConnectionEvent::Lagged`](crate::ConnectionEvent::Lagged)); 1024 by default.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Connects and reads `connection_established`.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub async fn connect(self) -> Result<Client, Error> {
        let target = Target::parse(&self.url)?;
        let first = match &self.resume_from {
            Some(position) => target.with_resume(&position.epoch, position.seq),
            None => target.clone(),
        };
        let (connection, established) =
            connect_once(&first, &self.credentials, &self.tls, self.connect_timeout).await?;
        let (events, first_events) = broadcast::channel(self.event_capacity);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                established: established.clone(),
                position: established.stream.clone(),
                closed: None,
            }),
            events,
            first_events: Mutex::new(Some(first_events)),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let settings = Settings {
            target,
            reconnect: self.reconnect,
            refresh: self.refresh,
            refresh_before: self.refresh_before,
            app_heartbeats: self.app_heartbeats,
            liveness: self.liveness,
            connect_timeout: self.connect_timeout,
            tls: self.tls,
        };
        let task = Task::new(
            settings,
            self.credentials,
            Arc::clone(&shared),
            receiver,
            &established,
            self.resume_from.as_ref(),
        );
        tokio::spawn(task.run(connection));
        Ok(Client { commands, shared })
    }
}
