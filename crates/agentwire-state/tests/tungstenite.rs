//! Conversions from and to tungstenite 0.29 (feature `tungstenite`).
#![cfg(feature = "tungstenite")]

use agentwire_state::{CloseCode, CloseInfo, ConnectionState, MAX_REASON_BYTES, REDACTED};
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

#[test]
fn close_codes_convert_both_ways_for_every_number() {
    for n in 0..=u16::MAX {
        let ws = WsCloseCode::from(n);
        let ours = CloseCode::from(ws);
        assert_eq!(ours.as_u16(), n);
        assert_eq!(u16::from(WsCloseCode::from(ours)), n);
    }
    assert_eq!(
        CloseCode::from(WsCloseCode::Error),
        CloseCode::InternalError
    );
    assert_eq!(WsCloseCode::from(CloseCode::GoingAway), WsCloseCode::Away);
    assert_eq!(
        CloseCode::from(WsCloseCode::from(4401)),
        CloseCode::AuthFailed
    );
}

#[test]
fn close_frames_convert_both_ways() {
    let frame = CloseFrame {
        code: WsCloseCode::from(4401),
        reason: "token_expired".into(),
    };
    let info = CloseInfo::from(&frame);
    assert_eq!(info, CloseInfo::new(CloseCode::AuthFailed, "token_expired"));
    assert_eq!(CloseFrame::from(info.clone()), frame);
    assert_eq!(CloseInfo::from(frame), info);

    let static_reason = CloseFrame::from(CloseInfo::new(CloseCode::SlowConsumer, "slow_consumer"));
    assert_eq!(u16::from(static_reason.code), 4008);
    assert_eq!(static_reason.reason.as_str(), "slow_consumer");
}

#[test]
fn a_received_close_frame_is_cut_and_checked() {
    let long = CloseFrame {
        code: WsCloseCode::Policy,
        reason: "é".repeat(100).into(),
    };
    let info = CloseInfo::from(&long);
    assert_eq!(info.reason().len(), 122);
    assert!(info.reason().len() <= MAX_REASON_BYTES);

    let token = CloseFrame {
        code: WsCloseCode::Normal,
        reason: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl".into(),
    };
    assert_eq!(CloseInfo::from(&token).reason(), REDACTED);
}

#[test]
fn a_close_without_a_frame_is_no_status_received() {
    assert_eq!(
        CloseInfo::from_close_frame(None),
        CloseInfo::code_only(CloseCode::NoStatusReceived)
    );
    let frame = CloseFrame {
        code: WsCloseCode::Normal,
        reason: "".into(),
    };
    assert_eq!(
        CloseInfo::from_close_frame(Some(&frame)),
        CloseInfo::code_only(CloseCode::NormalClosure)
    );
}

/// The server's answer to each read error: the close frame it sends (code and reason), or
/// nothing when the peer is gone.
#[test]
fn tungstenite_errors_map_to_states_and_close_frames() {
    use tungstenite::Error;

    /// The close frame's code and reason, or `None` for no frame.
    type Answer = Option<(CloseCode, &'static str)>;
    let io = |kind| Error::Io(std::io::Error::from(kind));
    let cases: Vec<(Error, ConnectionState, Answer)> = vec![
        (Error::ConnectionClosed, ConnectionState::Closed, None),
        (Error::AlreadyClosed, ConnectionState::Closed, None),
        (
            io(std::io::ErrorKind::ConnectionReset),
            ConnectionState::Failed,
            None,
        ),
        (
            io(std::io::ErrorKind::UnexpectedEof),
            ConnectionState::Failed,
            None,
        ),
        (
            Error::Capacity(CapacityError::MessageTooLong {
                size: 70_000,
                max_size: 65_536,
            }),
            ConnectionState::Failed,
            Some((CloseCode::MessageTooBig, "message too big")),
        ),
        (
            Error::Capacity(CapacityError::TooManyHeaders),
            ConnectionState::Failed,
            Some((CloseCode::MessageTooBig, "frame too big")),
        ),
        (
            Error::Utf8("bad".into()),
            ConnectionState::Failed,
            Some((
                CloseCode::InvalidPayloadData,
                "text frame is not valid UTF-8",
            )),
        ),
        (
            Error::Protocol(ProtocolError::UnmaskedFrameFromClient),
            ConnectionState::Failed,
            Some((CloseCode::ProtocolError, "WebSocket protocol error")),
        ),
        (
            Error::Protocol(ProtocolError::InvalidOpcode(3)),
            ConnectionState::Failed,
            Some((CloseCode::ProtocolError, "WebSocket protocol error")),
        ),
        (
            Error::Protocol(ProtocolError::SendAfterClosing),
            ConnectionState::Failed,
            Some((CloseCode::ProtocolError, "WebSocket protocol error")),
        ),
        (
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            ConnectionState::Failed,
            None,
        ),
        (Error::AttackAttempt, ConnectionState::Failed, None),
    ];
    for (err, state, answer) in cases {
        assert_eq!(
            ConnectionState::after_tungstenite_error(&err),
            state,
            "{err}"
        );
        let info = CloseInfo::for_tungstenite_error(&err);
        assert_eq!(
            info.as_ref().map(|i| (i.code(), i.reason())),
            answer,
            "{err}"
        );
        if let Some(info) = info {
            assert!(info.code().is_sendable() && !info.code().is_server_bug());
            // What the server puts in the close frame it sends.
            let frame = CloseFrame::from(info.clone());
            assert_eq!(u16::from(frame.code), info.code().as_u16());
            assert_eq!(frame.reason.as_str(), info.reason());
        }
    }
}
