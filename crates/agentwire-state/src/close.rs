//! WebSocket close codes and close information.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;
use std::borrow::Cow;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::UnknownCloseCode;
use crate::redact;
use crate::severity::Severity;

/// The most bytes a close reason may have: a close frame's payload is at most 125 bytes, two of
/// which are the code (RFC 6455, section 5.5).
pub const MAX_REASON_BYTES: usize = 123;

/// Cuts a close reason to at most [`MAX_REASON_BYTES`] bytes on a character boundary.
///
/// The result is always a prefix of `reason` and valid UTF-8; a reason that fits is returned
/// unchanged.
///
/// ```
/// use agentwire_state::{truncate_reason, MAX_REASON_BYTES};
///
/// let long = "é".repeat(100); // 200 bytes
/// let cut = truncate_reason(&long);
/// assert_eq!(cut.len(), 122); // 61 two-byte characters; the 62nd would not fit
/// assert!(cut.len() <= MAX_REASON_BYTES && long.starts_with(cut));
/// ```
pub fn truncate_reason(reason: &str) -> &str {
    redact::truncate_str(reason, MAX_REASON_BYTES)
}

/// Declares [`CloseCode`] once: variant, number, name, severity and doc line.
macro_rules! close_codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $code:literal, $name:literal, $severity:ident;
    )+) => {
        /// A WebSocket close code: the registered codes 1000-1015 and agentwire's own.
        ///
        /// Every code has a stable snake_case [`name`](Self::name), a one-line
        /// [`description`](Self::description) and a log [`severity`](Self::severity). Codes
        /// without a variant are kept in [`Other`](Self::Other), never lost:
        /// [`from_u16`](Self::from_u16) accepts every `u16`, and `as_u16` gives it back.
        ///
        /// Equality, ordering and hashing go by the number, so `CloseCode::Other(1000)` equals
        /// [`CloseCode::NormalClosure`].
        ///
        /// JSON form: the number (`4401`). Reading also accepts the name (`"auth_failed"`) or
        /// the number as a string (`"4401"`).
        ///
        /// | code | name | severity | meaning |
        /// |---|---|---|---|
        $(
            #[doc = concat!("| ", stringify!($code), " | `", $name, "` | ",
                stringify!($severity), " | ", $($doc),+, " |")]
        )+
        /// | other 1016-2999 | `unassigned` | Notice | reserved for future WebSocket use |
        /// | other 3000-3999 | `iana_registered` | Notice | registered with IANA for libraries and frameworks |
        /// | other 4000-4999 | `private_use` | Notice | private use by applications |
        /// | other 0-999, 5000+ | `invalid` | Notice | not a valid close code |
        #[derive(Clone, Copy, Debug)]
        #[non_exhaustive]
        pub enum CloseCode {
            $( $(#[doc = $doc])+ $variant, )+
            /// Any code without a variant of its own, kept as received.
            Other(u16),
        }

        impl CloseCode {
            /// Every code that has a variant, in numeric order.
            pub const KNOWN: &'static [CloseCode] = &[$(CloseCode::$variant),+];

            /// The code for a number; never fails (unknown numbers become [`Other`](Self::Other)).
            pub const fn from_u16(code: u16) -> CloseCode {
                match code {
                    $($code => CloseCode::$variant,)+
                    other => CloseCode::Other(other),
                }
            }

            /// The number sent in a close frame.
            pub const fn as_u16(self) -> u16 {
                match self {
                    $(CloseCode::$variant => $code,)+
                    CloseCode::Other(code) => code,
                }
            }

            /// The stable snake_case name, e.g. `"auth_failed"`; for codes without a variant,
            /// the name of their range (`unassigned`, `iana_registered`, `private_use`,
            /// `invalid`).
            pub const fn name(self) -> &'static str {
                match CloseCode::from_u16(self.as_u16()) {
                    $(CloseCode::$variant => $name,)+
                    CloseCode::Other(code) => other_range(code).0,
                }
            }

            /// One line saying what the code means.
            pub fn description(self) -> &'static str {
                let doc = match CloseCode::from_u16(self.as_u16()) {
                    $(CloseCode::$variant => concat!($($doc),+),)+
                    CloseCode::Other(code) => other_range(code).1,
                };
                doc.trim_start()
            }

            /// The severity a connection record closed with this code is logged at.
            pub const fn severity(self) -> Severity {
                match CloseCode::from_u16(self.as_u16()) {
                    $(CloseCode::$variant => Severity::$severity,)+
                    CloseCode::Other(_) => Severity::Notice,
                }
            }
        }
    };
}

/// Name and description of the range an unnamed code falls in.
const fn other_range(code: u16) -> (&'static str, &'static str) {
    match code {
        1000..=2999 => ("unassigned", "reserved for future WebSocket use"),
        3000..=3999 => (
            "iana_registered",
            "registered with IANA for libraries and frameworks",
        ),
        4000..=4999 => ("private_use", "private use by applications"),
        _ => ("invalid", "not a valid close code"),
    }
}

close_codes! {
    /// The purpose of the connection was fulfilled.
    NormalClosure = 1000, "normal_closure", Info;
    /// The endpoint is going away: server shutdown or browser navigation.
    GoingAway = 1001, "going_away", Info;
    /// The peer broke the WebSocket protocol.
    ProtocolError = 1002, "protocol_error", Notice;
    /// The peer sent a kind of data the endpoint does not accept (agentwire: a binary frame).
    UnsupportedData = 1003, "unsupported_data", Notice;
    /// Reserved; never sent.
    Reserved = 1004, "reserved", Notice;
    /// The close frame carried no code (never sent; reported when a peer omits one).
    NoStatusReceived = 1005, "no_status_received", Info;
    /// The connection dropped without a close frame (never sent; reported locally).
    AbnormalClosure = 1006, "abnormal_closure", Notice;
    /// A message's data did not match its type (agentwire: a text frame that is not UTF-8).
    InvalidPayloadData = 1007, "invalid_payload_data", Notice;
    /// The peer violated a policy; generic refusal.
    PolicyViolation = 1008, "policy_violation", Notice;
    /// A message was larger than the endpoint accepts (agentwire: over max_message_bytes).
    MessageTooBig = 1009, "message_too_big", Notice;
    /// The client required an extension the server did not negotiate.
    MandatoryExtension = 1010, "mandatory_extension", Notice;
    /// The server hit an unexpected condition; in agentwire this always means a server bug.
    InternalError = 1011, "internal_error", Error;
    /// The server is restarting; reconnect after a randomized delay.
    ServiceRestart = 1012, "service_restart", Info;
    /// The server is overloaded; try again later.
    TryAgainLater = 1013, "try_again_later", Warning;
    /// A gateway or proxy received an invalid response from the upstream server.
    BadGateway = 1014, "bad_gateway", Warning;
    /// The TLS handshake failed (never sent; reported locally).
    TlsHandshake = 1015, "tls_handshake", Notice;
    /// agentwire: the outbound queue stayed full; the client does not read fast enough.
    SlowConsumer = 4008, "slow_consumer", Warning;
    /// agentwire: authentication failed or the token expired; the reason is the error code.
    AuthFailed = 4401, "auth_failed", Notice;
    /// agentwire: the peer did not answer a ping in time (reason `heartbeat_timeout`), or did
    /// not authenticate in time (reason `auth_timeout`).
    Timeout = 4408, "timeout", Notice;
    /// agentwire: the user already has the maximum number of connections.
    TooManyConnections = 4409, "too_many_connections", Notice;
    /// agentwire: the client kept exceeding the rate limit.
    RateLimited = 4429, "rate_limited", Notice;
}

impl CloseCode {
    /// Whether the code means a bug in the server (1011): agentwire never closes with it because
    /// of client input.
    pub const fn is_server_bug(self) -> bool {
        self.as_u16() == 1011
    }

    /// Whether the close is an ordinary ending (1000 or 1001).
    pub const fn is_normal(self) -> bool {
        matches!(self.as_u16(), 1000 | 1001)
    }

    /// Whether the code is one of agentwire's own (4008, 4401, 4408, 4409, 4429).
    pub const fn is_agentwire(self) -> bool {
        matches!(self.as_u16(), 4008 | 4401 | 4408 | 4409 | 4429)
    }

    /// Whether an endpoint may put this code in a close frame: 1000-1003, 1007-1014 and
    /// 3000-4999. 1004, 1005, 1006 and 1015 are only ever reported locally; other numbers are
    /// unassigned or invalid.
    pub const fn is_sendable(self) -> bool {
        matches!(self.as_u16(), 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode::from_u16(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.as_u16()
    }
}

impl PartialEq for CloseCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_u16() == other.as_u16()
    }
}

impl Eq for CloseCode {}

impl PartialOrd for CloseCode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CloseCode {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_u16().cmp(&other.as_u16())
    }
}

impl Hash for CloseCode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_u16().hash(state);
    }
}

/// `4401 auth_failed`: the number, then the name.
impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_u16(), self.name())
    }
}

/// Reads a known name (any ASCII case) or a decimal number 0..=65535.
impl FromStr for CloseCode {
    type Err = UnknownCloseCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(&code) = CloseCode::KNOWN
            .iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
        {
            return Ok(code);
        }
        if !s.is_empty()
            && s.len() <= 5
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = s.parse::<u16>()
        {
            return Ok(CloseCode::from_u16(n));
        }
        Err(UnknownCloseCode::new(s))
    }
}

impl Serialize for CloseCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for CloseCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CloseCodeVisitor)
    }
}

struct CloseCodeVisitor;

impl Visitor<'_> for CloseCodeVisitor {
    type Value = CloseCode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a close code number 0..=65535 or a close code name")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<CloseCode, E> {
        u16::try_from(v)
            .map(CloseCode::from_u16)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<CloseCode, E> {
        u16::try_from(v)
            .map(CloseCode::from_u16)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<CloseCode, E> {
        v.parse().map_err(E::custom)
    }
}

/// Why a connection closed: a [`CloseCode`] and a reason of at most [`MAX_REASON_BYTES`].
///
/// The reason is cut to [`MAX_REASON_BYTES`] on a character boundary when the value is built
/// (so it always fits in a close frame), and replaced by `[redacted]` if it looks like it
/// carries a credential (a JWT or a bearer token). agentwire's own reasons are error codes such
/// as `token_expired`.
///
/// JSON form: `{"code": 4401, "name": "auth_failed", "reason": "token_expired"}`; `name` is
/// written for readers and ignored when reading, `reason` may be absent.
///
/// ```
/// use agentwire_state::{CloseCode, CloseInfo};
///
/// let info = CloseInfo::new(CloseCode::AuthFailed, "token_expired");
/// assert_eq!(info.code().as_u16(), 4401);
/// assert_eq!(info.to_string(), "4401 auth_failed: token_expired");
///
/// let long = CloseInfo::new(CloseCode::PolicyViolation, "x".repeat(500));
/// assert_eq!(long.reason().len(), 123);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CloseInfo {
    code: CloseCode,
    reason: Cow<'static, str>,
}

impl CloseInfo {
    /// Close information with a reason (cut and checked as described on the type).
    pub fn new(code: CloseCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: redact::clean(reason.into(), MAX_REASON_BYTES),
        }
    }

    /// Close information without a reason.
    pub const fn code_only(code: CloseCode) -> Self {
        Self {
            code,
            reason: Cow::Borrowed(""),
        }
    }

    /// The close code.
    pub const fn code(&self) -> CloseCode {
        self.code
    }

    /// The reason; empty when there is none.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The code and the reason.
    pub fn into_parts(self) -> (CloseCode, Cow<'static, str>) {
        (self.code, self.reason)
    }
}

/// `4401 auth_failed: token_expired`, or `1000 normal_closure` without a reason.
impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            fmt::Display::fmt(&self.code, f)
        } else {
            write!(f, "{}: {}", self.code, self.reason)
        }
    }
}

impl From<CloseCode> for CloseInfo {
    fn from(code: CloseCode) -> Self {
        CloseInfo::code_only(code)
    }
}

impl Serialize for CloseInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CloseInfo", 3)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("name", self.code.name())?;
        s.serialize_field("reason", &*self.reason)?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for CloseInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            code: CloseCode,
            #[serde(default)]
            reason: String,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(CloseInfo::new(wire.code, wire.reason))
    }
}
