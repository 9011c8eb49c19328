//! For test harnesses: run a request and check the run against the protocol's rules.

use std::future::Future;

use agentwire_events::{Frame, RunRequest, RunSummary, RunValidator};

use crate::client::Client;
use crate::error::Error;
use crate::run::RunResult;

/// A run whose events passed the [`RunValidator`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedRun {
    /// Every event of the run, in the order received (each parsed strictly).
    pub events: Vec<Frame>,
    /// What the validator saw: run id, event count, terminal type, last `seq`.
    pub summary: RunSummary,
    /// The terminal event.
    pub result: RunResult,
}

impl Client {
    /// Starts `request` with `start_agent`, reads the whole run and checks it with the
    /// [`RunValidator`] of `agentwire-events` (`agent_started` first, one `run_id`, `seq`
    /// increasing, tool calls matched, exactly one terminal event last).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRun`] with the first broken rule, or why the run could not finish
    /// (as [`RunHandle::result`](crate::RunHandle::result)).
    pub fn run_checked<'a>(
        &self,
        request: impl Into<RunRequest<'a>>,
    ) -> impl Future<Output = Result<CheckedRun, Error>> + Send + 'static {
        let started = self.start_agent(request);
        async move {
            let mut run = started.await?;
            let mut validator = RunValidator::new();
            let mut events = Vec::new();
            while let Some(frame) = run.next().await {
                validator.push_frame(&frame).map_err(Error::InvalidRun)?;
                events.push(frame);
            }
            let result = run.result().await?;
            let summary = validator.finish().map_err(Error::InvalidRun)?;
            Ok(CheckedRun {
                events,
                summary,
                result,
            })
        }
    }
}
