//! Keeps credentials and unbounded text out of log data.
//!
//! Every string that enters a [`ConnectionRecord`](crate::ConnectionRecord), a
//! [`CloseInfo`](crate::CloseInfo) or an error of this crate goes through [`clean`]: it is cut to
//! a fixed number of bytes, and replaced by [`REDACTED`] as a whole when it contains something
//! shaped like a bearer credential. The check runs when the value is stored, never when it is
//! serialized, so serialization stays cheap and every stored value is already safe.
//!
//! What counts as credential-shaped (see [`looks_like_credential`]):
//!
//! - a compact JWT (JWS or JWE): a base64url segment of at least [`MIN_JWT_HEADER`] characters
//!   that decodes to the start of a JSON object (optional whitespace, `{`, optional whitespace,
//!   `"`) and is followed by `.`. Every JWT header is such a segment (`eyJ...`), so a raw token
//!   is caught wherever it sits in the text (after `Bearer `, `jwt.`, `token=`, inside a URL,
//!   glued to other characters...);
//! - a base64url-wrapped JWT, the form the `jwt.<token>` subprotocol allows: a run of at least
//!   twice that length whose first twelve characters decode to the start of a raw JWT header
//!   (`ZXlK...` for `eyJ...`);
//! - `bearer` (any ASCII case) followed by a space, `.` or `=` and a run of at least
//!   [`MIN_OPAQUE_TOKEN`] token characters (an opaque bearer token).

use std::borrow::Cow;

/// What replaces a value that looks like it contains a credential.
pub const REDACTED: &str = "[redacted]";

/// Shortest base64url JWT header segment that is treated as one (`{"alg":"none"}` is 19).
pub(crate) const MIN_JWT_HEADER: usize = 16;

/// Shortest token after `bearer` that is treated as an opaque credential.
pub(crate) const MIN_OPAQUE_TOKEN: usize = 16;

/// Cuts `s` to at most `max` bytes, on a char boundary, so the result is a prefix of `s`.
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // `end` is a char boundary no greater than `s.len()`.
    s.get(..end).unwrap_or("")
}

/// [`truncate_str`] for an owned or borrowed string, without copying.
pub(crate) fn truncate_cow<'a>(s: Cow<'a, str>, max: usize) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(truncate_str(b, max)),
        Cow::Owned(mut o) => {
            let end = truncate_str(&o, max).len();
            o.truncate(end);
            Cow::Owned(o)
        }
    }
}

/// Cuts `s` to `max` bytes, then replaces it by [`REDACTED`] if it looks like a credential.
///
/// Idempotent: `clean(clean(s)) == clean(s)`.
pub(crate) fn clean<'a>(s: Cow<'a, str>, max: usize) -> Cow<'a, str> {
    let s = truncate_cow(s, max);
    if looks_like_credential(&s) {
        Cow::Borrowed(REDACTED)
    } else {
        s
    }
}

/// Whether `s` contains something shaped like a bearer credential (see the module docs).
pub(crate) fn looks_like_credential(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_url_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_url_char(b[i]) {
            i += 1;
        }
        let run = &b[start..i];
        let next = b.get(i).copied();
        // Only runs long enough to hold a JWT header, or the word "bearer", need a closer look.
        if (run.len() >= MIN_JWT_HEADER && run_has_credential(run, next))
            || (is_bearer(run) && opaque_follows(b, i))
        {
            return true;
        }
    }
    false
}

/// Checks one maximal run of base64url characters; `next` is the byte after it.
fn run_has_credential(run: &[u8], next: Option<u8>) -> bool {
    let followed_by_dot = next == Some(b'.');
    let last_start = run.len().saturating_sub(MIN_JWT_HEADER);
    for (p, &c) in run.iter().enumerate().take(last_start + 1) {
        let rest = &run[p..];
        // A raw JWT header, ending at the '.'. Its first character encodes '{' ('e') or the
        // JSON whitespace a lenient parser allows before it (' ' is 'I', '\t' and '\n' 'C',
        // '\r' 'D').
        if followed_by_dot
            && matches!(c, b'e' | b'I' | b'C' | b'D')
            && rest.len() >= MIN_JWT_HEADER
            && decodes_to_json_object(rest)
        {
            return true;
        }
        // A base64url-wrapped JWT: the encodings of a leading 'e', 'I', 'C' or 'D'.
        if matches!(c, b'Z' | b'S' | b'Q' | b'R') && rest.len() >= 2 * MIN_JWT_HEADER {
            let mut inner = [0u8; 9];
            let n = decode_prefix(rest, &mut inner);
            if n == inner.len()
                && inner.iter().all(|&c| is_url_char(c))
                && decodes_to_json_object(&inner)
            {
                return true;
            }
        }
    }
    false
}

/// Whether the run is the word `bearer` in any ASCII case.
fn is_bearer(run: &[u8]) -> bool {
    run.eq_ignore_ascii_case(b"bearer")
}

/// Whether a separator and an opaque token of [`MIN_OPAQUE_TOKEN`] characters follow at `i`.
fn opaque_follows(b: &[u8], i: usize) -> bool {
    let Some(&sep) = b.get(i) else {
        return false;
    };
    if !matches!(sep, b' ' | b'.' | b'=') {
        return false;
    }
    let rest = b.get(i + 1..).unwrap_or(&[]);
    let len = rest
        .iter()
        .take_while(|&&c| is_url_char(c) || matches!(c, b'+' | b'/' | b'=' | b'~' | b'.'))
        .count();
    len >= MIN_OPAQUE_TOKEN
}

/// Which bytes are base64url characters.
const URL_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        c += 1;
    }
    table
};

fn is_url_char(c: u8) -> bool {
    URL_CHARS[usize::from(c)]
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes the first four base64url characters of `s` into three bytes.
fn decode3(s: &[u8]) -> Option<[u8; 3]> {
    let [a, b, c, d] = [
        b64_value(*s.first()?)?,
        b64_value(*s.get(1)?)?,
        b64_value(*s.get(2)?)?,
        b64_value(*s.get(3)?)?,
    ];
    Some([(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d])
}

/// Decodes whole groups of four base64url characters from the start of `s` into `out`, as many
/// as fit; returns how many bytes were written.
fn decode_prefix(s: &[u8], out: &mut [u8; 9]) -> usize {
    let mut n = 0;
    for (quad, dst) in s.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let Some(bytes) = decode3(quad) else {
            break;
        };
        dst.copy_from_slice(&bytes);
        n += 3;
    }
    n
}

fn is_json_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether the base64url text `s` decodes to the start of a JSON object: optional whitespace,
/// `{`, optional whitespace, then `"` (or the end of what was decoded).
fn decodes_to_json_object(s: &[u8]) -> bool {
    let mut buf = [0u8; 9];
    let n = decode_prefix(s, &mut buf);
    let mut bytes = buf[..n]
        .iter()
        .copied()
        .skip_while(|&c| is_json_whitespace(c));
    if bytes.next() != Some(b'{') {
        return false;
    }
    matches!(bytes.find(|&c| !is_json_whitespace(c)), Some(b'"') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_raw_and_wrapped_jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEifQ.\
                   c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmU";
        assert!(looks_like_credential(jwt));
        assert!(looks_like_credential(&format!("Bearer {jwt}")));
        assert!(looks_like_credential(&format!("jwt-auth, jwt.{jwt}")));
        assert!(looks_like_credential(&format!("x{jwt}")));
        // base64url("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1In0.sig")
        let wrapped = "ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lKMUluMC5zaWc";
        assert!(looks_like_credential(&format!("jwt.{wrapped}")));
        // A header with whitespace before the brace (serde_json would accept it).
        assert!(looks_like_credential(
            "IHsiYWxnIjoiSFMyNTYifQ.eyJzdWIiOiJ1In0.c2ln"
        ));
        assert!(looks_like_credential(
            "Authorization: bearer abcdefghijklmnopqrstuvwxyz"
        ));
    }

    #[test]
    fn leaves_ordinary_values_alone() {
        for s in [
            "",
            "user-42",
            "550e8400-e29b-41d4-a716-446655440000",
            "https://app.example.com",
            "https://eventsourcing-service.example.com:8443",
            "https://ewok.example.com",
            "token_expired",
            "bearer token expired",
            "127.0.0.1:8080",
            "[redacted]",
        ] {
            assert!(!looks_like_credential(s), "{s}");
        }
    }

    #[test]
    fn truncation_is_a_prefix_on_a_char_boundary() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 10), "abc");
        assert_eq!(truncate_cow(Cow::Owned("héllo".into()), 2), "h");
    }
}
