//! Checking that a sequence of events forms a well-formed run.

use std::collections::HashMap;

use agentwire_types::MessageType;

use crate::error::{RunRule, RunViolation};
use crate::event::{Event, Frame, parse_outbound};
use crate::payload::Payload;

/// What a valid run looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// How many events the run had, terminal included.
    pub events: usize,
    /// The terminal event's type: `agent_completed` or `agent_error`.
    pub terminal: MessageType,
    /// The terminal event's `seq`, when the events were stamped frames.
    pub last_seq: Option<u64>,
    /// Tool calls that never completed (allowed: an `agent_error` may end a run mid-call).
    pub open_tool_calls: usize,
}

struct ToolCall {
    tool_name: String,
    completed: bool,
}

/// Checks, event by event, that a sequence forms one well-formed run:
///
/// - the first event is `agent_started`, and there is no second one;
/// - every event is a run event (no `pong`, `error`, ... in a run) and carries the same `run_id`;
/// - stamped frames carry a `seq`, strictly increasing (gaps are fine: other runs of the same
///   user interleave);
/// - every `tool_completed` follows a `tool_executing` with the same `tool_call_id` and
///   `tool_name`, once; a `tool_call_id` is not reused;
/// - exactly one terminal event (`agent_completed` or `agent_error`), last.
///
/// The first broken rule is reported as a [`RunViolation`] with the event's index and a stable
/// [`RunRule`] code. [`validate_run`], [`validate_run_events`] and [`validate_run_json`] run
/// it over a whole sequence.
///
/// ```
/// use agentwire_events::{Event, RunRule, StreamStamper, validate_run};
/// use serde_json::json;
///
/// let mut stream = StreamStamper::new();
/// let run: Vec<_> = [
///     Event::agent_started("r1", "demo", "hi"),
///     Event::tool_executing("r1", "echo", "c1", Default::default()),
///     Event::tool_completed("r1", "echo", "c1", json!("hi"), 1),
///     Event::agent_completed("r1", json!("hi"), 3),
/// ]
/// .into_iter()
/// .map(|e| stream.stamp(e))
/// .collect();
/// assert_eq!(validate_run(&run).unwrap().events, 4);
///
/// let err = validate_run(&run[..3]).unwrap_err();
/// assert_eq!((err.index(), err.rule()), (3, RunRule::MissingTerminal));
/// ```
#[derive(Default)]
pub struct RunValidator {
    count: usize,
    run_id: Option<String>,
    last_seq: Option<u64>,
    tools: HashMap<String, ToolCall>,
    terminal: Option<MessageType>,
    first_violation: Option<RunViolation>,
}

impl RunValidator {
    /// A validator that has seen nothing yet.
    pub fn new() -> RunValidator {
        RunValidator::default()
    }

    /// Checks the next stamped frame (its `seq` is checked too).
    ///
    /// # Errors
    ///
    /// The rule this frame breaks. The validator keeps going; [`finish`](Self::finish) reports
    /// the first violation.
    pub fn push_frame(&mut self, frame: &Frame) -> Result<(), RunViolation> {
        self.push(frame.event(), Some(frame.seq()))
    }

    /// Checks the next unstamped event (there is no `seq` to check).
    ///
    /// # Errors
    ///
    /// As for [`push_frame`](Self::push_frame).
    pub fn push_event(&mut self, event: &Event) -> Result<(), RunViolation> {
        self.push(event, None)
    }

    /// Records that the next item could not be read (a frame [`parse_outbound`] refused).
    ///
    /// # Errors
    ///
    /// Always: an [`InvalidFrame`](RunRule::InvalidFrame) violation with `message`.
    pub fn push_invalid(&mut self, message: impl Into<String>) -> Result<(), RunViolation> {
        let index = self.count;
        self.count += 1;
        Err(self.violate(index, RunRule::InvalidFrame, message.into()))
    }

    /// How many items were pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Ends the run.
    ///
    /// # Errors
    ///
    /// The first violation seen, else [`EmptyRun`](RunRule::EmptyRun) or
    /// [`MissingTerminal`](RunRule::MissingTerminal) (index: the number of events).
    pub fn finish(mut self) -> Result<RunSummary, RunViolation> {
        if let Some(violation) = self.first_violation.take() {
            return Err(violation);
        }
        let index = self.count;
        match (self.run_id, self.terminal) {
            (Some(run_id), Some(terminal)) => Ok(RunSummary {
                run_id,
                events: self.count,
                terminal,
                last_seq: self.last_seq,
                open_tool_calls: self.tools.values().filter(|t| !t.completed).count(),
            }),
            _ if index == 0 => Err(RunViolation {
                index,
                rule: RunRule::EmptyRun,
                message: "no events".to_owned(),
            }),
            _ => Err(RunViolation {
                index,
                rule: RunRule::MissingTerminal,
                message: "the run ended without agent_completed or agent_error".to_owned(),
            }),
        }
    }

    fn violate(&mut self, index: usize, rule: RunRule, message: String) -> RunViolation {
        let violation = RunViolation {
            index,
            rule,
            message,
        };
        self.first_violation
            .get_or_insert_with(|| violation.clone());
        violation
    }

    /// `seq`: `None` for unstamped events, `Some(frame's seq)` for frames.
    fn push(&mut self, event: &Event, seq: Option<Option<u64>>) -> Result<(), RunViolation> {
        let index = self.count;
        self.count += 1;
        let ty = event.message_type();

        if let Some(terminal) = self.terminal {
            return Err(self.violate(
                index,
                RunRule::EventAfterTerminal,
                format!("{ty} after the terminal {terminal}"),
            ));
        }
        if !event.is_stream_event() {
            return Err(self.violate(
                index,
                RunRule::NotARunEvent,
                format!("{ty} is a connection-scoped frame, not an event of a run"),
            ));
        }
        if ty == MessageType::AgentStarted && index > 0 {
            return Err(self.violate(
                index,
                RunRule::DuplicateAgentStarted,
                "a second agent_started".to_owned(),
            ));
        }
        if index == 0 && ty != MessageType::AgentStarted {
            return Err(self.violate(
                index,
                RunRule::FirstNotAgentStarted,
                format!("the run starts with {ty}, not agent_started"),
            ));
        }

        match (event.run_id(), &self.run_id) {
            (None, _) => {
                return Err(self.violate(
                    index,
                    RunRule::MissingRunId,
                    format!("{ty} has no run_id"),
                ));
            }
            (Some(run_id), None) => self.run_id = Some(run_id.to_owned()),
            (Some(run_id), Some(expected)) if run_id != expected => {
                let message = format!("run_id {run_id:?} differs from the run's {expected:?}");
                return Err(self.violate(index, RunRule::RunIdChanged, message));
            }
            (Some(_), Some(_)) => {}
        }

        if let Some(seq) = seq {
            let Some(seq) = seq else {
                return Err(self.violate(index, RunRule::MissingSeq, format!("{ty} has no seq")));
            };
            if let Some(last) = self.last_seq.filter(|&last| seq <= last) {
                return Err(self.violate(
                    index,
                    RunRule::SeqNotIncreasing,
                    format!("seq {seq} after seq {last}"),
                ));
            }
            self.last_seq = Some(seq);
        }

        match event.payload() {
            Payload::ToolExecuting(p) => {
                if self.tools.contains_key(&p.tool_call_id) {
                    let message = format!("tool_call_id {:?} used twice", p.tool_call_id);
                    return Err(self.violate(index, RunRule::DuplicateToolCallId, message));
                }
                self.tools.insert(
                    p.tool_call_id.clone(),
                    ToolCall {
                        tool_name: p.tool_name.clone(),
                        completed: false,
                    },
                );
            }
            Payload::ToolCompleted(p) => {
                let (rule, message) = match self.tools.get_mut(&p.tool_call_id) {
                    None => (
                        RunRule::ToolCompletedWithoutExecuting,
                        format!(
                            "tool_completed for tool_call_id {:?} without a tool_executing",
                            p.tool_call_id
                        ),
                    ),
                    Some(call) if call.completed => (
                        RunRule::DuplicateToolCompleted,
                        format!("tool_call_id {:?} completed twice", p.tool_call_id),
                    ),
                    Some(call) if call.tool_name != p.tool_name => (
                        RunRule::ToolNameMismatch,
                        format!(
                            "tool_completed names {:?} but its tool_executing named {:?}",
                            p.tool_name, call.tool_name
                        ),
                    ),
                    Some(call) => {
                        call.completed = true;
                        return Ok(());
                    }
                };
                return Err(self.violate(index, rule, message));
            }
            _ => {}
        }

        if ty.is_terminal_event() {
            self.terminal = Some(ty);
        }
        Ok(())
    }
}

/// Validates a whole run of stamped frames (see [`RunValidator`]).
///
/// # Errors
///
/// The first [`RunViolation`].
pub fn validate_run<'f>(
    frames: impl IntoIterator<Item = &'f Frame>,
) -> Result<RunSummary, RunViolation> {
    let mut validator = RunValidator::new();
    for frame in frames {
        let _ = validator.push_frame(frame);
    }
    validator.finish()
}

/// Validates a whole run of unstamped events (no `seq` checks; see [`RunValidator`]).
///
/// # Errors
///
/// The first [`RunViolation`].
pub fn validate_run_events<'e>(
    events: impl IntoIterator<Item = &'e Event>,
) -> Result<RunSummary, RunViolation> {
    let mut validator = RunValidator::new();
    for event in events {
        let _ = validator.push_event(event);
    }
    validator.finish()
}

/// Validates a whole run given as the JSON text of its frames, as received over a socket.
/// A text [`parse_outbound`] refuses is an [`InvalidFrame`](RunRule::InvalidFrame) violation.
///
/// # Errors
///
/// The first [`RunViolation`].
pub fn validate_run_json<'t>(
    texts: impl IntoIterator<Item = &'t str>,
) -> Result<RunSummary, RunViolation> {
    let mut validator = RunValidator::new();
    for text in texts {
        let _ = match parse_outbound(text) {
            Ok(frame) => validator.push_frame(&frame),
            Err(e) => validator.push_invalid(e.message()),
        };
    }
    validator.finish()
}

/// One connection's frames, split by what they belong to: each run's events (for
/// [`RunValidator`]), the user-stream events outside any run (notifications), and the
/// connection-scoped control frames (`connection_established`, `pong`, `error`, ...).
///
/// ```
/// use agentwire_events::{Event, StreamStamper, Transcript};
/// use serde_json::json;
///
/// let mut stream = StreamStamper::new();
/// let mut frames = vec![Event::heartbeat_ack().stamp_control()];
/// for event in [
///     Event::agent_started("r1", "demo", "a"),
///     Event::agent_started("r2", "demo", "b"),
///     Event::agent_completed("r2", json!("b"), 1),
///     Event::agent_thinking("r1", "still thinking"),
///     Event::agent_completed("r1", json!("a"), 2),
/// ] {
///     frames.push(stream.stamp(event));
/// }
/// let transcript = Transcript::split(frames);
/// assert_eq!(transcript.control().len(), 1);
/// assert_eq!(transcript.run_ids().collect::<Vec<_>>(), ["r1", "r2"]);
/// for (run_id, result) in transcript.validate_runs() {
///     assert!(result.is_ok(), "{run_id}");
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    runs: Vec<(String, Vec<Frame>)>,
    notifications: Vec<Frame>,
    control: Vec<Frame>,
}

impl Transcript {
    /// Splits `frames`, in the order received: a frame with a `run_id` goes to its run (runs in
    /// the order their first frame came), a stream event without one is a notification, and a
    /// connection-scoped frame is control, even if it names a run (an `error` answering a
    /// cancel, say): a run's list then holds exactly what [`RunValidator`] judges.
    pub fn split(frames: impl IntoIterator<Item = Frame>) -> Transcript {
        let mut transcript = Transcript::default();
        for frame in frames {
            if !frame.event().is_stream_event() {
                transcript.control.push(frame);
                continue;
            }
            let Some(run_id) = frame.run_id() else {
                transcript.notifications.push(frame);
                continue;
            };
            match transcript.runs.iter_mut().find(|(id, _)| id == run_id) {
                Some((_, run)) => run.push(frame),
                None => transcript.runs.push((run_id.to_owned(), vec![frame])),
            }
        }
        transcript
    }

    /// Parses each text with [`parse_outbound`], then [splits](Self::split) them.
    ///
    /// # Errors
    ///
    /// The index of the first text that is not a valid outbound frame, and why.
    pub fn split_json<'a>(
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Transcript, (usize, crate::OutboundError)> {
        let frames = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| parse_outbound(text).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Transcript::split(frames))
    }

    /// Each run's id and frames, in the order the runs started.
    pub fn runs(&self) -> impl Iterator<Item = (&str, &[Frame])> {
        self.runs
            .iter()
            .map(|(id, run)| (id.as_str(), run.as_slice()))
    }

    /// The runs' ids, in the order the runs started.
    pub fn run_ids(&self) -> impl Iterator<Item = &str> {
        self.runs.iter().map(|(id, _)| id.as_str())
    }

    /// One run's frames.
    pub fn run(&self, run_id: &str) -> Option<&[Frame]> {
        self.runs
            .iter()
            .find(|(id, _)| id == run_id)
            .map(|(_, run)| run.as_slice())
    }

    /// User-stream events outside any run (`system_message`, ...).
    pub fn notifications(&self) -> &[Frame] {
        &self.notifications
    }

    /// Connection-scoped frames: `connection_established`, `pong`, `heartbeat_ack`,
    /// `auth_refreshed`, `error`.
    pub fn control(&self) -> &[Frame] {
        &self.control
    }

    /// Validates every run with [`validate_run`]: its id and the summary, or the first rule it
    /// broke. Within one run the first event that breaks a rule is reported; an event that
    /// breaks two is reported under the first in this order: after the terminal event, not a
    /// run event, a second `agent_started`, not starting with `agent_started`, `run_id`,
    /// `seq`, then the tool-call rules. A run cut off by the end of the transcript is
    /// [`MissingTerminal`](RunRule::MissingTerminal).
    pub fn validate_runs(&self) -> Vec<(&str, Result<RunSummary, RunViolation>)> {
        self.runs
            .iter()
            .map(|(id, run)| (id.as_str(), validate_run(run)))
            .collect()
    }
}
