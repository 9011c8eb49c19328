//! Message types of the agentwire WebSocket protocol.
//!
//! Every frame on an agentwire connection has a `type`. This crate is the one place that says
//! which types exist ([`MessageType`]), which other names clients may send for them (the
//! [`ALIASES`] table, covering every name the system agentwire replaced accepted or crashed on),
//! and how a received name becomes a type ([`normalize`]: ASCII case-insensitive, no allocation,
//! no panic).
//!
//! Only canonical names are ever written; aliases are read-only.
//!
//! ```
//! use agentwire_types::{normalize, Direction, MessageClass, MessageType};
//!
//! // Old clients' spellings all reach the same type.
//! for name in ["start_agent", "execute_agent", "EXECUTE_AGENT", "agent_execute"] {
//!     assert_eq!(normalize(name), Ok(MessageType::StartAgent));
//! }
//!
//! // The five agent events stay distinct on the wire, each with its routing class.
//! assert_eq!(MessageType::AgentStarted.class(), MessageClass::StartAgent);
//! assert_eq!(MessageType::ToolCompleted.class(), MessageClass::AgentProgress);
//! assert_eq!(MessageType::AgentCompleted.class(), MessageClass::ResponseComplete);
//! assert_eq!(MessageType::ToolCompleted.to_string(), "tool_completed");
//!
//! // Clients may not send server events.
//! assert!(!MessageType::AgentStarted.direction().client_may_send());
//! assert_eq!(MessageType::Ping.direction(), Direction::ClientToServer);
//!
//! // Unknown names are an error with a stable code, never a panic.
//! let err = normalize("factory_stuff").unwrap_err();
//! assert_eq!(err.code(), "unknown_message_type");
//! assert_eq!(err.received(), "factory_stuff");
//! ```
//!
//! The full table, with the reason for every alias and rejection, is `docs/message-types.md`.
//!
//! The [`json`] module is agentwire's one JSON string and number writer, shared by the frame
//! writer of agentwire-events and the log records of agentwire-state, and public for code that
//! writes JSON next to them.

mod alias;
mod error;
pub mod json;
mod message_type;
mod normalize;

pub use alias::{ALIASES, Alias, AliasSource, AliasTarget};
pub use error::{MAX_RECEIVED_BYTES, UnknownMessageType};
pub use message_type::{Direction, MessageClass, MessageType};
pub use normalize::normalize;
