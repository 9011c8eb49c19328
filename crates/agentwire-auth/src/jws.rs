//! Compact JWS structure: the parts, the few header fields read before verification, and the
//! registered claims read after it.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::AuthError;

const NOT_BASE64URL: &str = "a part of the token is not base64url without padding";

/// The parts of a compact JWS.
pub(crate) struct Parts<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`: what the signature covers.
    pub(crate) message: &'a str,
}

pub(crate) fn split(token: &str) -> Result<Parts<'_>, AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok(Parts {
            header,
            payload,
            signature,
            message: &token[..header.len() + 1 + payload.len()],
        }),
        _ if token.bytes().filter(|&b| b == b'.').count() == 4 => Err(AuthError::malformed(
            "encrypted tokens (JWE, five parts) are not supported; send a signed JWT",
        )),
        _ => Err(AuthError::malformed(
            "not a compact JWT: expected three base64url parts separated by dots",
        )),
    }
}

/// Decodes a base64url part into `buf`.
pub(crate) fn decode_part(part: &str, buf: &mut Vec<u8>) -> Result<(), AuthError> {
    buf.clear();
    URL_SAFE_NO_PAD
        .decode_vec(part, buf)
        .map_err(|_| AuthError::malformed(NOT_BASE64URL))
}

/// Headers up to this size (decoded) are decoded on the stack; any realistic header fits.
pub(crate) const HEADER_STACK_BYTES: usize = 256;

/// Decodes the header part into `stack`, or into `heap` when it is larger.
pub(crate) fn decode_header<'b>(
    part: &str,
    stack: &'b mut [u8; HEADER_STACK_BYTES],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], AuthError> {
    if part.len() <= HEADER_STACK_BYTES / 3 * 4 {
        let len = URL_SAFE_NO_PAD
            .decode_slice(part, stack)
            .map_err(|_| AuthError::malformed(NOT_BASE64URL))?;
        Ok(&stack[..len])
    } else {
        decode_part(part, heap)?;
        Ok(heap)
    }
}

/// The longest signature any supported algorithm makes (RSA with an 8192-bit key).
pub(crate) const MAX_SIGNATURE_BYTES: usize = 1024;

/// Decodes the signature part into `out`; `Ok(None)` when it is longer than any supported
/// algorithm's signature (so it cannot verify).
pub(crate) fn decode_signature<'b>(
    part: &str,
    out: &'b mut [u8; MAX_SIGNATURE_BYTES],
) -> Result<Option<&'b [u8]>, AuthError> {
    if part.len() > (MAX_SIGNATURE_BYTES * 4).div_ceil(3) {
        return Ok(None);
    }
    let len = URL_SAFE_NO_PAD
        .decode_slice(part, out)
        .map_err(|_| AuthError::malformed(NOT_BASE64URL))?;
    Ok(Some(&out[..len]))
}

/// The header fields read before verification.
#[derive(serde::Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) crit: Option<IgnoredAny>,
}

/// Parses the decoded header.
pub(crate) fn parse_header(decoded: &[u8]) -> Result<Header<'_>, AuthError> {
    const BAD: &str = "the header is not a JSON object with a string `alg`";
    // serde would also read a struct from an array (`["HS256"]`): only objects are headers.
    if decoded.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::malformed(BAD));
    }
    serde_json::from_slice(decoded).map_err(|_| AuthError::malformed(BAD))
}

/// The registered claims agentwire reads, borrowed from the decoded payload. Parsing it also
/// checks that the whole payload is one JSON object. A claim named twice is refused (RFC 7519
/// section 4 allows either refusing or keeping the last; two `sub`s or `exp`s are how
/// parser-differential attacks start).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct Registered<'a> {
    #[serde(borrow)]
    pub(crate) sub: Option<Claim<'a>>,
    #[serde(borrow)]
    pub(crate) exp: Option<Claim<'a>>,
    #[serde(borrow)]
    pub(crate) nbf: Option<Claim<'a>>,
    #[serde(borrow)]
    pub(crate) iat: Option<Claim<'a>>,
    #[serde(borrow)]
    pub(crate) iss: Option<Claim<'a>>,
    #[serde(borrow)]
    pub(crate) aud: Option<Claim<'a>>,
    pub(crate) permissions: Option<Shape>,
    pub(crate) scope: Option<Shape>,
}

/// Parses the decoded claims (already checked to be UTF-8, which spares serde_json checking
/// every string again).
pub(crate) fn parse_claims(decoded: &str) -> Result<Registered<'_>, AuthError> {
    const BAD: &str = "the claims are not a JSON object";
    if decoded.trim_ascii_start().as_bytes().first() != Some(&b'{') {
        return Err(AuthError::malformed(BAD));
    }
    serde_json::from_str(decoded).map_err(|e| {
        if e.to_string().starts_with("duplicate field") {
            AuthError::malformed("the claims name the same registered claim twice")
        } else {
            AuthError::malformed(BAD)
        }
    })
}

/// The permission claims, read when a principal's permissions are first asked for (their
/// shapes were checked during validation).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct PermissionClaims<'a> {
    #[serde(borrow)]
    pub(crate) permissions: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    pub(crate) scope: Option<Cow<'a, str>>,
}

/// The JSON type of a claim whose value is not needed during validation (so nothing is
/// allocated for it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    String,
    StringArray,
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::String)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut all_strings = true;
        while let Some(item) = seq.next_element::<Shape>()? {
            all_strings &= item == Shape::String;
        }
        Ok(if all_strings {
            Shape::StringArray
        } else {
            Shape::Other
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
}

/// A claim's value, as far as the checks need it: no allocation but for escaped strings and
/// arrays; objects are skipped.
#[derive(Debug)]
pub(crate) enum Claim<'a> {
    Null,
    Bool,
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Claim<'a>>),
    Object,
}

impl<'a> Claim<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Claim<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Claim::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Claim::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Claim::Bool)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Claim::Number(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Claim::Number(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Claim::Number(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Claim::String(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Claim::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Claim::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Claim::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Claim::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        for len in [0, 1, 100, 191, 192, 193, 256, 1000] {
            let header = "h".repeat(len);
            let part = URL_SAFE_NO_PAD.encode(&header);
            let mut stack = [0u8; HEADER_STACK_BYTES];
            let mut heap = Vec::new();
            let decoded = decode_header(&part, &mut stack, &mut heap).unwrap();
            assert_eq!(decoded, header.as_bytes(), "{len}");
        }
        let mut stack = [0u8; HEADER_STACK_BYTES];
        let mut heap = Vec::new();
        assert!(decode_header("a", &mut stack, &mut heap).is_err());
    }

    #[test]
    fn signature_sizes() {
        let mut out = [0u8; MAX_SIGNATURE_BYTES];
        let largest = URL_SAFE_NO_PAD.encode([7u8; MAX_SIGNATURE_BYTES]);
        assert_eq!(
            decode_signature(&largest, &mut out)
                .unwrap()
                .map(<[u8]>::len),
            Some(MAX_SIGNATURE_BYTES)
        );
        let too_long = URL_SAFE_NO_PAD.encode([7u8; MAX_SIGNATURE_BYTES + 1]);
        assert!(decode_signature(&too_long, &mut out).unwrap().is_none());
        assert!(decode_signature("", &mut out).unwrap().unwrap().is_empty());
        assert!(decode_signature("a", &mut out).is_err());
        assert!(decode_signature("ab=", &mut out).is_err());
    }

    #[test]
    fn registered_claims() {
        let claims = parse_claims(
            r#"{"sub":"a\u00e9","exp":1.5,"aud":["x",1],"other":{"sub":2},"permissions":null}"#,
        )
        .unwrap();
        assert_eq!(claims.sub.as_ref().and_then(Claim::as_str), Some("a\u{e9}"));
        assert!(matches!(claims.exp, Some(Claim::Number(n)) if n == 1.5));
        assert!(matches!(&claims.aud, Some(Claim::Array(items)) if items.len() == 2));
        assert!(claims.permissions.is_none());
        for bad in ["[]", "1", "", "{", "{} x", r#"{"sub":"a","sub":"b"}"#] {
            assert!(parse_claims(bad).is_err(), "{bad:?}");
        }
        // Other duplicated claims are not registered ones: kept for the application.
        assert!(parse_claims(r#"{"x":1,"x":2}"#).is_ok());
        let shapes = parse_claims(r#"{"permissions":["a",1],"scope":"x y"}"#).unwrap();
        assert_eq!(shapes.permissions, Some(Shape::Other));
        assert_eq!(shapes.scope, Some(Shape::String));
        let shapes = parse_claims(r#"{"permissions":["a","b"],"scope":["x"]}"#).unwrap();
        assert_eq!(shapes.permissions, Some(Shape::StringArray));
        assert_eq!(shapes.scope, Some(Shape::StringArray));
        let shapes = parse_claims(r#"{"permissions":[],"scope":null}"#).unwrap();
        assert_eq!(shapes.permissions, Some(Shape::StringArray));
        assert_eq!(shapes.scope, None);
    }
}
