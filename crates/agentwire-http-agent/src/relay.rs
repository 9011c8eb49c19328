//! The way every protocol's events go out: checked against the run contract, then emitted,
//! those the service sent together in one go.

use agentwire_events::{Event, Payload, RunValidator};
use agentwire_server::Run;

use crate::error::AgentFailure;

/// Where a protocol's decoder sends the run's events.
pub(crate) trait Sink {
    /// Emits one event: `Ok(true)` when it was the terminal one.
    ///
    /// # Errors
    ///
    /// [`AgentFailure::ContractBroken`] when the event breaks the run contract (it is not
    /// emitted).
    fn emit(&mut self, payload: Payload) -> Result<bool, AgentFailure>;

    /// The index the next event would have in the run, for error messages.
    fn next_index(&self) -> usize;

    /// The run's id, for logs.
    fn run_id(&self) -> &str;
}

/// Checks the service's events with the run validator and emits them into the run.
///
/// Checked events wait in the relay until [`flush`](Relay::flush) (or its drop) emits them,
/// in order: the reader flushes once it has read what the service sent in one go, so that a
/// burst of events reaches the user's connections together (one write to each WebSocket, not
/// one per event).
pub(crate) struct Relay<'r> {
    run: &'r Run,
    validator: RunValidator,
    pending: Vec<Payload>,
}

impl<'r> Relay<'r> {
    pub(crate) fn new(run: &'r Run) -> Self {
        Relay {
            run,
            validator: RunValidator::new(),
            pending: Vec::new(),
        }
    }

    /// Emits the checked events, in order.
    pub(crate) fn flush(&mut self) {
        for payload in self.pending.drain(..) {
            self.run.emit(payload);
        }
    }
}

/// What was checked goes out also when the run stops early (a failure, a timeout, a cancel):
/// before the run's `agent_error`.
impl Drop for Relay<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Sink for Relay<'_> {
    fn emit(&mut self, payload: Payload) -> Result<bool, AgentFailure> {
        let index = self.validator.len();
        let event = Event::in_run(self.run.run_id(), payload);
        if let Err(violation) = self.validator.push_event(&event) {
            return Err(AgentFailure::ContractBroken {
                index,
                reason: violation.rule().to_string(),
            });
        }
        let terminal = event.message_type().is_terminal_event();
        self.pending.push(event.into_payload());
        Ok(terminal)
    }

    fn next_index(&self) -> usize {
        self.validator.len()
    }

    fn run_id(&self) -> &str {
        self.run.run_id()
    }
}
