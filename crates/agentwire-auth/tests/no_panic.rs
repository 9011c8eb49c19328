//! Arbitrary input never panics, and the parsers' answers are consistent.

use agentwire_auth::testing::{Claims, SigningKey, fixture_validator};
use std::sync::LazyLock;

use agentwire_auth::{
    Algorithm, AuthError, HandshakeRequest, ProtocolOffer, Token, Validator, dangerous,
    select_protocol,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

static VALIDATOR: LazyLock<Validator> = LazyLock::new(fixture_validator);

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header lines: mostly protocol-like text, sometimes anything.
fn header_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "[ \t,]{0,2}(jwt-auth|jwt\\.[A-Za-z0-9._-]{0,20}|bearer\\.[A-Za-z0-9_-]{0,20}|chat|[!-~]{1,8})([ \t]{0,2},[ \t]{0,2}(jwt-auth|jwt\\.[A-Za-z0-9._=-]{0,20}|[!-~]{1,8})){0,4}[ \t,]{0,2}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn offer_parsing_never_panics(lines in prop::collection::vec(header_line(), 0..4)) {
        match ProtocolOffer::parse(lines.iter()) {
            Ok(offer) => {
                let answer = select_protocol(&offer);
                if let Ok(Some(protocol)) = answer {
                    prop_assert_eq!(protocol, "jwt-auth");
                    prop_assert!(offer.offers_marker());
                }
                if offer.is_empty() {
                    prop_assert_eq!(answer, Ok(None));
                }
                // One line joined by commas means the same as several lines.
                let joined = lines.join(&b","[..]);
                let again = ProtocolOffer::parse([joined.as_slice()]).unwrap();
                prop_assert_eq!(again.len(), offer.len());
                prop_assert_eq!(again.offers_marker(), offer.offers_marker());
                prop_assert_eq!(again.token_protocol_count(), offer.token_protocol_count());
            }
            Err(AuthError::InvalidProtocolHeader { line, offset, byte }) => {
                // The error points at a real offending byte.
                let bytes = &lines[line - 1];
                prop_assert_eq!(bytes[offset], byte);
                prop_assert!(!is_tchar(byte) && byte != b',');
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn handshake_never_panics(
        lines in prop::collection::vec(header_line(), 0..3),
        authorization in prop::option::of(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            "(Bearer|bearer|Basic|) {0,2}[!-~ ]{0,30}".prop_map(String::into_bytes),
        ]),
        query in prop::option::of("([a-z]{0,5}=?[!-~]{0,12}&?){0,3}(token=[A-Za-z0-9.%_-]{0,20})?"),
        allow_query in any::<bool>(),
        max in 0usize..64,
    ) {
        let Ok(offer) = ProtocolOffer::parse(lines.iter()) else { return Ok(()); };
        let request = HandshakeRequest::new()
            .offer(offer)
            .authorization(authorization.as_deref())
            .query(query.as_deref())
            .allow_query_token(allow_query)
            .max_token_bytes(max);
        let extracted = request.extract_credential();
        match request.negotiate() {
            Ok(negotiation) => {
                prop_assert_eq!(negotiation.protocol(), request.select_protocol().unwrap());
                if let Ok(credential) = negotiation.credential() {
                    prop_assert!(credential.token().len() <= max);
                    prop_assert!(!credential.token().is_empty());
                }
                if let Err(e) = negotiation.credential() {
                    prop_assert!(!e.rejects_handshake());
                    prop_assert_eq!(e.close_code(), 4401);
                }
            }
            Err(e) => {
                prop_assert!(e.rejects_handshake());
                prop_assert_eq!(e.http_status(), 400);
                prop_assert!(extracted.is_err() || request.select_protocol().is_err());
            }
        }
    }

    #[test]
    fn validation_never_panics_on_text(text in prop_oneof![
        ".{0,200}",
        "[A-Za-z0-9_.-]{0,200}",
        "eyJ[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,90}",
    ]) {
        let token = Token::new(text);
        let _ = VALIDATOR.validate(&token);
        let _ = dangerous::decode_unverified(&token);
    }

    #[test]
    fn validation_never_panics_on_structured_junk(
        header in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            (
                prop_oneof![
                    Just("HS256".to_owned()), Just("RS256".to_owned()), Just("PS512".to_owned()),
                    Just("ES256".to_owned()), Just("ES384".to_owned()), Just("EdDSA".to_owned()),
                    Just("none".to_owned()), ".{0,8}",
                ],
                prop::option::of("[a-z0-9]{0,6}"),
                any::<bool>(),
            ).prop_map(|(alg, kid, crit)| {
                let mut h = serde_json::json!({"alg": alg});
                if let Some(kid) = kid { h["kid"] = kid.into(); }
                if crit { h["crit"] = serde_json::json!(["x"]); }
                h.to_string().into_bytes()
            }),
        ],
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..60),
            Just(br#"{"sub":"u","exp":4102444800}"#.to_vec()),
            Just(br#"{"sub":5,"exp":"x","permissions":{}}"#.to_vec()),
        ],
        signature in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let text = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature),
        );
        let token = Token::new(text);
        // No key signed it: it can never validate.
        prop_assert!(VALIDATOR.validate(&token).is_err());
        let _ = dangerous::decode_unverified(&token);
    }
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any single-character change of a valid token makes it invalid (and never panics).
    #[test]
    fn tampered_tokens_never_validate(
        alg in algorithm(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let validator = &*VALIDATOR;
        let token = Claims::new("alice").sign(&SigningKey::fixture(alg)).unwrap();
        prop_assert!(validator.validate(&token).is_ok());
        let original = token.expose_secret().as_bytes().to_vec();
        for (index, byte) in edits {
            let mut bytes = original.clone();
            let i = index.index(bytes.len());
            // Any byte but the original, kept in ASCII so the text stays a String.
            let replacement = byte & 0x7f;
            if replacement == bytes[i] {
                continue;
            }
            bytes[i] = replacement;
            let tampered = Token::new(String::from_utf8(bytes).unwrap());
            prop_assert!(validator.validate(&tampered).is_err());
        }
    }
}
