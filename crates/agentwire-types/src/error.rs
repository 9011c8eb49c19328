//! The one error type of this crate.

use core::fmt;

/// How many bytes of a rejected name an [`UnknownMessageType`] keeps.
pub const MAX_RECEIVED_BYTES: usize = 64;

/// A message type name that [`normalize`](crate::normalize) could not resolve.
///
/// Either the name is unknown ([`code`](Self::code) `unknown_message_type`), or it is a known
/// legacy name that agentwire refuses on purpose (`unsupported_message_type`, with the reason in
/// [`rejection_reason`](Self::rejection_reason)).
///
/// It keeps at most [`MAX_RECEIVED_BYTES`] of the received name (cut on a character boundary),
/// inline, so building it never allocates.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnknownMessageType {
    received: [u8; MAX_RECEIVED_BYTES],
    received_len: u8,
    truncated: bool,
    rejection: Option<&'static str>,
}

impl UnknownMessageType {
    pub(crate) fn unknown(received: &str) -> Self {
        Self::new(received, None)
    }

    pub(crate) fn rejected(received: &str, why: &'static str) -> Self {
        Self::new(received, Some(why))
    }

    fn new(received: &str, rejection: Option<&'static str>) -> Self {
        let mut end = received.len().min(MAX_RECEIVED_BYTES);
        while !received.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; MAX_RECEIVED_BYTES];
        buf[..end].copy_from_slice(&received.as_bytes()[..end]);
        Self {
            received: buf,
            // `end` is at most MAX_RECEIVED_BYTES (64), so it fits.
            received_len: end as u8,
            truncated: end < received.len(),
            rejection,
        }
    }

    /// The received name, cut to at most [`MAX_RECEIVED_BYTES`] bytes.
    pub fn received(&self) -> &str {
        // Built from a `&str` cut on a char boundary, so this cannot fail; fall back to "" anyway.
        core::str::from_utf8(&self.received[..usize::from(self.received_len)]).unwrap_or("")
    }

    /// Whether [`received`](Self::received) was cut short.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Why a known legacy name is refused, or `None` when the name is simply unknown.
    pub fn rejection_reason(&self) -> Option<&'static str> {
        self.rejection
    }

    /// The stable machine code: `unknown_message_type` or `unsupported_message_type`.
    pub fn code(&self) -> &'static str {
        match self.rejection {
            Some(_) => "unsupported_message_type",
            None => "unknown_message_type",
        }
    }
}

impl fmt::Display for UnknownMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ellipsis = if self.truncated { "..." } else { "" };
        match self.rejection {
            Some(why) => write!(
                f,
                "message type {:?}{ellipsis} is not supported: {why}",
                self.received()
            ),
            None => write!(
                f,
                "unknown message type {:?}{ellipsis}: expected a canonical agentwire type such \
                 as \"start_agent\", \"user_message\" or \"ping\", or one of their documented \
                 aliases (any ASCII case)",
                self.received()
            ),
        }
    }
}

impl fmt::Debug for UnknownMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownMessageType")
            .field("received", &self.received())
            .field("truncated", &self.truncated)
            .field("code", &self.code())
            .finish()
    }
}
