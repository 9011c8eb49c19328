//! Small allocation-free text helpers for the record's hot path: a stack string, decimal and
//! address formatting without `core::fmt`, and JSON string escaping identical to serde_json's.

use core::fmt;
use std::net::SocketAddr;

/// A string of at most `N` bytes on the stack. Pushing past `N` fails instead of panicking.
pub(crate) struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `s`; `Err` (and nothing appended) when it does not fit.
    pub(crate) fn push_str(&mut self, s: &str) -> Result<(), fmt::Error> {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so this is valid UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s)
    }
}

/// Where the formatting helpers write: a `Vec<u8>` (the JSON writer) or a [`StackStr`].
pub(crate) trait Sink {
    /// Appends ASCII bytes.
    fn put(&mut self, ascii: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, ascii: &[u8]) {
        self.extend_from_slice(ascii);
    }
}

impl<const N: usize> Sink for StackStr<N> {
    fn put(&mut self, ascii: &[u8]) {
        if let Ok(s) = core::str::from_utf8(ascii) {
            let _ = self.push_str(s);
        }
    }
}

/// Two decimal digits for every number below 100.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                            2021222324252627282930313233343536373839\
                            4041424344454647484950515253545556575859\
                            6061626364656667686970717273747576777879\
                            8081828384858687888990919293949596979899";

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64(out: &mut impl Sink, n: u64) {
    if n < 10 {
        return out.put(&[b'0' + n as u8]);
    }
    if n < 100 {
        let pair = n as usize * 2;
        return out.put(&PAIRS[pair..pair + 2]);
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
    out.put(&buf[i..]);
}

/// Appends `ip:port` for IPv4 and `[ip%scope]:port` for IPv6, exactly as `SocketAddr`'s
/// `Display` writes them.
pub(crate) fn push_socket_addr(out: &mut impl Sink, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            push_u64(out, a.into());
            out.put(b".");
            push_u64(out, b.into());
            out.put(b".");
            push_u64(out, c.into());
            out.put(b".");
            push_u64(out, d.into());
            out.put(b":");
            push_u64(out, v4.port().into());
        }
        SocketAddr::V6(v6) => {
            // At most 58 bytes ("[" 39 "%" 10 "]:" 5), so this fits.
            let mut text = StackStr::<64>::new();
            let _ = fmt::Write::write_fmt(&mut text, format_args!("{v6}"));
            out.put(text.as_str().as_bytes());
        }
    }
}

/// [`push_socket_addr`] into a stack string, for the `Serialize` impl.
pub(crate) fn socket_addr(addr: &SocketAddr) -> StackStr<64> {
    let mut out = StackStr::new();
    push_socket_addr(&mut out, addr);
    out
}

/// The decimal digits of `n`, for the message.
pub(crate) fn digits(n: u64) -> StackStr<20> {
    let mut out = StackStr::new();
    push_u64(&mut out, n);
    out
}

/// Whether any byte of `bytes` must be escaped in a JSON string (a control character, `"` or
/// `\\`). Checks eight bytes at a time (SWAR), the rest one by one.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // A byte below `n` (for n <= 0x80) sets its high bit in (x - n) & !x.
    let below = |x: u64, n: u64| x.wrapping_sub(n) & !x & HIGHS;
    let special =
        |x: u64| below(x, SPACES) | below(x ^ QUOTES, ONES) | below(x ^ BACKSLASHES, ONES);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if special(u64::from_ne_bytes(word)) != 0 {
            return true;
        }
    }
    // The last 0..=7 bytes, padded with a byte that needs no escaping.
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    special(u64::from_ne_bytes(word)) != 0
}

/// Appends the inside of a JSON string: `s` escaped exactly as serde_json does.
pub(crate) fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0C => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1F => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_addresses_match_std() {
        let mut samples = vec![0, 7, 9, 10, 99, 100, 101, 4401, 65535, u64::from(u32::MAX)];
        samples.extend((0..20).map(|p| 10u64.pow(p)));
        samples.extend((1..20).map(|p| 10u64.pow(p) - 1));
        samples.push(u64::MAX);
        for n in samples {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "203.0.113.9:50412",
            "[::1]:80",
            "[fe80::1%4294967295]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
            "[::ffff:1.2.3.4]:1",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(socket_addr(&addr).as_str(), addr.to_string());
            let mut out = Vec::new();
            push_socket_addr(&mut out, &addr);
            assert_eq!(out, addr.to_string().as_bytes());
        }
    }

    #[test]
    fn escaping_matches_serde_json() {
        let all: String = (0u8..=0x7F)
            .map(char::from)
            .chain(['é', '😀', '\u{2028}'])
            .collect();
        for s in ["", "plain", "quote\"back\\slash", &all] {
            let mut out = b"\"".to_vec();
            push_escaped(&mut out, s);
            out.push(b'"');
            assert_eq!(out, serde_json::to_vec(s).unwrap());
        }
    }

    #[test]
    fn needs_escape_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            let clean = vec![b'a'; len];
            assert!(!needs_escape(&clean));
            for pos in 0..len {
                for b in 0u8..=255 {
                    let mut v = clean.clone();
                    v[pos] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&v), expected, "len {len} pos {pos} byte {b}");
                }
            }
        }
    }

    #[test]
    fn stack_str_refuses_overflow() {
        let mut s = StackStr::<4>::new();
        assert!(s.push_str("abc").is_ok());
        assert!(s.push_str("de").is_err());
        assert_eq!(s.as_str(), "abc");
    }
}
