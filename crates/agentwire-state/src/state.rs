//! The connection state machine and its lenient reader.

use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{IllegalTransition, UnknownConnectionState};

/// Where a WebSocket connection is in its life.
///
/// The legal transitions:
///
/// | from | to | when |
/// |---|---|---|
/// | `connecting` | `open` | the upgrade completed (authentication failures included: the server answers the handshake, then closes 4401) |
/// | `connecting` | `failed` | the handshake was refused with an HTTP response (400, 403, ...) or broke off |
/// | `open` | `closing` | a close frame was sent or received; waiting for the other side's |
/// | `open` | `closed` | the close handshake finished in one step (a peer's close was answered and the stream ended) |
/// | `open` | `failed` | the transport broke without a close handshake (reset, I/O error, pong timeout) |
/// | `closing` | `closed` | the close handshake finished |
/// | `closing` | `failed` | the other side never finished the close handshake, or the transport broke |
///
/// `closed` and `failed` are terminal. Every other move, including staying in the same state, is
/// an [`IllegalTransition`] (an error value with code `illegal_state_transition`, never a panic).
///
/// # Text form
///
/// [`Display`](fmt::Display) and [`Serialize`] write the canonical lowercase name
/// ([`as_str`](Self::as_str)): `connecting`, `open`, `closing`, `closed`, `failed`.
///
/// Reading ([`FromStr`], [`Deserialize`]) is lenient so that log tooling can read the old
/// system's records. Names are matched in any ASCII case, an optional `WebSocketState.` prefix
/// (Python's `str()` of a Starlette state) is ignored, and JSON integers are read as Starlette's
/// `WebSocketState` values:
///
/// | read | as | where it comes from |
/// |---|---|---|
/// | `connecting`, `CONNECTING`, `0` | `connecting` | canonical; Starlette `CONNECTING = 0` |
/// | `open` | `open` | canonical; browser `readyState` name |
/// | `connected`, `CONNECTED`, `1` | `open` | old backend; Starlette `CONNECTED = 1` |
/// | `active` | `open` | old backend |
/// | `closing`, `disconnecting` | `closing` | canonical; old backend |
/// | `closed` | `closed` | canonical; browser `readyState` name |
/// | `disconnected`, `DISCONNECTED`, `2` | `closed` | old backend; Starlette `DISCONNECTED = 2` |
/// | `failed`, `error` | `failed` | canonical; old backend |
/// | `RESPONSE`, `3` | `failed` | Starlette `RESPONSE = 3`: the server answered the upgrade with an HTTP response instead of accepting it, which agentwire records as a refused handshake |
///
/// The integers are Starlette's, not the browser's `readyState` (where 2 is `CLOSING` and 3 is
/// `CLOSED`): the records being read came from the Python backend. Any other value is an error
/// ([`UnknownConnectionState`], code `unknown_connection_state`); no input panics.
///
/// ```
/// use agentwire_state::ConnectionState;
///
/// let state: ConnectionState = serde_json::from_str("\"DISCONNECTED\"").unwrap();
/// assert_eq!(state, ConnectionState::Closed);
/// assert_eq!(serde_json::to_string(&state).unwrap(), "\"closed\"");
/// assert_eq!(serde_json::from_str::<ConnectionState>("1").unwrap(), ConnectionState::Open);
///
/// let open = ConnectionState::Connecting.transition(ConnectionState::Open).unwrap();
/// let err = open.transition(ConnectionState::Connecting).unwrap_err();
/// assert_eq!(err.code(), "illegal_state_transition");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The upgrade request arrived; the handshake (and authentication) is in progress.
    Connecting,
    /// The handshake completed; frames flow both ways.
    Open,
    /// A close frame was sent or received; the close handshake is in progress.
    Closing,
    /// The connection ended with a completed close handshake.
    Closed,
    /// The connection ended without a close handshake, or the handshake was refused.
    Failed,
}

/// A legacy or canonical spelling and the state it reads as (matched in any ASCII case).
const NAMES: &[(&str, ConnectionState)] = &[
    ("connecting", ConnectionState::Connecting),
    ("open", ConnectionState::Open),
    ("closing", ConnectionState::Closing),
    ("closed", ConnectionState::Closed),
    ("failed", ConnectionState::Failed),
    ("connected", ConnectionState::Open),
    ("active", ConnectionState::Open),
    ("disconnecting", ConnectionState::Closing),
    ("disconnected", ConnectionState::Closed),
    ("error", ConnectionState::Failed),
    ("response", ConnectionState::Failed),
];

/// The prefix Python's `str(WebSocketState.CONNECTED)` writes.
const PYTHON_ENUM_PREFIX: &str = "websocketstate.";

impl ConnectionState {
    /// Every state, in lifecycle order.
    pub const ALL: &'static [ConnectionState] = &[
        ConnectionState::Connecting,
        ConnectionState::Open,
        ConnectionState::Closing,
        ConnectionState::Closed,
        ConnectionState::Failed,
    ];

    /// Every spelling the reader accepts other than the canonical names, with the state it
    /// reads as. Matched in any ASCII case; the table in the type's docs says where each comes
    /// from.
    pub const LEGACY_NAMES: &'static [(&'static str, ConnectionState)] = &[
        ("connected", ConnectionState::Open),
        ("active", ConnectionState::Open),
        ("disconnecting", ConnectionState::Closing),
        ("disconnected", ConnectionState::Closed),
        ("error", ConnectionState::Failed),
        ("CONNECTING", ConnectionState::Connecting),
        ("CONNECTED", ConnectionState::Open),
        ("DISCONNECTED", ConnectionState::Closed),
        ("RESPONSE", ConnectionState::Failed),
    ];

    /// The canonical lowercase name, e.g. `"open"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Open => "open",
            ConnectionState::Closing => "closing",
            ConnectionState::Closed => "closed",
            ConnectionState::Failed => "failed",
        }
    }

    /// One line saying what the state means.
    pub const fn description(self) -> &'static str {
        match self {
            ConnectionState::Connecting => {
                "the upgrade request arrived; handshake and authentication in progress"
            }
            ConnectionState::Open => "the handshake completed; frames flow both ways",
            ConnectionState::Closing => "a close frame was sent or received; closing",
            ConnectionState::Closed => "ended with a completed close handshake",
            ConnectionState::Failed => {
                "ended without a close handshake, or the handshake was refused"
            }
        }
    }

    /// Whether the connection has ended (`closed` or `failed`): no transition leaves it.
    pub const fn is_terminal(self) -> bool {
        matches!(self, ConnectionState::Closed | ConnectionState::Failed)
    }

    /// Whether frames may still be sent (only in `open`).
    pub const fn can_send(self) -> bool {
        matches!(self, ConnectionState::Open)
    }

    /// Whether moving from `self` to `to` is legal (see the table in the type's docs).
    pub const fn can_transition_to(self, to: ConnectionState) -> bool {
        use ConnectionState::{Closed, Closing, Connecting, Failed, Open};
        matches!(
            (self, to),
            (Connecting, Open | Failed)
                | (Open, Closing | Closed | Failed)
                | (Closing, Closed | Failed)
        )
    }

    /// Moves to `to`, or says why that is not a legal transition.
    pub const fn transition(
        self,
        to: ConnectionState,
    ) -> Result<ConnectionState, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition::new(self, to))
        }
    }

    /// Reads a Starlette `WebSocketState` integer: 0 `connecting`, 1 `open`, 2 `closed`,
    /// 3 `failed`.
    pub const fn from_starlette(value: u64) -> Option<ConnectionState> {
        match value {
            0 => Some(ConnectionState::Connecting),
            1 => Some(ConnectionState::Open),
            2 => Some(ConnectionState::Closed),
            3 => Some(ConnectionState::Failed),
            _ => None,
        }
    }

    /// Reads a canonical or legacy name, in any ASCII case, with an optional `WebSocketState.`
    /// prefix. Allocates nothing; `None` when the name is not known.
    pub fn from_name(name: &str) -> Option<ConnectionState> {
        let name = match name.get(..PYTHON_ENUM_PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(PYTHON_ENUM_PREFIX) => {
                &name[PYTHON_ENUM_PREFIX.len()..]
            }
            _ => name,
        };
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, state)| state)
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionState {
    type Err = UnknownConnectionState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionState::from_name(s).ok_or_else(|| UnknownConnectionState::new(s))
    }
}

impl Serialize for ConnectionState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConnectionState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StateVisitor)
    }
}

struct StateVisitor;

impl Visitor<'_> for StateVisitor {
    type Value = ConnectionState;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a connection state name (connecting, open, closing, closed, failed, or a legacy \
             spelling) or a Starlette WebSocketState integer 0..=3",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ConnectionState, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConnectionState, E> {
        ConnectionState::from_starlette(v)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConnectionState, E> {
        u64::try_from(v)
            .ok()
            .and_then(ConnectionState::from_starlette)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}
