//! The `ag-ui` protocol: an AG-UI `RunAgentInput` out, AG-UI events over Server-Sent Events
//! back, mapped onto agentwire's run events.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use agentwire_events::{
    AgentCompleted, AgentError, AgentResponseChunk, AgentStarted, AgentThinking, OtherPayload,
    Payload, RunRequest, ToolCompleted, ToolExecuting,
};
use agentwire_server::{MessageType, Run};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::AgentFailure;
use crate::ndjson::without_quoted;
use crate::relay::Sink;
use crate::sse::SseParser;

/// The content types an `ag-ui` response may have (parameters such as `charset` aside).
pub(crate) const CONTENT_TYPES: &[&str] = &["text/event-stream"];

/// The AG-UI protocol version agentwire speaks, sent as `RunAgentInput.protocolVersion`.
pub(crate) const AG_UI_VERSION: &str = "1.0";

/// The `agent_error` code of a `RUN_ERROR` without a `code`.
pub(crate) const RUN_ERROR_CODE: &str = "run_error";

/// The `agent_name` of `agent_started` when the request named no agent.
pub(crate) const DEFAULT_AGENT_NAME: &str = "default";

/// Every AG-UI event type agentwire knows, and what it relays it as: an agentwire event type,
/// or `folded` when its content goes into another event (assembled text, tool arguments,
/// reasoning) and it has no frame of its own. Any other type is relayed as `agent_progress`
/// and counted as `other`.
pub(crate) const EVENT_TYPES: &[(&str, &str)] = &[
    ("RUN_STARTED", "agent_started"),
    ("RUN_FINISHED", "agent_completed"),
    ("RUN_ERROR", "agent_error"),
    ("STEP_STARTED", "agent_thinking"),
    ("STEP_FINISHED", "agent_progress"),
    ("TEXT_MESSAGE_START", "folded"),
    ("TEXT_MESSAGE_CONTENT", "agent_response_chunk"),
    ("TEXT_MESSAGE_END", "folded"),
    ("TEXT_MESSAGE_CHUNK", "agent_response_chunk"),
    ("TOOL_CALL_START", "folded"),
    ("TOOL_CALL_ARGS", "folded"),
    ("TOOL_CALL_END", "tool_executing"),
    ("TOOL_CALL_CHUNK", "folded"),
    ("TOOL_CALL_RESULT", "tool_completed"),
    ("REASONING_START", "agent_progress"),
    ("REASONING_MESSAGE_START", "folded"),
    ("REASONING_MESSAGE_CONTENT", "folded"),
    ("REASONING_MESSAGE_END", "agent_thinking"),
    ("REASONING_MESSAGE_CHUNK", "folded"),
    ("REASONING_END", "agent_progress"),
    ("REASONING_ENCRYPTED_VALUE", "agent_progress"),
    ("THINKING_START", "agent_progress"),
    ("THINKING_END", "agent_progress"),
    ("THINKING_TEXT_MESSAGE_START", "folded"),
    ("THINKING_TEXT_MESSAGE_CONTENT", "folded"),
    ("THINKING_TEXT_MESSAGE_END", "agent_thinking"),
    ("STATE_SNAPSHOT", "agent_progress"),
    ("STATE_DELTA", "agent_progress"),
    ("MESSAGES_SNAPSHOT", "agent_progress"),
    ("ACTIVITY_SNAPSHOT", "agent_progress"),
    ("ACTIVITY_DELTA", "agent_progress"),
    ("SUBAGENT_STARTED", "agent_progress"),
    ("SUBAGENT_FINISHED", "agent_progress"),
    ("SUBAGENT_ERROR", "agent_progress"),
    ("CUSTOM", "agent_progress"),
    ("RAW", "agent_progress"),
];

/// The metric label of the event types not in [`EVENT_TYPES`].
pub(crate) const OTHER_TYPE: &str = "other";

/// One counter per entry of [`EVENT_TYPES`], then one for the others.
pub(crate) fn counters() -> Box<[AtomicU64]> {
    (0..=EVENT_TYPES.len()).map(|_| AtomicU64::new(0)).collect()
}

// ---------------------------------------------------------------------------------------------
// The request.

/// The request body: an AG-UI `RunAgentInput`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunAgentInput<'a> {
    thread_id: &'a str,
    run_id: &'a str,
    protocol_version: &'static str,
    state: Empty,
    messages: [UserMessage<'a>; 1],
    tools: [Empty; 0],
    context: Vec<ContextEntry>,
    forwarded_props: ForwardedProps<'a>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct UserMessage<'a> {
    id: String,
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ContextEntry {
    description: String,
    value: String,
}

#[derive(Serialize)]
struct ForwardedProps<'a> {
    agentwire: AgentwireProps<'a>,
}

#[derive(Serialize)]
struct AgentwireProps<'a> {
    user_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
}

/// The members of a JSON object, in their order.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The request body of a run: a `RunAgentInput` (see the crate docs for each field).
pub(crate) fn request_body(run: &Run) -> Result<Vec<u8>, serde_json::Error> {
    let request = run.request();
    let context = request
        .context
        .as_ref()
        .and_then(|context| context.parse::<Members>().ok())
        .map(|Members(members)| {
            members
                .into_iter()
                .map(|(description, value)| ContextEntry {
                    description,
                    value: match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let message_id = match run.message_id() {
        Some(id) => id.to_owned(),
        None => format!("{}-user", run.run_id()),
    };
    serde_json::to_vec(&RunAgentInput {
        thread_id: run.thread_id().unwrap_or(run.run_id()),
        run_id: run.run_id(),
        protocol_version: AG_UI_VERSION,
        state: Empty {},
        messages: [UserMessage {
            id: message_id,
            role: "user",
            content: &request.text,
        }],
        tools: [],
        context,
        forwarded_props: ForwardedProps {
            agentwire: AgentwireProps {
                user_id: run.user_id(),
                kind: run.kind().as_str(),
                agent_name: request.agent_name.as_deref(),
                message_id: run.message_id(),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------------
// The response.

/// The fields agentwire reads of each mapped event (camelCase on the wire; others ignored).
mod fields {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Step {
        pub(super) step_name: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Delta {
        pub(super) delta: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Chunk {
        #[serde(default)]
        pub(super) message_id: Option<String>,
        #[serde(default)]
        pub(super) delta: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ToolStart {
        pub(super) tool_call_id: String,
        pub(super) tool_call_name: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ToolArgs {
        pub(super) tool_call_id: String,
        pub(super) delta: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ToolEnd {
        pub(super) tool_call_id: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ToolChunk {
        #[serde(default)]
        pub(super) tool_call_id: Option<String>,
        #[serde(default)]
        pub(super) tool_call_name: Option<String>,
        #[serde(default)]
        pub(super) delta: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct ToolResult {
        pub(super) tool_call_id: String,
        pub(super) content: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct RunFinished {
        #[serde(default)]
        pub(super) result: Option<Value>,
        #[serde(default)]
        pub(super) outcome: Option<Value>,
        #[serde(default)]
        pub(super) usage: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct RunError {
        pub(super) message: String,
        #[serde(default)]
        pub(super) code: Option<String>,
    }
}

/// A tool call of the run.
struct ToolCall {
    name: String,
    /// The arguments so far while the call is open (before its `TOOL_CALL_END`).
    args: Option<String>,
    /// When it was announced with `tool_executing` (or started, while open).
    since: Instant,
    /// Its start order, to end open calls in that order.
    order: u64,
}

/// Reads an `ag-ui` response: the SSE parser, then the mapping.
pub(crate) struct Decoder<'s> {
    sse: SseParser,
    mapper: Mapper<'s>,
}

impl<'s> Decoder<'s> {
    /// A decoder allowing `max` bytes per SSE event and per assembled text, counting event
    /// types in `counts` (from [`counters`]), for the run of `request` that arrived at
    /// `started`.
    pub(crate) fn new(
        max: usize,
        counts: &'s [AtomicU64],
        request: &'s RunRequest<'static>,
        started: Instant,
    ) -> Self {
        Decoder {
            sse: SseParser::new(max),
            mapper: Mapper::new(max, counts, request, started),
        }
    }

    /// Feeds body bytes: `Ok(true)` once the terminal event went out.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        relay: &mut dyn Sink,
    ) -> Result<bool, AgentFailure> {
        let Decoder { sse, mapper } = self;
        let limit = mapper.max;
        sse.feed(chunk, &mut |event| mapper.event(event.data, relay), &|| {
            AgentFailure::LineTooLarge { limit }
        })
    }

    /// The end of the body: `Ok(true)` if the terminal event went out.
    pub(crate) fn finish(&mut self, relay: &mut dyn Sink) -> Result<bool, AgentFailure> {
        let Decoder { sse, mapper } = self;
        let limit = mapper.max;
        sse.finish(&mut |event| mapper.event(event.data, relay), &|| {
            AgentFailure::LineTooLarge { limit }
        })
    }
}

/// The AG-UI to agentwire mapping of one run.
struct Mapper<'s> {
    max: usize,
    counts: &'s [AtomicU64],
    request: &'s RunRequest<'static>,
    started: Instant,
    /// SSE events read (with data), for error messages.
    events: u64,
    /// The assembled answer: every text delta relayed, in order.
    text: String,
    chunk_index: u32,
    steps: u32,
    tools: HashMap<String, ToolCall>,
    tools_started: u64,
    /// The bytes of the arguments of the open tool calls.
    open_args: usize,
    /// The tool call `TOOL_CALL_CHUNK` events go to; it ends at the next other event.
    chunked_tool: Option<String>,
    /// The reasoning message being assembled.
    reasoning: Option<String>,
    /// Whether it is read from `REASONING_MESSAGE_CHUNK` events (it ends at the next other
    /// event), and the message id they gave.
    reasoning_chunked: Option<Option<String>>,
}

impl<'s> Mapper<'s> {
    fn new(
        max: usize,
        counts: &'s [AtomicU64],
        request: &'s RunRequest<'static>,
        started: Instant,
    ) -> Self {
        Mapper {
            max,
            counts,
            request,
            started,
            events: 0,
            text: String::new(),
            chunk_index: 0,
            steps: 0,
            tools: HashMap::new(),
            tools_started: 0,
            open_args: 0,
            chunked_tool: None,
            reasoning: None,
            reasoning_chunked: None,
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> AgentFailure {
        AgentFailure::MalformedEvent {
            event: self.events,
            reason: reason.into(),
        }
    }

    fn broken(relay: &dyn Sink, reason: impl Into<String>) -> AgentFailure {
        AgentFailure::ContractBroken {
            index: relay.next_index(),
            reason: reason.into(),
        }
    }

    fn too_large(&self) -> AgentFailure {
        AgentFailure::LineTooLarge { limit: self.max }
    }

    /// The fields of an event of type `name`.
    fn fields<T: DeserializeOwned>(
        &self,
        name: &str,
        object: Map<String, Value>,
    ) -> Result<T, AgentFailure> {
        serde_json::from_value(Value::Object(object))
            .map_err(|e| self.malformed(format!("{name}: {}", without_quoted(&e.to_string()))))
    }

    /// One SSE event's data: `Ok(true)` once the terminal event went out.
    fn event(&mut self, data: &[u8], relay: &mut dyn Sink) -> Result<bool, AgentFailure> {
        self.events += 1;
        let value: Value = serde_json::from_slice(data).map_err(|e| {
            if e.is_data() {
                self.malformed("the data is not an AG-UI event")
            } else {
                self.malformed(format!(
                    "the data is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            }
        })?;
        let Value::Object(object) = value else {
            return Err(self.malformed("the data is not a JSON object"));
        };
        let Some(Value::String(sent)) = object.get("type") else {
            return Err(self.malformed("the event has no string \"type\""));
        };
        let known = EVENT_TYPES
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case(sent));
        let counter = known.unwrap_or(EVENT_TYPES.len());
        if let Some(count) = self.counts.get(counter) {
            count.fetch_add(1, Relaxed);
        }
        let name = known.map_or("", |i| EVENT_TYPES[i].0);
        // A call or reasoning message streamed by chunks ends at the next other event, unless
        // that event continues or ends it in the START / CONTENT / END form.
        if name != "TOOL_CALL_CHUNK"
            && let Some(id) = self.chunked_tool.take()
        {
            let continued = matches!(
                name,
                "TOOL_CALL_ARGS" | "TOOL_CALL_END" | "TOOL_CALL_RESULT"
            ) && object.get("toolCallId").and_then(Value::as_str)
                == Some(id.as_str());
            if !continued {
                self.end_tool(&id, relay)?;
            }
        }
        if name != "REASONING_MESSAGE_CHUNK" && self.reasoning_chunked.is_some() {
            if matches!(name, "REASONING_MESSAGE_CONTENT" | "REASONING_MESSAGE_END") {
                self.reasoning_chunked = None;
            } else {
                self.end_reasoning(relay)?;
            }
        }
        match name {
            "RUN_STARTED" => {
                let request = self.request;
                let agent_name = request.agent_name.as_deref().unwrap_or(DEFAULT_AGENT_NAME);
                let started = AgentStarted::new(agent_name, request.text.to_string());
                relay.emit(started.into())
            }
            "RUN_FINISHED" => {
                let finished: fields::RunFinished = self.fields(name, object)?;
                self.end_all(relay)?;
                let mut result = Map::new();
                result.insert("text".to_owned(), std::mem::take(&mut self.text).into());
                for (key, value) in [
                    ("result", finished.result),
                    ("outcome", finished.outcome),
                    ("usage", finished.usage),
                ] {
                    if let Some(value) = value {
                        result.insert(key.to_owned(), value);
                    }
                }
                let elapsed = self.started.elapsed().as_millis();
                let completed =
                    AgentCompleted::new(result, u64::try_from(elapsed).unwrap_or(u64::MAX));
                relay.emit(completed.into())
            }
            "RUN_ERROR" => {
                let error: fields::RunError = self.fields(name, object)?;
                self.end_all(relay)?;
                let code = error
                    .code
                    .filter(|code| !code.is_empty())
                    .unwrap_or_else(|| RUN_ERROR_CODE.to_owned());
                relay.emit(AgentError::new(code, error.message, false).into())
            }
            "STEP_STARTED" => {
                let step: fields::Step = self.fields(name, object)?;
                self.steps = self.steps.saturating_add(1);
                let thinking = AgentThinking::new(step.step_name).with_step(self.steps);
                relay.emit(thinking.into())
            }
            "TEXT_MESSAGE_START" | "TEXT_MESSAGE_END" => Ok(false),
            "TEXT_MESSAGE_CONTENT" => {
                let content: fields::Delta = self.fields(name, object)?;
                self.text_delta(content.delta, relay)
            }
            "TEXT_MESSAGE_CHUNK" => {
                let chunk: fields::Chunk = self.fields(name, object)?;
                match chunk.delta {
                    Some(delta) => self.text_delta(delta, relay),
                    None => Ok(false),
                }
            }
            "TOOL_CALL_START" => {
                let start: fields::ToolStart = self.fields(name, object)?;
                self.start_tool(start.tool_call_id, start.tool_call_name, relay)?;
                Ok(false)
            }
            "TOOL_CALL_ARGS" => {
                let args: fields::ToolArgs = self.fields(name, object)?;
                self.tool_args(&args.tool_call_id, &args.delta, relay)?;
                Ok(false)
            }
            "TOOL_CALL_END" => {
                let end: fields::ToolEnd = self.fields(name, object)?;
                self.end_tool(&end.tool_call_id, relay)?;
                Ok(false)
            }
            "TOOL_CALL_CHUNK" => {
                let chunk: fields::ToolChunk = self.fields(name, object)?;
                self.tool_chunk(chunk, relay)?;
                Ok(false)
            }
            "TOOL_CALL_RESULT" => {
                let result: fields::ToolResult = self.fields(name, object)?;
                self.tool_result(result, relay)
            }
            "REASONING_MESSAGE_START" | "THINKING_TEXT_MESSAGE_START" => {
                self.end_reasoning(relay)?;
                self.reasoning = Some(String::new());
                Ok(false)
            }
            "REASONING_MESSAGE_CONTENT" | "THINKING_TEXT_MESSAGE_CONTENT" => {
                let content: fields::Delta = self.fields(name, object)?;
                self.reasoning_delta(&content.delta)?;
                Ok(false)
            }
            "REASONING_MESSAGE_END" | "THINKING_TEXT_MESSAGE_END" => {
                self.end_reasoning(relay)?;
                Ok(false)
            }
            "REASONING_MESSAGE_CHUNK" => {
                let chunk: fields::Chunk = self.fields(name, object)?;
                let same = match (&self.reasoning_chunked, &chunk.message_id) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(current), Some(id)) => current.as_ref().is_none_or(|c| c == id),
                };
                if !same {
                    self.end_reasoning(relay)?;
                    self.reasoning = Some(String::new());
                }
                if chunk.message_id.is_some() || !same {
                    self.reasoning_chunked = Some(chunk.message_id);
                }
                if let Some(delta) = chunk.delta {
                    self.reasoning_delta(&delta)?;
                }
                Ok(false)
            }
            _ => self.carry(sent.clone(), known.is_some(), object, relay),
        }
    }

    /// An event with no agentwire counterpart: relayed as `agent_progress`.
    fn carry(
        &mut self,
        sent: String,
        known: bool,
        object: Map<String, Value>,
        relay: &mut dyn Sink,
    ) -> Result<bool, AgentFailure> {
        tracing::debug!(
            run_id = relay.run_id(),
            ag_ui_type = %sent.chars().take(64).collect::<String>(),
            known,
            "AG-UI event relayed as agent_progress"
        );
        let mut payload = Map::new();
        payload.insert("source".to_owned(), "ag-ui".into());
        payload.insert("ag_ui_type".to_owned(), sent.into());
        payload.insert("event".to_owned(), Value::Object(object));
        let payload = OtherPayload::new(MessageType::AgentProgress, payload)
            .map_err(|e| self.malformed(e.to_string()))?;
        relay.emit(Payload::Other(payload))
    }

    fn text_delta(&mut self, delta: String, relay: &mut dyn Sink) -> Result<bool, AgentFailure> {
        if delta.is_empty() {
            return Ok(false);
        }
        if self.text.len().saturating_add(delta.len()) > self.max {
            return Err(self.too_large());
        }
        self.text.push_str(&delta);
        let chunk = AgentResponseChunk::new(delta, self.chunk_index);
        self.chunk_index = self.chunk_index.saturating_add(1);
        relay.emit(chunk.into())
    }

    fn start_tool(
        &mut self,
        id: String,
        name: String,
        relay: &dyn Sink,
    ) -> Result<(), AgentFailure> {
        if self.tools.contains_key(&id) {
            return Err(Self::broken(relay, "a TOOL_CALL_START reuses a toolCallId"));
        }
        self.tools_started += 1;
        self.tools.insert(
            id,
            ToolCall {
                name,
                args: Some(String::new()),
                since: Instant::now(),
                order: self.tools_started,
            },
        );
        Ok(())
    }

    fn tool_args(&mut self, id: &str, delta: &str, relay: &dyn Sink) -> Result<(), AgentFailure> {
        if self.open_args.saturating_add(delta.len()) > self.max {
            return Err(self.too_large());
        }
        match self.tools.get_mut(id).and_then(|call| call.args.as_mut()) {
            Some(args) => {
                args.push_str(delta);
                self.open_args += delta.len();
                Ok(())
            }
            None => Err(Self::broken(
                relay,
                "tool call arguments for a toolCallId that is not open",
            )),
        }
    }

    /// The end of a tool call's arguments: `tool_executing`.
    fn end_tool(&mut self, id: &str, relay: &mut dyn Sink) -> Result<(), AgentFailure> {
        let Some(call) = self.tools.get_mut(id) else {
            return Err(Self::broken(
                relay,
                "a TOOL_CALL_END for an unknown toolCallId",
            ));
        };
        let Some(args) = call.args.take() else {
            return Err(Self::broken(
                relay,
                "a second TOOL_CALL_END for a toolCallId",
            ));
        };
        self.open_args = self.open_args.saturating_sub(args.len());
        call.since = Instant::now();
        let executing =
            ToolExecuting::new(call.name.clone(), id).with_parameters(parameters(&args));
        relay.emit(executing.into())?;
        Ok(())
    }

    fn tool_chunk(
        &mut self,
        chunk: fields::ToolChunk,
        relay: &mut dyn Sink,
    ) -> Result<(), AgentFailure> {
        let id = match (chunk.tool_call_id, &self.chunked_tool) {
            (Some(id), Some(current)) if id == *current => id,
            (Some(id), _) => {
                if let Some(current) = self.chunked_tool.take() {
                    self.end_tool(&current, relay)?;
                }
                let open = self.tools.get(&id).is_some_and(|call| call.args.is_some());
                if !open {
                    let Some(name) = chunk.tool_call_name else {
                        return Err(Self::broken(
                            relay,
                            "a TOOL_CALL_CHUNK starts a tool call without toolCallName",
                        ));
                    };
                    self.start_tool(id.clone(), name, relay)?;
                }
                self.chunked_tool = Some(id.clone());
                id
            }
            (None, Some(current)) => current.clone(),
            (None, None) => {
                return Err(Self::broken(
                    relay,
                    "a TOOL_CALL_CHUNK without toolCallId and no tool call streaming",
                ));
            }
        };
        if let Some(delta) = chunk.delta {
            self.tool_args(&id, &delta, relay)?;
        }
        Ok(())
    }

    fn tool_result(
        &mut self,
        result: fields::ToolResult,
        relay: &mut dyn Sink,
    ) -> Result<bool, AgentFailure> {
        let open = match self.tools.get(&result.tool_call_id) {
            None => {
                return Err(Self::broken(
                    relay,
                    "a TOOL_CALL_RESULT for a toolCallId that was not started",
                ));
            }
            Some(call) => call.args.is_some(),
        };
        if open {
            self.end_tool(&result.tool_call_id, relay)?;
        }
        let Some(call) = self.tools.remove(&result.tool_call_id) else {
            return Err(Self::broken(
                relay,
                "a TOOL_CALL_RESULT for an unknown toolCallId",
            ));
        };
        let content =
            serde_json::from_str::<Value>(&result.content).unwrap_or(Value::String(result.content));
        let duration = u64::try_from(call.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let completed = ToolCompleted::ok(call.name, result.tool_call_id, content, duration);
        relay.emit(completed.into())
    }

    fn reasoning_delta(&mut self, delta: &str) -> Result<(), AgentFailure> {
        let reasoning = self.reasoning.get_or_insert_with(String::new);
        if reasoning.len().saturating_add(delta.len()) > self.max {
            return Err(AgentFailure::LineTooLarge { limit: self.max });
        }
        reasoning.push_str(delta);
        Ok(())
    }

    /// The end of a reasoning message: `agent_thinking` with its text, if it has any.
    fn end_reasoning(&mut self, relay: &mut dyn Sink) -> Result<(), AgentFailure> {
        self.reasoning_chunked = None;
        if let Some(reasoning) = self.reasoning.take()
            && !reasoning.trim().is_empty()
        {
            relay.emit(AgentThinking::new(reasoning).into())?;
        }
        Ok(())
    }

    /// Before the terminal event: the reasoning and the tool calls still open end.
    fn end_all(&mut self, relay: &mut dyn Sink) -> Result<(), AgentFailure> {
        self.end_reasoning(relay)?;
        self.chunked_tool = None;
        let mut open: Vec<(u64, String)> = self
            .tools
            .iter()
            .filter(|(_, call)| call.args.is_some())
            .map(|(id, call)| (call.order, id.clone()))
            .collect();
        open.sort_unstable();
        for (_, id) in open {
            self.end_tool(&id, relay)?;
        }
        Ok(())
    }
}

/// A tool call's assembled arguments as `tool_executing.parameters`: the JSON object they
/// hold; `{}` when empty; else `{"arguments": <the JSON value, or the text when not JSON>}`.
fn parameters(args: &str) -> Map<String, Value> {
    if args.trim().is_empty() {
        return Map::new();
    }
    let value = match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(map)) => return map,
        Ok(other) => other,
        Err(_) => Value::String(args.to_owned()),
    };
    let mut map = Map::new();
    map.insert("arguments".to_owned(), value);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentwire_events::{Event, RunValidator};
    use serde_json::json;

    /// Checks events with the run validator, as the relay does, and keeps them as
    /// `(type, payload)` JSON.
    #[derive(Default)]
    struct TestSink {
        validator: RunValidator,
        out: Vec<(String, Value)>,
    }

    impl Sink for TestSink {
        fn emit(&mut self, payload: Payload) -> Result<bool, AgentFailure> {
            let index = self.validator.len();
            let event = Event::in_run("r1", payload);
            self.validator
                .push_event(&event)
                .map_err(|v| AgentFailure::ContractBroken {
                    index,
                    reason: v.rule().to_string(),
                })?;
            let terminal = event.message_type().is_terminal_event();
            let frame: Value = serde_json::from_str(&event.stamp_control().to_json()).unwrap();
            self.out.push((
                frame["type"].as_str().unwrap().to_owned(),
                frame["payload"].clone(),
            ));
            Ok(terminal)
        }

        fn next_index(&self) -> usize {
            self.validator.len()
        }

        fn run_id(&self) -> &str {
            "r1"
        }
    }

    /// The AG-UI `events` as an SSE body, through a decoder with `max`: what came out, and
    /// how it ended (`Ok(true)`: at a terminal event).
    fn map_with(
        max: usize,
        events: &[Value],
    ) -> (Vec<(String, Value)>, Result<bool, AgentFailure>) {
        let counts = counters();
        let request = RunRequest::new("weather in Oslo?").with_agent_name("weather");
        let mut decoder = Decoder::new(max, &counts, &request, Instant::now());
        let mut sink = TestSink::default();
        let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        let mut ended = decoder.feed(body.as_bytes(), &mut sink);
        if ended == Ok(false) {
            ended = decoder.finish(&mut sink);
        }
        (sink.out, ended)
    }

    fn map(events: &[Value]) -> (Vec<(String, Value)>, Result<bool, AgentFailure>) {
        map_with(1 << 20, events)
    }

    fn types(out: &[(String, Value)]) -> Vec<&str> {
        out.iter().map(|(t, _)| t.as_str()).collect()
    }

    fn started() -> Value {
        json!({"type": "RUN_STARTED", "threadId": "t", "runId": "services-own"})
    }

    fn finished() -> Value {
        json!({"type": "RUN_FINISHED", "threadId": "t", "runId": "services-own"})
    }

    #[test]
    fn a_whole_run_maps_onto_agentwire_events() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "STEP_STARTED", "stepName": "plan"}),
            json!({"type": "REASONING_START", "messageId": "r"}),
            json!({"type": "REASONING_MESSAGE_START", "messageId": "r", "role": "reasoning"}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": "look it "}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": "up"}),
            json!({"type": "REASONING_MESSAGE_END", "messageId": "r"}),
            json!({"type": "REASONING_END", "messageId": "r"}),
            json!({"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "forecast",
                   "parentMessageId": "m0"}),
            json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "{\"city\": "}),
            json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "\"Oslo\"}"}),
            json!({"type": "TOOL_CALL_END", "toolCallId": "c1"}),
            json!({"type": "TOOL_CALL_RESULT", "messageId": "m1", "toolCallId": "c1",
                   "content": "{\"temp_c\": 4}", "role": "tool"}),
            json!({"type": "STEP_FINISHED", "stepName": "plan"}),
            json!({"type": "STATE_SNAPSHOT", "snapshot": {"city": "Oslo"}}),
            json!({"type": "TEXT_MESSAGE_START", "messageId": "m2", "role": "assistant"}),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": "4 degrees"}),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": " in Oslo"}),
            json!({"type": "TEXT_MESSAGE_END", "messageId": "m2"}),
            json!({"type": "SOMETHING_NEW", "x": 1}),
            json!({"type": "RUN_FINISHED", "threadId": "t", "runId": "services-own",
                   "result": {"ok": true}}),
        ]);
        assert_eq!(ended, Ok(true));
        assert_eq!(
            types(&out),
            [
                "agent_started",
                "agent_thinking",
                "agent_progress",
                "agent_thinking",
                "agent_progress",
                "tool_executing",
                "tool_completed",
                "agent_progress",
                "agent_progress",
                "agent_response_chunk",
                "agent_response_chunk",
                "agent_progress",
                "agent_completed",
            ]
        );
        assert_eq!(
            out[0].1,
            json!({"agent_name": "weather", "user_request": "weather in Oslo?"})
        );
        assert_eq!(out[1].1, json!({"reasoning": "plan", "step": 1}));
        assert_eq!(
            out[2].1,
            json!({"source": "ag-ui", "ag_ui_type": "REASONING_START",
                   "event": {"type": "REASONING_START", "messageId": "r"}})
        );
        assert_eq!(out[3].1, json!({"reasoning": "look it up"}));
        assert_eq!(
            out[5].1,
            json!({"tool_name": "forecast", "tool_call_id": "c1", "parameters": {"city": "Oslo"}})
        );
        assert_eq!(out[6].1["tool_name"], "forecast");
        assert_eq!(out[6].1["tool_call_id"], "c1");
        assert_eq!(out[6].1["result"], json!({"temp_c": 4}));
        assert_eq!(out[6].1["status"], "ok");
        assert!(out[6].1["duration_ms"].is_u64());
        assert_eq!(out[8].1["event"]["snapshot"], json!({"city": "Oslo"}));
        assert_eq!(out[9].1, json!({"delta": "4 degrees", "index": 0}));
        assert_eq!(out[10].1, json!({"delta": " in Oslo", "index": 1}));
        assert_eq!(out[11].1["ag_ui_type"], "SOMETHING_NEW");
        assert_eq!(out[11].1["event"], json!({"type": "SOMETHING_NEW", "x": 1}));
        assert_eq!(
            out[12].1["result"],
            json!({"text": "4 degrees in Oslo", "result": {"ok": true}})
        );
        assert!(out[12].1["duration_ms"].is_u64());
    }

    #[test]
    fn chunk_events_stream_and_end_at_the_next_other_event() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "TEXT_MESSAGE_CHUNK", "messageId": "m", "role": "assistant",
                   "delta": "Hi"}),
            json!({"type": "TEXT_MESSAGE_CHUNK", "delta": " there"}),
            json!({"type": "TEXT_MESSAGE_CHUNK", "messageId": "m"}),
            json!({"type": "TOOL_CALL_CHUNK", "toolCallId": "a", "toolCallName": "f",
                   "delta": "{\"x\""}),
            json!({"type": "TOOL_CALL_CHUNK", "delta": ": 1}"}),
            // Another id: the first call ends.
            json!({"type": "TOOL_CALL_CHUNK", "toolCallId": "b", "toolCallName": "g"}),
            json!({"type": "REASONING_MESSAGE_CHUNK", "messageId": "r", "delta": "hm"}),
            json!({"type": "REASONING_MESSAGE_CHUNK", "delta": "m"}),
            json!({"type": "REASONING_MESSAGE_CHUNK", "messageId": "r2", "delta": "next"}),
            json!({"type": "THINKING_TEXT_MESSAGE_START"}),
            json!({"type": "THINKING_TEXT_MESSAGE_CONTENT", "delta": "old style"}),
            json!({"type": "THINKING_TEXT_MESSAGE_END"}),
            json!({"type": "TOOL_CALL_RESULT", "messageId": "m3", "toolCallId": "a",
                   "content": "plain text"}),
            finished(),
        ]);
        assert_eq!(ended, Ok(true));
        assert_eq!(
            types(&out),
            [
                "agent_started",
                "agent_response_chunk",
                "agent_response_chunk",
                "tool_executing",
                "tool_executing",
                "agent_thinking",
                "agent_thinking",
                "agent_thinking",
                "tool_completed",
                "agent_completed",
            ]
        );
        assert_eq!(out[3].1["parameters"], json!({"x": 1}));
        assert_eq!(out[4].1["tool_call_id"], "b");
        assert_eq!(out[4].1["parameters"], json!({}));
        assert_eq!(out[5].1["reasoning"], "hmm");
        assert_eq!(out[6].1["reasoning"], "next");
        assert_eq!(out[7].1["reasoning"], "old style");
        assert_eq!(out[8].1["result"], "plain text");
        assert_eq!(out[9].1["result"], json!({"text": "Hi there"}));
    }

    #[test]
    fn a_chunked_call_or_reasoning_may_go_on_in_the_start_content_end_form() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "TOOL_CALL_CHUNK", "toolCallId": "a", "toolCallName": "f",
                   "delta": "{\"x\":"}),
            json!({"type": "TOOL_CALL_ARGS", "toolCallId": "a", "delta": " 1}"}),
            json!({"type": "TOOL_CALL_END", "toolCallId": "a"}),
            json!({"type": "REASONING_MESSAGE_CHUNK", "messageId": "r", "delta": "a"}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": "b"}),
            json!({"type": "REASONING_MESSAGE_END", "messageId": "r"}),
            json!({"type": "TOOL_CALL_CHUNK", "toolCallId": "b", "toolCallName": "g"}),
            json!({"type": "TOOL_CALL_RESULT", "messageId": "m", "toolCallId": "b",
                   "content": "1"}),
            finished(),
        ]);
        assert_eq!(ended, Ok(true));
        assert_eq!(
            types(&out),
            [
                "agent_started",
                "tool_executing",
                "agent_thinking",
                "tool_executing",
                "tool_completed",
                "agent_completed"
            ]
        );
        assert_eq!(out[1].1["parameters"], json!({"x": 1}));
        assert_eq!(out[2].1["reasoning"], "ab");
        assert_eq!(out[4].1["result"], 1);
    }

    #[test]
    fn open_tool_calls_and_reasoning_end_before_the_terminal_event() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "TOOL_CALL_START", "toolCallId": "c2", "toolCallName": "later"}),
            json!({"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "first"}),
            json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "not json"}),
            json!({"type": "REASONING_MESSAGE_START", "messageId": "r", "role": "reasoning"}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": "why"}),
            json!({"type": "RUN_FINISHED", "threadId": "t", "runId": "x",
                   "outcome": {"type": "interrupt", "interrupts": [{"id": "i", "reason": "r"}]}}),
        ]);
        assert_eq!(ended, Ok(true));
        assert_eq!(
            types(&out),
            [
                "agent_started",
                "agent_thinking",
                "tool_executing",
                "tool_executing",
                "agent_completed"
            ]
        );
        assert_eq!(out[2].1["tool_call_id"], "c2");
        assert_eq!(out[3].1["parameters"], json!({"arguments": "not json"}));
        assert_eq!(out[4].1["result"]["text"], "");
        assert_eq!(out[4].1["result"]["outcome"]["type"], "interrupt");
    }

    #[test]
    fn run_error_is_agent_error_with_its_code_or_run_error() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "par"}),
            json!({"type": "RUN_ERROR", "message": "no quota", "code": "quota"}),
        ]);
        assert_eq!(ended, Ok(true));
        assert_eq!(
            types(&out),
            ["agent_started", "agent_response_chunk", "agent_error"]
        );
        assert_eq!(
            out[2].1,
            json!({"code": "quota", "message": "no quota", "recoverable": false})
        );
        let (out, _) = map(&[started(), json!({"type": "RUN_ERROR", "message": "boom"})]);
        assert_eq!(out[1].1["code"], RUN_ERROR_CODE);
    }

    #[test]
    fn the_stream_may_end_without_a_terminal_event() {
        let (out, ended) = map(&[
            started(),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "x"}),
        ]);
        assert_eq!(ended, Ok(false), "the caller reports agent_no_terminal");
        assert_eq!(out.len(), 2);
    }

    fn failure(events: &[Value]) -> AgentFailure {
        map(events).1.unwrap_err()
    }

    #[test]
    fn malformed_events_name_the_problem_without_payload_text() {
        let mut decoder_out = Vec::new();
        for data in ["not json", "[1]", "{\"x\": 1}", "{\"type\": 7}"] {
            let counts = counters();
            let request = RunRequest::new("hi");
            let mut decoder = Decoder::new(1024, &counts, &request, Instant::now());
            let mut sink = TestSink::default();
            let body = format!("data: {data}\n\n");
            let err = decoder.feed(body.as_bytes(), &mut sink).unwrap_err();
            assert_eq!(err.code(), "agent_malformed_line", "{data}");
            decoder_out.push(err.to_string());
        }
        assert!(decoder_out[0].contains("not JSON"), "{decoder_out:?}");
        let err = failure(&[
            started(),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": 7}),
        ]);
        assert!(
            matches!(err, AgentFailure::MalformedEvent { event: 2, .. }),
            "{err:?}"
        );
        let err = failure(&[
            started(),
            json!({"type": "TOOL_CALL_RESULT", "toolCallId": "secret text", "content": 1}),
        ]);
        assert_eq!(err.code(), "agent_malformed_line");
        assert!(!err.to_string().contains("secret text"), "{err}");
        let err = failure(&[started(), json!({"type": "STEP_STARTED"})]);
        assert!(err.to_string().contains("stepName"), "{err}");
    }

    #[test]
    fn broken_sequences_are_contract_failures() {
        for events in [
            // Not started first (the run validator).
            vec![
                json!({"type": "STATE_SNAPSHOT", "snapshot": {}}),
                finished(),
            ],
            vec![started(), started()],
            vec![
                started(),
                json!({"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": "{}"}),
            ],
            vec![
                started(),
                json!({"type": "TOOL_CALL_END", "toolCallId": "c"}),
            ],
            vec![
                started(),
                json!({"type": "TOOL_CALL_RESULT", "messageId": "m", "toolCallId": "c",
                       "content": "x"}),
            ],
            vec![
                started(),
                json!({"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "t"}),
                json!({"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "t"}),
            ],
            vec![started(), json!({"type": "TOOL_CALL_CHUNK", "delta": "{}"})],
            vec![
                started(),
                json!({"type": "TOOL_CALL_CHUNK", "toolCallId": "c"}),
            ],
        ] {
            assert_eq!(
                failure(&events).code(),
                "agent_contract_broken",
                "{events:?}"
            );
        }
    }

    #[test]
    fn assembled_text_arguments_and_reasoning_are_bounded() {
        let big = "x".repeat(60);
        for events in [
            vec![
                started(),
                json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": big}),
                json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": big}),
            ],
            vec![
                started(),
                json!({"type": "TOOL_CALL_START", "toolCallId": "a", "toolCallName": "t"}),
                json!({"type": "TOOL_CALL_START", "toolCallId": "b", "toolCallName": "t"}),
                json!({"type": "TOOL_CALL_ARGS", "toolCallId": "a", "delta": big}),
                json!({"type": "TOOL_CALL_ARGS", "toolCallId": "b", "delta": big}),
            ],
            vec![
                started(),
                json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": big}),
                json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": big}),
            ],
        ] {
            let (_, ended) = map_with(100, &events);
            assert_eq!(ended, Err(AgentFailure::LineTooLarge { limit: 100 }));
        }
        // One event over the limit.
        let (_, ended) = map_with(50, &[started(), json!({"type": "CUSTOM", "name": big})]);
        assert_eq!(ended, Err(AgentFailure::LineTooLarge { limit: 50 }));
    }

    #[test]
    fn event_types_are_counted_known_or_not() {
        let counts = counters();
        let request = RunRequest::new("hi");
        let mut decoder = Decoder::new(1024, &counts, &request, Instant::now());
        let mut sink = TestSink::default();
        let body = "data: {\"type\":\"RUN_STARTED\"}\n\n\
                    data: {\"type\":\"state_snapshot\",\"snapshot\":1}\n\n\
                    data: {\"type\":\"NEW_THING\"}\n\n\
                    data: {\"type\":\"NEWER_THING\"}\n\n";
        assert_eq!(decoder.feed(body.as_bytes(), &mut sink), Ok(false));
        let count = |name: &str| {
            let i = EVENT_TYPES.iter().position(|(n, _)| *n == name).unwrap();
            counts[i].load(Relaxed)
        };
        assert_eq!(count("RUN_STARTED"), 1);
        assert_eq!(count("STATE_SNAPSHOT"), 1);
        assert_eq!(counts[EVENT_TYPES.len()].load(Relaxed), 2);
        // The type is relayed as sent.
        assert_eq!(sink.out[1].1["ag_ui_type"], "state_snapshot");
    }

    #[test]
    fn tool_arguments_become_parameters() {
        assert_eq!(parameters(""), Map::new());
        assert_eq!(parameters("  "), Map::new());
        assert_eq!(
            Value::Object(parameters(r#"{"city": "Oslo", "days": 2}"#)),
            json!({"city": "Oslo", "days": 2})
        );
        assert_eq!(
            Value::Object(parameters("[1, 2]")),
            json!({"arguments": [1, 2]})
        );
        assert_eq!(
            Value::Object(parameters("{\"city\": \"Os")),
            json!({"arguments": "{\"city\": \"Os"})
        );
    }

    #[test]
    fn every_type_is_listed_once_with_an_outcome() {
        let mut names: Vec<&str> = EVENT_TYPES.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
        for (name, relayed_as) in EVENT_TYPES {
            assert!(
                *relayed_as == "folded"
                    || agentwire_types::normalize(relayed_as)
                        .is_ok_and(|t| t.as_str() == *relayed_as),
                "{name} -> {relayed_as}"
            );
        }
        assert_eq!(counters().len(), EVENT_TYPES.len() + 1);
    }

    const AGENTS_MD: &str = include_str!("../../../docs/agents.md");

    /// The text of `docs/agents.md` from `heading` to the next heading of its level.
    fn doc_section(heading: &str) -> &'static str {
        let start = AGENTS_MD.find(heading).expect(heading);
        let level = heading.split(' ').next().unwrap();
        let rest = &AGENTS_MD[start + heading.len()..];
        let end = rest.find(&format!("\n{level} ")).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The code blocks of a docs section.
    fn code_blocks(section: &str) -> Vec<&str> {
        section
            .split("```")
            .skip(1)
            .step_by(2)
            .map(|block| block.split_once('\n').map_or("", |(_, body)| body))
            .collect()
    }

    #[test]
    fn the_docs_mapping_table_has_every_type_as_the_code_maps_it() {
        let table = doc_section("### The AG-UI mapping");
        for (name, relayed_as) in EVENT_TYPES {
            let cell = format!("`{name}`");
            let (row, cells) = table
                .lines()
                .filter(|line| line.starts_with('|'))
                .map(|line| (line, line.split('|').map(str::trim).collect::<Vec<_>>()))
                .find(|(_, cells)| cells[1].split(", ").any(|c| c == cell))
                .unwrap_or_else(|| panic!("{name} has no row in docs/agents.md's mapping table"));
            let expected = if *relayed_as == "folded" {
                "none: folded".to_owned()
            } else {
                format!("`{relayed_as}`")
            };
            assert_eq!(cells[2], expected, "{name}: {row}");
        }
        assert!(table.contains("| any other type | `agent_progress` |"));
    }

    #[test]
    fn the_docs_example_exchange_is_what_the_mapping_does() {
        let blocks = code_blocks(doc_section("## The response (`ag-ui`)"));
        let (sse, frames) = (blocks[0], blocks[1]);
        let counts = counters();
        let request = RunRequest::new("weather in Oslo?").with_agent_name("weather");
        let mut decoder = Decoder::new(1 << 20, &counts, &request, Instant::now());
        let mut sink = TestSink::default();
        assert_eq!(decoder.feed(sse.as_bytes(), &mut sink), Ok(true));
        let documented: Vec<(String, Value)> = frames
            .lines()
            .map(|line| {
                let mut frame: Value = serde_json::from_str(line).expect(line);
                if let Some(duration) = frame["payload"].get_mut("duration_ms") {
                    *duration = json!(0);
                }
                (
                    frame["type"].as_str().unwrap().to_owned(),
                    frame["payload"].take(),
                )
            })
            .collect();
        let produced: Vec<(String, Value)> = sink
            .out
            .into_iter()
            .map(|(kind, mut payload)| {
                if let Some(duration) = payload.get_mut("duration_ms") {
                    *duration = json!(0);
                }
                (kind, payload)
            })
            .collect();
        assert_eq!(produced, documented);
    }

    #[test]
    fn context_members_keep_their_order() {
        let Members(members) =
            serde_json::from_str(r#"{"z": "last?", "a": {"b": 1}, "m": 2}"#).unwrap();
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }
}
