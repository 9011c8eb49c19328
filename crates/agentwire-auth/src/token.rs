//! [`Token`]: the credential text, which never shows itself.

use core::fmt;

/// A bearer token (a compact JWT), kept out of every `Debug` output.
///
/// `Debug` prints `Token(<redacted>, N bytes)`; there is no `Display`, no `Serialize` and no
/// `PartialEq` (comparing secrets is never needed, and would not be constant-time). The text
/// is reachable only through [`expose_secret`](Self::expose_secret), a name that stands out in
/// review.
///
/// ```
/// use agentwire_auth::Token;
///
/// let token = Token::new("eyJhbGciOiJIUzI1NiJ9.e30.c2ln");
/// assert_eq!(format!("{token:?}"), "Token(<redacted>, 29 bytes)");
/// assert_eq!(token.expose_secret(), "eyJhbGciOiJIUzI1NiJ9.e30.c2ln");
/// ```
#[derive(Clone, Default)]
pub struct Token(String);

impl Token {
    /// Wraps token text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The token text. Never log it, never put it in an error, a header or a metric label.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Unwraps the token text (same care as [`expose_secret`](Self::expose_secret)).
    pub fn into_secret(self) -> String {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the token is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted>, {} bytes)", self.0.len())
    }
}

impl From<String> for Token {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Token {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// Reading a token from JSON (e.g. an `auth_refresh {token}` payload) is allowed; writing one
/// is not.
impl<'de> serde::Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}
