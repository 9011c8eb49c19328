//! A run as a handle: its own events, its final result, its cancel.

use std::sync::{Arc, Mutex};

use agentwire_events::{AgentCompleted, AgentError, Frame, Payload};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::task::Command;

/// What the connection task hands a run.
#[derive(Debug)]
pub(crate) enum RunItem {
    /// One of the run's events (the terminal one last).
    Event(Frame),
    /// The run cannot finish on this client.
    Failed(Error),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// `agent_completed`.
    Completed(AgentCompleted),
    /// `agent_error` (`cancelled` after [`RunHandle::cancel`]).
    Failed(AgentError),
}

/// A run's final result: its terminal event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The terminal frame (with its `seq`, `event_id`, `timestamp`).
    pub frame: Frame,
}

impl RunResult {
    /// The `agent_completed` payload.
    ///
    /// # Errors
    ///
    /// [`Error::RunFailed`] when the run ended with `agent_error`.
    pub fn completed(self) -> Result<AgentCompleted, Error> {
        match self.outcome {
            RunOutcome::Completed(done) => Ok(done),
            RunOutcome::Failed(error) => Err(Error::RunFailed {
                run_id: self.run_id,
                error: Box::new(error),
            }),
        }
    }

    fn from_terminal(frame: Frame) -> Option<RunResult> {
        let outcome = match frame.payload() {
            Payload::AgentCompleted(done) => RunOutcome::Completed(done.clone()),
            Payload::AgentError(error) => RunOutcome::Failed(error.clone()),
            _ => return None,
        };
        Some(RunResult {
            run_id: frame.run_id().unwrap_or_default().to_owned(),
            outcome,
            frame,
        })
    }
}

/// The run id, once the first event told it (shared with the connection task).
pub(crate) type RunIdCell = Arc<Mutex<Option<String>>>;

/// A run started by [`Client::start_agent`](crate::Client::start_agent) or
/// [`Client::user_message`](crate::Client::user_message): a stream of the run's own events
/// and its final result.
///
/// Events of other runs on the same connection never show up here: the connection task
/// routes each frame by the request's `message_id` (every event of a run carries it as
/// `reply_to`) and the run id. Events buffer until read; dropping the handle drops them.
///
/// ```no_run
/// # async fn f(client: agentwire_client::Client) -> Result<(), agentwire_client::Error> {
/// let mut run = client.start_agent("What is the weather in Oslo?").await?;
/// while let Some(event) = run.next().await {
///     println!("{} #{:?}", event.message_type().as_str(), event.seq());
/// }
/// let result = run.result().await?; // agent_completed or agent_error
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RunHandle {
    message_id: Arc<str>,
    rx: mpsc::UnboundedReceiver<RunItem>,
    commands: mpsc::UnboundedSender<Command>,
    run_id: RunIdCell,
    end: Option<Result<RunResult, Error>>,
}

impl RunHandle {
    pub(crate) fn new(
        message_id: Arc<str>,
        rx: mpsc::UnboundedReceiver<RunItem>,
        commands: mpsc::UnboundedSender<Command>,
        run_id: RunIdCell,
    ) -> RunHandle {
        RunHandle {
            message_id,
            rx,
            commands,
            run_id,
            end: None,
        }
    }

    /// The `message_id` of the request (every event of the run carries it as `reply_to`).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The run's id, once its first event arrived.
    pub fn run_id(&self) -> Option<String> {
        self.run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The run's next event, the terminal one (`agent_completed` or `agent_error`) last;
    /// `None` after it, or when the run cannot finish (then [`result`](Self::result) says
    /// why).
    pub async fn next(&mut self) -> Option<Frame> {
        if self.end.is_some() {
            return None;
        }
        match self.rx.recv().await {
            Some(RunItem::Event(frame)) => {
                if frame.message_type().is_terminal_event() {
                    let result = RunResult::from_terminal(frame.clone()).ok_or_else(|| {
                        Error::InvalidFrame {
                            code: "unexpected_frame",
                            message: "a terminal event without its payload".to_owned(),
                        }
                    });
                    self.end = Some(result);
                }
                Some(frame)
            }
            Some(RunItem::Failed(error)) => {
                self.end = Some(Err(error));
                None
            }
            None => {
                self.end = Some(Err(Error::ClientClosed));
                None
            }
        }
    }

    /// Waits for the end of the run (skipping the events not read yet) and returns its
    /// terminal event.
    ///
    /// # Errors
    ///
    /// Why the run cannot finish on this client: the request was refused
    /// ([`Error::Refused`]), the connection closed or was lost ([`Error::Closed`],
    /// [`Error::ConnectionLost`]), the stream was reset ([`Error::StreamReset`]), ...
    /// An `agent_error` is an `Ok` [`RunResult`] with [`RunOutcome::Failed`].
    pub async fn result(mut self) -> Result<RunResult, Error> {
        while self.next().await.is_some() {}
        self.end.take().unwrap_or(Err(Error::ClientClosed))
    }

    /// Every event (the terminal one last) and the result.
    ///
    /// # Errors
    ///
    /// As [`result`](Self::result).
    pub async fn collect(mut self) -> Result<(Vec<Frame>, RunResult), Error> {
        let mut events = Vec::new();
        while let Some(frame) = self.next().await {
            events.push(frame);
        }
        let result = self.end.take().unwrap_or(Err(Error::ClientClosed))?;
        Ok((events, result))
    }

    /// Asks the server to cancel the run (`cancel_agent` with its run id, sent as soon as the
    /// id is known). The run then ends with `agent_error` code `cancelled`, unless it ended
    /// first.
    ///
    /// # Errors
    ///
    /// [`Error::ClientClosed`] when the connection is gone.
    pub fn cancel(&self) -> Result<(), Error> {
        self.commands
            .send(Command::Cancel {
                message_id: Arc::clone(&self.message_id),
            })
            .map_err(|_| Error::ClientClosed)
    }
}
