//! Minted tokens validate, for every algorithm, over arbitrary claims.

use std::collections::BTreeSet;

use agentwire_auth::testing::{Claims, SigningKey, fixture_key, fixture_validator};
use agentwire_auth::{Algorithm, Key, Validator};
use proptest::prelude::*;
use serde_json::{Value, json};

const REGISTERED: [&str; 8] = [
    "sub",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "permissions",
    "scope",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Quarters: exact in binary, so the text round trip is exact too.
        (-4_000_000i32..4_000_000).prop_map(|n| json!(f64::from(n) / 4.0)),
        ".{0,24}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Input {
    sub: String,
    ttl: u64,
    permissions: Vec<String>,
    scope: Vec<String>,
    extra: Vec<(String, Value)>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        // Any non-blank text.
        ".{0,12}[^\\s]{1,4}",
        120u64..100_000_000,
        prop::collection::vec("[a-z:._-]{1,12}", 0..5),
        prop::collection::vec("[a-z:._-]{1,12}", 0..5),
        prop::collection::vec((".{1,10}", json_value()), 0..6),
    )
        .prop_map(|(sub, ttl, permissions, scope, extra)| Input {
            sub,
            ttl,
            permissions,
            scope,
            extra: extra
                .into_iter()
                .filter(|(k, _)| !REGISTERED.contains(&k.as_str()))
                .collect(),
        })
}

fn check(validator: &Validator, key: &SigningKey, input: &Input) -> Result<(), TestCaseError> {
    let mut claims = Claims::new(input.sub.clone())
        .expires_in(std::time::Duration::from_secs(input.ttl))
        .permissions(input.permissions.clone());
    if !input.scope.is_empty() {
        claims = claims.scope(input.scope.join(" "));
    }
    for (k, v) in &input.extra {
        claims = claims.claim(k.clone(), v.clone());
    }
    let token = claims
        .sign(key)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let principal = validator
        .validate(&token)
        .map_err(|e| TestCaseError::fail(format!("{} ({e})", e.code())))?;

    prop_assert_eq!(principal.user_id(), input.sub.as_str());
    prop_assert_eq!(principal.algorithm(), key.algorithm());
    let expected: BTreeSet<&str> = input
        .permissions
        .iter()
        .chain(&input.scope)
        .map(String::as_str)
        .collect();
    let got: Vec<&str> = principal.permissions().iter().map(String::as_str).collect();
    prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    prop_assert_eq!(principal.claim("exp"), claims.as_map().get("exp"));
    prop_assert_eq!(
        Some(principal.expires_at()),
        claims.as_map()["exp"].as_u64()
    );
    for (k, v) in claims.as_map() {
        // Floats go through text and back: compare as JSON text.
        prop_assert_eq!(
            principal.claim(k).map(Value::to_string),
            Some(v.to_string()),
            "claim {}",
            k
        );
    }
    Ok(())
}

fn roundtrip(alg: Algorithm, cases: u32) {
    let key = SigningKey::fixture(alg);
    // A validator that accepts only this algorithm, and the one that accepts them all.
    let only = Validator::builder()
        .key(fixture_key(alg))
        .algorithms([alg])
        .build()
        .unwrap();
    let all = fixture_validator();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(input in input())| {
        check(&only, &key, &input)?;
        check(&all, &key, &input)?;
    });
}

// Fewer cases where signing is slow (RSA, P-384).
#[test]
fn hs256() {
    roundtrip(Algorithm::HS256, 64);
}
#[test]
fn hs384() {
    roundtrip(Algorithm::HS384, 32);
}
#[test]
fn hs512() {
    roundtrip(Algorithm::HS512, 32);
}
#[test]
fn rs256() {
    roundtrip(Algorithm::RS256, 16);
}
#[test]
fn rs384() {
    roundtrip(Algorithm::RS384, 8);
}
#[test]
fn rs512() {
    roundtrip(Algorithm::RS512, 8);
}
#[test]
fn ps256() {
    roundtrip(Algorithm::PS256, 16);
}
#[test]
fn ps384() {
    roundtrip(Algorithm::PS384, 8);
}
#[test]
fn ps512() {
    roundtrip(Algorithm::PS512, 8);
}
#[test]
fn es256() {
    roundtrip(Algorithm::ES256, 32);
}
#[test]
fn es384() {
    roundtrip(Algorithm::ES384, 16);
}
#[test]
fn eddsa() {
    roundtrip(Algorithm::EdDSA, 32);
}

#[test]
fn key_ids_select_the_key() {
    let es = SigningKey::fixture(Algorithm::ES256).with_kid("b");
    let other_p256 = Key::from_pem(include_str!("../fixtures/keys/ec-p256-other-public.pem"))
        .unwrap()
        .with_kid("a");
    let validator = Validator::builder()
        .key(other_p256)
        .key(fixture_key(Algorithm::ES256).with_kid("b"))
        .build()
        .unwrap();
    let token = Claims::new("u").sign(&es).unwrap();
    assert_eq!(validator.validate(&token).unwrap().user_id(), "u");

    // Unknown kid.
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::ES256).with_kid("c"))
        .unwrap();
    assert_eq!(
        validator.validate(&token).unwrap_err().code(),
        "unknown_key_id"
    );

    // Right key, wrong kid: the named key is the only one tried.
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::ES256).with_kid("a"))
        .unwrap();
    assert_eq!(
        validator.validate(&token).unwrap_err().code(),
        "invalid_signature"
    );

    // No kid in the token: every fitting key is tried (rotation without key ids).
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::ES256))
        .unwrap();
    assert_eq!(validator.validate(&token).unwrap().user_id(), "u");
}

#[test]
fn kid_is_ignored_when_no_key_has_one() {
    let validator = Validator::builder()
        .key(fixture_key(Algorithm::EdDSA))
        .build()
        .unwrap();
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::EdDSA).with_kid("2024-01"))
        .unwrap();
    assert!(validator.validate(&token).is_ok());
}

#[test]
fn jwks_validator() {
    let validator = Validator::builder()
        .keys(Key::from_jwks(include_str!("../fixtures/jwks.json")).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        validator.allowed_algorithms().to_string(),
        "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
    );
    for (alg, kid) in [
        (Algorithm::RS256, "rsa"),
        (Algorithm::PS384, "rsa"),
        (Algorithm::ES256, "ec-p256"),
        (Algorithm::ES384, "ec-p384"),
        (Algorithm::EdDSA, "ed25519"),
    ] {
        let token = Claims::new("u")
            .sign(&SigningKey::fixture(alg).with_kid(kid))
            .unwrap();
        assert_eq!(validator.validate(&token).unwrap().user_id(), "u", "{alg}");
    }
    // A kid naming a key of another type: that key cannot verify this algorithm.
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::ES256).with_kid("rsa"))
        .unwrap();
    assert_eq!(
        validator.validate(&token).unwrap_err().code(),
        "disallowed_algorithm"
    );
}

#[test]
fn validator_is_cheap_to_share() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Validator>();
    let validator = fixture_validator();
    let token = Claims::new("u")
        .sign(&SigningKey::fixture(Algorithm::HS256))
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let validator = validator.clone();
            let token = token.clone();
            s.spawn(move || assert!(validator.validate(&token).is_ok()));
        }
    });
}
