//! agentwire-auth: token validation (targets: HS256 at most 3 us, ES256 at most 80 us) and the
//! handshake steps around it.
//!
//! Run: `cargo bench -p agentwire-benches --bench auth`

use std::hint::black_box;

use agentwire_auth::testing::{Claims, SigningKey, fixture_key, offer_header};
use agentwire_auth::{Algorithm, HandshakeRequest, ProtocolOffer, Token, Validator};
use criterion::{Criterion, criterion_group, criterion_main};

/// A realistic access token: issuer, audience, permissions, scope, one custom claim.
fn token(alg: Algorithm) -> Token {
    Claims::new("user-8f14e45f-ceea-467f-a0e6-7a8bd1b3c2f0")
        .issuer("https://auth.example.com/")
        .audience("agentwire")
        .permissions(["agents:run", "threads:read", "threads:write"])
        .scope("openid profile")
        .claim("org_id", "org-42")
        .sign(&SigningKey::fixture(alg))
        .expect("fixture keys sign")
}

fn validator(alg: Algorithm) -> Validator {
    Validator::builder()
        .key(fixture_key(alg))
        .algorithms([alg])
        .issuer("https://auth.example.com/")
        .audience("agentwire")
        .build()
        .expect("fixture keys validate")
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for alg in [
        Algorithm::HS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
    ] {
        let token = token(alg);
        let validator = validator(alg);
        assert!(validator.validate(&token).is_ok());
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| validator.validate(black_box(&token)))
        });
    }
    // Refusals must be cheap too: a forged signature and an `alg: none` token.
    let validator = validator(Algorithm::HS256);
    let mut forged = token(Algorithm::HS256).into_secret();
    forged.replace_range(forged.len() - 10..forged.len() - 9, "A");
    let forged = Token::new(forged);
    assert!(validator.validate(&forged).is_err());
    group.bench_function("HS256_bad_signature", |b| {
        b.iter(|| validator.validate(black_box(&forged)))
    });
    let none = agentwire_auth::testing::unsecured_token(&Claims::new("admin"));
    group.bench_function("alg_none", |b| {
        b.iter(|| validator.validate(black_box(&none)))
    });
    group.finish();
}

fn bench_handshake(c: &mut Criterion) {
    let token = token(Algorithm::HS256);
    let header = offer_header(&token);
    let mut group = c.benchmark_group("handshake");
    group.bench_function("parse_offer_and_negotiate", |b| {
        b.iter(|| {
            let offer = ProtocolOffer::parse([black_box(header.as_str())]).expect("valid offer");
            HandshakeRequest::new()
                .offer(offer)
                .negotiate()
                .expect("well-shaped")
        })
    });
    let validator = validator(Algorithm::HS256);
    group.bench_function("negotiate_and_authenticate_HS256", |b| {
        b.iter(|| {
            let offer = ProtocolOffer::parse([black_box(header.as_str())]).expect("valid offer");
            let negotiation = HandshakeRequest::new()
                .offer(offer)
                .negotiate()
                .expect("well-shaped");
            validator.authenticate(&negotiation)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_validate, bench_handshake);
criterion_main!(benches);
