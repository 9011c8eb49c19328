//! Credential extraction from an upgrade request: `Authorization: Bearer`, then the subprotocol
//! offer, then (only when enabled) `?token=`.

use core::fmt;

use crate::offer::select_protocol;
use crate::{AuthError, ProtocolOffer, Token};

/// The default maximum token length in bytes (8 KiB), for [`HandshakeRequest`] and
/// [`ValidatorBuilder`](crate::ValidatorBuilder).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `Authorization: Bearer <jwt>`.
    AuthorizationHeader,
    /// The subprotocol offer: `jwt-auth` plus `jwt.<jwt>` or `bearer.<jwt>`.
    Subprotocol,
    /// The `token` query parameter (only when the server enabled it).
    QueryParameter,
}

impl CredentialSource {
    /// A stable lowercase name for logs and metrics: `authorization_header`, `subprotocol`,
    /// `query_parameter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationHeader => "authorization_header",
            Self::Subprotocol => "subprotocol",
            Self::QueryParameter => "query_parameter",
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token and where it came from. `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct Credential {
    token: Token,
    source: CredentialSource,
}

impl Credential {
    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Where it came from.
    pub fn source(&self) -> CredentialSource {
        self.source
    }

    /// Unwraps the token.
    pub fn into_token(self) -> Token {
        self.token
    }
}

/// What the handshake rules look at, borrowed from an upgrade request.
///
/// Build it from the request's headers and query, then call [`negotiate`](Self::negotiate)
/// (or its two halves, [`select_protocol`](Self::select_protocol) and
/// [`extract_credential`](Self::extract_credential)).
///
/// Credential rules, in order:
///
/// 1. `Authorization: Bearer <jwt>` (scheme case-insensitive, RFC 6750 `b64token`). Another
///    scheme (`Basic`, say, added by a proxy) is ignored, not an error.
/// 2. The subprotocol offer: `jwt-auth` plus one `jwt.<jwt>` or `bearer.<jwt>`, the JWT raw or
///    base64url-encoded without padding.
/// 3. `?token=<jwt>` (percent-decoded), only with
///    [`allow_query_token(true)`](Self::allow_query_token): query strings end up in access logs.
///
/// The first source that has a token wins and later ones are not looked at. The offer's shape
/// is checked in every case (see [`select_protocol`](crate::select_protocol)), because the
/// answer protocol depends on it.
///
/// ```
/// use agentwire_auth::{CredentialSource, HandshakeRequest, ProtocolOffer};
///
/// let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
/// let header = format!("jwt-auth, jwt.{jwt}");
/// let negotiation = HandshakeRequest::new()
///     .offer(ProtocolOffer::parse([header.as_str()])?)
///     .authorization(None)
///     .query(Some("thread=7"))
///     .negotiate()?; // Err: answer HTTP 400 with the error's code and message
///
/// assert_eq!(negotiation.protocol(), Some("jwt-auth"));
/// let credential = negotiation.credential().map_err(Clone::clone)?;
/// assert_eq!(credential.source(), CredentialSource::Subprotocol);
/// assert_eq!(credential.token().expose_secret(), jwt);
/// # Ok::<(), agentwire_auth::AuthError>(())
/// ```
#[derive(Clone, Copy)]
pub struct HandshakeRequest<'a> {
    offer: ProtocolOffer<'a>,
    authorization: Option<&'a [u8]>,
    query: Option<&'a str>,
    allow_query_token: bool,
    max_token_bytes: usize,
}

impl Default for HandshakeRequest<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> HandshakeRequest<'a> {
    /// A request with no offer, no `Authorization` header and no query.
    pub const fn new() -> Self {
        Self {
            offer: ProtocolOffer::none(),
            authorization: None,
            query: None,
            allow_query_token: false,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// The parsed `Sec-WebSocket-Protocol` offer.
    pub fn offer(mut self, offer: ProtocolOffer<'a>) -> Self {
        self.offer = offer;
        self
    }

    /// The value of the `Authorization` header, if any (for instance
    /// `headers.get(AUTHORIZATION).map(HeaderValue::as_bytes)`).
    pub fn authorization(mut self, value: Option<&'a [u8]>) -> Self {
        self.authorization = value;
        self
    }

    /// The request's query string without the `?`, if any (`uri.query()`).
    pub fn query(mut self, query: Option<&'a str>) -> Self {
        self.query = query;
        self
    }

    /// Whether a `token` query parameter counts as a credential (default: no).
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.allow_query_token = allow;
        self
    }

    /// The longest token accepted (default [`DEFAULT_MAX_TOKEN_BYTES`]); pass the validator's
    /// [`max_token_bytes`](crate::Validator::max_token_bytes). Checked before any decoding.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The protocol to answer; see [`select_protocol`](crate::select_protocol).
    pub fn select_protocol(&self) -> Result<Option<&'static str>, AuthError> {
        select_protocol(&self.offer)
    }

    /// The credential, following the rules above.
    ///
    /// # Errors
    ///
    /// Handshake-shape errors ([`AuthError::rejects_handshake`]): an ill-shaped offer, or two
    /// `token` query parameters. Authentication errors: [`AuthError::MissingToken`],
    /// [`AuthError::MalformedToken`] (an empty or non-`b64token` bearer value, a token protocol
    /// that is neither form, bad percent-encoding), [`AuthError::TokenTooLarge`].
    pub fn extract_credential(&self) -> Result<Credential, AuthError> {
        if !self.offer.is_empty() {
            self.offer.check_shape()?;
        }
        if let Some(value) = self.authorization
            && let Some(token) = bearer_token(value, self.max_token_bytes)?
        {
            return Ok(Credential {
                token,
                source: CredentialSource::AuthorizationHeader,
            });
        }
        if let Some(token) = self.offer.token(self.max_token_bytes)? {
            return Ok(Credential {
                token,
                source: CredentialSource::Subprotocol,
            });
        }
        let query = self.query.unwrap_or("");
        if self.allow_query_token {
            if let Some(token) = query_token(query, self.max_token_bytes)? {
                return Ok(Credential {
                    token,
                    source: CredentialSource::QueryParameter,
                });
            }
            return Err(AuthError::MissingToken {
                query_token_ignored: false,
            });
        }
        Err(AuthError::MissingToken {
            query_token_ignored: query_token_values(query).any(|v| !v.is_empty()),
        })
    }

    /// Both decisions at once.
    ///
    /// `Err` holds only handshake-shape errors: refuse the upgrade with
    /// [`http_status`](AuthError::http_status) (400). Otherwise upgrade, answering
    /// [`Negotiation::protocol`]; a credential error in [`Negotiation::credential`] is then
    /// reported with an `error` frame and close code 4401.
    pub fn negotiate(&self) -> Result<Negotiation, AuthError> {
        let protocol = self.select_protocol()?;
        let credential = match self.extract_credential() {
            Err(e) if e.rejects_handshake() => return Err(e),
            other => other,
        };
        Ok(Negotiation {
            protocol,
            credential,
        })
    }
}

impl fmt::Debug for HandshakeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeRequest")
            .field("offer", &self.offer)
            .field("authorization", &self.authorization.map(|_| "<redacted>"))
            .field("query", &self.query.map(|_| "<redacted>"))
            .field("allow_query_token", &self.allow_query_token)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish()
    }
}

/// The outcome of [`HandshakeRequest::negotiate`] for a well-shaped request.
#[derive(Clone, Debug)]
pub struct Negotiation {
    protocol: Option<&'static str>,
    credential: Result<Credential, AuthError>,
}

impl Negotiation {
    /// The `Sec-WebSocket-Protocol` to answer: `Some("jwt-auth")` when it was offered, `None`
    /// when nothing was offered.
    pub fn protocol(&self) -> Option<&'static str> {
        self.protocol
    }

    /// The credential, or why there is none (an authentication error: close 4401 after the
    /// upgrade).
    pub fn credential(&self) -> Result<&Credential, &AuthError> {
        self.credential.as_ref()
    }

    /// Unwraps the credential.
    pub fn into_credential(self) -> Result<Credential, AuthError> {
        self.credential
    }
}

/// `Some(token)` for the `Bearer` scheme, `None` for any other scheme.
fn bearer_token(value: &[u8], max_token_bytes: usize) -> Result<Option<Token>, AuthError> {
    let value = trim_ows(value);
    let (scheme, rest) = match value.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(space) => (&value[..space], &value[space..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let credentials = trim_ows(rest);
    if credentials.is_empty() {
        return Err(AuthError::malformed(
            "the `Authorization: Bearer` header carries no token",
        ));
    }
    if credentials.len() > max_token_bytes {
        return Err(AuthError::TokenTooLarge {
            len: credentials.len(),
            max: max_token_bytes,
        });
    }
    // RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body_end = credentials
        .iter()
        .position(|&b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        })
        .unwrap_or(credentials.len());
    if body_end == 0 || !credentials[body_end..].iter().all(|&b| b == b'=') {
        return Err(AuthError::malformed(
            "the bearer token holds characters outside RFC 6750 `b64token`",
        ));
    }
    // All ASCII, checked above.
    let text = core::str::from_utf8(credentials).map_err(|_| {
        AuthError::malformed("the bearer token holds characters outside RFC 6750 `b64token`")
    })?;
    Ok(Some(Token::new(text)))
}

fn query_token_values(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "token").then_some(value)
    })
}

fn query_token(query: &str, max_token_bytes: usize) -> Result<Option<Token>, AuthError> {
    let mut values = query_token_values(query).filter(|v| !v.is_empty());
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::MultipleTokens);
    }
    // Percent-decoding never makes text longer, so a raw length over three times the limit
    // is too large without decoding anything.
    if raw.len() > max_token_bytes.saturating_mul(3) {
        return Err(AuthError::TokenTooLarge {
            len: raw.len(),
            max: max_token_bytes,
        });
    }
    let decoded = percent_decode(raw)?;
    if decoded.len() > max_token_bytes {
        return Err(AuthError::TokenTooLarge {
            len: decoded.len(),
            max: max_token_bytes,
        });
    }
    Ok(Some(Token::new(decoded)))
}

fn percent_decode(raw: &str) -> Result<String, AuthError> {
    const BAD: &str = "the `token` query parameter has invalid percent-encoding";
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                // Two hex digits make at most 0xFF.
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(AuthError::malformed(BAD)),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AuthError::malformed(BAD))
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";

    fn extract(
        offer: &[&str],
        authorization: Option<&str>,
        query: Option<&str>,
        allow_query: bool,
    ) -> Result<(CredentialSource, String), &'static str> {
        HandshakeRequest::new()
            .offer(ProtocolOffer::parse(offer.iter().copied()).map_err(|e| e.code())?)
            .authorization(authorization.map(str::as_bytes))
            .query(query)
            .allow_query_token(allow_query)
            .extract_credential()
            .map(|c| (c.source(), c.token().expose_secret().to_owned()))
            .map_err(|e| e.code())
    }

    #[test]
    fn bearer_header_first() {
        let bearer = format!("Bearer {JWT}");
        let offer = "jwt-auth, jwt.x.y.z";
        assert_eq!(
            extract(&[offer], Some(&bearer), Some("token=q.r.s"), true),
            Ok((CredentialSource::AuthorizationHeader, JWT.to_owned()))
        );
        for spelling in [
            format!("bearer {JWT}"),
            format!("BEARER \t {JWT} "),
            format!(" Bearer {JWT}"),
        ] {
            assert_eq!(
                extract(&[], Some(&spelling), None, false),
                Ok((CredentialSource::AuthorizationHeader, JWT.to_owned()))
            );
        }
    }

    #[test]
    fn other_schemes_are_ignored() {
        let offer = format!("jwt-auth, jwt.{JWT}");
        assert_eq!(
            extract(&[&offer], Some("Basic dXNlcjpwYXNz"), None, false),
            Ok((CredentialSource::Subprotocol, JWT.to_owned()))
        );
        assert_eq!(
            extract(&[], Some("Basic dXNlcjpwYXNz"), None, false),
            Err("missing_token")
        );
        assert_eq!(
            extract(&[], Some("Bearerx"), None, false),
            Err("missing_token")
        );
    }

    #[test]
    fn bad_bearer_values() {
        for bad in [
            "Bearer",
            "Bearer   ",
            "Bearer a b",
            "Bearer ä",
            "Bearer =abc",
            "Bearer a=b",
        ] {
            assert_eq!(
                extract(&[], Some(bad), None, false),
                Err("malformed_token"),
                "{bad:?}"
            );
        }
        assert!(extract(&[], Some("Bearer abc=="), None, false).is_ok());
    }

    #[test]
    fn subprotocol_then_query() {
        let offer = format!("jwt-auth, bearer.{JWT}");
        assert_eq!(
            extract(&[&offer], None, Some("token=a.b.c"), true),
            Ok((CredentialSource::Subprotocol, JWT.to_owned()))
        );
        assert_eq!(
            extract(&["jwt-auth"], None, Some(&format!("x=1&token={JWT}")), true),
            Ok((CredentialSource::QueryParameter, JWT.to_owned()))
        );
        assert_eq!(
            extract(&[], None, Some("token=a%2Eb%2ec"), true),
            Ok((CredentialSource::QueryParameter, "a.b.c".to_owned()))
        );
    }

    #[test]
    fn query_token_is_off_by_default() {
        let query = format!("token={JWT}");
        let err = HandshakeRequest::new()
            .query(Some(&query))
            .extract_credential()
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::MissingToken {
                query_token_ignored: true
            }
        );
        assert!(err.to_string().contains("access logs"));
        assert!(!err.to_string().contains(JWT));
    }

    #[test]
    fn query_errors() {
        assert_eq!(
            extract(&[], None, Some("token=a.b.c&token=d.e.f"), true),
            Err("multiple_tokens")
        );
        assert_eq!(
            extract(&[], None, Some("token=%zz"), true),
            Err("malformed_token")
        );
        assert_eq!(
            extract(&[], None, Some("token=%ff"), true),
            Err("malformed_token")
        );
        assert_eq!(
            extract(&[], None, Some("token="), true),
            Err("missing_token")
        );
        assert_eq!(extract(&[], None, None, true), Err("missing_token"));
    }

    #[test]
    fn shape_errors_win_over_any_source() {
        let bearer = format!("Bearer {JWT}");
        assert_eq!(
            extract(&["jwt.a.b.c"], Some(&bearer), None, false),
            Err("missing_marker_protocol")
        );
        assert_eq!(
            extract(
                &["jwt-auth, jwt.a.b.c, jwt.d.e.f"],
                Some(&bearer),
                None,
                false
            ),
            Err("multiple_tokens")
        );
        assert_eq!(
            extract(&["chat"], Some(&bearer), None, false),
            Err("unsupported_protocol")
        );
    }

    #[test]
    fn negotiate_splits_phases() {
        // Shape error: Err.
        let request = HandshakeRequest::new().offer(ProtocolOffer::parse(["jwt.a.b.c"]).unwrap());
        assert_eq!(request.negotiate().unwrap_err().http_status(), 400);

        // Marker without a token: upgrade answering jwt-auth, then missing_token (4401).
        let request = HandshakeRequest::new().offer(ProtocolOffer::parse(["jwt-auth"]).unwrap());
        let negotiation = request.negotiate().unwrap();
        assert_eq!(negotiation.protocol(), Some("jwt-auth"));
        let err = negotiation.credential().unwrap_err();
        assert_eq!((err.code(), err.close_code()), ("missing_token", 4401));

        // Nothing offered, bearer header: no protocol answered.
        let bearer = format!("Bearer {JWT}");
        let negotiation = HandshakeRequest::new()
            .authorization(Some(bearer.as_bytes()))
            .negotiate()
            .unwrap();
        assert_eq!(negotiation.protocol(), None);
        assert!(negotiation.credential().is_ok());

        // Two query tokens: a shape error even though it is found during extraction.
        let err = HandshakeRequest::new()
            .query(Some("token=a.b.c&token=a.b.c"))
            .allow_query_token(true)
            .negotiate()
            .unwrap_err();
        assert_eq!(err.code(), "multiple_tokens");
    }

    #[test]
    fn debug_redacts() {
        let bearer = format!("Bearer {JWT}");
        let offer = format!("jwt-auth, jwt.{JWT}");
        let query = format!("token={JWT}");
        let request = HandshakeRequest::new()
            .offer(ProtocolOffer::parse([offer.as_str()]).unwrap())
            .authorization(Some(bearer.as_bytes()))
            .query(Some(&query));
        let negotiation = request.negotiate().unwrap();
        for shown in [format!("{request:?}"), format!("{negotiation:?}")] {
            assert!(!shown.contains(JWT), "{shown}");
            assert!(!shown.contains("c2ln"), "{shown}");
        }
    }

    #[test]
    fn too_large_before_decoding() {
        let big = "a".repeat(100);
        let request = HandshakeRequest::new().max_token_bytes(50);
        let bearer = format!("Bearer {big}");
        assert_eq!(
            request
                .authorization(Some(bearer.as_bytes()))
                .extract_credential()
                .unwrap_err()
                .code(),
            "token_too_large"
        );
        let query = format!("token={big}");
        assert_eq!(
            request
                .query(Some(&query))
                .allow_query_token(true)
                .extract_credential()
                .unwrap_err()
                .code(),
            "token_too_large"
        );
    }
}
