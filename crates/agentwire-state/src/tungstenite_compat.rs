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

impl CloseCode {
    /// The close code to send after tungstenite returned `err` while reading, or `None` when no
    /// close frame can or should be sent (the connection is closed or broken, or the error is
    /// local):
    ///
    /// | error | code |
    /// |---|---|
    /// | `Capacity(MessageTooLong)` | 1009 `message_too_big` |
    /// | `Utf8` | 1007 `invalid_payload_data` |
    /// | `Protocol(_)` other than a reset or a local misuse | 1002 `protocol_error` |
    /// | anything else | `None` |
    pub fn for_tungstenite_error(err: &Error) -> Option<CloseCode> {
        match err {
            Error::Capacity(CapacityError::MessageTooLong { .. }) => Some(CloseCode::MessageTooBig),
            Error::Utf8(_) => Some(CloseCode::InvalidPayloadData),
            Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
                | ProtocolError::SendAfterClosing
                | ProtocolError::HandshakeIncomplete,
            ) => None,
            Error::Protocol(_) => Some(CloseCode::ProtocolError),
            _ => None,
        }
    }
}
