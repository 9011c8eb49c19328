//! Reading a token **without verifying it**. Nothing here authenticates anyone.
//!
//! For tools and harnesses that want to show what a token says (say, `agentwire token` printing
//! the claims it minted, or a probe explaining why a server refused a token). Never base an
//! access decision on it: use [`Validator`](crate::Validator).

use serde_json::{Map, Value};

use crate::{AuthError, Token, jws};

/// A token's header fields and claims, unverified.
#[derive(Clone, Debug, PartialEq)]
pub struct UnverifiedToken {
    alg: String,
    kid: Option<String>,
    claims: Map<String, Value>,
}

impl UnverifiedToken {
    /// The header's `alg`, whatever it says (`none` included).
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The claims, unverified.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Unwraps the claims.
    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }
}

/// Decodes a compact JWT's header and claims without checking the signature, the algorithm,
/// the expiry or anything else.
///
/// # Errors
///
/// [`AuthError::MalformedToken`] when it is not a compact JWT with a JSON object header
/// (with a string `alg`) and JSON object claims.
pub fn decode_unverified(token: &Token) -> Result<UnverifiedToken, AuthError> {
    let parts = jws::split(token.expose_secret())?;
    let mut buf = Vec::new();
    jws::decode_part(parts.header, &mut buf)?;
    let header = jws::parse_header(&buf)?;
    let alg = header.alg.into_owned();
    let kid = header.kid.map(|k| k.into_owned());
    jws::decode_part(parts.payload, &mut buf)?;
    let claims = serde_json::from_slice(&buf)
        .map_err(|_| AuthError::malformed("the claims are not a JSON object"))?;
    Ok(UnverifiedToken { alg, kid, claims })
}
