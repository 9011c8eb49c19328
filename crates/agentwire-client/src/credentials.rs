//! How the token travels in the upgrade request.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_auth::Token;

use crate::error::Error;

/// Where the token goes in the upgrade request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Carrier {
    /// `Sec-WebSocket-Protocol: jwt-auth, jwt.<token>`, as a browser must; the server answers
    /// `jwt-auth`.
    Subprotocol,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// No token (for harnesses testing refusals, or a server with in-band authentication).
    None,
}

/// The token and how to send it, plus any extra request headers.
///
/// `Debug` never shows the token.
///
/// ```
/// use agentwire_client::Credentials;
///
/// let browser_like = Credentials::subprotocol("eyJhbGciOi...");
/// let service = Credentials::bearer("eyJhbGciOi...").with_header("X-Request-Id", "42");
/// assert!(!format!("{service:?}").contains("eyJ"));
/// ```
#[derive(Clone)]
pub struct Credentials {
    token: Token,
    carrier: Carrier,
    headers: Vec<(String, String)>,
}

impl Credentials {
    /// The token in the subprotocol offer: `jwt-auth, jwt.<token>`.
    pub fn subprotocol(token: impl Into<String>) -> Credentials {
        Credentials {
            token: Token::new(token.into().trim()),
            carrier: Carrier::Subprotocol,
            headers: Vec::new(),
        }
    }

    /// The token in `Authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<String>) -> Credentials {
        Credentials {
            carrier: Carrier::Bearer,
            ..Credentials::subprotocol(token)
        }
    }

    /// No token at all.
    pub fn none() -> Credentials {
        Credentials {
            token: Token::new(""),
            carrier: Carrier::None,
            headers: Vec::new(),
        }
    }

    /// Adds a request header (`Origin`, a tracing id, or for negative tests a hand-made
    /// `Sec-WebSocket-Protocol` with [`Credentials::none`]).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Where the token goes.
    pub fn carrier(&self) -> Carrier {
        self.carrier
    }

    /// The token (empty for [`Credentials::none`]).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The same carrier and headers with another token (after a refresh).
    #[must_use]
    pub fn with_token(&self, token: impl Into<String>) -> Credentials {
        Credentials {
            token: Token::new(token.into().trim()),
            carrier: self.carrier,
            headers: self.headers.clone(),
        }
    }

    /// The token's `exp`, read without verifying the token; `None` when it has none or is not
    /// a JWT.
    pub fn expires_at(&self) -> Option<SystemTime> {
        token_expiry(&self.token)
    }

    /// Checks that everything fits in an HTTP request head.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let token = self.token.expose_secret();
        if self.carrier != Carrier::None {
            if token.is_empty() {
                return Err(Error::InvalidCredentials {
                    reason: "the token is empty".to_owned(),
                });
            }
            // A subprotocol is an HTTP token; a bearer value has no spaces or separators.
            if let Some(bad) = token
                .bytes()
                .find(|b| !(b.is_ascii_alphanumeric() || b"-_.~+/=".contains(b)))
            {
                return Err(Error::InvalidCredentials {
                    reason: format!(
                        "the token has a character a JWT does not have (byte 0x{bad:02x})"
                    ),
                });
            }
        }
        for (name, value) in &self.headers {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !name_ok {
                return Err(Error::InvalidCredentials {
                    reason: format!("{name:?} is not a valid header name"),
                });
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(Error::InvalidCredentials {
                    reason: format!("the value of header {name} has a line break"),
                });
            }
        }
        Ok(())
    }

    /// Appends the request header lines (`Name: value\r\n`).
    pub(crate) fn write_headers(&self, request: &mut String) {
        let token = self.token.expose_secret();
        match self.carrier {
            Carrier::Subprotocol => {
                request.push_str("Sec-WebSocket-Protocol: jwt-auth, jwt.");
                request.push_str(token);
                request.push_str("\r\n");
            }
            Carrier::Bearer => {
                request.push_str("Authorization: Bearer ");
                request.push_str(token);
                request.push_str("\r\n");
            }
            Carrier::None => {}
        }
        for (name, value) in &self.headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
    }

    /// Whether the request offers a subprotocol, and so expects `jwt-auth` back.
    pub(crate) fn offers_subprotocol(&self) -> bool {
        self.carrier == Carrier::Subprotocol
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("carrier", &self.carrier)
            .field("token", &self.token)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A token's `exp`, unverified.
pub(crate) fn token_expiry(token: &Token) -> Option<SystemTime> {
    let decoded = agentwire_auth::dangerous::decode_unverified(token).ok()?;
    let exp = decoded.claims().get("exp")?.as_f64()?;
    if !(exp.is_finite() && exp >= 0.0) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(exp.min(1e11)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checks() {
        let mut head = String::new();
        Credentials::subprotocol("a.b.c").write_headers(&mut head);
        assert_eq!(head, "Sec-WebSocket-Protocol: jwt-auth, jwt.a.b.c\r\n");
        let mut head = String::new();
        Credentials::bearer(" a.b.c\n")
            .with_header("Origin", "https://x.test")
            .write_headers(&mut head);
        assert_eq!(
            head,
            "Authorization: Bearer a.b.c\r\nOrigin: https://x.test\r\n"
        );
        assert!(Credentials::subprotocol("a.b c").check().is_err());
        assert!(Credentials::subprotocol("").check().is_err());
        assert!(
            Credentials::none()
                .with_header("X", "a\r\nInjected: 1")
                .check()
                .is_err()
        );
        assert!(
            Credentials::none()
                .with_header("Bad Name", "v")
                .check()
                .is_err()
        );
        assert!(Credentials::none().check().is_ok());
        assert_eq!(Credentials::subprotocol("not-a-jwt").expires_at(), None);
    }
}
