//! What a service plugs in: the [`Handler`] that acts on requests, and the demo agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agentwire_events::{Event, OtherRequest, Payload, RunRequest, ToolExecuting};
use agentwire_types::MessageType;
use serde_json::json;

use crate::error::HandlerError;
use crate::hub::{Delivered, Emitter, Hub};

/// Acts on clients' requests. Implement it to put a real agent behind the server.
///
/// The server calls [`run`](Self::run) for every `start_agent` and `user_message` (and their
/// aliases). It polls the run once on the connection's task and moves it to a task of its own
/// at its first wait, so a run that answers at once costs no task; like any async code, a
/// handler should not block (run heavy synchronous work with `tokio::task::spawn_blocking`).
/// The server guarantees the run's shape on the wire: if the handler returns without a
/// terminal event, panics, or the client cancels, the server ends the run with `agent_error`
/// itself; and a run whose terminal event comes before any `agent_started` gets one first
/// (see [`Run::emit`]), so every run on the wire starts with `agent_started`.
///
/// **Cancellation** (`cancel_agent`, from any of the user's connections): the run's future is
/// dropped at its next `.await` and never polled again, and the server emits `agent_error`
/// with code `cancelled`. Clean up in `Drop` (a guard that owns what must be released) rather
/// than after an `.await`; work the handler spawned itself is not stopped by the server. A run
/// is not cancelled when the connection that started it closes: it belongs to the user's
/// stream, and its events reach the user's other connections. Other types a client may send reach
/// [`on_message`](Self::on_message), which by default refuses them.
///
/// ```
/// use agentwire_server::{Handler, Run};
/// use serde_json::json;
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn run(&self, run: Run) {
///         run.started("echo");
///         let text = run.request().text.to_string();
///         run.completed(json!({ "echo": text }));
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Carries out one run, emitting its events through `run`.
    fn run(&self, run: Run) -> impl Future<Output = ()> + Send;

    /// Whether to start a run for `request` (of `kind`, `start_agent` or `user_message`).
    ///
    /// Called on the connection's task before the run exists, so it must not block. An error
    /// refuses the request: no run is started, and the connection the request came on gets
    /// an `error` frame with the error's code, message and
    /// [`retry_after_ms`](HandlerError::retry_after) (with `reply_to` set to the request's
    /// `message_id`). The default accepts every request.
    fn accepts(&self, kind: MessageType, request: &RunRequest<'_>) -> Result<(), HandlerError> {
        let _ = (kind, request);
        Ok(())
    }

    /// Handles a client-sendable type other than the run requests and the server's own control
    /// messages (ping, heartbeat, auth_refresh, cancel_agent).
    ///
    /// The default refuses every such type with `unsupported_message_type`. An error returned
    /// here is sent as an `error` frame to the connection the request came on only; so is
    /// what the handler sends with [`MessageContext::reply`].
    fn on_message(
        &self,
        context: MessageContext,
        request: OtherRequest<'static>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = context;
        let message_type = request.message_type();
        async move {
            Err(HandlerError::new(
                "unsupported_message_type",
                format!("this server does not handle {message_type} messages"),
            ))
        }
    }

    /// Whether [`on_message`](Self::on_message) handles `message_type`; the server answers
    /// `unsupported_message_type` at once for the others, without spawning a task.
    fn handles(&self, message_type: MessageType) -> bool {
        let _ = message_type;
        false
    }

    /// A user's presence on this server changed: their first connection opened
    /// ([`Presence::Online`], before `connection_established` is sent) or their last one
    /// closed ([`Presence::Offline`]). Called on the connection's task, so it must not block
    /// (spawn a task for anything slow). When one connection of a user closes as another
    /// opens, the two calls may come in either order: ask
    /// [`Server::connections_of`](crate::Server::connections_of) for the state now. The
    /// default does nothing.
    fn presence(&self, user_id: &str, presence: Presence) {
        let _ = (user_id, presence);
    }

    /// The `agent_name` of the `agent_started` the server emits itself for a run that ends
    /// before the handler emitted one (see [`Run::emit`]), when the request named no agent
    /// (`payload.agent_name`). Asked once, when the server is built. The default: `agent`.
    fn agent_name(&self) -> &str {
        "agent"
    }

    /// Appends the handler's own metrics, in the Prometheus text format, to `out` (`GET
    /// /metrics`, after the server's and the engine's). The default adds none.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }

    /// What `GET /ws/config` shows of the handler under `agent`. Every client can read it:
    /// never a secret (nor a URL's credentials). The default: `{"kind": "custom"}`.
    fn describe(&self) -> serde_json::Value {
        json!({ "kind": "custom" })
    }
}

/// What [`Handler::presence`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presence {
    /// The user's first connection on this server opened.
    Online,
    /// The user's last connection on this server closed.
    Offline,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// [`Handler`] with its futures boxed, so the server can hold any handler behind one pointer.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn run(self: Arc<Self>, run: Run) -> BoxFuture<()>;
    fn accepts(&self, kind: MessageType, request: &RunRequest<'_>) -> Result<(), HandlerError>;
    fn on_message(
        self: Arc<Self>,
        context: MessageContext,
        request: OtherRequest<'static>,
    ) -> BoxFuture<Result<(), HandlerError>>;
    fn handles(&self, message_type: MessageType) -> bool;
    fn presence(&self, user_id: &str, presence: Presence);
    fn render_metrics(&self, out: &mut String);
    fn describe(&self) -> serde_json::Value;
}

impl<H: Handler> ErasedHandler for H {
    fn run(self: Arc<Self>, run: Run) -> BoxFuture<()> {
        Box::pin(async move { Handler::run(&*self, run).await })
    }

    fn on_message(
        self: Arc<Self>,
        context: MessageContext,
        request: OtherRequest<'static>,
    ) -> BoxFuture<Result<(), HandlerError>> {
        Box::pin(async move { Handler::on_message(&*self, context, request).await })
    }

    fn handles(&self, message_type: MessageType) -> bool {
        Handler::handles(self, message_type)
    }

    fn accepts(&self, kind: MessageType, request: &RunRequest<'_>) -> Result<(), HandlerError> {
        Handler::accepts(self, kind, request)
    }

    fn presence(&self, user_id: &str, presence: Presence) {
        Handler::presence(self, user_id, presence);
    }

    fn render_metrics(&self, out: &mut String) {
        Handler::render_metrics(self, out);
    }

    fn describe(&self) -> serde_json::Value {
        Handler::describe(self)
    }
}

/// Who sent a request, for [`Handler::on_message`].
#[derive(Clone)]
#[non_exhaustive]
pub struct MessageContext {
    /// The authenticated user.
    pub user_id: Arc<str>,
    /// The connection the request came on.
    pub connection_id: Arc<str>,
    /// The client's `message_id`, if it sent one.
    pub message_id: Option<String>,
    /// An emitter for events on the user's stream (all of the user's connections).
    pub emitter: Emitter,
    pub(crate) hub: Arc<Hub>,
    /// The connection's place on the hub.
    pub(crate) serial: u64,
}

impl MessageContext {
    /// Sends a reply to the connection the request came on, and to no other (a control frame:
    /// no `seq`, not replayed; `reply_to` is set to the request's `message_id`). Returns
    /// whether it was queued: `false` once that connection has closed.
    pub fn reply(&self, event: Event) -> bool {
        let event = match &self.message_id {
            Some(id) => event.with_reply_to(id.as_str()),
            None => event,
        };
        self.hub.send_to(&self.user_id, self.serial, event)
    }
}

impl std::fmt::Debug for MessageContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageContext")
            .field("user_id", &self.user_id)
            .field("connection_id", &self.connection_id)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// One agent run: the request, its identity, and the means to emit its events.
///
/// Cheap to clone (a reference count), so a handler can emit from tasks of its own. Every
/// event emitted through a `Run` carries its `run_id` (and `thread_id`, when the request
/// had one) and goes to all the user's connections.
#[derive(Clone)]
pub struct Run {
    inner: Arc<RunInner>,
}

pub(crate) struct RunInner {
    pub(crate) run_id: Arc<str>,
    pub(crate) user_id: Arc<str>,
    pub(crate) connection_id: Arc<str>,
    pub(crate) thread_id: Option<Arc<str>>,
    pub(crate) reply_to: Option<Arc<str>>,
    pub(crate) kind: MessageType,
    pub(crate) request: RunRequest<'static>,
    pub(crate) emitter: Emitter,
    /// Whether `agent_started` went out.
    pub(crate) started: AtomicBool,
    pub(crate) ended: AtomicBool,
    pub(crate) started_at: Instant,
    /// The handler's [`agent_name`](Handler::agent_name), for the `agent_started` the run
    /// emits itself.
    pub(crate) default_agent_name: Arc<str>,
}

impl From<RunInner> for Run {
    fn from(inner: RunInner) -> Self {
        Run {
            inner: Arc::new(inner),
        }
    }
}

impl Run {
    /// The run's id (`run_id` on every event).
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The authenticated user who asked for the run.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The connection the request came on.
    pub fn connection_id(&self) -> &str {
        &self.inner.connection_id
    }

    /// The client's `message_id` for the request, if it sent one (the run's events carry it
    /// as `reply_to`).
    pub fn message_id(&self) -> Option<&str> {
        self.inner.reply_to.as_deref()
    }

    /// The thread the run belongs to, if the request named one.
    pub fn thread_id(&self) -> Option<&str> {
        self.inner.thread_id.as_deref()
    }

    /// `start_agent` or `user_message`: what kind of request started the run.
    pub fn kind(&self) -> MessageType {
        self.inner.kind
    }

    /// The request: its text, agent name, thread and context.
    pub fn request(&self) -> &RunRequest<'static> {
        &self.inner.request
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.inner.started_at.elapsed()
    }

    /// Whether a terminal event (`agent_completed` or `agent_error`) was emitted.
    pub fn is_ended(&self) -> bool {
        self.inner.ended.load(Ordering::Acquire)
    }

    /// Emits one event of this run. Events after the terminal one are dropped (the run is
    /// over on the wire), and so reported as delivered to no connection.
    ///
    /// A terminal event (`agent_completed` or `agent_error`) emitted before any
    /// `agent_started` is preceded by one the run emits itself, so that the run is well
    /// formed on the wire: its `agent_name` is the request's `agent_name`, or the handler's
    /// [`agent_name`](Handler::agent_name) when the request named none; its `user_request`
    /// the request text. That covers a run that fails before its agent said anything (an
    /// agent service that cannot be reached, say) and the server's own `agent_error` for a
    /// run cancelled, or whose handler panicked or returned, before it started.
    pub fn emit(&self, payload: impl Into<Payload>) -> Delivered {
        let payload = payload.into();
        let kind = payload.message_type();
        if kind.is_terminal_event() {
            if self.inner.ended.swap(true, Ordering::AcqRel) {
                return Delivered::default();
            }
            if !self.inner.started.swap(true, Ordering::AcqRel) {
                let request = &self.inner.request;
                let agent_name = request
                    .agent_name
                    .as_deref()
                    .unwrap_or(&self.inner.default_agent_name);
                self.deliver(
                    agentwire_events::AgentStarted::new(agent_name, request.text.to_string())
                        .into(),
                );
            }
        } else if self.is_ended() {
            return Delivered::default();
        } else if kind == MessageType::AgentStarted {
            self.inner.started.store(true, Ordering::Release);
        }
        self.deliver(payload)
    }

    /// Stamps `payload` as this run's and hands it to the emitter.
    fn deliver(&self, payload: Payload) -> Delivered {
        let mut event = Event::in_run(Arc::clone(&self.inner.run_id), payload);
        if let Some(thread_id) = &self.inner.thread_id {
            event = event.with_thread_id(Arc::clone(thread_id));
        }
        if let Some(reply_to) = &self.inner.reply_to {
            event = event.with_reply_to(Arc::clone(reply_to));
        }
        self.inner.emitter.emit(&self.inner.user_id, event)
    }

    /// Emits `agent_started` for `agent_name` with the request text.
    pub fn started(&self, agent_name: &str) -> Delivered {
        self.emit(agentwire_events::AgentStarted::new(
            agent_name,
            self.inner.request.text.to_string(),
        ))
    }

    /// Emits `agent_completed` with `result` and the time since the request arrived.
    pub fn completed(&self, result: impl Into<serde_json::Value>) -> Delivered {
        let duration_ms = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.emit(agentwire_events::AgentCompleted::new(result, duration_ms))
    }

    /// Emits `agent_error` (terminal).
    pub fn failed(&self, error: &HandlerError) -> Delivered {
        self.emit(agentwire_events::AgentError::new(
            error.code.clone(),
            error.to_string(),
            error.is_recoverable(),
        ))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("run_id", &self.inner.run_id)
            .field("user_id", &self.inner.user_id)
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

/// The default handler: a demo agent that shows the whole event flow.
///
/// For each run it emits `agent_started`, `agent_thinking`, `tool_executing`,
/// `tool_completed` and `agent_completed` (whose result echoes the request), pausing `step`
/// between events (zero for benchmarks).
#[derive(Clone, Debug)]
pub struct DemoAgent {
    step: Duration,
}

impl DemoAgent {
    /// The agent's name in `agent_started` when the request names none.
    pub const NAME: &'static str = "demo";

    /// A demo agent pausing `step` between events.
    pub fn new(step: Duration) -> Self {
        DemoAgent { step }
    }

    async fn pause(&self) {
        if !self.step.is_zero() {
            tokio::time::sleep(self.step).await;
        }
    }
}

impl Default for DemoAgent {
    fn default() -> Self {
        DemoAgent::new(Duration::from_millis(100))
    }
}

impl Handler for DemoAgent {
    /// [`DemoAgent::NAME`].
    fn agent_name(&self) -> &str {
        DemoAgent::NAME
    }

    async fn run(&self, run: Run) {
        let request = run.request();
        let text: &str = &request.text;
        run.started(request.agent_name.as_deref().unwrap_or(DemoAgent::NAME));
        self.pause().await;
        run.emit(
            agentwire_events::AgentThinking::new(["Looking up an answer to: ", text].concat())
                .with_step(1),
        );
        self.pause().await;
        let call_id = ["call_", run.run_id()].concat();
        run.emit(ToolExecuting::new("echo", call_id.clone()).with_parameter("text", text));
        let tool_started = Instant::now();
        self.pause().await;
        let tool_ms = u64::try_from(tool_started.elapsed().as_millis()).unwrap_or(u64::MAX);
        run.emit(agentwire_events::ToolCompleted::ok(
            "echo",
            call_id,
            json!({ "text": text }),
            tool_ms,
        ));
        self.pause().await;
        let response = ["You said: ", text].concat();
        run.completed(json!({ "response": response }));
    }

    /// `{"kind": "demo", "step_ms": ...}`.
    fn describe(&self) -> serde_json::Value {
        json!({
            "kind": "demo",
            "step_ms": u64::try_from(self.step.as_millis()).unwrap_or(u64::MAX),
        })
    }
}
