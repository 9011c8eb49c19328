//! [`Validator`]: JWT validation with an explicit algorithm allow-list.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{AlgName, AllowedAlgorithms};
use crate::jws::{Claim, Registered, Shape};
use crate::{
    Algorithm, AuthError, ConfigError, DEFAULT_MAX_TOKEN_BYTES, Key, Negotiation, Principal, Token,
    jws,
};

/// The default clock-skew allowance for `exp`, `nbf` and `iat` (60 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Validates tokens: built once, shared by every connection.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`, and validating takes microseconds (see the
/// `auth` benchmark). What it checks, in order:
///
/// 1. length at most [`max_token_bytes`](ValidatorBuilder::max_token_bytes), before any
///    decoding (`token_too_large`);
/// 2. a compact JWS of three base64url parts whose header is a JSON object with a string `alg`
///    and no `crit` (`malformed_token`);
/// 3. `alg` on the allow-list, which never holds `none` and only holds algorithms some
///    configured key can verify (`disallowed_algorithm`); so a token saying `HS256` is refused
///    when only public keys are configured: an RSA public key is never an HMAC secret;
/// 4. a key: with a `kid` in the header, only keys with that id (or without any id) are tried
///    (`unknown_key_id`); the key type must fit the algorithm;
/// 5. the signature (`invalid_signature`): public-key signatures are verified by
///    `jsonwebtoken`; HMAC tags are compared (in constant time) by `aws-lc-rs`, jsonwebtoken's
///    backend here, with each key's HMAC key schedule computed once rather than per token;
/// 6. only then the claims: a JSON object whose registered claims appear once
///    (`malformed_token`); `exp` required (`missing_claim`) and not
///    passed (`token_expired`); `nbf`, when present, reached (`token_not_yet_valid`); with a
///    maximum age, `iat` required and recent (`token_too_old`); `iss` and `aud` when configured
///    (`invalid_issuer`, `invalid_audience`); `sub` a non-empty string (`missing_subject`);
///    `permissions` an array of strings and `scope` a string when present.
///
/// Time claims are NumericDates (numbers of seconds, fractions allowed); `exp`, `nbf` and `iat`
/// of another JSON type make the token malformed. The leeway applies to all three.
/// When no issuer (audience) is configured, `iss` (`aud`) is not looked at.
///
/// ```
/// use agentwire_auth::{Key, Validator};
/// use std::time::Duration;
///
/// let validator = Validator::builder()
///     .key(Key::hmac("a secret of at least thirty-two bytes!")?)
///     .issuer("https://auth.example.com")
///     .audience("agentwire")
///     .leeway(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(validator.allowed_algorithms().to_string(), "HS256, HS384, HS512");
/// # Ok::<(), agentwire_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Vec<Key>,
    any_kid: bool,
    allowed: AllowedAlgorithms,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway_secs: u64,
    max_token_bytes: usize,
    max_age_secs: Option<u64>,
}

/// Configuration of a [`Validator`].
#[derive(Clone, Debug)]
pub struct ValidatorBuilder {
    keys: Vec<Key>,
    algorithms: Option<Vec<Algorithm>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    max_token_bytes: usize,
    max_age: Option<Duration>,
}

impl ValidatorBuilder {
    /// Adds a verification key.
    pub fn key(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds verification keys (e.g. [`Key::from_jwks`]).
    pub fn keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// The algorithm allow-list. Default: every algorithm some configured key can verify
    /// (HS256/384/512 for HMAC secrets, RS*/PS* for RSA keys, ES256 for P-256, ES384 for P-384,
    /// EdDSA for Ed25519). Each listed algorithm must have a key.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Adds an accepted issuer; once any is set, `iss` must equal one of them.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Adds an accepted audience; once any is set, `aud` (a string or an array of strings)
    /// must name one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat`, whole seconds (default
    /// [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest token accepted, in bytes (default
    /// [`DEFAULT_MAX_TOKEN_BYTES`](crate::DEFAULT_MAX_TOKEN_BYTES)).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// Refuse tokens issued (`iat`) longer ago than this, whole seconds; `iat` becomes
    /// required. Default: no limit.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Builds the validator.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoKeys`], [`ConfigError::NoAlgorithms`] (an empty explicit list), or
    /// [`ConfigError::NoKeyForAlgorithm`].
    pub fn build(self) -> Result<Validator, ConfigError> {
        crate::key::install_crypto_provider();
        if self.keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        let supported = |alg: Algorithm| self.keys.iter().any(|k| k.supports(alg));
        let allowed = match &self.algorithms {
            None => Algorithm::ALL
                .into_iter()
                .filter(|a| supported(*a))
                .collect(),
            Some(list) if list.is_empty() => return Err(ConfigError::NoAlgorithms),
            Some(list) => {
                if let Some(&alg) = list.iter().find(|a| !supported(**a)) {
                    return Err(ConfigError::NoKeyForAlgorithm { alg });
                }
                list.clone()
            }
        };
        let mask = allowed.iter().fold(0, |m, a| m | a.bit());
        Ok(Validator {
            inner: Arc::new(Inner {
                any_kid: self.keys.iter().any(|k| k.kid().is_some()),
                keys: self.keys,
                allowed: AllowedAlgorithms(mask),
                issuers: self.issuers,
                audiences: self.audiences,
                leeway_secs: self.leeway.as_secs(),
                max_token_bytes: self.max_token_bytes,
                max_age_secs: self.max_age.map(|d| d.as_secs()),
            }),
        })
    }
}

impl Validator {
    /// Starts a configuration.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder {
            keys: Vec::new(),
            algorithms: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_age: None,
        }
    }

    /// Validates a token now.
    ///
    /// # Errors
    ///
    /// An authentication error (close 4401); see the type's documentation for the order of
    /// the checks.
    pub fn validate(&self, token: &Token) -> Result<Principal, AuthError> {
        self.validate_at(token, SystemTime::now())
    }

    /// Validates a token as of `now` (deterministic tests, or a server's own clock).
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn validate_at(&self, token: &Token, now: SystemTime) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let text = token.expose_secret();
        if text.len() > inner.max_token_bytes {
            return Err(AuthError::TokenTooLarge {
                len: text.len(),
                max: inner.max_token_bytes,
            });
        }
        let parts = jws::split(text)?;
        let mut header_buf = [0u8; jws::HEADER_STACK_BYTES];
        let mut header_vec = Vec::new();
        let header = jws::parse_header(jws::decode_header(
            parts.header,
            &mut header_buf,
            &mut header_vec,
        )?)?;
        let alg = Algorithm::from_name(&header.alg)
            .filter(|a| inner.allowed.contains(*a))
            .ok_or_else(|| AuthError::DisallowedAlgorithm {
                alg: AlgName::new(&header.alg),
                allowed: inner.allowed,
            })?;
        if header.crit.is_some() {
            return Err(AuthError::malformed(
                "critical header parameters (`crit`) are not supported",
            ));
        }
        // A token's kid only matters when some key has an id.
        let kid = header.kid.as_deref().filter(|_| inner.any_kid);
        if let Some(kid) = kid
            && !inner
                .keys
                .iter()
                .any(|k| k.kid().is_none_or(|id| id == kid))
        {
            return Err(AuthError::UnknownKeyId);
        }
        let fits = |key: &&Key| {
            key.supports(alg) && kid.is_none_or(|kid| key.kid().is_none_or(|id| id == kid))
        };
        if !inner.keys.iter().any(|k| fits(&k)) {
            // A key with this id exists but cannot verify this algorithm.
            return Err(AuthError::DisallowedAlgorithm {
                alg: AlgName::new(alg.as_str()),
                allowed: inner.allowed,
            });
        }
        // Decoded (so checked) before verification, parsed only after it.
        let mut payload = Vec::with_capacity(parts.payload.len() / 4 * 3 + 3);
        jws::decode_part(parts.payload, &mut payload)?;
        let mut signature_buf = [0u8; jws::MAX_SIGNATURE_BYTES];
        let Some(signature) = jws::decode_signature(parts.signature, &mut signature_buf)? else {
            return Err(AuthError::InvalidSignature);
        };
        let message = parts.message.as_bytes();
        // Several keys may fit a token without a kid (rotation without key ids).
        let verified = inner
            .keys
            .iter()
            .filter(fits)
            .any(|key| key.verify(alg, message, signature, parts.signature));
        if !verified {
            return Err(AuthError::InvalidSignature);
        }
        let raw = String::from_utf8(payload)
            .map_err(|_| AuthError::malformed("the claims are not UTF-8 JSON"))?;
        let registered = jws::parse_claims(&raw)?;
        let checked = inner.check_claims(&registered, unix_seconds(now))?;
        drop(registered);
        Ok(Principal::new(checked, alg, raw))
    }

    /// Validates the credential of a negotiated handshake (its error, if it has one).
    ///
    /// # Errors
    ///
    /// The negotiation's credential error, or [`validate`](Self::validate)'s.
    pub fn authenticate(&self, negotiation: &Negotiation) -> Result<Principal, AuthError> {
        let credential = negotiation.credential().map_err(Clone::clone)?;
        self.validate(credential.token())
    }

    /// Validates the token of an `auth_refresh` on an open connection: like
    /// [`validate`](Self::validate), and the token must name the same user (`sub`) as the
    /// connection's current principal.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate), plus [`AuthError::SubjectMismatch`].
    pub fn validate_refresh(
        &self,
        token: &Token,
        current: &Principal,
    ) -> Result<Principal, AuthError> {
        let principal = self.validate(token)?;
        if principal.user_id() != current.user_id() {
            return Err(AuthError::SubjectMismatch);
        }
        Ok(principal)
    }

    /// The longest token accepted, in bytes: pass it to
    /// [`HandshakeRequest::max_token_bytes`](crate::HandshakeRequest::max_token_bytes).
    pub fn max_token_bytes(&self) -> usize {
        self.inner.max_token_bytes
    }

    /// The algorithm allow-list.
    pub fn allowed_algorithms(&self) -> AllowedAlgorithms {
        self.inner.allowed
    }

    /// The configured keys.
    pub fn keys(&self) -> &[Key] {
        &self.inner.keys
    }
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Validator")
            .field("keys", &inner.keys)
            .field("allowed", &inner.allowed)
            .field("issuers", &inner.issuers)
            .field("audiences", &inner.audiences)
            .field("leeway_secs", &inner.leeway_secs)
            .field("max_token_bytes", &inner.max_token_bytes)
            .field("max_age_secs", &inner.max_age_secs)
            .finish()
    }
}

/// What the claim checks extract.
pub(crate) struct Checked {
    pub(crate) user_id: String,
    pub(crate) expires_at: u64,
}

impl Inner {
    fn check_claims(&self, claims: &Registered<'_>, now: f64) -> Result<Checked, AuthError> {
        let leeway = self.leeway_secs as f64;

        let exp = numeric_date(claims.exp.as_ref(), "exp")?
            .ok_or(AuthError::MissingClaim { claim: "exp" })?;
        if now >= exp + leeway {
            return Err(AuthError::TokenExpired {
                expired_at: exp as u64,
            });
        }
        if let Some(nbf) = numeric_date(claims.nbf.as_ref(), "nbf")?
            && now + leeway < nbf
        {
            return Err(AuthError::TokenNotYetValid {
                valid_from: nbf as u64,
            });
        }
        let iat = numeric_date(claims.iat.as_ref(), "iat")?;
        if let Some(max_age) = self.max_age_secs {
            let iat = iat.ok_or(AuthError::MissingClaim { claim: "iat" })?;
            if now + leeway < iat {
                return Err(AuthError::TokenNotYetValid {
                    valid_from: iat as u64,
                });
            }
            if now - iat > max_age as f64 + leeway {
                return Err(AuthError::TokenTooOld {
                    issued_at: iat as u64,
                    max_age_secs: max_age,
                });
            }
        }

        if !self.issuers.is_empty() {
            match claims.iss.as_ref().and_then(Claim::as_str) {
                Some(iss) if self.issuers.iter().any(|i| i == iss) => {}
                _ => return Err(AuthError::InvalidIssuer),
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match &claims.aud {
                Some(Claim::String(aud)) => accepted(aud),
                Some(Claim::Array(auds)) => auds.iter().filter_map(Claim::as_str).any(accepted),
                _ => false,
            };
            if !ok {
                return Err(AuthError::InvalidAudience);
            }
        }

        let user_id = match &claims.sub {
            None | Some(Claim::Null) => return Err(AuthError::MissingSubject),
            Some(Claim::String(sub)) if sub.trim().is_empty() => {
                return Err(AuthError::MissingSubject);
            }
            Some(Claim::String(sub)) => sub.clone().into_owned(),
            Some(_) => return Err(AuthError::malformed("`sub` must be a string")),
        };
        check_permissions(claims)?;

        Ok(Checked {
            user_id,
            expires_at: exp as u64,
        })
    }
}

/// A NumericDate claim (RFC 7519 section 2): `Ok(None)` when absent (or null).
fn numeric_date(claim: Option<&Claim<'_>>, name: &'static str) -> Result<Option<f64>, AuthError> {
    match claim {
        None | Some(Claim::Null) => Ok(None),
        Some(Claim::Number(secs)) if secs.is_finite() => Ok(Some(*secs)),
        Some(_) => Err(AuthError::malformed(match name {
            "exp" => "`exp` must be a number of seconds since the epoch",
            "nbf" => "`nbf` must be a number of seconds since the epoch",
            _ => "`iat` must be a number of seconds since the epoch",
        })),
    }
}

/// Checks the shapes of `permissions` and `scope` (their values are read lazily, see
/// [`Principal::permissions`]).
fn check_permissions(claims: &Registered<'_>) -> Result<(), AuthError> {
    if matches!(&claims.permissions, Some(shape) if *shape != Shape::StringArray) {
        return Err(AuthError::malformed(
            "`permissions` must be an array of strings",
        ));
    }
    if matches!(&claims.scope, Some(shape) if *shape != Shape::String) {
        return Err(AuthError::malformed(
            "`scope` must be a string of space-separated scopes",
        ));
    }
    Ok(())
}

fn unix_seconds(now: SystemTime) -> f64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
