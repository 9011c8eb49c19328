//! Test material for harnesses and tests (cargo feature `testing`).
//!
//! Committed **test-only** key pairs for every supported algorithm ([`SigningKey::fixture`],
//! [`fixture_key`], [`fixture_validator`], [`FIXTURE_HMAC_SECRET`]) and an unsecured
//! `alg: none` token for negative tests ([`unsecured_token`]). Everything of
//! [`mint`](crate::mint) (the claims builder, signing keys, the header values a client sends)
//! is re-exported here, so tests import from one place.
//!
//! The fixture keys are public (they are in the repository): they must never verify anything
//! in production. They exist so that harnesses and integration tests can cover every algorithm
//! without generating keys.
//!
//! ```
//! use agentwire_auth::testing::{Claims, SigningKey, fixture_validator, offer_header};
//! use agentwire_auth::{Algorithm, HandshakeRequest, ProtocolOffer};
//!
//! let token = Claims::new("user-1")
//!     .permissions(["agents:run"])
//!     .sign(&SigningKey::fixture(Algorithm::ES256))?;
//!
//! // What a client offers, and what the server does with it.
//! let header = offer_header(&token);
//! let negotiation = HandshakeRequest::new()
//!     .offer(ProtocolOffer::parse([header.as_str()]).unwrap())
//!     .negotiate()
//!     .unwrap();
//! assert_eq!(negotiation.protocol(), Some("jwt-auth"));
//! let principal = fixture_validator().authenticate(&negotiation).unwrap();
//! assert_eq!(principal.user_id(), "user-1");
//! assert!(principal.has_permission("agents:run"));
//! # Ok::<(), agentwire_auth::ConfigError>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

pub use crate::mint::{
    Claims, DEFAULT_TTL, SigningKey, bearer_header, offer_header, offer_header_base64url,
    offer_protocols,
};
use crate::{Algorithm, Key, Token, Validator};

/// The committed **test-only** HMAC secret (64 ASCII bytes) of [`SigningKey::fixture`] for
/// HS256, HS384 and HS512.
pub const FIXTURE_HMAC_SECRET: &str = include_str!("../fixtures/keys/hmac-secret.txt");

const RSA_PRIVATE: &str = include_str!("../fixtures/keys/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/keys/rsa-public.pem");
const P256_PRIVATE: &str = include_str!("../fixtures/keys/ec-p256-private.pem");
const P256_PUBLIC: &str = include_str!("../fixtures/keys/ec-p256-public.pem");
const P384_PRIVATE: &str = include_str!("../fixtures/keys/ec-p384-private.pem");
const P384_PUBLIC: &str = include_str!("../fixtures/keys/ec-p384-public.pem");
const ED_PRIVATE: &str = include_str!("../fixtures/keys/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../fixtures/keys/ed25519-public.pem");

impl SigningKey {
    /// The committed **test-only** signing key for `alg` (verified by [`fixture_key`]).
    pub fn fixture(alg: Algorithm) -> Self {
        use Algorithm as A;
        let key = match alg {
            A::HS256 | A::HS384 | A::HS512 => Self::hmac(alg, FIXTURE_HMAC_SECRET),
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
                Self::from_pem(alg, RSA_PRIVATE)
            }
            A::ES256 => Self::from_pem(alg, P256_PRIVATE),
            A::ES384 => Self::from_pem(alg, P384_PRIVATE),
            A::EdDSA => Self::from_pem(alg, ED_PRIVATE),
        };
        // The fixtures are committed and covered by this crate's tests.
        key.expect("committed fixture keys are valid")
    }
}

/// The verification key matching [`SigningKey::fixture`] for `alg`.
pub fn fixture_key(alg: Algorithm) -> Key {
    use Algorithm as A;
    let key = match alg {
        A::HS256 | A::HS384 | A::HS512 => Key::hmac(FIXTURE_HMAC_SECRET),
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
            Key::from_pem(RSA_PUBLIC)
        }
        A::ES256 => Key::from_pem(P256_PUBLIC),
        A::ES384 => Key::from_pem(P384_PUBLIC),
        A::EdDSA => Key::from_pem(ED_PUBLIC),
    };
    key.expect("committed fixture keys are valid")
}

/// The committed **test-only** public key PEM for a public-key algorithm, `None` for HMAC
/// (the secret is [`FIXTURE_HMAC_SECRET`]): what a test passes to `--jwt-public-key`.
pub fn fixture_public_key_pem(alg: Algorithm) -> Option<&'static str> {
    use Algorithm as A;
    match alg {
        A::HS256 | A::HS384 | A::HS512 => None,
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => Some(RSA_PUBLIC),
        A::ES256 => Some(P256_PUBLIC),
        A::ES384 => Some(P384_PUBLIC),
        A::EdDSA => Some(ED_PUBLIC),
    }
}

/// A validator that accepts tokens of every [`SigningKey::fixture`] key (all twelve
/// algorithms), default leeway, no issuer or audience.
pub fn fixture_validator() -> Validator {
    let mut keys = vec![fixture_key(Algorithm::HS256), fixture_key(Algorithm::RS256)];
    keys.extend([Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA].map(fixture_key));
    Validator::builder()
        .keys(keys)
        .build()
        .expect("the fixture keys cover every algorithm")
}

/// An unsecured JWS (`{"alg": "none"}`, empty signature) of `claims`: every validator must
/// refuse it (`disallowed_algorithm`).
pub fn unsecured_token(claims: &Claims) -> Token {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.as_map().clone()).to_string());
    Token::new(format!("{header}.{payload}."))
}
