//! Authentication of agentwire WebSocket handshakes.
//!
//! A client authenticates with a JWT, carried in `Authorization: Bearer <jwt>` or, from a
//! browser (which cannot set headers on a WebSocket), in the `Sec-WebSocket-Protocol` offer:
//! the marker `jwt-auth` plus `jwt.<jwt>`. This crate does every step of that without I/O:
//!
//! 1. [`ProtocolOffer::parse`] reads the `Sec-WebSocket-Protocol` header lines (RFC 6455,
//!    RFC 9110 lists and tokens); bad input is an error, never a panic.
//! 2. [`select_protocol`] chooses the protocol to answer: `jwt-auth` when offered, nothing when
//!    nothing was offered, never the protocol that carries the token.
//! 3. [`HandshakeRequest`] extracts the credential (Bearer header, then the offer, then
//!    `?token=` only when enabled) and [`negotiate`](HandshakeRequest::negotiate)s both at once.
//! 4. [`Validator`] checks the token (explicit algorithm allow-list, `exp`, `nbf`, `iss`,
//!    `aud`, `sub`, size, age; keys from an HMAC secret, a PEM public key or a JWKS) and gives
//!    a [`Principal`].
//!
//! Every failure is an [`AuthError`] with a stable [`code`](AuthError::code), a message, and
//! the [`http_status`](AuthError::http_status) (400 before the upgrade for handshake-shape
//! errors) or [`close_code`](AuthError::close_code) (4401 after it) to send. A token is held in
//! a [`Token`], which never shows itself in `Debug`, and no error ever contains token text.
//!
//! ```
//! use agentwire_auth::{HandshakeRequest, Key, ProtocolOffer, Token, Validator};
//! # use agentwire_auth::mint::{Claims, SigningKey, offer_header};
//! # use agentwire_auth::Algorithm;
//!
//! // Once, at start-up.
//! let secret = "an HMAC secret of at least 32 bytes, from config";
//! let validator = Validator::builder()
//!     .key(Key::hmac(secret).unwrap())
//!     .audience("agentwire")
//!     .build()
//!     .unwrap();
//! # let token = Claims::new("user-42").audience("agentwire")
//! #     .sign(&SigningKey::hmac(Algorithm::HS256, secret).unwrap()).unwrap();
//! # let offered = offer_header(&token);
//!
//! // Per upgrade request: `offered` is its Sec-WebSocket-Protocol header,
//! // "jwt-auth, jwt.<jwt>".
//! let request = HandshakeRequest::new()
//!     .offer(ProtocolOffer::parse([offered.as_str()]).unwrap())
//!     .authorization(None)
//!     .max_token_bytes(validator.max_token_bytes());
//! let negotiation = match request.negotiate() {
//!     Ok(negotiation) => negotiation,
//!     Err(e) => panic!("answer HTTP {} with {{code: {}, message: {e}}}", e.http_status(), e.code()),
//! };
//! // Upgrade, answering this protocol:
//! assert_eq!(negotiation.protocol(), Some("jwt-auth"));
//! // Then authenticate; on Err(e): send an `error` frame {code, message}, close e.close_code().
//! let principal = validator.authenticate(&negotiation).unwrap();
//! assert_eq!(principal.user_id(), "user-42");
//!
//! // A bad token: a stable code, a 4401 close, and no token text anywhere.
//! let forged = Token::new("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.");
//! let err = validator.validate(&forged).unwrap_err();
//! assert_eq!((err.code(), err.close_code()), ("disallowed_algorithm", 4401));
//! assert!(!format!("{err} {err:?}").contains("eyJzdWIiOiJhZG1pbiJ9"));
//! ```
//!
//! [`mint`] signs tokens with the caller's keys and gives the header values a client sends.
//! With the `testing` feature, `testing` adds committed fixture keys for every algorithm (for
//! tests only). Reading a token without verifying it lives in [`dangerous`].
//! The wire behaviour, client snippets and the error table are in `docs/auth.md`.

mod algorithm;
mod credential;
pub mod dangerous;
mod error;
mod jws;
mod key;
pub mod mint;
mod offer;
mod principal;
mod token;
mod validator;

#[cfg(feature = "testing")]
pub mod testing;

pub use algorithm::Algorithm;
pub use credential::{
    Credential, CredentialSource, DEFAULT_MAX_TOKEN_BYTES, HandshakeRequest, Negotiation,
};
pub use error::{
    AlgName, AllowedAlgorithms, AuthError, CLOSE_BAD_HANDSHAKE, CLOSE_UNAUTHORIZED, ConfigError,
};
pub use key::{Key, KeyType, MAX_RSA_BITS, MIN_HMAC_SECRET_BYTES, MIN_RSA_BITS};
pub use offer::{
    BEARER_PROTOCOL_PREFIX, JWT_PROTOCOL_PREFIX, MARKER_PROTOCOL, ProtocolOffer, select_protocol,
};
pub use principal::Principal;
pub use token::Token;
pub use validator::{DEFAULT_LEEWAY, Validator, ValidatorBuilder};
