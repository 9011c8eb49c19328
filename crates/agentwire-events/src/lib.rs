//! The frames of the agentwire WebSocket protocol, typed.
//!
//! Everything that travels on an agentwire connection is a JSON text frame. This crate is the
//! typed form of that contract (`docs/protocol.md`), shared by the server, by backend services
//! that emit agent events, and by test harnesses:
//!
//! - **Outbound** (server to client): one envelope for every frame, [`Frame`], whose JSON is
//!   `{"type", "event_id", "timestamp", "run_id"?, "thread_id"?, "seq"?, "reply_to"?,
//!   "payload"}` with optional fields omitted, never `null`. The [`Payload`] variant decides the
//!   `type`; each payload struct has its required fields as plain fields. A service builds an
//!   [`Event`] in one expression; the server stamps it ([`StreamStamper`] gives stream events
//!   their `seq`, a fresh `event_id` and the current time) and [`encode`](Frame::encode)s it
//!   once into an [`EncodedFrame`] that every connection shares.
//! - **Inbound** (client to server): [`parse_inbound`] turns a text frame into an [`Inbound`]
//!   with a typed [`Request`], normalizing the `type` through [`agentwire_types::normalize`]
//!   and accepting every legacy spelling of the contract, or into an [`InboundError`] with a
//!   stable [`ErrorCode`] and everything the server needs for its `error` reply.
//! - **Checking**: [`parse_outbound`] reads a server's frame back strictly, and
//!   [`RunValidator`] says whether a sequence of events forms a well-formed run, or which event
//!   broke which [`RunRule`].
//! - **Schema**: [`schema_files`] is the JSON Schema of every frame, committed as
//!   `docs/schema/*.json`.
//! - **Ids**: [`IdGenerator`] makes every id of a process in one form,
//!   `{kind}_{random}_{counter}`: event ids and stream epochs here, a server's connection and
//!   run ids too.
//!
//! The payload structs and request bodies mirror wire messages that may gain fields, so they
//! are `#[non_exhaustive]`: read their fields directly, build them with their constructors
//! (`ConnectionEstablished::new`, `ToolCompleted::ok`, `ErrorReply::new(..).with_field(..)`,
//! ...).
//!
//! The crate does no I/O and needs no async runtime.
//!
//! ```
//! use agentwire_events::{
//!     parse_inbound, validate_run, Event, ErrorCode, Request, StreamStamper, ToolExecuting,
//! };
//! use serde_json::json;
//!
//! // A client asks for a run, with a legacy type name and `data` instead of `payload`.
//! let text = r#"{"type": "execute_agent", "message_id": "m1", "data": {"message": "weather?"}}"#;
//! let inbound = parse_inbound(text).unwrap();
//! let Request::StartAgent(run) = inbound.request() else { unreachable!() };
//! assert_eq!(run.text, "weather?");
//!
//! // The run's events, stamped on the user's stream and encoded once each.
//! let mut stream = StreamStamper::new();
//! let frames: Vec<_> = [
//!     Event::agent_started("run_1", "demo", "weather?").with_reply_to("m1"),
//!     Event::in_run("run_1", ToolExecuting::new("forecast", "call_1").with_parameter("city", "Oslo")),
//!     Event::tool_completed("run_1", "forecast", "call_1", json!({"temp_c": 4}), 18),
//!     Event::agent_completed("run_1", json!("4 degrees"), 25),
//! ]
//! .into_iter()
//! .map(|event| stream.stamp(event))
//! .collect();
//! let encoded = frames[2].encode();
//! assert!(encoded.as_str().starts_with(r#"{"type":"tool_completed","event_id":"evt_"#));
//! assert_eq!(encoded.seq(), Some(3));
//! assert!(validate_run(&frames).is_ok());
//!
//! // Bad input is an error with a stable code, never a panic.
//! let err = parse_inbound(r#"{"type": "agent_started", "message_id": "m2"}"#).unwrap_err();
//! assert_eq!(err.code(), ErrorCode::UnsupportedMessageType);
//! let reply = err.to_event().stamp_control();
//! assert_eq!(reply.reply_to(), Some("m2"));
//! ```

mod error;
mod event;
mod id;
mod inbound;
mod payload;
mod raw;
mod schema;
mod stamp;
mod timestamp;
mod validate;
mod write;

pub use error::{
    ErrorCode, InboundError, InboundErrorKind, OtherTypeError, OutboundError, RunRule,
    RunViolation, TimestampError,
};
pub use event::{Event, Frame, parse_outbound};
pub use id::{IdGenerator, next_event_id};
pub use inbound::{
    AuthRefresh, CancelAgent, Inbound, OtherRequest, RawJson, Request, RunRequest, Secret,
    parse_inbound,
};
pub use payload::{
    AgentCompleted, AgentError, AgentResponseChunk, AgentStarted, AgentThinking, AuthRefreshed,
    ConnectionEstablished, ErrorReply, HeartbeatAck, OtherPayload, PROTOCOL_VERSION, Payload, Pong,
    ResumeOutcome, StreamPosition, ToolCompleted, ToolExecuting, ToolStatus,
};
pub use schema::{inbound_schema, outbound_schema, schema_files};
pub use stamp::{EncodedFrame, Stamp, StreamStamper};
pub use timestamp::Timestamp;
pub use validate::{
    RunSummary, RunValidator, Transcript, validate_run, validate_run_events, validate_run_json,
};
