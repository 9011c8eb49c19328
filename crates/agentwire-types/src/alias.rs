//! The legacy alias table: every non-canonical name agentwire reads, and what it reads it as.

use crate::MessageType;

/// One parse-only name and what it resolves to.
///
/// Aliases are only ever read; agentwire always writes the canonical name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name as clients send it, in lower case (matching is ASCII case-insensitive).
    pub name: &'static str,
    /// What the name resolves to.
    pub target: AliasTarget,
    /// Where the name comes from.
    pub source: AliasSource,
}

/// What an [`Alias`] resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AliasTarget {
    /// The name is read as this canonical type.
    Type(MessageType),
    /// The name is known and refused on purpose; the text says why and what to send instead.
    Rejected(&'static str),
}

/// Where an [`Alias`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::Display, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum AliasSource {
    /// The old backend's legacy mapping table.
    LegacyTable,
    /// An alias-only variant of the old backend's enum (`agent_start`, `tool_complete`, ...).
    LegacyEnum,
    /// A name the old backend did not map: it crashed or dropped the message.
    LegacyUnmapped,
    /// An event name the old frontend expected.
    LegacyFrontend,
    /// Added by agentwire for clients that guess a natural spelling.
    Agentwire,
}

const LIFECYCLE: &str = "connection lifecycle is the WebSocket handshake and close frame; \
     there is no message for it";
const FANOUT: &str = "agentwire has no rooms or broadcast messages; services send events to a \
     user's stream through the server's emitter";
const MANAGER_EVENT: &str = "internal event of the old backend's agent manager; agentwire does \
     not emit it (a cancelled run ends with agent_error, code \"cancelled\")";
const TEST_HOOK: &str = "test hooks of the old backend are not part of the protocol; test \
     through the public messages instead";

use AliasSource::*;
use AliasTarget::{Rejected, Type};
use MessageType as T;

macro_rules! aliases {
    ($($name:literal => $target:expr, $source:ident;)+) => {
        /// The alias table: the single source of truth for every non-canonical name.
        ///
        /// Canonical names are not listed here (they are [`MessageType::ALL`]); no alias equals
        /// a canonical name. Matching is ASCII case-insensitive, so `EXECUTE_AGENT` needs no entry
        /// of its own. `docs/message-types.md` shows this table with the reason for each entry.
        pub static ALIASES: &[Alias] = &[
            $(Alias { name: $name, target: $target, source: $source },)+
        ];
    };
}

aliases! {
    // The old backend's legacy table (the entries that are not canonical names).
    "connected" => Rejected(LIFECYCLE), LegacyTable;
    "connect" => Rejected(LIFECYCLE), LegacyTable;
    "disconnect" => Rejected(LIFECYCLE), LegacyTable;
    "user" => Type(T::UserMessage), LegacyTable;
    "user_input" => Type(T::UserMessage), LegacyTable;
    "chat_message" => Type(T::UserMessage), LegacyTable;
    "chat" => Type(T::UserMessage), LegacyTable;
    "message" => Type(T::UserMessage), LegacyTable;
    "agent" => Type(T::AgentRequest), LegacyTable;
    "agent_status" => Type(T::AgentStatusUpdate), LegacyTable;
    "agent_update" => Type(T::AgentStatusUpdate), LegacyTable;
    "agent_failed" => Type(T::AgentError), LegacyTable;
    "agent_fallback" => Type(T::AgentError), LegacyTable;
    "execute_agent" => Type(T::StartAgent), LegacyTable;
    "typing" => Type(T::UserTyping), LegacyTable;
    "thread" => Type(T::ThreadUpdate), LegacyTable;
    "error_message" => Type(T::Error), LegacyTable;
    "system" => Type(T::SystemMessage), LegacyTable;
    "factory_connection_established" => Type(T::ConnectionEstablished), LegacyTable;
    "isolated_connection_established" => Type(T::ConnectionEstablished), LegacyTable;
    "legacy_connection_established" => Type(T::ConnectionEstablished), LegacyTable;
    "broadcast" => Rejected(FANOUT), LegacyTable;
    "broadcast_test" => Rejected(TEST_HOOK), LegacyTable;
    "direct_message" => Rejected(FANOUT), LegacyTable;
    "room_message" => Rejected(FANOUT), LegacyTable;
    "resilience_test" => Rejected(TEST_HOOK), LegacyTable;
    "recovery_test" => Rejected(TEST_HOOK), LegacyTable;
    "legacy_response" => Type(T::AgentResponse), LegacyTable;
    "legacy_heartbeat" => Type(T::Heartbeat), LegacyTable;
    // Alias-only variants of the old enum.
    "agent_start" => Type(T::AgentStarted), LegacyEnum;
    "agent_complete" => Type(T::AgentCompleted), LegacyEnum;
    "tool_execute" => Type(T::ToolExecuting), LegacyEnum;
    "tool_complete" => Type(T::ToolCompleted), LegacyEnum;
    // Names the old backend did not map (they crashed its message loop or were dropped).
    "factory_response" => Type(T::AgentResponse), LegacyUnmapped;
    "isolated_response" => Type(T::AgentResponse), LegacyUnmapped;
    "factory_heartbeat" => Type(T::Heartbeat), LegacyUnmapped;
    "isolated_heartbeat" => Type(T::Heartbeat), LegacyUnmapped;
    "agent_execute" => Type(T::StartAgent), LegacyUnmapped;
    "stop_processing" => Type(T::CancelAgent), LegacyUnmapped;
    // Event names the old frontend expected under other names.
    "thread_updated" => Type(T::ThreadUpdate), LegacyFrontend;
    "tool_started" => Type(T::ToolExecuting), LegacyFrontend;
    "stream_chunk" => Type(T::AgentResponseChunk), LegacyFrontend;
    "partial_result" => Type(T::AgentResponseChunk), LegacyFrontend;
    "final_report" => Type(T::AgentCompleted), LegacyFrontend;
    "agent_cancelled" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_stopped" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_registered" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_unregistered" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_status_changed" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_metrics_updated" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_manager_shutdown" => Rejected(MANAGER_EVENT), LegacyFrontend;
    "agent_log" => Rejected(MANAGER_EVENT), LegacyFrontend;
    // Natural spellings of the cancel request.
    "cancel_run" => Type(T::CancelAgent), Agentwire;
    "stop_agent" => Type(T::CancelAgent), Agentwire;
}
