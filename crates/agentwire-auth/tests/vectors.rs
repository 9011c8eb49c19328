//! Tokens made by other implementations: PyJWT (fixtures/vectors/pyjwt.json, produced by
//! fixtures/generate-vectors.py) and the examples of RFC 7515 appendix A and RFC 8037 A.4
//! (fixtures/vectors/rfc.json, each checked with PyJWT by the same script).

use std::time::{Duration, UNIX_EPOCH};

use agentwire_auth::testing::FIXTURE_HMAC_SECRET;
use agentwire_auth::{Key, Token, Validator};
use serde_json::{Value, json};

const PYJWT: &str = include_str!("../fixtures/vectors/pyjwt.json");
const RFC: &str = include_str!("../fixtures/vectors/rfc.json");
const JWKS: &str = include_str!("../fixtures/jwks.json");

fn public_pem(file: &str) -> &'static str {
    match file {
        "rsa-public.pem" => include_str!("../fixtures/keys/rsa-public.pem"),
        "ec-p256-public.pem" => include_str!("../fixtures/keys/ec-p256-public.pem"),
        "ec-p384-public.pem" => include_str!("../fixtures/keys/ec-p384-public.pem"),
        "ed25519-public.pem" => include_str!("../fixtures/keys/ed25519-public.pem"),
        other => panic!("unknown fixture {other}"),
    }
}

fn vectors(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn pyjwt_tokens_validate() {
    let jwks = Validator::builder()
        .keys(Key::from_jwks(JWKS).unwrap())
        .keys([Key::hmac(FIXTURE_HMAC_SECRET).unwrap().with_kid("hs")])
        .issuer("https://issuer.example")
        .audience("agentwire")
        .build()
        .unwrap();
    let mut count = 0;
    for v in vectors(PYJWT).iter().filter(|v| v["expect"] == "valid") {
        let name = v["name"].as_str().unwrap();
        let key = match v["public_key"].as_str() {
            None => Key::hmac(FIXTURE_HMAC_SECRET).unwrap(),
            Some(file) => Key::from_pem(public_pem(file)).unwrap(),
        };
        let single = Validator::builder()
            .key(key)
            .issuer("https://issuer.example")
            .audience("agentwire")
            .build()
            .unwrap();
        let token = Token::new(v["token"].as_str().unwrap());
        for validator in [&single, &jwks] {
            let principal = validator
                .validate(&token)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(principal.user_id(), v["claims"]["sub"], "{name}");
            assert_eq!(principal.algorithm().as_str(), v["alg"], "{name}");
            assert_eq!(
                principal.permissions(),
                ["agents:run", "openid", "profile", "threads:read"],
                "{name}"
            );
            assert_eq!(principal.expires_at(), 4102444800, "{name}");
            assert_eq!(principal.issuer(), Some("https://issuer.example"));
            assert_eq!(
                &Value::Object(principal.claims().clone()),
                &v["claims"],
                "{name}"
            );
        }
        count += 1;
    }
    assert_eq!(count, 12, "one PyJWT token per supported algorithm");
}

#[test]
fn pyjwt_tokens_refused() {
    let validator = Validator::builder()
        .key(Key::hmac(FIXTURE_HMAC_SECRET).unwrap())
        .build()
        .unwrap();
    let mut count = 0;
    for v in vectors(PYJWT).iter().filter(|v| v["expect"] != "valid") {
        let token = Token::new(v["token"].as_str().unwrap());
        let err = validator.validate(&token).unwrap_err();
        assert_eq!(err.code(), v["expect"], "{}", v["name"]);
        count += 1;
    }
    assert_eq!(count, 6);
}

/// The RFC examples expired in 2011 and carry no `sub`. Validated at their own time (one
/// clock for every check, no check switched off), they get past the algorithm, the key, the
/// signature, `exp` and `iss`, and stop at `sub`: proof that the signatures verify.
#[test]
fn rfc_examples_verify() {
    let then = UNIX_EPOCH + Duration::from_secs(1_300_819_000);
    for v in vectors(RFC) {
        let name = v["name"].as_str().unwrap();
        let token = Token::new(v["token"].as_str().unwrap());
        if v["jwk"].is_null() {
            // RFC 7515 A.5, the unsecured JWS.
            for validator in [
                Validator::builder()
                    .key(Key::hmac(FIXTURE_HMAC_SECRET).unwrap())
                    .build()
                    .unwrap(),
                agentwire_auth::testing::fixture_validator(),
            ] {
                let err = validator.validate_at(&token, then).unwrap_err();
                assert_eq!(err.code(), "disallowed_algorithm", "{name}");
            }
            continue;
        }
        let jwks = json!({ "keys": [v["jwk"]] }).to_string();
        let validator = Validator::builder()
            .keys(Key::from_jwks(&jwks).unwrap())
            .issuer("joe")
            .leeway(Duration::ZERO)
            .build()
            .unwrap();
        let expected_then = if name.starts_with("rfc8037") {
            // Its payload is the text "Example of Ed25519 signing", not a claims set: only a
            // verified signature gets that far.
            "malformed_token"
        } else {
            "missing_subject"
        };
        let err = validator.validate_at(&token, then).unwrap_err();
        assert_eq!(err.code(), expected_then, "{name}: {err}");

        if !name.starts_with("rfc8037") {
            let err = validator.validate(&token).unwrap_err();
            assert_eq!(err.code(), "token_expired", "{name}");
        }

        // One changed signature character: the signature no longer verifies.
        let text = token.expose_secret();
        let dot = text.rfind('.').unwrap();
        let mut tampered: Vec<char> = text.chars().collect();
        let i = dot + 1 + (text.len() - dot) / 2;
        tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
        let tampered = Token::new(tampered.into_iter().collect::<String>());
        let err = validator.validate_at(&tampered, then).unwrap_err();
        assert_eq!(err.code(), "invalid_signature", "{name}");
    }
}
