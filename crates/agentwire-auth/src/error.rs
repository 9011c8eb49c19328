//! The errors of this crate: [`AuthError`] for everything a client can cause, [`ConfigError`]
//! for everything an operator can get wrong while building a [`Validator`](crate::Validator).
//!
//! Neither ever holds token text: the only attacker-controlled data kept is a short, sanitized
//! copy of an unacceptable `alg` header value, and single offending bytes of a
//! `Sec-WebSocket-Protocol` header (shown as hex and, when printable, as the character).

use core::fmt;

use crate::Algorithm;

/// Close code sent after the upgrade when authentication fails (`4000 + 401`).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Close code of a handshake-shape error (`4000 + 400`), for a server that upgrades anyway.
///
/// agentwire-server never sends it: it answers such requests with HTTP 400 before the upgrade.
pub const CLOSE_BAD_HANDSHAKE: u16 = 4400;

/// Why a client was not authenticated.
///
/// Every variant has a stable machine [`code`](Self::code), a human message (`Display`), the
/// WebSocket [`close_code`](Self::close_code) to send after the upgrade and the
/// [`http_status`](Self::http_status) to answer before it.
///
/// Two phases, told apart by [`rejects_handshake`](Self::rejects_handshake):
///
/// - **handshake-shape errors** (`invalid_protocol_header`, `missing_marker_protocol`,
///   `multiple_tokens`, `unsupported_protocol`): the request cannot be answered correctly, so the
///   server refuses the upgrade with HTTP 400 and a JSON body `{code, message}`;
/// - **authentication errors** (everything else): the server completes the handshake (answering
///   `jwt-auth` where it was offered), sends one `error` frame `{code, message}` and closes with
///   [`CLOSE_UNAUTHORIZED`] (4401) and the code as the close reason, so a browser can tell why.
///
/// Neither `Display` nor `Debug` ever contains token text.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential at all: no `Authorization: Bearer`, no token protocol, no (enabled)
    /// `?token=`.
    #[error(
        "no credentials: send `Authorization: Bearer <jwt>`, or offer the subprotocols `jwt-auth` \
         and `jwt.<jwt>`{}",
        if *query_token_ignored {
            " (a `token` query parameter was present, but this server does not accept tokens in \
             the URL: URLs end up in access logs)"
        } else {
            ""
        }
    )]
    MissingToken {
        /// A `token` query parameter was present but the server does not accept it.
        query_token_ignored: bool,
    },

    /// The credential is not a well-formed compact JWS/JWT, or its header or claims do not have
    /// the expected shape.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What is wrong, in words (never token text).
        reason: &'static str,
    },

    /// The signature does not verify with any configured key that fits the token.
    #[error("invalid token signature: it does not verify with the configured key")]
    InvalidSignature,

    /// `exp` has passed (beyond the configured leeway).
    #[error("token expired at {expired_at} (unix seconds); get a fresh token")]
    TokenExpired {
        /// The token's `exp`, in unix seconds (rounded down).
        expired_at: u64,
    },

    /// `nbf` (or, when a maximum age is configured, `iat`) lies in the future beyond the leeway.
    #[error("token not valid yet: valid from {valid_from} (unix seconds); check the clocks")]
    TokenNotYetValid {
        /// The token's `nbf` (or `iat`), in unix seconds (rounded down).
        valid_from: u64,
    },

    /// The token is older than the configured maximum age (from `iat`).
    #[error(
        "token too old: issued at {issued_at} (unix seconds), older than the {max_age_secs} s this server accepts"
    )]
    TokenTooOld {
        /// The token's `iat`, in unix seconds (rounded down).
        issued_at: u64,
        /// The configured maximum age, in seconds.
        max_age_secs: u64,
    },

    /// `iss` is absent or not one of the configured issuers.
    #[error("invalid issuer: the token's `iss` is missing or not accepted by this server")]
    InvalidIssuer,

    /// `aud` is absent or names none of the configured audiences.
    #[error("invalid audience: the token's `aud` is missing or does not name this server")]
    InvalidAudience,

    /// The header's `alg` is not on the allow-list (this includes `none`, unknown names, and an
    /// algorithm that no configured key can verify, such as HS256 when only public keys are
    /// configured: the algorithm-confusion attack).
    #[error("algorithm {alg} is not allowed; this server accepts {allowed}")]
    DisallowedAlgorithm {
        /// The `alg` header value, sanitized and cut to a few characters.
        alg: AlgName,
        /// The allow-list, comma-separated.
        allowed: AllowedAlgorithms,
    },

    /// `sub` is absent or empty.
    #[error("missing subject: the token must carry a non-empty `sub` claim (the user id)")]
    MissingSubject,

    /// A claim this server requires is absent: `exp` always, `iat` when a maximum age is
    /// configured.
    #[error("missing claim: the token must carry `{claim}`")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },

    /// The token is longer than the configured maximum (checked before any decoding).
    #[error("token too large: {len} bytes, this server accepts at most {max}")]
    TokenTooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },

    /// The header names a `kid` that no configured key has.
    #[error("unknown key id: the token's `kid` names no key this server knows")]
    UnknownKeyId,

    /// An `auth_refresh` token names another user (`sub`) than the connection's.
    #[error("subject mismatch: a refreshed token must name the connection's user (`sub`)")]
    SubjectMismatch,

    /// A token protocol (`jwt.<token>` or `bearer.<token>`) was offered without the marker
    /// protocol `jwt-auth`, which the server must be able to answer.
    #[error(
        "a token subprotocol was offered without `jwt-auth`: offer both, e.g. \
         `new WebSocket(url, [\"jwt-auth\", \"jwt.\" + token])`; the server answers `jwt-auth` \
         and never echoes the protocol that carries the token"
    )]
    MissingMarkerProtocol,

    /// More than one token in the offer (two token protocols) or two `token` query parameters.
    #[error("more than one token offered: send exactly one `jwt.<token>` (or `bearer.<token>`)")]
    MultipleTokens,

    /// Subprotocols were offered, but neither `jwt-auth` nor a token protocol.
    #[error(
        "none of the offered subprotocols is spoken here: offer `jwt-auth` (with `jwt.<token>` \
         or an `Authorization: Bearer` header), or offer no subprotocol at all"
    )]
    UnsupportedProtocol,

    /// The `Sec-WebSocket-Protocol` header is not a comma-separated list of RFC 9110 tokens.
    #[error(
        "invalid Sec-WebSocket-Protocol header: {} at offset {offset} of header line {line} is \
         not allowed (protocols are RFC 9110 tokens separated by commas; base64url tokens must \
         not be padded with '=')",
        ByteDisplay(*byte)
    )]
    InvalidProtocolHeader {
        /// Which header line (1-based) holds the offending byte.
        line: usize,
        /// Its byte offset in that line (0-based).
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
}

impl AuthError {
    /// The stable machine code, e.g. `token_expired`. Also the close reason after the upgrade.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken { .. } => "missing_token",
            Self::MalformedToken { .. } => "malformed_token",
            Self::InvalidSignature => "invalid_signature",
            Self::TokenExpired { .. } => "token_expired",
            Self::TokenNotYetValid { .. } => "token_not_yet_valid",
            Self::TokenTooOld { .. } => "token_too_old",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::DisallowedAlgorithm { .. } => "disallowed_algorithm",
            Self::MissingSubject => "missing_subject",
            Self::MissingClaim { .. } => "missing_claim",
            Self::TokenTooLarge { .. } => "token_too_large",
            Self::UnknownKeyId => "unknown_key_id",
            Self::SubjectMismatch => "subject_mismatch",
            Self::MissingMarkerProtocol => "missing_marker_protocol",
            Self::MultipleTokens => "multiple_tokens",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::InvalidProtocolHeader { .. } => "invalid_protocol_header",
        }
    }

    /// Whether the server must refuse the upgrade (HTTP 400) instead of completing the
    /// handshake and closing with 4401.
    pub fn rejects_handshake(&self) -> bool {
        matches!(
            self,
            Self::MissingMarkerProtocol
                | Self::MultipleTokens
                | Self::UnsupportedProtocol
                | Self::InvalidProtocolHeader { .. }
        )
    }

    /// The HTTP status for this error: 400 for handshake-shape errors, 401 otherwise.
    pub fn http_status(&self) -> u16 {
        if self.rejects_handshake() { 400 } else { 401 }
    }

    /// The WebSocket close code: [`CLOSE_UNAUTHORIZED`] (4401) for authentication errors;
    /// [`CLOSE_BAD_HANDSHAKE`] (4400) for handshake-shape errors, which agentwire-server answers
    /// with HTTP 400 instead and never closes with.
    pub fn close_code(&self) -> u16 {
        if self.rejects_handshake() {
            CLOSE_BAD_HANDSHAKE
        } else {
            CLOSE_UNAUTHORIZED
        }
    }

    /// The close reason to send with [`close_code`](Self::close_code): the machine code, which
    /// always fits the 123 bytes a close frame allows.
    pub fn close_reason(&self) -> &'static str {
        self.code()
    }

    /// Every machine code this type can produce, in documentation order.
    pub const CODES: &'static [&'static str] = &[
        "missing_token",
        "malformed_token",
        "invalid_signature",
        "token_expired",
        "token_not_yet_valid",
        "token_too_old",
        "invalid_issuer",
        "invalid_audience",
        "disallowed_algorithm",
        "missing_subject",
        "missing_claim",
        "token_too_large",
        "unknown_key_id",
        "subject_mismatch",
        "missing_marker_protocol",
        "multiple_tokens",
        "unsupported_protocol",
        "invalid_protocol_header",
    ];

    pub(crate) fn malformed(reason: &'static str) -> Self {
        Self::MalformedToken { reason }
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The code plus the human message: both token-free by construction.
        f.debug_struct("AuthError")
            .field("code", &self.code())
            .field("message", &self.to_string())
            .finish()
    }
}

/// Shows a byte as hex, plus the character when it is printable ASCII.
struct ByteDisplay(u8);

impl fmt::Display for ByteDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b.is_ascii_graphic() {
            write!(f, "byte 0x{b:02X} ({:?})", b as char)
        } else {
            write!(f, "byte 0x{b:02X}")
        }
    }
}

/// How many characters of an unacceptable `alg` value an [`AlgName`] keeps.
const ALG_NAME_MAX: usize = 16;

/// The `alg` header value of a refused token: at most 16 characters, anything but ASCII
/// letters, digits, `-`, `_` and `.` replaced by `?`, so it is safe to log and to show.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AlgName {
    buf: [u8; ALG_NAME_MAX],
    len: u8,
    truncated: bool,
}

impl AlgName {
    pub(crate) fn new(raw: &str) -> Self {
        let mut buf = [0u8; ALG_NAME_MAX];
        let mut len = 0;
        for c in raw.chars().take(ALG_NAME_MAX) {
            buf[len] = if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c as u8
            } else {
                b'?'
            };
            len += 1;
        }
        Self {
            buf,
            // `len` is at most ALG_NAME_MAX (16).
            len: len as u8,
            truncated: raw.chars().nth(ALG_NAME_MAX).is_some(),
        }
    }

    /// The sanitized name (`"none"`, `"HS256"`, ...).
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever written, so this cannot fail.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("?")
    }

    /// Whether the original value was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for AlgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ellipsis = if self.truncated { "..." } else { "" };
        write!(f, "\"{}{ellipsis}\"", self.as_str())
    }
}

impl fmt::Debug for AlgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The algorithm allow-list of a validator, as shown in a
/// [`DisallowedAlgorithm`](AuthError::DisallowedAlgorithm) message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedAlgorithms(pub(crate) u16);

impl AllowedAlgorithms {
    /// Whether `alg` is on the list.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// The algorithms on the list, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl fmt::Display for AllowedAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, alg) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(alg.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for AllowedAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A validator (or test signing key) could not be built from the given configuration.
///
/// These are operator errors, reported at start-up; they never reach a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No key was configured.
    #[error("no verification key configured: give an HMAC secret, a PEM public key or a JWKS")]
    NoKeys,

    /// The algorithm allow-list is empty.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,

    /// An allowed algorithm has no configured key able to verify it.
    #[error("algorithm {alg} is allowed but no configured key can verify it")]
    NoKeyForAlgorithm {
        /// The algorithm.
        alg: Algorithm,
    },

    /// An algorithm name is not one agentwire supports (`none` never is).
    #[error(
        "unknown or unsupported algorithm name (expected one of HS256, HS384, HS512, RS256, \
         RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
    )]
    UnknownAlgorithm,

    /// The HMAC secret is shorter than 32 bytes (RFC 7518 section 3.2 requires at least the
    /// hash size).
    #[error("the HMAC secret is {len} bytes; at least 32 are required (RFC 7518 section 3.2)")]
    WeakHmacSecret {
        /// The secret's length.
        len: usize,
    },

    /// The HMAC secret is a PEM document: using a public key as an HMAC secret is exactly the
    /// algorithm-confusion attack, so it is refused.
    #[error(
        "the HMAC secret looks like a PEM key; configure a public key as a public key, never as \
         an HMAC secret"
    )]
    PemAsHmacSecret,

    /// A PEM key could not be used.
    #[error("invalid PEM key: {reason}")]
    InvalidPem {
        /// What is wrong.
        reason: &'static str,
    },

    /// A JWKS document (or one of its keys) could not be used.
    #[error("invalid JWKS: {reason}")]
    InvalidJwks {
        /// What is wrong.
        reason: String,
    },

    /// A key cannot be used with the requested algorithm.
    #[error("the key cannot be used with {alg}")]
    KeyAlgorithmMismatch {
        /// The algorithm.
        alg: Algorithm,
    },

    /// Signing a test token failed (`testing` feature).
    #[error("signing failed: {reason}")]
    Signing {
        /// What went wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant, in [`AuthError::CODES`] order.
    fn every_error() -> Vec<AuthError> {
        let allowed = AllowedAlgorithms(Algorithm::HS256.bit() | Algorithm::EdDSA.bit());
        vec![
            AuthError::MissingToken {
                query_token_ignored: true,
            },
            AuthError::malformed("x"),
            AuthError::InvalidSignature,
            AuthError::TokenExpired { expired_at: 1 },
            AuthError::TokenNotYetValid { valid_from: 1 },
            AuthError::TokenTooOld {
                issued_at: 1,
                max_age_secs: 2,
            },
            AuthError::InvalidIssuer,
            AuthError::InvalidAudience,
            AuthError::DisallowedAlgorithm {
                alg: AlgName::new("none"),
                allowed,
            },
            AuthError::MissingSubject,
            AuthError::MissingClaim { claim: "exp" },
            AuthError::TokenTooLarge { len: 9, max: 8 },
            AuthError::UnknownKeyId,
            AuthError::SubjectMismatch,
            AuthError::MissingMarkerProtocol,
            AuthError::MultipleTokens,
            AuthError::UnsupportedProtocol,
            AuthError::InvalidProtocolHeader {
                line: 1,
                offset: 2,
                byte: b'=',
            },
        ]
    }

    #[test]
    fn codes_are_complete_unique_and_stable() {
        // Exhaustive: adding a variant without listing it here does not compile.
        fn listed(e: &AuthError) -> bool {
            match e {
                AuthError::MissingToken { .. }
                | AuthError::MalformedToken { .. }
                | AuthError::InvalidSignature
                | AuthError::TokenExpired { .. }
                | AuthError::TokenNotYetValid { .. }
                | AuthError::TokenTooOld { .. }
                | AuthError::InvalidIssuer
                | AuthError::InvalidAudience
                | AuthError::DisallowedAlgorithm { .. }
                | AuthError::MissingSubject
                | AuthError::MissingClaim { .. }
                | AuthError::TokenTooLarge { .. }
                | AuthError::UnknownKeyId
                | AuthError::SubjectMismatch
                | AuthError::MissingMarkerProtocol
                | AuthError::MultipleTokens
                | AuthError::UnsupportedProtocol
                | AuthError::InvalidProtocolHeader { .. } => true,
            }
        }
        let errors = every_error();
        assert!(errors.iter().all(listed));
        let codes: Vec<_> = errors.iter().map(AuthError::code).collect();
        assert_eq!(codes, AuthError::CODES);
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        for code in codes {
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.len() <= 123, "fits a close frame reason");
        }
    }

    #[test]
    fn phases_map_to_status_and_close_code() {
        for e in every_error() {
            let shape = matches!(
                e.code(),
                "missing_marker_protocol"
                    | "multiple_tokens"
                    | "unsupported_protocol"
                    | "invalid_protocol_header"
            );
            assert_eq!(e.rejects_handshake(), shape, "{}", e.code());
            assert_eq!(e.http_status(), if shape { 400 } else { 401 });
            assert_eq!(e.close_code(), if shape { 4400 } else { 4401 });
            assert_eq!(e.close_reason(), e.code());
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn messages() {
        let e = AuthError::DisallowedAlgorithm {
            alg: AlgName::new("none"),
            allowed: AllowedAlgorithms(Algorithm::HS256.bit() | Algorithm::EdDSA.bit()),
        };
        assert_eq!(
            e.to_string(),
            "algorithm \"none\" is not allowed; this server accepts HS256, EdDSA"
        );
        let e = AuthError::InvalidProtocolHeader {
            line: 1,
            offset: 2,
            byte: b'=',
        };
        assert!(
            e.to_string()
                .contains("byte 0x3D ('=') at offset 2 of header line 1")
        );
        let e = AuthError::InvalidProtocolHeader {
            line: 1,
            offset: 0,
            byte: 0,
        };
        assert!(e.to_string().contains("byte 0x00 at"));
        assert_eq!(
            format!("{:?}", AuthError::InvalidSignature),
            "AuthError { code: \"invalid_signature\", message: \"invalid token signature: it \
             does not verify with the configured key\" }"
        );
    }

    #[test]
    fn alg_names_are_sanitized() {
        assert_eq!(AlgName::new("HS256").to_string(), "\"HS256\"");
        let long = AlgName::new("\"\n<script>aaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(long.as_str(), "???script?aaaaaa");
        assert!(long.is_truncated());
        assert_eq!(long.to_string(), "\"???script?aaaaaa...\"");
        assert_eq!(AlgName::new("ééé").as_str(), "???");
    }
}
