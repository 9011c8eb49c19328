//! The service token: a JWT signed with HS256, written directly with an HMAC key state
//! computed once (the secret's inner and outer pads hashed when the agent is built, copied per
//! token) instead of through a general JWT encoder that derives the key and builds a claims
//! map for every request.
//!
//! The token is the one `agentwire_auth::mint` would sign for the same claims, byte for byte
//! (a test holds them equal): header `{"typ":"JWT","alg":"HS256"}`, claims in key order
//! `{"aud":"agent-service","exp":...,"iat":...,"run_id":...,"sub":...}`.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::agent::{SERVICE_TOKEN_AUDIENCE, SERVICE_TOKEN_TTL};

/// `{"typ":"JWT","alg":"HS256"}`, base64url without padding.
const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

/// The shortest secret the builder takes (RFC 7518 section 3.2: at least the hash's 32 bytes).
pub(crate) const MIN_SECRET_LEN: usize = 32;

/// Signs service tokens with one secret.
pub(crate) struct Signer {
    key: hmac::Key,
}

impl Signer {
    /// A signer with `secret` (the builder refuses one under [`MIN_SECRET_LEN`] bytes).
    pub(crate) fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// `Bearer <token>` for `user_id` and `run_id`, issued now.
    pub(crate) fn bearer(&self, user_id: &str, run_id: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.bearer_at(user_id, run_id, now)
    }

    /// `Bearer <token>` for `user_id` and `run_id`, issued at `now` (unix seconds).
    pub(crate) fn bearer_at(&self, user_id: &str, run_id: &str, now: u64) -> String {
        let mut claims = Vec::with_capacity(96 + user_id.len() + run_id.len());
        claims.extend_from_slice(b"{\"aud\":");
        json_string(&mut claims, SERVICE_TOKEN_AUDIENCE);
        claims.extend_from_slice(b",\"exp\":");
        claims.extend_from_slice(
            itoa_u64(
                now.saturating_add(SERVICE_TOKEN_TTL.as_secs()),
                &mut [0; 20],
            )
            .as_bytes(),
        );
        claims.extend_from_slice(b",\"iat\":");
        claims.extend_from_slice(itoa_u64(now, &mut [0; 20]).as_bytes());
        claims.extend_from_slice(b",\"run_id\":");
        json_string(&mut claims, run_id);
        claims.extend_from_slice(b",\"sub\":");
        json_string(&mut claims, user_id);
        claims.push(b'}');
        const BEARER: &str = "Bearer ";
        let mut out =
            String::with_capacity(BEARER.len() + HEADER.len() + claims.len() * 4 / 3 + 48);
        out.push_str(BEARER);
        out.push_str(HEADER);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut out);
        let signature = hmac::sign(&self.key, &out.as_bytes()[BEARER.len()..]);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut out);
        out
    }
}

/// Appends `text` as a JSON string (escaped as serde_json escapes it).
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `n` in decimal, written into `buf`.
fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentwire_auth::Algorithm;
    use agentwire_auth::mint::{Claims, SigningKey};

    const SECRET: &str = "the agent-service secret, 32 bytes or more";

    #[test]
    fn the_header_is_the_encoded_jwt_header() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER).unwrap(),
            br#"{"typ":"JWT","alg":"HS256"}"#
        );
    }

    /// The same bytes as the general encoder for the same claims, for ids that need escaping
    /// too.
    #[test]
    fn tokens_equal_the_minted_ones() {
        let signer = Signer::new(SECRET.as_bytes());
        let key = SigningKey::hmac(Algorithm::HS256, SECRET).unwrap();
        for (user, run, now) in [
            ("user-1", "run_abc", 1_764_000_000),
            ("ünïcode \"quoted\" \\ back\nslash\u{1}", "run_0", 0),
            ("", "", u64::MAX - 10),
        ] {
            let minted = Claims::empty()
                .subject(user)
                .issued_at(now)
                .expires_at(now.saturating_add(SERVICE_TOKEN_TTL.as_secs()))
                .claim("run_id", run)
                .audience(SERVICE_TOKEN_AUDIENCE)
                .sign(&key)
                .unwrap();
            assert_eq!(
                signer.bearer_at(user, run, now),
                format!("Bearer {}", minted.expose_secret())
            );
        }
    }

    /// jsonwebtoken, used directly, verifies the token and reads its claims.
    #[test]
    fn jsonwebtoken_verifies_the_token() {
        #[derive(serde::Deserialize)]
        struct ServiceClaims {
            sub: String,
            run_id: String,
            aud: String,
            iat: u64,
            exp: u64,
        }
        let bearer = Signer::new(SECRET.as_bytes()).bearer("user \"1\"", "run_x");
        let token = bearer.strip_prefix("Bearer ").unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[SERVICE_TOKEN_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
        let data = jsonwebtoken::decode::<ServiceClaims>(token, &key, &validation).unwrap();
        assert_eq!(data.header.alg, jsonwebtoken::Algorithm::HS256);
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        assert_eq!(data.claims.sub, "user \"1\"");
        assert_eq!(data.claims.run_id, "run_x");
        assert_eq!(data.claims.aud, SERVICE_TOKEN_AUDIENCE);
        assert_eq!(
            data.claims.exp - data.claims.iat,
            SERVICE_TOKEN_TTL.as_secs()
        );
        // Another secret does not verify it.
        let other = jsonwebtoken::DecodingKey::from_secret(b"another secret of 32 bytes or more");
        assert!(jsonwebtoken::decode::<ServiceClaims>(token, &other, &validation).is_err());
    }

    #[test]
    fn numbers_in_decimal() {
        for n in [0, 7, 10, 1_764_000_060, u64::MAX] {
            assert_eq!(itoa_u64(n, &mut [0; 20]), n.to_string());
        }
    }
}
