//! Token validation by a fixed validator (the committed test keys, every algorithm).
//!
//! The first byte picks the mode: even, the rest is the token string as is; odd, the rest is a
//! claims payload that is signed with the fixture HS256 key first, so the claim checks after
//! the signature (which a fuzzer cannot forge) are fuzzed too.
#![no_main]

use std::sync::LazyLock;

use agentwire_auth::testing::{FIXTURE_HMAC_SECRET, fixture_validator};
use agentwire_auth::{Token, Validator};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

static VALIDATOR: LazyLock<Validator> = LazyLock::new(fixture_validator);
static HS256: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_secret(FIXTURE_HMAC_SECRET.as_bytes()));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        Token::new(String::from_utf8_lossy(rest))
    } else {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(rest));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &HS256, Algorithm::HS256);
        Token::new(format!(
            "{message}.{}",
            signature.expect("HMAC signs anything")
        ))
    };
    let _ = VALIDATOR.validate(&token);
});
