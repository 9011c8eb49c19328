//! Token text never appears in any error's Display or Debug, nor in the Debug of the types
//! that hold or carry tokens.

use std::time::Duration;

use agentwire_auth::testing::{
    Claims, SigningKey, bearer_header, fixture_key, fixture_validator, offer_header,
    offer_header_base64url, unsecured_token,
};
use agentwire_auth::{Algorithm, AuthError, HandshakeRequest, ProtocolOffer, Token, Validator};

/// Every run of 10 characters of the token's payload and signature (the header is the same
/// for every token of an algorithm, so it is no secret, but it is checked in full too).
fn secrets(token: &Token) -> Vec<String> {
    let text = token.expose_secret();
    let mut out = vec![text.to_owned()];
    let mut parts = text.split('.');
    out.push(parts.next().unwrap().to_owned());
    for part in parts {
        let chars: Vec<char> = part.chars().collect();
        for window in chars.windows(10) {
            out.push(window.iter().collect());
        }
    }
    out
}

fn assert_clean(what: &str, shown: &str, token: &Token) {
    for secret in secrets(token) {
        assert!(
            !shown.contains(&secret),
            "{what} shows token text {secret:?}: {shown}"
        );
    }
}

fn check(err: &AuthError, token: &Token) {
    assert_clean(err.code(), &format!("{err}"), token);
    assert_clean(err.code(), &format!("{err:?}"), token);
    assert_clean(err.code(), &format!("{err:#?}"), token);
    assert_clean(err.code(), err.close_reason(), token);
}

#[test]
fn no_error_shows_the_token() {
    let hs = SigningKey::fixture(Algorithm::HS256);
    let validator = Validator::builder()
        .key(fixture_key(Algorithm::HS256).with_kid("k"))
        .issuer("https://issuer.example")
        .audience("agentwire")
        .max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    let good = || {
        Claims::new("user-7")
            .issuer("https://issuer.example")
            .audience("agentwire")
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut run = |token: &Token, err: AuthError| {
        check(&err, token);
        seen.insert(err.code());
    };

    // Validation failures.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases: Vec<Claims> = vec![
        good().expires_at(now - 1000),         // token_expired
        good().not_before(now + 1000),         // token_not_yet_valid
        good().issued_at(now - 10_000),        // token_too_old
        good().issuer("https://evil.example"), // invalid_issuer
        good().audience("other"),              // invalid_audience
        good().without("sub"),                 // missing_subject
        good().without("exp"),                 // missing_claim
        good().claim("sub", 5),                // malformed_token
        good().claim("pad", "x".repeat(9000)), // token_too_large
    ];
    for claims in cases {
        let token = claims.sign(&hs).unwrap();
        run(&token, validator.validate(&token).unwrap_err());
    }
    let token = good().sign(&hs.clone().with_kid("nope")).unwrap();
    run(&token, validator.validate(&token).unwrap_err()); // unknown_key_id
    let token = unsecured_token(&good());
    run(&token, validator.validate(&token).unwrap_err()); // disallowed_algorithm
    let token = good().sign(&SigningKey::fixture(Algorithm::ES256)).unwrap();
    run(&token, validator.validate(&token).unwrap_err()); // disallowed_algorithm
    let mut tampered = good().sign(&hs).unwrap().into_secret();
    // Change one signature character (to a different one: the token varies with the clock).
    let at = tampered.len() - 20;
    let replacement = if &tampered[at..=at] == "Q" { "R" } else { "Q" };
    tampered.replace_range(at..=at, replacement);
    let tampered = Token::new(tampered);
    run(&tampered, validator.validate(&tampered).unwrap_err()); // invalid_signature
    let current = fixture_validator()
        .validate(&Claims::new("alice").sign(&hs).unwrap())
        .unwrap();
    let token = Claims::new("mallory").sign(&hs).unwrap();
    run(
        &token,
        fixture_validator()
            .validate_refresh(&token, &current)
            .unwrap_err(),
    ); // subject_mismatch

    // Handshake failures, with the token in every place it can be.
    let token = good().sign(&hs).unwrap();
    let offered = offer_header(&token);
    let protocol_only = offered.trim_start_matches("jwt-auth, ").to_owned();
    let padded = format!("{offered}=");
    let twice = format!("{offered}, {protocol_only}");
    let bearer = bearer_header(&token);
    let query = format!("token={}", token.expose_secret());
    let two_queries = format!("{query}&{query}");
    let encoded_not_jwt = "jwt-auth, jwt.aGVsbG8gd29ybGQgaGVsbG8";
    for (lines, authorization, query, allow) in [
        (vec![protocol_only.as_str()], None, None, false), // missing_marker_protocol
        (vec![twice.as_str()], None, None, false),         // multiple_tokens
        (vec![padded.as_str()], None, None, false),        // invalid_protocol_header
        (vec!["chat"], Some(bearer.as_str()), None, false), // unsupported_protocol
        (vec![], None, Some(query.as_str()), false),       // missing_token
        (vec![], None, Some(two_queries.as_str()), true),  // multiple_tokens
        (vec![encoded_not_jwt], None, None, false),        // malformed_token
        (vec![], Some("Bearer a b"), None, false),         // malformed_token
    ] {
        let request = match ProtocolOffer::parse(lines.iter().copied()) {
            Ok(offer) => HandshakeRequest::new()
                .offer(offer)
                .authorization(authorization.map(str::as_bytes))
                .query(query)
                .allow_query_token(allow),
            Err(err) => {
                run(&token, err);
                continue;
            }
        };
        assert_clean("request", &format!("{request:?}"), &token);
        let err = request.extract_credential().unwrap_err();
        run(&token, err);
    }
    let request = HandshakeRequest::new().max_token_bytes(10);
    let offer = ProtocolOffer::parse([offered.as_str()]).unwrap();
    run(
        &token,
        request.offer(offer).extract_credential().unwrap_err(),
    ); // token_too_large

    let expected: std::collections::BTreeSet<&str> = AuthError::CODES.iter().copied().collect();
    assert_eq!(seen, expected, "every code was produced and checked");
}

#[test]
fn carriers_redact_the_token() {
    let token = Claims::new("user-7")
        .sign(&SigningKey::fixture(Algorithm::EdDSA))
        .unwrap();
    assert_eq!(
        format!("{token:?}"),
        format!("Token(<redacted>, {} bytes)", token.len())
    );
    for header in [offer_header(&token), offer_header_base64url(&token)] {
        let offer = ProtocolOffer::parse([header.as_str()]).unwrap();
        assert_clean("offer", &format!("{offer:?}"), &token);
        let bearer = bearer_header(&token);
        let query = format!("token={}", token.expose_secret());
        let request = HandshakeRequest::new()
            .offer(offer)
            .authorization(Some(bearer.as_bytes()))
            .query(Some(&query));
        assert_clean("request", &format!("{request:?}"), &token);
        let negotiation = request.negotiate().unwrap();
        assert_clean("negotiation", &format!("{negotiation:?}"), &token);
        let credential = negotiation.into_credential().unwrap();
        assert_clean("credential", &format!("{credential:?}"), &token);
        assert_eq!(credential.token().expose_secret(), token.expose_secret());
    }
    let principal = fixture_validator().validate(&token).unwrap();
    assert_clean("principal", &format!("{principal:?}"), &token);
    assert_clean("validator", &format!("{:?}", fixture_validator()), &token);
    assert_clean(
        "signing key",
        &format!("{:?}", SigningKey::fixture(Algorithm::HS256)),
        &Token::new(agentwire_auth::testing::FIXTURE_HMAC_SECRET),
    );
}
