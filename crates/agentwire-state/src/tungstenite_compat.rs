//! Conversions from and to tungstenite 0.29 (cargo feature `tungstenite`).
//!
//! tungstenite keeps its connection state private and reports it through its errors, so the
//! state conversion reads a [`tungstenite::Error`]. axum's `ws` module has its own close frame
//! with a plain `u16` code: use [`CloseCode::from_u16`] and [`CloseInfo::new`] for it.

use std::borrow::Cow;

use tungstenite::Error;
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};

use crate::close::{CloseCode, CloseInfo};
use crate::state::ConnectionState;

impl From<WsCloseCode> for CloseCode {
    fn from(code: WsCloseCode) -> Self {
        CloseCode::from_u16(u16::from(code))
    }
}

impl From<CloseCode> for WsCloseCode {
    fn from(code: CloseCode) -> Self {
        WsCloseCode::from(code.as_u16())
    }
}

/// The code, and the reason cut and checked as [`CloseInfo::new`] does.
impl From<&CloseFrame> for CloseInfo {
    fn from(frame: &CloseFrame) -> Self {
        CloseInfo::new(frame.code.into(), frame.reason.as_str().to_owned())
    }
}

/// The code, and the reason cut and checked as [`CloseInfo::new`] does.
impl From<CloseFrame> for CloseInfo {
    fn from(frame: CloseFrame) -> Self {
        CloseInfo::from(&frame)
    }
}

/// A close frame to send; a `'static` reason is not copied.
impl From<CloseInfo> for CloseFrame {
    fn from(info: CloseInfo) -> Self {
        let (code, reason) = info.into_parts();
        let reason = match reason {
            Cow::Borrowed(s) => Utf8Bytes::from_static(s),
            Cow::Owned(s) => Utf8Bytes::from(s),
        };
        CloseFrame {
            code: code.into(),
            reason,
        }
    }
}

impl CloseInfo {
    /// Reads the payload of a received `Message::Close`: a frame without a code (`None`) is
    /// reported as 1005 `no_status_received`, as RFC 6455 says.
    pub fn from_close_frame(frame: Option<&CloseFrame>) -> CloseInfo {
        match frame {
            Some(frame) => CloseInfo::from(frame),
            None => CloseInfo::code_only(CloseCode::NoStatusReceived),
        }
    }
}

impl ConnectionState {
    /// The state a connection is in after tungstenite returned `err` from a read or a write:
    /// `closed` for `ConnectionClosed` (the close handshake completed) and `AlreadyClosed`,
    /// `failed` for everything else (I/O, protocol, capacity, UTF-8 errors...).
    pub fn after_tungstenite_error(err: &Error) -> ConnectionState {
        match err {
            Error::ConnectionClosed | Error::AlreadyClosed => ConnectionState::Closed,
            _ => ConnectionState::Failed,
        }
    }
}

impl CloseInfo {
    /// How a connection ends after tungstenite returned `err` from a read: the close frame to
    /// send, or `None` when nothing can be sent.
    ///
    /// | error | answer |
    /// |---|---|
    /// | `Capacity(MessageTooLong)` | 1009 `message_too_big`, reason `message too big` |
    /// | `Capacity(_)` (too many headers) | 1009 `message_too_big`, reason `frame too big` |
    /// | `Utf8` | 1007 `invalid_payload_data`, reason `text frame is not valid UTF-8` |
    /// | `Protocol(ResetWithoutClosingHandshake)` | `None`: the peer vanished |
    /// | `Protocol(_)`, any other | 1002 `protocol_error`, reason `WebSocket protocol error` |
    /// | `ConnectionClosed`, `AlreadyClosed`, `Io`, anything else | `None` |
    ///
    /// `None` means the peer is gone or the connection is already closed: send nothing, and
    /// record the end as 1006 `abnormal_closure`
    /// (`CloseInfo::code_only(CloseCode::AbnormalClosure)`; the state is
    /// [`ConnectionState::after_tungstenite_error`]). No answer is ever 1011: a read error is
    /// the peer's doing, not a bug in the server.
    ///
    /// ```
    /// use agentwire_state::{CloseCode, CloseInfo};
    /// use tungstenite::error::{CapacityError, Error};
    ///
    /// let too_long = Error::Capacity(CapacityError::MessageTooLong { size: 70_000, max_size: 65_536 });
    /// let info = CloseInfo::for_tungstenite_error(&too_long).unwrap();
    /// assert_eq!(info.code(), CloseCode::MessageTooBig);
    /// assert_eq!(info.reason(), "message too big");
    ///
    /// assert_eq!(CloseInfo::for_tungstenite_error(&Error::ConnectionClosed), None);
    /// ```
    pub fn for_tungstenite_error(err: &Error) -> Option<CloseInfo> {
        let (code, reason) = match err {
            Error::Capacity(CapacityError::MessageTooLong { .. }) => {
                (CloseCode::MessageTooBig, "message too big")
            }
            Error::Capacity(_) => (CloseCode::MessageTooBig, "frame too big"),
            Error::Utf8(_) => (
                CloseCode::InvalidPayloadData,
                "text frame is not valid UTF-8",
            ),
            // The peer vanished without a close frame: nothing to answer.
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
            Error::Protocol(_) => (CloseCode::ProtocolError, "WebSocket protocol error"),
            _ => return None,
        };
        Some(CloseInfo::new(code, reason))
    }
}
