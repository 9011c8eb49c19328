//! JSON output primitives: strings and integers, written byte for byte as serde_json writes
//! them.
//!
//! agentwire writes its frames and its log records with hand-written writers on the hot path
//! (no `core::fmt`, no serde); these functions are their one way of writing a JSON string or
//! number. They are public for code that writes JSON of its own next to agentwire frames (a log
//! formatter, another record type), so that its strings are escaped exactly as the frames'
//! are: the same bytes as `serde_json::to_string` gives for the same value.
//!
//! Each function appends to an [`Output`]: a `String` or a `Vec<u8>`.
//!
//! ```
//! use agentwire_types::json;
//!
//! let mut line = String::from("{\"message\":");
//! json::write_string(&mut line, "quote \" and\nnewline");
//! line.push_str(",\"count\":");
//! json::write_u64(&mut line, 42);
//! line.push_str(",\"delta\":");
//! json::write_i64(&mut line, -7);
//! line.push('}');
//! assert_eq!(line, r#"{"message":"quote \" and\nnewline","count":42,"delta":-7}"#);
//!
//! // The same into bytes, and a string built from pieces.
//! let mut bytes = b"{\"summary\":\"closed: ".to_vec();
//! json::write_escaped(&mut bytes, "tab\there");
//! bytes.extend_from_slice(b"\"}");
//! assert_eq!(bytes, br#"{"summary":"closed: tab\there"}"#);
//! ```

/// Where the writers append: a `String` or a `Vec<u8>`.
///
/// The trait is sealed: the writers rely on what its methods do, so no other type can
/// implement it.
pub trait Output: sealed::Sealed {}

impl Output for String {}
impl Output for Vec<u8> {}

mod sealed {
    /// The buffer operations the writers need. Not nameable outside the crate, so its methods
    /// cannot be called (nor this trait implemented) from outside.
    pub trait Sealed {
        /// Appends text.
        fn put_str(&mut self, s: &str);
        /// Appends bytes that are all ASCII (the writers only ever pass ASCII here).
        fn put_ascii(&mut self, ascii: &[u8]);
        /// Appends one ASCII byte.
        fn put_byte(&mut self, byte: u8);
        /// Makes room for `additional` more bytes.
        fn reserve_bytes(&mut self, additional: usize);
    }

    impl Sealed for String {
        #[inline]
        fn put_str(&mut self, s: &str) {
            self.push_str(s);
        }

        #[inline]
        fn put_ascii(&mut self, ascii: &[u8]) {
            // One char per byte, without a UTF-8 check (an out-of-line call that costs more
            // than the few digits it checks); the bytes are ASCII, so each is one char.
            self.extend(ascii.iter().map(|&b| char::from(b)));
        }

        #[inline]
        fn put_byte(&mut self, byte: u8) {
            self.push(char::from(byte));
        }

        #[inline]
        fn reserve_bytes(&mut self, additional: usize) {
            self.reserve(additional);
        }
    }

    impl Sealed for Vec<u8> {
        #[inline]
        fn put_str(&mut self, s: &str) {
            self.extend_from_slice(s.as_bytes());
        }

        #[inline]
        fn put_ascii(&mut self, ascii: &[u8]) {
            self.extend_from_slice(ascii);
        }

        #[inline]
        fn put_byte(&mut self, byte: u8) {
            self.push(byte);
        }

        #[inline]
        fn reserve_bytes(&mut self, additional: usize) {
            self.reserve(additional);
        }
    }
}

/// Appends `s` as a JSON string, quotes included, escaped exactly as serde_json does: `"`, `\`
/// and the control characters below 0x20 are escaped (`\n`, `\r`, `\t`, `\b`, `\f`, otherwise
/// `\u00XX` in lower-case hex); everything else, non-ASCII included, is copied as is.
#[inline]
pub fn write_string<O: Output + ?Sized>(out: &mut O, s: &str) {
    out.reserve_bytes(s.len() + 2);
    out.put_byte(b'"');
    write_escaped(out, s);
    out.put_byte(b'"');
}

/// Appends the inside of a JSON string: `s` escaped as [`write_string`] does, without the
/// quotes, for a string written in several pieces.
#[inline]
pub fn write_escaped<O: Output + ?Sized>(out: &mut O, s: &str) {
    match find_escape(s.as_bytes()) {
        // The usual case: nothing to escape, one copy.
        None => out.put_str(s),
        Some(first) => escape_from(out, s, first),
    }
}

/// The rest of [`write_escaped`] once a byte to escape was found at `first`.
#[cold]
fn escape_from<O: Output + ?Sized>(out: &mut O, s: &str, first: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let (mut start, mut next) = (0, Some(first));
    while let Some(at) = next {
        // Every byte to escape is ASCII, so `start` and `at` are on character boundaries.
        out.put_str(s.get(start..at).unwrap_or_default());
        match bytes[at] {
            b'"' => out.put_ascii(b"\\\""),
            b'\\' => out.put_ascii(b"\\\\"),
            b'\n' => out.put_ascii(b"\\n"),
            b'\r' => out.put_ascii(b"\\r"),
            b'\t' => out.put_ascii(b"\\t"),
            0x08 => out.put_ascii(b"\\b"),
            0x0c => out.put_ascii(b"\\f"),
            b => out.put_ascii(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = at + 1;
        next = find_escape(&bytes[start..]).map(|i| start + i);
    }
    out.put_str(s.get(start..).unwrap_or_default());
}

/// The high bit of each byte of `w` that needs escaping, and possibly of bytes above one
/// that does: exact as a yes/no answer (zero or not).
///
/// A byte is flagged when it is below 0x20, or when XOR-ing it with `"` or `\\` gives zero
/// (`b - n` borrows into the high bit exactly when `b < n`, for bytes under 0x80). Bytes of
/// 0x80 and above never need escaping and have the high bit set in `w` and in both XORs, so
/// one `& !w` masks them out of all three tests at once. A borrow can only flag bytes above
/// a byte that is itself flagged, which leaves the yes/no answer exact.
#[inline]
const fn escape_flags(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20);
    let quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
    let backslash = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
    (control | quote | backslash) & !w & HIGH
}

/// The index of the first byte of `w` (little-endian, so byte 0 is the lowest) that needs
/// escaping: the lowest flag is exact, as a borrow only flags bytes above a flagged one.
#[inline]
const fn first_flagged(w: u64) -> Option<usize> {
    match escape_flags(w) {
        0 => None,
        flags => Some((flags.trailing_zeros() / 8) as usize),
    }
}

/// The index of the first byte of `bytes` that a JSON string cannot hold as is: a `"`, a `\`
/// or a control character below 0x20. `None` when there is none, so the bytes can be copied
/// between quotes unchanged (and, read from JSON text, hold no escape sequence).
///
/// Looks at sixteen bytes at a time, then at the rest: a string of eight bytes or more ends
/// with a word that overlaps the one before it; a shorter one is padded with spaces to a word.
/// Never a loop over bytes.
///
/// ```
/// use agentwire_types::json::find_escape;
///
/// assert_eq!(find_escape(b"plain text, twice as long as sixteen bytes"), None);
/// assert_eq!(find_escape(br#"say "hi""#), Some(4));
/// assert_eq!(find_escape("é\n".as_bytes()), Some(2));
/// ```
#[inline]
pub fn find_escape(bytes: &[u8]) -> Option<usize> {
    const SPACES: [u8; 8] = [b' '; 8];
    let word = |chunk: &[u8]| u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or(SPACES));
    let len = bytes.len();
    if len < 8 {
        let mut padded = SPACES;
        for (slot, &b) in padded.iter_mut().zip(bytes) {
            *slot = b;
        }
        return first_flagged(u64::from_le_bytes(padded));
    }
    let mut pairs = bytes.chunks_exact(16);
    let mut at = 0;
    for pair in &mut pairs {
        let (a, b) = pair.split_at(8);
        let (a, b) = (word(a), word(b));
        if escape_flags(a) | escape_flags(b) != 0 {
            return match first_flagged(a) {
                Some(i) => Some(at + i),
                None => first_flagged(b).map(|i| at + 8 + i),
            };
        }
        at += 16;
    }
    let rest = pairs.remainder();
    if rest.len() > 8
        && let Some(i) = first_flagged(word(&rest[..8]))
    {
        return Some(at + i);
    }
    if rest.is_empty() {
        return None;
    }
    // The last eight bytes; those before `at` among them are known clean.
    first_flagged(bytes.get(len - 8..).map_or(0, word)).map(|i| len - 8 + i)
}

/// Two decimal digits for every number below 100.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                            2021222324252627282930313233343536373839\
                            4041424344454647484950515253545556575859\
                            6061626364656667686970717273747576777879\
                            8081828384858687888990919293949596979899";

/// Appends `n` as a JSON number (its decimal digits).
#[inline]
pub fn write_u64<O: Output + ?Sized>(out: &mut O, n: u64) {
    if n < 10 {
        // The most common numbers in frames (an index, a status) skip the digit buffer.
        return out.put_byte(b'0' + n as u8);
    }
    if n < 100 {
        let pair = n as usize * 2;
        return out.put_ascii(&PAIRS[pair..pair + 2]);
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    while n >= 100 {
        let pair = usize::from((n % 100) as u8) * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = usize::from(n as u8) * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    out.put_ascii(&buf[i..]);
}

/// Appends `n` as a JSON number: a `-` for a negative number, then its decimal digits.
#[inline]
pub fn write_i64<O: Output + ?Sized>(out: &mut O, n: i64) {
    if n < 0 {
        out.put_byte(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether serde_json escapes this byte inside a string (what the word tests must agree
    /// with).
    const fn needs_escape(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_test() {
        // Every byte at every position, and every pair of adjacent bytes (borrows travel from
        // one byte into the next), among filler that needs no escape.
        for at in 0..8 {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let mut word = [b'a'; 8];
                    word[at] = a;
                    if at < 7 {
                        word[at + 1] = b;
                    }
                    let expected = word.iter().position(|&x| needs_escape(x));
                    assert_eq!(
                        first_flagged(u64::from_le_bytes(word)),
                        expected,
                        "{word:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn hex_escapes_are_lower_case() {
        let mut out = String::new();
        write_string(&mut out, "\u{1f}\u{0}\u{b}");
        assert_eq!(out, r#""\u001f\u0000\u000b""#);
    }
}
