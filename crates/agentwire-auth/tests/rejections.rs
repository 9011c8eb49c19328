//! Every way a token can be wrong fails with its own code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_auth::testing::{
    Claims, FIXTURE_HMAC_SECRET, SigningKey, fixture_key, fixture_public_key_pem,
    fixture_validator, unsecured_token,
};
use agentwire_auth::{Algorithm, AuthError, ConfigError, Key, Token, Validator};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn hs256() -> SigningKey {
    SigningKey::fixture(Algorithm::HS256)
}

fn hmac_validator() -> agentwire_auth::ValidatorBuilder {
    Validator::builder().key(fixture_key(Algorithm::HS256))
}

fn code(validator: &Validator, token: &Token) -> &'static str {
    match validator.validate(token) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn code_at(validator: &Validator, token: &Token, unix: u64) -> &'static str {
    match validator.validate_at(token, at(unix)) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// A compact JWS with exactly this header and payload text, HMAC-signed with `secret`.
fn sign_raw(header: &str, payload: &str, secret: &[u8], alg: jsonwebtoken::Algorithm) -> Token {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).unwrap();
    Token::new(format!("{message}.{signature}"))
}

fn parts(token: &Token) -> [String; 3] {
    let mut it = token.expose_secret().split('.').map(str::to_owned);
    [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
}

fn join(parts: &[String; 3]) -> Token {
    Token::new(parts.join("."))
}

/// Replaces the character in the middle of `part` (all of its bits are significant).
fn flip_middle(part: &str) -> String {
    let mut chars: Vec<char> = part.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn tampered_signature_fails_for_every_algorithm() {
    let validator = fixture_validator();
    for alg in Algorithm::ALL {
        let token = Claims::new("u").sign(&SigningKey::fixture(alg)).unwrap();
        assert_eq!(code(&validator, &token), "ok", "{alg}");
        let mut p = parts(&token);
        p[2] = flip_middle(&p[2]);
        assert_eq!(code(&validator, &join(&p)), "invalid_signature", "{alg}");
        // A signature cut short, or missing.
        let mut p = parts(&token);
        p[2].truncate(p[2].len() / 8 * 4);
        assert_eq!(code(&validator, &join(&p)), "invalid_signature", "{alg}");
        let mut p = parts(&token);
        p[2].clear();
        assert_eq!(code(&validator, &join(&p)), "invalid_signature", "{alg}");
    }
}

#[test]
fn tampered_payload_fails_for_every_algorithm() {
    let validator = fixture_validator();
    for alg in Algorithm::ALL {
        let token = Claims::new("alice")
            .sign(&SigningKey::fixture(alg))
            .unwrap();
        let mut p = parts(&token);
        let claims = Claims::new("admin");
        p[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims.as_map()).unwrap());
        assert_eq!(code(&validator, &join(&p)), "invalid_signature", "{alg}");
        let mut p = parts(&token);
        p[1] = flip_middle(&p[1]);
        assert_ne!(code(&validator, &join(&p)), "ok", "{alg}");
    }
}

#[test]
fn tampered_header_fails() {
    let validator = fixture_validator();
    let token = Claims::new("u").sign(&hs256()).unwrap();
    // Another allowed algorithm of the same key type.
    let mut p = parts(&token);
    p[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS384","typ":"JWT"}"#);
    assert_eq!(code(&validator, &join(&p)), "invalid_signature");
    // Same algorithm, one more header field.
    let mut p = parts(&token);
    p[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","x":1}"#);
    assert_eq!(code(&validator, &join(&p)), "invalid_signature");
}

#[test]
fn alg_none_is_refused_in_every_spelling() {
    let validator = fixture_validator();
    let claims = Claims::new("admin");
    let token = unsecured_token(&claims);
    let err = validator.validate(&token).unwrap_err();
    assert_eq!(err.code(), "disallowed_algorithm");
    assert!(err.to_string().contains("\"none\""), "{err}");

    for alg in [
        "none", "None", "NONE", "nOnE", "", "hs256", "HS257", "RSA-OAEP", "ES512",
    ] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string());
        let payload =
            URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "exp": 4102444800u64}).to_string());
        for signature in ["", "c2ln"] {
            let token = Token::new(format!("{header}.{payload}.{signature}"));
            assert_eq!(code(&validator, &token), "disallowed_algorithm", "{alg:?}");
        }
    }
}

#[test]
fn hmac_with_the_rsa_public_key_as_secret_is_refused() {
    // The algorithm-confusion attack: the attacker knows the public key and signs HS256 with
    // its PEM text as the HMAC secret, hoping the server feeds "the key" to HMAC.
    let pem = fixture_public_key_pem(Algorithm::RS256).unwrap();
    let forged = Claims::new("admin")
        .sign(&SigningKey::hmac(Algorithm::HS256, pem).unwrap())
        .unwrap();

    // Only the RSA key configured: HS256 is not even on the allow-list.
    let rsa_only = Validator::builder()
        .key(Key::from_pem(pem).unwrap())
        .build()
        .unwrap();
    assert!(!rsa_only.allowed_algorithms().contains(Algorithm::HS256));
    let err = rsa_only.validate(&forged).unwrap_err();
    assert_eq!(err.code(), "disallowed_algorithm");
    assert!(err.to_string().contains("RS256"), "{err}");

    // Even if someone lists HS256 explicitly, no HMAC key exists: a configuration error.
    let err = Validator::builder()
        .key(Key::from_pem(pem).unwrap())
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::NoKeyForAlgorithm {
            alg: Algorithm::HS256
        }
    );

    // And the PEM itself can never become an HMAC secret.
    assert_eq!(Key::hmac(pem).unwrap_err(), ConfigError::PemAsHmacSecret);

    // With both a real HMAC secret and the RSA key, HS256 is allowed but only the secret
    // verifies it: the RSA key is never tried as an HMAC secret.
    assert_eq!(code(&fixture_validator(), &forged), "invalid_signature");
}

#[test]
fn signed_with_another_key() {
    let other = SigningKey::from_pem(
        Algorithm::ES256,
        include_str!("../fixtures/keys/ec-p256-other-private.pem"),
    )
    .unwrap();
    let token = Claims::new("u").sign(&other).unwrap();
    assert_eq!(code(&fixture_validator(), &token), "invalid_signature");

    let token = Claims::new("u")
        .sign(&SigningKey::hmac(Algorithm::HS256, "another secret, 32 bytes or more....").unwrap())
        .unwrap();
    assert_eq!(code(&fixture_validator(), &token), "invalid_signature");
}

#[test]
fn expiry_and_leeway() {
    let t = 2_000_000_000;
    let token = Claims::new("u")
        .issued_at(t - 100)
        .expires_at(t)
        .sign(&hs256())
        .unwrap();

    let strict = hmac_validator().leeway(Duration::ZERO).build().unwrap();
    assert_eq!(code_at(&strict, &token, t - 1), "ok");
    assert_eq!(code_at(&strict, &token, t), "token_expired");
    let err = strict.validate_at(&token, at(t + 5)).unwrap_err();
    assert_eq!(err, AuthError::TokenExpired { expired_at: t });

    let lenient = hmac_validator()
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(code_at(&lenient, &token, t + 59), "ok");
    assert_eq!(code_at(&lenient, &token, t + 60), "token_expired");

    // With the real clock: an hour ago.
    let token = Claims::new("u")
        .expires_at(now() - 3600)
        .sign(&hs256())
        .unwrap();
    assert_eq!(code(&lenient, &token), "token_expired");
}

#[test]
fn not_before() {
    let t = 2_000_000_000;
    let token = Claims::new("u")
        .not_before(t)
        .expires_at(t + 1000)
        .sign(&hs256())
        .unwrap();
    let strict = hmac_validator().leeway(Duration::ZERO).build().unwrap();
    assert_eq!(code_at(&strict, &token, t - 1), "token_not_yet_valid");
    assert_eq!(code_at(&strict, &token, t), "ok");
    let lenient = hmac_validator()
        .leeway(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(code_at(&lenient, &token, t - 10), "ok");
    assert_eq!(code_at(&lenient, &token, t - 11), "token_not_yet_valid");

    let token = Claims::new("u")
        .not_before(now() + 3600)
        .sign(&hs256())
        .unwrap();
    assert_eq!(code(&fixture_validator(), &token), "token_not_yet_valid");
}

#[test]
fn time_claims_must_be_numbers() {
    let v = fixture_validator();
    for (name, value) in [
        ("exp", json!("4102444800")),
        ("exp", json!([1])),
        ("nbf", json!("0")),
        ("iat", json!(true)),
    ] {
        let token = Claims::new("u")
            .claim(name, value.clone())
            .sign(&hs256())
            .unwrap();
        let err = v.validate(&token).unwrap_err();
        assert_eq!(err.code(), "malformed_token", "{name}: {value}");
        assert!(err.to_string().contains(name), "{err}");
    }
    // null is the same as absent.
    let token = Claims::new("u")
        .claim("exp", json!(null))
        .sign(&hs256())
        .unwrap();
    assert_eq!(v.validate(&token).unwrap_err().code(), "missing_claim");
    // Fractional NumericDates are fine.
    let token = Claims::new("u")
        .claim("exp", json!(4102444800.5))
        .claim("nbf", json!(1.5))
        .sign(&hs256())
        .unwrap();
    assert_eq!(v.validate(&token).unwrap().expires_at(), 4102444800);
}

#[test]
fn exp_is_required() {
    let token = Claims::new("u").without("exp").sign(&hs256()).unwrap();
    let err = fixture_validator().validate(&token).unwrap_err();
    assert_eq!(err, AuthError::MissingClaim { claim: "exp" });
}

#[test]
fn max_age_from_iat() {
    let t = 2_000_000_000;
    let v = hmac_validator()
        .leeway(Duration::ZERO)
        .max_age(Duration::from_secs(300))
        .build()
        .unwrap();
    let token = Claims::new("u")
        .issued_at(t)
        .expires_at(t + 3600)
        .sign(&hs256())
        .unwrap();
    assert_eq!(code_at(&v, &token, t + 300), "ok");
    assert_eq!(code_at(&v, &token, t + 301), "token_too_old");
    assert_eq!(code_at(&v, &token, t - 1), "token_not_yet_valid");
    let token = Claims::new("u").without("iat").sign(&hs256()).unwrap();
    assert_eq!(
        v.validate(&token).unwrap_err(),
        AuthError::MissingClaim { claim: "iat" }
    );
    // Without a maximum age, iat is not required.
    assert_eq!(code(&fixture_validator(), &token), "ok");
}

#[test]
fn issuer() {
    let v = hmac_validator()
        .issuer("https://a.example")
        .issuer("https://b.example")
        .build()
        .unwrap();
    let ok = Claims::new("u")
        .issuer("https://b.example")
        .sign(&hs256())
        .unwrap();
    assert_eq!(code(&v, &ok), "ok");
    for claims in [
        Claims::new("u").issuer("https://c.example"),
        Claims::new("u").issuer("https://A.example"),
        Claims::new("u"),
        Claims::new("u").claim("iss", json!(["https://a.example"])),
    ] {
        let token = claims.sign(&hs256()).unwrap();
        assert_eq!(code(&v, &token), "invalid_issuer", "{claims:?}");
    }
    // Not configured: not looked at.
    let token = Claims::new("u").issuer("anyone").sign(&hs256()).unwrap();
    assert_eq!(code(&fixture_validator(), &token), "ok");
}

#[test]
fn audience() {
    let v = hmac_validator().audience("agentwire").build().unwrap();
    for claims in [
        Claims::new("u").audience("agentwire"),
        Claims::new("u").audiences(["other", "agentwire"]),
    ] {
        assert_eq!(code(&v, &claims.sign(&hs256()).unwrap()), "ok");
    }
    for claims in [
        Claims::new("u").audience("other"),
        Claims::new("u").audiences(["other"]),
        Claims::new("u").audiences(Vec::<String>::new()),
        Claims::new("u"),
        Claims::new("u").claim("aud", 5),
    ] {
        let token = claims.sign(&hs256()).unwrap();
        assert_eq!(code(&v, &token), "invalid_audience", "{claims:?}");
    }
}

#[test]
fn subject() {
    let v = fixture_validator();
    for claims in [
        Claims::new("u").without("sub"),
        Claims::new(""),
        Claims::new(" \t"),
        Claims::new("u").claim("sub", json!(null)),
    ] {
        let token = claims.sign(&hs256()).unwrap();
        assert_eq!(code(&v, &token), "missing_subject", "{claims:?}");
    }
    let token = Claims::new("u").claim("sub", 42).sign(&hs256()).unwrap();
    let err = v.validate(&token).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
    assert!(err.to_string().contains("sub"), "{err}");
}

#[test]
fn permissions_shape() {
    let v = fixture_validator();
    let token = Claims::new("u")
        .permissions(["b", "a", "b"])
        .scope("  c a ")
        .sign(&hs256())
        .unwrap();
    let principal = v.validate(&token).unwrap();
    assert_eq!(principal.permissions(), ["a", "b", "c"]);
    assert!(principal.has_permission("c"));
    assert!(!principal.has_permission("d"));
    for (name, value) in [
        ("permissions", json!("a b")),
        ("permissions", json!([1])),
        ("scope", json!(["a"])),
    ] {
        let token = Claims::new("u").claim(name, value).sign(&hs256()).unwrap();
        assert_eq!(code(&v, &token), "malformed_token", "{name}");
    }
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let v = hmac_validator().max_token_bytes(512).build().unwrap();
    let token = Claims::new("u")
        .claim("pad", "x".repeat(600))
        .sign(&hs256())
        .unwrap();
    let err = v.validate(&token).unwrap_err();
    assert_eq!(
        err,
        AuthError::TokenTooLarge {
            len: token.len(),
            max: 512
        }
    );
    // Garbage that long is "too large", not "malformed": nothing was decoded.
    assert_eq!(code(&v, &Token::new("%".repeat(513))), "token_too_large");
    assert_eq!(code(&v, &Token::new("%".repeat(512))), "malformed_token");
}

#[test]
fn malformed_shapes() {
    let v = fixture_validator();
    let jwe = Token::new("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d");
    let err = v.validate(&jwe).unwrap_err();
    assert_eq!(err.code(), "malformed_token");
    assert!(err.to_string().contains("JWE"), "{err}");
    for text in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "abc",
        "!!!.e30.c2ln",
        "e30.e30.c2ln",
        "eyJhbGciOjF9.e30.c2ln",          // alg is a number
        "WyJIUzI1NiJd.e30.c2ln",          // header is an array
        "eyJhbGciOiJIUzI1NiJ9.!!!.c2ln",  // payload not base64url
        "eyJhbGciOiJIUzI1NiJ9.e30.!!!",   // signature not base64url
        "eyJhbGciOiJIUzI1NiJ9.e30.c2ln=", // padded
        "eyJhbGciOiJIUzI1NiJ9.e30.c2l+",  // standard base64
    ] {
        assert_eq!(code(&v, &Token::new(text)), "malformed_token", "{text:?}");
    }

    // `crit` is refused even with a valid signature.
    let secret = FIXTURE_HMAC_SECRET.as_bytes();
    let claims = json!({"sub": "u", "exp": 4102444800u64}).to_string();
    let token = sign_raw(
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        &claims,
        secret,
        jsonwebtoken::Algorithm::HS256,
    );
    let err = v.validate(&token).unwrap_err();
    assert!(err.to_string().contains("crit"), "{err}");

    // Validly signed claims that are not an object.
    let token = sign_raw(
        r#"{"alg":"HS256"}"#,
        "[1,2]",
        secret,
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(code(&v, &token), "malformed_token");
    // A duplicate registered claim is ambiguous: refused.
    let token = sign_raw(
        r#"{"alg":"HS256"}"#,
        r#"{"sub":"u","exp":4102444800,"sub":"admin"}"#,
        secret,
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(code(&v, &token), "malformed_token");
    // The same token shape, correctly formed, is fine.
    let token = sign_raw(
        r#"{"alg":"HS256"}"#,
        &claims,
        secret,
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(code(&v, &token), "ok");
}

#[test]
fn refresh_must_keep_the_subject() {
    let v = fixture_validator();
    let current = v
        .validate(&Claims::new("alice").sign(&hs256()).unwrap())
        .unwrap();
    let same = Claims::new("alice").sign(&hs256()).unwrap();
    assert_eq!(
        v.validate_refresh(&same, &current).unwrap().user_id(),
        "alice"
    );
    let other = Claims::new("bob").sign(&hs256()).unwrap();
    assert_eq!(
        v.validate_refresh(&other, &current).unwrap_err().code(),
        "subject_mismatch"
    );
}

#[test]
fn configuration_errors() {
    assert_eq!(
        Validator::builder().build().unwrap_err(),
        ConfigError::NoKeys
    );
    assert_eq!(
        hmac_validator().algorithms([]).build().unwrap_err(),
        ConfigError::NoAlgorithms
    );
    assert_eq!(
        hmac_validator()
            .algorithms([Algorithm::ES256])
            .build()
            .unwrap_err(),
        ConfigError::NoKeyForAlgorithm {
            alg: Algorithm::ES256
        }
    );
    let only_hs512 = hmac_validator()
        .algorithms([Algorithm::HS512])
        .build()
        .unwrap();
    let token = Claims::new("u").sign(&hs256()).unwrap();
    assert_eq!(code(&only_hs512, &token), "disallowed_algorithm");

    assert_eq!("hs256".parse::<Algorithm>(), Ok(Algorithm::HS256));
    assert_eq!(" EdDSA ".parse::<Algorithm>(), Ok(Algorithm::EdDSA));
    assert_eq!(
        "none".parse::<Algorithm>(),
        Err(ConfigError::UnknownAlgorithm)
    );
    assert_eq!(Algorithm::from_name("hs256"), None);
    for alg in Algorithm::ALL {
        assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
    }

    // Signing keys refuse keys of the wrong type or curve.
    let p384 = include_str!("../fixtures/keys/ec-p384-private.pem");
    assert!(SigningKey::from_pem(Algorithm::ES256, p384).is_err());
    assert!(SigningKey::from_pem(Algorithm::HS256, p384).is_err());
    assert!(SigningKey::hmac(Algorithm::RS256, "x").is_err());
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
