//! Verification keys: HMAC secrets, PEM public keys and JWK Sets.

use core::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};

use crate::{Algorithm, ConfigError};

/// The shortest HMAC secret accepted, in bytes (RFC 7518 section 3.2: at least the size of the
/// hash output; 32 bytes for HS256).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The smallest RSA modulus accepted, in bits (RFC 7518 sections 3.3 and 3.5).
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted, in bits (the crypto backend's limit).
pub const MAX_RSA_BITS: usize = 8192;

/// The kind of a verification [`Key`], which fixes the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// A shared secret: HS256, HS384, HS512.
    Hmac,
    /// An RSA public key: RS256/384/512 and PS256/384/512.
    Rsa,
    /// A P-256 public key: ES256.
    EcP256,
    /// A P-384 public key: ES384.
    EcP384,
    /// An Ed25519 public key: EdDSA.
    Ed25519,
}

impl KeyType {
    /// A stable lowercase name: `hmac`, `rsa`, `ec_p256`, `ec_p384`, `ed25519`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::Rsa => "rsa",
            Self::EcP256 => "ec_p256",
            Self::EcP384 => "ec_p384",
            Self::Ed25519 => "ed25519",
        }
    }

    /// Whether a key of this type can verify `alg`.
    pub const fn supports(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            Self::Hmac => matches!(alg, A::HS256 | A::HS384 | A::HS512),
            Self::Rsa => matches!(
                alg,
                A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
            ),
            Self::EcP256 => matches!(alg, A::ES256),
            Self::EcP384 => matches!(alg, A::ES384),
            Self::Ed25519 => matches!(alg, A::EdDSA),
        }
    }
}

/// A verification key, with an optional key id (`kid`) and an optional single algorithm it is
/// restricted to.
///
/// Built from an HMAC secret ([`Key::hmac`]), a PEM public key ([`Key::from_pem`]) or a JWK Set
/// ([`Key::from_jwks`]). The key type decides which algorithms the key can ever verify, so an
/// RSA public key is never used as an HMAC secret, whatever a token's header says. `Debug`
/// shows no key material.
#[derive(Clone)]
pub struct Key {
    key_type: KeyType,
    kid: Option<String>,
    algorithm: Option<Algorithm>,
    material: Material,
}

/// What verifies signatures.
#[derive(Clone)]
enum Material {
    /// HMAC keys for SHA-256, -384 and -512, their key schedules computed once (a third of
    /// the HS256 budget when done per token).
    Hmac(Box<[hmac::Key; 3]>),
    /// A public key, verified by jsonwebtoken.
    Public(DecodingKey),
}

impl Key {
    /// An HMAC shared secret (for HS256, HS384, HS512).
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacSecret`] below [`MIN_HMAC_SECRET_BYTES`];
    /// [`ConfigError::PemAsHmacSecret`] for a PEM document (a public key used as an HMAC
    /// secret is the algorithm-confusion attack).
    pub fn hmac(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Err(ConfigError::PemAsHmacSecret);
        }
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(ConfigError::WeakHmacSecret { len: secret.len() });
        }
        Ok(Self::hmac_unchecked(secret))
    }

    fn hmac_unchecked(secret: &[u8]) -> Self {
        Self {
            key_type: KeyType::Hmac,
            kid: None,
            algorithm: None,
            material: Material::Hmac(Box::new([
                hmac::Key::new(hmac::HMAC_SHA256, secret),
                hmac::Key::new(hmac::HMAC_SHA384, secret),
                hmac::Key::new(hmac::HMAC_SHA512, secret),
            ])),
        }
    }

    /// A PEM public key: RSA (`PUBLIC KEY` or `RSA PUBLIC KEY`, 2048 to 8192 bits), EC on P-256
    /// or P-384, or Ed25519 (`PUBLIC KEY`). The type is detected.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidPem`] for anything else, including private keys and certificates
    /// (each with a hint on how to get the public key).
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let pem = pem.as_ref();
        let label = pem_label(pem).ok_or(ConfigError::InvalidPem {
            reason: "no `-----BEGIN ...-----` line",
        })?;
        if label.contains("PRIVATE") {
            return Err(ConfigError::InvalidPem {
                reason: "this is a private key; configure the public key (`openssl pkey -in \
                         key.pem -pubout`)",
            });
        }
        if label == "CERTIFICATE" {
            return Err(ConfigError::InvalidPem {
                reason: "certificates are not supported; extract the public key (`openssl x509 \
                         -in cert.pem -pubkey -noout`)",
            });
        }
        if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
            return Err(ConfigError::InvalidPem {
                reason: "expected a `PUBLIC KEY` or `RSA PUBLIC KEY` block",
            });
        }
        if let Ok(decoding) = DecodingKey::from_rsa_pem(pem) {
            let bits = decoding
                .try_get_as_bytes()
                .ok()
                .and_then(rsa_modulus_bits)
                .ok_or(ConfigError::InvalidPem {
                    reason: "the RSA public key is not valid DER",
                })?;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(ConfigError::InvalidPem {
                    reason: "RSA keys must have 2048 (RFC 7518 section 3.3) to 8192 bits",
                });
            }
            return Ok(Self::public(KeyType::Rsa, decoding));
        }
        if let Ok(decoding) = DecodingKey::from_ec_pem(pem) {
            let key_type = match decoding.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => KeyType::EcP256,
                Ok(97) => KeyType::EcP384,
                _ => {
                    return Err(ConfigError::InvalidPem {
                        reason: "unsupported EC key: only uncompressed P-256 and P-384 keys",
                    });
                }
            };
            return Self::checked(key_type, decoding).map_err(|_| ConfigError::InvalidPem {
                reason: "the EC public key is not a point on P-256 or P-384",
            });
        }
        if let Ok(decoding) = DecodingKey::from_ed_pem(pem) {
            return Self::checked(KeyType::Ed25519, decoding).map_err(|_| {
                ConfigError::InvalidPem {
                    reason: "the Ed25519 public key is invalid",
                }
            });
        }
        Err(ConfigError::InvalidPem {
            reason: "not an RSA, EC (P-256, P-384) or Ed25519 public key",
        })
    }

    /// Every usable signature-verification key of a JWK Set document (RFC 7517), e.g. the
    /// contents of an identity provider's `jwks_uri`.
    ///
    /// Keys marked `"use": "enc"`, keys whose `alg` is not a signature algorithm agentwire
    /// supports, and key types or curves it does not support are skipped. A key's `kid` and
    /// `alg` are kept: a token naming a `kid` is verified only with that key, and a key with an
    /// `alg` only verifies that algorithm.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidJwks`] when the document is not a JWK Set, when a supported key is
    /// broken (wrong lengths, a weak RSA or HMAC key), or when no usable key remains.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>, ConfigError> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_str(json).map_err(|e| ConfigError::InvalidJwks {
            reason: format!("not a JWK Set ({{\"keys\": [...]}}): {e}"),
        })?;
        let mut keys = Vec::new();
        let mut skipped = 0usize;
        for (index, value) in set.keys.into_iter().enumerate() {
            // A key of a type jsonwebtoken cannot even represent (say `"crv": "secp256k1"`) is
            // simply not usable here.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                skipped += 1;
                continue;
            };
            match Self::from_jwk(&jwk).map_err(|reason| ConfigError::InvalidJwks {
                reason: format!("key {index}: {reason}"),
            })? {
                Some(key) => keys.push(key),
                None => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(ConfigError::InvalidJwks {
                reason: format!("no usable signature key ({skipped} skipped)"),
            });
        }
        Ok(keys)
    }

    /// `Ok(None)`: not a signature key agentwire can use. `Err`: a supported key that is broken.
    fn from_jwk(jwk: &Jwk) -> Result<Option<Self>, &'static str> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Ok(None);
        }
        let algorithm = match jwk.common.key_algorithm {
            None => None,
            Some(alg) => match key_algorithm(alg) {
                Some(alg) => Some(alg),
                None => return Ok(None),
            },
        };
        let (key_type, decoding) = match &jwk.algorithm {
            AlgorithmParameters::RSA(params) => {
                let n = URL_SAFE_NO_PAD
                    .decode(params.n.trim_end_matches('='))
                    .map_err(|_| "`n` is not base64url")?;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&unsigned_bits(&n)) {
                    return Err("RSA keys must have 2048 (RFC 7518 section 3.3) to 8192 bits");
                }
                let decoding = DecodingKey::from_rsa_components(&params.n, &params.e)
                    .map_err(|_| "`n` or `e` is not base64url")?;
                (KeyType::Rsa, decoding)
            }
            AlgorithmParameters::EllipticCurve(params) => {
                let (key_type, size) = match params.curve {
                    EllipticCurve::P256 => (KeyType::EcP256, 32),
                    EllipticCurve::P384 => (KeyType::EcP384, 48),
                    _ => return Ok(None),
                };
                let x = URL_SAFE_NO_PAD.decode(params.x.trim_end_matches('='));
                let y = URL_SAFE_NO_PAD.decode(params.y.trim_end_matches('='));
                match (x, y) {
                    (Ok(x), Ok(y)) if x.len() == size && y.len() == size => {}
                    _ => {
                        return Err(
                            "`x` and `y` must be base64url coordinates of the curve's size",
                        );
                    }
                }
                let decoding = DecodingKey::from_ec_components(&params.x, &params.y)
                    .map_err(|_| "`x` or `y` is not base64url")?;
                (key_type, decoding)
            }
            AlgorithmParameters::OctetKeyPair(params) => {
                if params.curve != EllipticCurve::Ed25519 {
                    return Ok(None);
                }
                match URL_SAFE_NO_PAD.decode(params.x.trim_end_matches('=')) {
                    Ok(x) if x.len() == 32 => {}
                    _ => return Err("`x` must be a base64url Ed25519 public key (32 bytes)"),
                }
                let decoding = DecodingKey::from_ed_components(&params.x)
                    .map_err(|_| "`x` is not base64url")?;
                (KeyType::Ed25519, decoding)
            }
            AlgorithmParameters::OctetKey(params) => {
                let k = URL_SAFE_NO_PAD
                    .decode(params.value.trim_end_matches('='))
                    .map_err(|_| "`k` is not base64url")?;
                if k.len() < MIN_HMAC_SECRET_BYTES {
                    return Err("HMAC keys must have at least 32 bytes (RFC 7518 section 3.2)");
                }
                let mut key = Self::hmac_unchecked(&k);
                key.restrict(algorithm, jwk)?;
                return Ok(Some(key));
            }
            _ => return Ok(None),
        };
        let mut key = Self::checked(key_type, decoding)
            .map_err(|_| "the public key is not valid for its curve")?;
        key.restrict(algorithm, jwk)?;
        Ok(Some(key))
    }

    /// Applies a JWK's `alg` and `kid`.
    fn restrict(&mut self, algorithm: Option<Algorithm>, jwk: &Jwk) -> Result<(), &'static str> {
        if let Some(alg) = algorithm {
            if !self.key_type.supports(alg) {
                return Err("its `alg` does not fit its key type");
            }
            self.algorithm = Some(alg);
        }
        self.kid.clone_from(&jwk.common.key_id);
        Ok(())
    }

    fn public(key_type: KeyType, decoding: DecodingKey) -> Self {
        Self {
            key_type,
            kid: None,
            algorithm: None,
            material: Material::Public(decoding),
        }
    }

    /// Whether `signature` (decoded) is a valid `alg` signature of `message` by this key.
    /// `signature_b64` is the same signature as it appears in the token.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        signature_b64: &str,
    ) -> bool {
        match &self.material {
            Material::Hmac(keys) => {
                let key = match alg {
                    Algorithm::HS256 => &keys[0],
                    Algorithm::HS384 => &keys[1],
                    Algorithm::HS512 => &keys[2],
                    _ => return false,
                };
                // Constant-time comparison of the tags.
                hmac::verify(key, message, signature).is_ok()
            }
            Material::Public(decoding) => {
                // Any error (a key that does not parse for this algorithm) is a failure too.
                jsonwebtoken::crypto::verify(signature_b64, message, decoding, alg.to_jwt())
                    .unwrap_or(false)
            }
        }
    }

    /// A key whose public point is checked now, with the crypto backend, rather than at the
    /// first token (EC, Ed25519).
    fn checked(key_type: KeyType, decoding: DecodingKey) -> Result<Self, ()> {
        let probe: Option<&'static dyn VerificationAlgorithm> = match key_type {
            KeyType::EcP256 => Some(&signature::ECDSA_P256_SHA256_FIXED),
            KeyType::EcP384 => Some(&signature::ECDSA_P384_SHA384_FIXED),
            KeyType::Ed25519 => {
                if decoding.try_get_as_bytes().map(<[u8]>::len) != Ok(32) {
                    return Err(());
                }
                Some(&signature::ED25519)
            }
            KeyType::Hmac | KeyType::Rsa => None,
        };
        if let Some(algorithm) = probe {
            let bytes = decoding.try_get_as_bytes().map_err(|_| ())?;
            ParsedPublicKey::new(algorithm, bytes).map_err(|_| ())?;
        }
        Ok(Self::public(key_type, decoding))
    }

    /// Sets the key id: a token whose header names a `kid` is verified only with keys of that
    /// id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Restricts the key to one algorithm.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyAlgorithmMismatch`] when the key type cannot verify `alg`.
    pub fn with_algorithm(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if !self.key_type.supports(alg) {
            return Err(ConfigError::KeyAlgorithmMismatch { alg });
        }
        self.algorithm = Some(alg);
        Ok(self)
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The single algorithm the key is restricted to, if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.key_type.supports(alg) && self.algorithm.is_none_or(|only| only == alg)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("key_type", &self.key_type)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Makes jsonwebtoken use aws-lc-rs, the backend this crate enables, explicitly.
///
/// jsonwebtoken picks its backend from its cargo features and panics on first use when both
/// `aws_lc_rs` and `rust_crypto` end up enabled (feature unification with some other crate in
/// the build). Installing the provider first removes that failure. An application that
/// installed another provider before keeps it.
pub(crate) fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    use KeyAlgorithm as K;
    Some(match alg {
        K::HS256 => Algorithm::HS256,
        K::HS384 => Algorithm::HS384,
        K::HS512 => Algorithm::HS512,
        K::RS256 => Algorithm::RS256,
        K::RS384 => Algorithm::RS384,
        K::RS512 => Algorithm::RS512,
        K::PS256 => Algorithm::PS256,
        K::PS384 => Algorithm::PS384,
        K::PS512 => Algorithm::PS512,
        K::ES256 => Algorithm::ES256,
        K::ES384 => Algorithm::ES384,
        K::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The label of the first `-----BEGIN <label>-----` line.
fn pem_label(pem: &[u8]) -> Option<&str> {
    let text = core::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

/// The modulus size of a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent
/// INTEGER }`, or `None` when the DER does not have that shape.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (0x30, body, []) = der_element(der)? else {
        return None;
    };
    let (0x02, modulus, rest) = der_element(body)? else {
        return None;
    };
    let (0x02, _exponent, []) = der_element(rest)? else {
        return None;
    };
    Some(unsigned_bits(modulus))
}

/// One DER element: (tag, contents, what follows).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn unsigned_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (bytes.len() - i - 1) * 8 + (8 - bytes[i].leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUBLIC: &str = include_str!("../fixtures/keys/rsa-public.pem");
    const RSA_PUBLIC_PKCS1: &str = include_str!("../fixtures/keys/rsa-public-pkcs1.pem");
    const RSA_PRIVATE: &str = include_str!("../fixtures/keys/rsa-private.pem");
    const P256_PUBLIC: &str = include_str!("../fixtures/keys/ec-p256-public.pem");
    const P384_PUBLIC: &str = include_str!("../fixtures/keys/ec-p384-public.pem");
    const ED_PUBLIC: &str = include_str!("../fixtures/keys/ed25519-public.pem");
    const JWKS: &str = include_str!("../fixtures/jwks.json");

    #[test]
    fn pem_types_are_detected() {
        for (pem, key_type) in [
            (RSA_PUBLIC, KeyType::Rsa),
            (RSA_PUBLIC_PKCS1, KeyType::Rsa),
            (P256_PUBLIC, KeyType::EcP256),
            (P384_PUBLIC, KeyType::EcP384),
            (ED_PUBLIC, KeyType::Ed25519),
        ] {
            assert_eq!(Key::from_pem(pem).unwrap().key_type(), key_type);
        }
    }

    #[test]
    fn bad_pems_are_explained() {
        let err = Key::from_pem(RSA_PRIVATE).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(Key::from_pem("hello").is_err());
        assert!(
            Key::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err()
        );
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(
            Key::from_pem(cert)
                .unwrap_err()
                .to_string()
                .contains("x509")
        );
    }

    #[test]
    fn hmac_secret_rules() {
        assert_eq!(
            Key::hmac("short").unwrap_err(),
            ConfigError::WeakHmacSecret { len: 5 }
        );
        assert_eq!(
            Key::hmac(RSA_PUBLIC).unwrap_err(),
            ConfigError::PemAsHmacSecret
        );
        assert!(Key::hmac([7u8; 32]).is_ok());
    }

    #[test]
    fn jwks_keys() {
        let keys = Key::from_jwks(JWKS).unwrap();
        let kinds: Vec<_> = keys.iter().map(|k| (k.key_type(), k.kid())).collect();
        assert_eq!(
            kinds,
            [
                (KeyType::Rsa, Some("rsa")),
                (KeyType::EcP256, Some("ec-p256")),
                (KeyType::EcP384, Some("ec-p384")),
                (KeyType::Ed25519, Some("ed25519")),
            ]
        );
    }

    #[test]
    fn jwks_skips_and_refuses() {
        let skipped = r#"{"keys": [
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "x": "AA"},
            {"kty": "oct", "kid": "h", "alg": "HS256", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"}
        ]}"#;
        let keys = Key::from_jwks(skipped).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].algorithm(), Some(Algorithm::HS256));

        for broken in [
            r#"{"keys": []}"#,
            r#"{"nokeys": 1}"#,
            "not json",
            r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
            r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
            r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}"#,
            r#"{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}"#,
            r#"{"keys": [{"kty": "oct", "alg": "RS256", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"}]}"#,
        ] {
            assert!(
                matches!(Key::from_jwks(broken), Err(ConfigError::InvalidJwks { .. })),
                "{broken}"
            );
        }
    }

    #[test]
    fn ec_point_off_the_curve_is_refused() {
        // 32-byte coordinates that are not a point of P-256.
        let jwks = r#"{"keys": [{"kty": "EC", "crv": "P-256",
            "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "y": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert!(Key::from_jwks(jwks).is_err());
    }

    #[test]
    fn with_algorithm_checks_the_type() {
        let key = Key::from_pem(P256_PUBLIC).unwrap();
        assert!(key.clone().with_algorithm(Algorithm::HS256).is_err());
        let key = key.with_algorithm(Algorithm::ES256).unwrap();
        assert!(key.supports(Algorithm::ES256));
        assert!(!key.supports(Algorithm::ES384));
    }

    #[test]
    fn debug_shows_no_material() {
        let key = Key::hmac("0123456789abcdef0123456789abcdef").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("0123456789"), "{shown}");
    }

    #[test]
    fn der_lengths() {
        assert_eq!(unsigned_bits(&[0, 0, 1]), 1);
        assert_eq!(unsigned_bits(&[0x80, 0]), 16);
        assert_eq!(unsigned_bits(&[]), 0);
        assert_eq!(der_element(&[0x30, 0x81]), None);
        assert_eq!(der_element(&[0x02, 0x82, 0xff, 0xff, 1]), None);
        assert_eq!(rsa_modulus_bits(&[0x30, 0x00]), None);
    }
}
