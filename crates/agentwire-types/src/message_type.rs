//! The canonical message types, their routing class and their direction.

use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::UnknownMessageType;

/// Declares [`MessageType`] once: variant, wire name, class, direction and doc line.
///
/// Everything else (the `ALL` list, `as_str`, `class`, `direction`) is generated from this one
/// list so that no second copy of the names can drift.
macro_rules! message_types {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $name:literal, $class:ident, $dir:ident;
    )+) => {
        /// A canonical agentwire message type.
        ///
        /// Each variant has exactly one wire name (its snake_case [`as_str`](Self::as_str)),
        /// which is what [`Display`](fmt::Display) and [`Serialize`] write. Reading is lenient:
        /// [`FromStr`] and [`Deserialize`] go through [`normalize`](crate::normalize), so any
        /// alias from [`ALIASES`](crate::ALIASES) in any ASCII case is accepted.
        ///
        /// The enum is `#[non_exhaustive]`: new types may be added in minor releases.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(strum::EnumCount)]
        #[non_exhaustive]
        pub enum MessageType {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl MessageType {
            /// Every canonical message type, in declaration order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant),+];

            /// The canonical wire name, e.g. `"start_agent"`.
            pub const fn as_str(self) -> &'static str {
                match self { $(MessageType::$variant => $name,)+ }
            }

            /// The type whose canonical wire name is exactly `name` (no aliases, no case
            /// folding: [`normalize`](crate::normalize) reads names from clients). For text
            /// this crate's users wrote themselves, such as a stored frame's `type`.
            ///
            /// ```
            /// use agentwire_types::MessageType;
            ///
            /// assert_eq!(MessageType::from_canonical("start_agent"), Some(MessageType::StartAgent));
            /// assert_eq!(MessageType::from_canonical("Start_Agent"), None);
            /// ```
            pub fn from_canonical(name: &str) -> Option<MessageType> {
                match name {
                    $($name => Some(MessageType::$variant),)+
                    _ => None,
                }
            }

            /// The position of this type in [`ALL`](Self::ALL): a dense index for per-type
            /// tables such as metrics counters.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The routing class, the coarse category a router dispatches on.
            pub const fn class(self) -> MessageClass {
                match self { $(MessageType::$variant => MessageClass::$class,)+ }
            }

            /// Which way a frame of this type may travel.
            pub const fn direction(self) -> Direction {
                match self { $(MessageType::$variant => Direction::$dir,)+ }
            }

            /// One line saying what the type means (the variant's doc comment).
            pub const fn description(self) -> &'static str {
                match self { $(MessageType::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }
        }
    };
}

message_types! {
    /// Liveness probe from the client; answered by `pong`.
    Ping = "ping", Connection, ClientToServer;
    /// Answer to `ping`, carrying the server time.
    Pong = "pong", Connection, ServerToClient;
    /// Application-level heartbeat from the client; answered by `heartbeat_ack`.
    Heartbeat = "heartbeat", Connection, ClientToServer;
    /// Answer to `heartbeat`.
    HeartbeatAck = "heartbeat_ack", Connection, ServerToClient;
    /// First frame after a successful handshake: connection id, user, limits, stream position.
    ConnectionEstablished = "connection_established", Connection, ServerToClient;
    /// The client presents a fresh token before the current one expires.
    AuthRefresh = "auth_refresh", Connection, ClientToServer;
    /// The server accepted an `auth_refresh`; carries the new expiry.
    AuthRefreshed = "auth_refreshed", Connection, ServerToClient;
    /// A chat turn from the user; starts a run.
    UserMessage = "user_message", UserMessage, ClientToServer;
    /// A notice from the system to the user, outside any run.
    SystemMessage = "system_message", UserMessage, ServerToClient;
    /// A request to start an agent run.
    StartAgent = "start_agent", StartAgent, ClientToServer;
    /// A run has started (first event of every run).
    AgentStarted = "agent_started", StartAgent, ServerToClient;
    /// A request addressed to a named agent (old backend's generic agent request).
    AgentRequest = "agent_request", StartAgent, ClientToServer;
    /// A task handed to an agent (old backend's task dispatch).
    AgentTask = "agent_task", StartAgent, ClientToServer;
    /// The agent is reasoning; carries the reasoning text.
    AgentThinking = "agent_thinking", AgentProgress, ServerToClient;
    /// The agent called a tool.
    ToolExecuting = "tool_executing", AgentProgress, ServerToClient;
    /// A tool call finished, with its result.
    ToolCompleted = "tool_completed", AgentProgress, ServerToClient;
    /// Generic progress report of a run.
    AgentProgress = "agent_progress", AgentProgress, ServerToClient;
    /// A piece of the agent's streamed answer.
    AgentResponseChunk = "agent_response_chunk", AgentProgress, ServerToClient;
    /// The status of an agent changed, or the answer to `agent_status_request`.
    AgentStatusUpdate = "agent_status_update", AgentProgress, ServerToClient;
    /// The server accepted an `agent_task`.
    AgentTaskAck = "agent_task_ack", AgentProgress, ServerToClient;
    /// A run finished successfully (terminal event).
    AgentCompleted = "agent_completed", ResponseComplete, ServerToClient;
    /// A whole agent answer in one frame (old backend's non-streamed response).
    AgentResponse = "agent_response", ResponseComplete, ServerToClient;
    /// The streamed answer is complete.
    AgentResponseComplete = "agent_response_complete", ResponseComplete, ServerToClient;
    /// The client asks to cancel a run.
    CancelAgent = "cancel_agent", AgentControl, ClientToServer;
    /// The client asks for an agent's status.
    AgentStatusRequest = "agent_status_request", AgentControl, ClientToServer;
    /// A protocol-level error reply with a stable code.
    Error = "error", Error, ServerToClient;
    /// A run failed (terminal event).
    AgentError = "agent_error", Error, ServerToClient;
    /// The user is typing.
    UserTyping = "user_typing", Typing, ClientToServer;
    /// The agent is typing.
    AgentTyping = "agent_typing", Typing, ServerToClient;
    /// The user started typing.
    TypingStarted = "typing_started", Typing, ClientToServer;
    /// The user stopped typing.
    TypingStopped = "typing_stopped", Typing, ClientToServer;
    /// A thread's metadata changed.
    ThreadUpdate = "thread_update", Thread, ServerToClient;
    /// A message posted to a thread.
    ThreadMessage = "thread_message", Thread, Both;
    /// A JSON-RPC (MCP) request carried over the socket.
    JsonrpcRequest = "jsonrpc_request", JsonRpc, Both;
    /// A JSON-RPC (MCP) response carried over the socket.
    JsonrpcResponse = "jsonrpc_response", JsonRpc, Both;
    /// A JSON-RPC (MCP) notification carried over the socket.
    JsonrpcNotification = "jsonrpc_notification", JsonRpc, Both;
}

/// The coarse routing class of a [`MessageType`].
///
/// The classes keep the routes of the old backend's incident report: `agent_started` is in
/// [`StartAgent`](Self::StartAgent); `agent_thinking`, `tool_executing` and `tool_completed` are
/// in [`AgentProgress`](Self::AgentProgress); `agent_completed` is in
/// [`ResponseComplete`](Self::ResponseComplete). The five stay distinct types on the wire.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum MessageClass {
    /// Connection-scoped control: ping, heartbeat, handshake result, token refresh.
    Connection,
    /// Chat turns and system notices.
    UserMessage,
    /// Starting a run.
    StartAgent,
    /// Progress within a run.
    AgentProgress,
    /// A run's (or an answer's) completion.
    ResponseComplete,
    /// Controlling a run: cancel, status.
    AgentControl,
    /// Errors, protocol-level or of a run.
    Error,
    /// Typing indicators.
    Typing,
    /// Thread updates and thread messages.
    Thread,
    /// JSON-RPC (MCP) passthrough.
    JsonRpc,
}

/// Which way a frame of a given [`MessageType`] may travel.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// Sent by clients only; a server never emits it.
    ClientToServer,
    /// Sent by the server only; a client sending it gets `unsupported_message_type`.
    ServerToClient,
    /// Either side may send it.
    Both,
}

impl Direction {
    /// Whether a client may send a frame of this direction.
    pub const fn client_may_send(self) -> bool {
        matches!(self, Direction::ClientToServer | Direction::Both)
    }

    /// Whether the server may send a frame of this direction.
    pub const fn server_may_send(self) -> bool {
        matches!(self, Direction::ServerToClient | Direction::Both)
    }
}

impl MessageType {
    /// Whether this type ends a run (`agent_completed` or `agent_error`).
    pub const fn is_terminal_event(self) -> bool {
        matches!(self, MessageType::AgentCompleted | MessageType::AgentError)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for MessageType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for MessageType {
    type Err = UnknownMessageType;

    /// Same as [`normalize`](crate::normalize): canonical names and aliases, any ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::normalize(s)
    }
}

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TypeVisitor;

        impl Visitor<'_> for TypeVisitor {
            type Value = MessageType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an agentwire message type name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageType, E> {
                crate::normalize(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(TypeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::MessageType;

    #[test]
    fn canonical_names_only() {
        for &t in MessageType::ALL {
            assert_eq!(MessageType::from_canonical(t.as_str()), Some(t));
            assert_eq!(
                MessageType::from_canonical(&t.as_str().to_ascii_uppercase()),
                None
            );
        }
        for alias in crate::ALIASES {
            assert_eq!(
                MessageType::from_canonical(alias.name),
                None,
                "{}",
                alias.name
            );
        }
        assert_eq!(MessageType::from_canonical(""), None);
    }
}
