//! Minting tokens and the header values a client sends: always available, no test material.
//!
//! A claims builder ([`Claims`]), a signing key from an HMAC secret or a PEM private key
//! ([`SigningKey`]), and what a client puts on the wire ([`offer_header`],
//! [`offer_protocols`], [`bearer_header`]). This is what a token service, a command-line
//! tool (`agentwire token`, `agentwire serve --dev`) or a load generator needs; the keys are
//! always the caller's.
//!
//! The committed fixture keys for tests, and tokens a validator must refuse, are in the
//! `testing` module (cargo feature `testing`), which re-exports everything here.
//!
//! ```
//! use std::time::Duration;
//!
//! use agentwire_auth::mint::{Claims, SigningKey, offer_header};
//! use agentwire_auth::{Algorithm, HandshakeRequest, Key, ProtocolOffer, Validator};
//!
//! let secret = "an HMAC secret of at least 32 bytes, from config";
//! let token = Claims::new("user-1")
//!     .audience("agentwire")
//!     .expires_in(Duration::from_secs(600))
//!     .sign(&SigningKey::hmac(Algorithm::HS256, secret)?)?;
//!
//! // What a client offers, and what the server does with it.
//! let header = offer_header(&token);
//! let negotiation = HandshakeRequest::new()
//!     .offer(ProtocolOffer::parse([header.as_str()]).unwrap())
//!     .negotiate()
//!     .unwrap();
//! let validator = Validator::builder()
//!     .key(Key::hmac(secret)?)
//!     .audience("agentwire")
//!     .build()?;
//! let principal = validator.authenticate(&negotiation).unwrap();
//! assert_eq!(principal.user_id(), "user-1");
//! # Ok::<(), agentwire_auth::ConfigError>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use crate::{Algorithm, ConfigError, JWT_PROTOCOL_PREFIX, MARKER_PROTOCOL, Token};

/// The default lifetime of [`Claims::new`]: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A claims set under construction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    map: Map<String, Value>,
}

impl Claims {
    /// `sub`, `iat` now and `exp` in [`DEFAULT_TTL`].
    pub fn new(sub: impl Into<String>) -> Self {
        let now = now_secs();
        Self::empty()
            .subject(sub)
            .issued_at(now)
            .expires_at(now.saturating_add(DEFAULT_TTL.as_secs()))
    }

    /// No claims at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Sets `sub`.
    pub fn subject(self, sub: impl Into<String>) -> Self {
        self.claim("sub", sub.into())
    }

    /// Sets `exp` (unix seconds).
    pub fn expires_at(self, unix_secs: u64) -> Self {
        self.claim("exp", unix_secs)
    }

    /// Sets `exp` to now plus `ttl`.
    pub fn expires_in(self, ttl: Duration) -> Self {
        self.expires_at(now_secs().saturating_add(ttl.as_secs()))
    }

    /// Makes the token expired `ago`: `exp` is now minus `ago` (and `iat` an hour before
    /// that). A validator refuses it with `token_expired` once `ago` exceeds its leeway (60 s by
    /// default), so a test that wants a refusal passes more than that.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentwire_auth::mint::Claims;
    ///
    /// let claims = Claims::new("u").expired_for(Duration::from_secs(300));
    /// let exp = claims.as_map()["exp"].as_u64().unwrap();
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// assert!(exp <= now - 300);
    /// ```
    pub fn expired_for(self, ago: Duration) -> Self {
        let exp = now_secs().saturating_sub(ago.as_secs());
        self.issued_at(exp.saturating_sub(3600)).expires_at(exp)
    }

    /// Makes the token not valid yet for `wait`: `nbf` is now plus `wait`. A validator refuses
    /// it with `token_not_yet_valid` while `wait` exceeds its leeway.
    pub fn not_before_in(self, wait: Duration) -> Self {
        self.not_before(now_secs().saturating_add(wait.as_secs()))
    }

    /// Sets `iat` (unix seconds).
    pub fn issued_at(self, unix_secs: u64) -> Self {
        self.claim("iat", unix_secs)
    }

    /// Sets `nbf` (unix seconds).
    pub fn not_before(self, unix_secs: u64) -> Self {
        self.claim("nbf", unix_secs)
    }

    /// Sets `iss`.
    pub fn issuer(self, iss: impl Into<String>) -> Self {
        self.claim("iss", iss.into())
    }

    /// Sets `aud` to one string.
    pub fn audience(self, aud: impl Into<String>) -> Self {
        self.claim("aud", aud.into())
    }

    /// Sets `aud` to an array of strings.
    pub fn audiences<S: Into<String>>(self, auds: impl IntoIterator<Item = S>) -> Self {
        let auds: Vec<Value> = auds.into_iter().map(|a| Value::String(a.into())).collect();
        self.claim("aud", auds)
    }

    /// Sets `permissions` to an array of strings.
    pub fn permissions<S: Into<String>>(self, permissions: impl IntoIterator<Item = S>) -> Self {
        let permissions: Vec<Value> = permissions
            .into_iter()
            .map(|p| Value::String(p.into()))
            .collect();
        self.claim("permissions", permissions)
    }

    /// Sets `scope` (space-separated).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.claim("scope", scope.into())
    }

    /// Sets any claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.map.insert(name.into(), value.into());
        self
    }

    /// Removes a claim (to build tokens without `sub`, `exp`, ...).
    pub fn without(mut self, name: &str) -> Self {
        self.map.remove(name);
        self
    }

    /// The claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// Signs the claims: a compact JWT.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Signing`] if the key refuses (it cannot with the keys this module builds).
    pub fn sign(&self, key: &SigningKey) -> Result<Token, ConfigError> {
        key.sign(self)
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Self { map }
    }
}

/// A private key (or HMAC secret) and the algorithm to sign with. `Debug` shows no material.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
}

impl SigningKey {
    /// An HMAC secret for HS256, HS384 or HS512. Any length is accepted here, so tests can
    /// mint tokens with weak secrets too; a [`Validator`](crate::Validator) only takes secrets
    /// of at least [`MIN_HMAC_SECRET_BYTES`](crate::MIN_HMAC_SECRET_BYTES).
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyAlgorithmMismatch`] for a non-HMAC algorithm.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        crate::key::install_crypto_provider();
        if !alg.is_hmac() {
            return Err(ConfigError::KeyAlgorithmMismatch { alg });
        }
        Ok(Self {
            alg,
            kid: None,
            key: EncodingKey::from_secret(secret.as_ref()),
        })
    }

    /// A PEM private key for a public-key algorithm: RSA (PKCS#1 or PKCS#8) for RS*/PS*, a
    /// PKCS#8 EC key on the matching curve for ES256/ES384, a PKCS#8 Ed25519 key for EdDSA.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyAlgorithmMismatch`] for an HMAC algorithm or a key of another type or
    /// curve; [`ConfigError::InvalidPem`] for a PEM that is not a private key.
    pub fn from_pem(alg: Algorithm, private_pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        use Algorithm as A;
        crate::key::install_crypto_provider();
        let pem = private_pem.as_ref();
        let key = match alg {
            A::HS256 | A::HS384 | A::HS512 => {
                return Err(ConfigError::KeyAlgorithmMismatch { alg });
            }
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
                EncodingKey::from_rsa_pem(pem)
            }
            A::ES256 | A::ES384 => EncodingKey::from_ec_pem(pem),
            A::EdDSA => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|_| ConfigError::InvalidPem {
            reason: "not a private key of the algorithm's type (PKCS#8, or PKCS#1 for RSA)",
        })?;
        if matches!(alg, A::ES256 | A::ES384 | A::EdDSA) {
            // The curve is only checked when signing: probe once.
            jsonwebtoken::crypto::sign(b"probe", &key, alg.to_jwt())
                .map_err(|_| ConfigError::KeyAlgorithmMismatch { alg })?;
        }
        Ok(Self {
            alg,
            kid: None,
            key,
        })
    }

    /// Puts `kid` in the header of the tokens this key signs.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` put in headers, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs claims: a compact JWT with header `{"typ": "JWT", "alg": ..., "kid": ...}`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Signing`] if the key refuses.
    pub fn sign(&self, claims: &Claims) -> Result<Token, ConfigError> {
        let mut header = Header::new(self.alg.to_jwt());
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, &claims.map, &self.key)
            .map(Token::new)
            .map_err(|e| ConfigError::Signing {
                reason: e.to_string(),
            })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The `Sec-WebSocket-Protocol` value a client offers for `token`: `jwt-auth, jwt.<token>`.
pub fn offer_header(token: &Token) -> String {
    let [marker, protocol] = offer_protocols(token);
    format!("{marker}, {protocol}")
}

/// The same offer with the token base64url-encoded (no padding): `jwt-auth, jwt.<base64url>`.
pub fn offer_header_base64url(token: &Token) -> String {
    format!(
        "{MARKER_PROTOCOL}, {JWT_PROTOCOL_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(token.expose_secret())
    )
}

/// The protocols to pass to a client library that takes a list (the JavaScript
/// `new WebSocket(url, protocols)` form): `["jwt-auth", "jwt.<token>"]`.
pub fn offer_protocols(token: &Token) -> [String; 2] {
    [
        MARKER_PROTOCOL.to_owned(),
        format!("{JWT_PROTOCOL_PREFIX}{}", token.expose_secret()),
    ]
}

/// The `Authorization` header value: `Bearer <token>`.
pub fn bearer_header(token: &Token) -> String {
    format!("Bearer {}", token.expose_secret())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
