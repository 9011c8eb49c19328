//! The `Sec-WebSocket-Protocol` offer: parsing (RFC 6455 section 4.1, RFC 9110 section 5.6)
//! and the choice of the protocol to answer.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{AuthError, Token};

/// The marker subprotocol: a client offers it next to the token protocol, and the server answers
/// it (never the protocol that carries the token).
pub const MARKER_PROTOCOL: &str = "jwt-auth";

/// Prefix of the token protocol `jwt.<token>`.
pub const JWT_PROTOCOL_PREFIX: &str = "jwt.";

/// Prefix of the alternative token protocol `bearer.<token>`.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// What a client offered in its `Sec-WebSocket-Protocol` header lines.
///
/// It borrows from the header values and allocates nothing. It keeps only what the handshake
/// needs: how many protocols were offered, whether the marker [`MARKER_PROTOCOL`] was among
/// them, and the token protocols (`jwt.<token>`, `bearer.<token>`). Its `Debug` output never
/// shows a token.
///
/// Parsing follows RFC 6455 (`Sec-WebSocket-Protocol = 1#token`) and the list rules of RFC
/// 9110 section 5.6.1: several header lines are one comma-separated list; optional whitespace
/// (spaces, tabs) around elements is ignored, and so are empty elements (`a,,b`); every element
/// must consist of RFC 9110 `tchar`s only. A header with no element at all counts as no offer.
/// Protocol names are compared case-sensitively.
///
/// ```
/// use agentwire_auth::{MARKER_PROTOCOL, ProtocolOffer, select_protocol};
///
/// // Two header lines, as a proxy may split them.
/// let offer = ProtocolOffer::parse(["jwt-auth", " jwt.aGVhZGVy.cGF5bG9hZA.c2ln "])?;
/// assert_eq!(offer.len(), 2);
/// assert!(offer.offers_marker());
/// assert_eq!(select_protocol(&offer)?, Some(MARKER_PROTOCOL));
///
/// // Padding is not a token character: a clear error, not a panic.
/// let err = ProtocolOffer::parse(["jwt-auth, jwt.abc="]).unwrap_err();
/// assert_eq!(err.code(), "invalid_protocol_header");
/// assert_eq!(err.http_status(), 400);
/// # Ok::<(), agentwire_auth::AuthError>(())
/// ```
#[derive(Clone, Copy, Default)]
pub struct ProtocolOffer<'a> {
    protocols: usize,
    marker: bool,
    token_protocols: usize,
    /// The value after the prefix of the first token protocol.
    first_token: Option<&'a str>,
}

impl<'a> ProtocolOffer<'a> {
    /// An empty offer (no `Sec-WebSocket-Protocol` header).
    pub const fn none() -> Self {
        Self {
            protocols: 0,
            marker: false,
            token_protocols: 0,
            first_token: None,
        }
    }

    /// Parses every `Sec-WebSocket-Protocol` header line of a request, in order.
    ///
    /// Takes anything that yields references to byte-like values: `&[&str]`, `[&[u8]; N]`, or
    /// `headers.get_all(SEC_WEBSOCKET_PROTOCOL)` of the `http` crate (`HeaderValue` is
    /// `AsRef<[u8]>`). No line at all is an empty offer.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidProtocolHeader`] (HTTP 400) at the first byte that is neither a token
    /// character, a comma nor whitespace between elements.
    pub fn parse<I, V>(header_values: I) -> Result<Self, AuthError>
    where
        I: IntoIterator<Item = &'a V>,
        V: AsRef<[u8]> + ?Sized + 'a,
    {
        let mut offer = Self::none();
        for (index, value) in header_values.into_iter().enumerate() {
            offer.parse_line(index + 1, value.as_ref())?;
        }
        Ok(offer)
    }

    fn parse_line(&mut self, line: usize, bytes: &'a [u8]) -> Result<(), AuthError> {
        let mut start = 0;
        while start <= bytes.len() {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |p| start + p);
            let mut lo = start;
            let mut hi = end;
            while lo < hi && is_ows(bytes[lo]) {
                lo += 1;
            }
            while hi > lo && is_ows(bytes[hi - 1]) {
                hi -= 1;
            }
            if lo < hi {
                let element = &bytes[lo..hi];
                if let Some(bad) = element.iter().position(|&b| !is_tchar(b)) {
                    return Err(AuthError::InvalidProtocolHeader {
                        line,
                        offset: lo + bad,
                        byte: element[bad],
                    });
                }
                // Token characters are ASCII, so this always succeeds.
                let name = core::str::from_utf8(element).map_err(|_| {
                    AuthError::InvalidProtocolHeader {
                        line,
                        offset: lo,
                        byte: element[0],
                    }
                })?;
                self.add(name);
            }
            start = end + 1;
        }
        Ok(())
    }

    fn add(&mut self, name: &'a str) {
        self.protocols += 1;
        if name == MARKER_PROTOCOL {
            self.marker = true;
        } else if let Some(token) = name
            .strip_prefix(JWT_PROTOCOL_PREFIX)
            .or_else(|| name.strip_prefix(BEARER_PROTOCOL_PREFIX))
        {
            self.token_protocols += 1;
            if self.first_token.is_none() {
                self.first_token = Some(token);
            }
        }
    }

    /// Whether nothing was offered.
    pub fn is_empty(&self) -> bool {
        self.protocols == 0
    }

    /// How many protocols were offered (duplicates included).
    pub fn len(&self) -> usize {
        self.protocols
    }

    /// Whether the marker [`MARKER_PROTOCOL`] (`jwt-auth`) was offered.
    pub fn offers_marker(&self) -> bool {
        self.marker
    }

    /// How many token protocols (`jwt.<token>`, `bearer.<token>`) were offered.
    pub fn token_protocol_count(&self) -> usize {
        self.token_protocols
    }

    /// Checks the rules on the offer's shape; see [`select_protocol`].
    pub(crate) fn check_shape(&self) -> Result<(), AuthError> {
        if self.token_protocols > 0 && !self.marker {
            return Err(AuthError::MissingMarkerProtocol);
        }
        if self.token_protocols > 1 {
            return Err(AuthError::MultipleTokens);
        }
        if self.protocols > 0 && !self.marker {
            return Err(AuthError::UnsupportedProtocol);
        }
        Ok(())
    }

    /// The token carried by the (single) token protocol, decoded; `None` when there is none.
    /// The caller has checked the shape.
    pub(crate) fn token(&self, max_token_bytes: usize) -> Result<Option<Token>, AuthError> {
        self.first_token
            .map(|raw| decode_protocol_token(raw, max_token_bytes))
            .transpose()
    }
}

impl fmt::Debug for ProtocolOffer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolOffer")
            .field("protocols", &self.protocols)
            .field("marker", &self.marker)
            .field("token_protocols", &self.token_protocols)
            .finish()
    }
}

/// Chooses the `Sec-WebSocket-Protocol` to answer: the one function the server calls.
///
/// - Nothing offered: `Ok(None)`; answer no protocol (what RFC 6455 requires).
/// - The marker `jwt-auth` offered (with at most one token protocol): `Ok(Some("jwt-auth"))`.
///   Never a protocol that carries a token, so the token cannot land in response headers or
///   in logs of them.
/// - A token protocol without the marker: [`AuthError::MissingMarkerProtocol`]. The only
///   offered protocol the server could answer carries the token.
/// - Two or more token protocols: [`AuthError::MultipleTokens`].
/// - Protocols offered, but neither the marker nor a token protocol (say `chat.v2`, with the
///   credential in an `Authorization` header): [`AuthError::UnsupportedProtocol`]. Answering
///   none of them would make a browser fail the handshake without any explanation ("no
///   subprotocol", the legacy failure); answering one agentwire does not speak would be a lie.
///
/// Every error here is a handshake-shape error: HTTP 400 before the upgrade, with the error's
/// code and message as a JSON body.
///
/// ```
/// use agentwire_auth::{ProtocolOffer, select_protocol};
///
/// let none: [&str; 0] = [];
/// assert_eq!(select_protocol(&ProtocolOffer::parse(none)?)?, None);
/// assert_eq!(select_protocol(&ProtocolOffer::parse(["jwt-auth"])?)?, Some("jwt-auth"));
///
/// let err = select_protocol(&ProtocolOffer::parse(["jwt.a.b.c"])?).unwrap_err();
/// assert_eq!(err.code(), "missing_marker_protocol");
/// # Ok::<(), agentwire_auth::AuthError>(())
/// ```
pub fn select_protocol(offer: &ProtocolOffer<'_>) -> Result<Option<&'static str>, AuthError> {
    if offer.is_empty() {
        return Ok(None);
    }
    offer.check_shape()?;
    Ok(Some(MARKER_PROTOCOL))
}

/// The value after `jwt.`/`bearer.`: a compact JWT as is (it contains dots), or the compact JWT
/// base64url-encoded without padding (no dots).
fn decode_protocol_token(raw: &str, max_token_bytes: usize) -> Result<Token, AuthError> {
    const NOT_A_TOKEN: &str = "the token protocol carries neither a compact JWT nor a \
                               base64url-encoded (unpadded) compact JWT";
    if raw.is_empty() {
        return Err(AuthError::malformed(
            "the token protocol carries no token: offer `jwt.<token>`",
        ));
    }
    if raw.contains('.') {
        if raw.len() > max_token_bytes {
            return Err(AuthError::TokenTooLarge {
                len: raw.len(),
                max: max_token_bytes,
            });
        }
        return Ok(Token::new(raw));
    }
    // Checked before decoding: the decoded length is about 3/4 of the encoded one.
    let decoded_len = raw.len() / 4 * 3 + (raw.len() % 4).saturating_sub(1);
    if decoded_len > max_token_bytes {
        return Err(AuthError::TokenTooLarge {
            len: decoded_len,
            max: max_token_bytes,
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| AuthError::malformed(NOT_A_TOKEN))?;
    let text = String::from_utf8(bytes).map_err(|_| AuthError::malformed(NOT_A_TOKEN))?;
    if !text.contains('.') {
        return Err(AuthError::malformed(NOT_A_TOKEN));
    }
    Ok(Token::new(text))
}

/// `OWS` of RFC 9110: spaces and horizontal tabs.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `tchar` of RFC 9110 section 5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(lines: &[&'a str]) -> Result<ProtocolOffer<'a>, AuthError> {
        ProtocolOffer::parse(lines.iter().copied())
    }

    #[test]
    fn lists_whitespace_and_empty_elements() {
        let offer = parse(&[" , jwt-auth ,\t, jwt.a.b.c ,", ",,"]).unwrap();
        assert_eq!(offer.len(), 2);
        assert!(offer.offers_marker());
        assert_eq!(offer.token_protocol_count(), 1);
        assert_eq!(offer.first_token, Some("a.b.c"));
    }

    #[test]
    fn empty_header_is_no_offer() {
        for lines in [&[][..], &[""], &["  "], &[" , ,"], &["", ""]] {
            let offer = parse(lines).unwrap();
            assert!(offer.is_empty(), "{lines:?}");
            assert_eq!(select_protocol(&offer), Ok(None));
        }
    }

    #[test]
    fn bad_bytes_are_located() {
        let err = parse(&["jwt-auth", "chat, jwt.abc="]).unwrap_err();
        assert_eq!(
            err,
            AuthError::InvalidProtocolHeader {
                line: 2,
                offset: 13,
                byte: b'='
            }
        );
        let err = parse(&["jwt auth"]).unwrap_err();
        assert_eq!(
            err,
            AuthError::InvalidProtocolHeader {
                line: 1,
                offset: 3,
                byte: b' '
            }
        );
        for bad in [
            "\"jwt-auth\"",
            "a;b",
            "a/b",
            "é",
            "a\u{0}",
            "(x)",
            "a:b",
            "a=b",
            "a@b",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tchar_table() {
        let expected: Vec<u8> = (0..=255u8)
            .filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
            .collect();
        let table: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        assert_eq!(table, expected);
    }

    #[test]
    fn every_tchar_is_accepted() {
        let all = "!#$%&'*+-.^_`|~09azAZ";
        let offer = parse(&[all]).unwrap();
        assert_eq!(offer.len(), 1);
    }

    #[test]
    fn shape_rules() {
        let code = |lines: &[&str]| select_protocol(&parse(lines).unwrap()).map_err(|e| e.code());
        assert_eq!(code(&["jwt-auth"]), Ok(Some("jwt-auth")));
        assert_eq!(code(&["jwt-auth, jwt.a.b.c"]), Ok(Some("jwt-auth")));
        assert_eq!(code(&["bearer.a.b.c, jwt-auth"]), Ok(Some("jwt-auth")));
        assert_eq!(code(&["jwt-auth, jwt-auth"]), Ok(Some("jwt-auth")));
        assert_eq!(code(&["chat, jwt-auth"]), Ok(Some("jwt-auth")));
        assert_eq!(code(&["jwt.a.b.c"]), Err("missing_marker_protocol"));
        assert_eq!(code(&["chat", "bearer.x"]), Err("missing_marker_protocol"));
        assert_eq!(
            code(&["jwt-auth, jwt.a.b.c", "bearer.a.b.c"]),
            Err("multiple_tokens")
        );
        assert_eq!(code(&["chat.v2"]), Err("unsupported_protocol"));
        // Case-sensitive names: these are not the marker, nor token protocols.
        assert_eq!(code(&["JWT-AUTH"]), Err("unsupported_protocol"));
        assert_eq!(code(&["JWT.a.b.c"]), Err("unsupported_protocol"));
    }

    #[test]
    fn protocol_token_forms() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
        let encoded = URL_SAFE_NO_PAD.encode(jwt);
        assert_eq!(
            decode_protocol_token(jwt, 100).unwrap().expose_secret(),
            jwt
        );
        assert_eq!(
            decode_protocol_token(&encoded, 100)
                .unwrap()
                .expose_secret(),
            jwt
        );
        assert_eq!(
            decode_protocol_token("", 100).unwrap_err().code(),
            "malformed_token"
        );
        assert_eq!(
            decode_protocol_token("!!!", 100).unwrap_err().code(),
            "malformed_token"
        );
        // base64url of text without dots is not a JWT.
        let no_dots = URL_SAFE_NO_PAD.encode("hello");
        assert_eq!(
            decode_protocol_token(&no_dots, 100).unwrap_err().code(),
            "malformed_token"
        );
        // Size is checked before decoding, in both forms.
        assert_eq!(
            decode_protocol_token(jwt, 10).unwrap_err().code(),
            "token_too_large"
        );
        assert_eq!(
            decode_protocol_token(&encoded, jwt.len() - 1)
                .unwrap_err()
                .code(),
            "token_too_large"
        );
        assert!(decode_protocol_token(&encoded, jwt.len()).is_ok());
    }

    #[test]
    fn decoded_length_estimate_is_exact() {
        for n in 0..64 {
            let text = "x".repeat(n);
            let encoded = URL_SAFE_NO_PAD.encode(&text);
            let estimate = encoded.len() / 4 * 3 + (encoded.len() % 4).saturating_sub(1);
            assert_eq!(estimate, n);
        }
    }

    #[test]
    fn debug_hides_tokens() {
        let offer = parse(&["jwt-auth, jwt.secret-token-text"]).unwrap();
        let shown = format!("{offer:?}");
        assert!(!shown.contains("secret-token-text"), "{shown}");
    }
}
