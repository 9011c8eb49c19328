//! Small allocation-free text helpers for the record: a stack string, and address formatting
//! for the JSON writer (JSON strings and numbers are [`agentwire_types::json`]'s).

use core::fmt;
use std::net::SocketAddr;

use agentwire_types::json;

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

/// Appends `ip:port` for IPv4 and `[ip%scope]:port` for IPv6, exactly as `SocketAddr`'s
/// `Display` writes them (the record's JSON writer: IPv4 without `core::fmt`).
pub(crate) fn push_socket_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            json::write_u64(out, a.into());
            out.push(b'.');
            json::write_u64(out, b.into());
            out.push(b'.');
            json::write_u64(out, c.into());
            out.push(b'.');
            json::write_u64(out, d.into());
            out.push(b':');
            json::write_u64(out, v4.port().into());
        }
        SocketAddr::V6(_) => out.extend_from_slice(socket_addr(addr).as_str().as_bytes()),
    }
}

/// The address as `SocketAddr`'s `Display` writes it, in a stack string, for the `Serialize`
/// impl.
pub(crate) fn socket_addr(addr: &SocketAddr) -> StackStr<64> {
    // At most 58 bytes ("[" 39 "%" 10 "]:" 5), so this fits.
    let mut out = StackStr::new();
    let _ = fmt::Write::write_fmt(&mut out, format_args!("{addr}"));
    out
}

/// The decimal digits of `n`, for the message.
pub(crate) fn digits(n: u64) -> StackStr<20> {
    let mut out = StackStr::new();
    let _ = fmt::Write::write_fmt(&mut out, format_args!("{n}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_addresses_match_std() {
        for n in [0, 7, 10, 99, 4401, 65_535, u64::MAX] {
            assert_eq!(digits(n).as_str(), n.to_string());
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
    fn stack_str_refuses_overflow() {
        let mut s = StackStr::<4>::new();
        assert!(s.push_str("abc").is_ok());
        assert!(s.push_str("de").is_err());
        assert_eq!(s.as_str(), "abc");
    }
}
