//! `CloseCode` and `CloseInfo`: every number round-trips, names are stable, reasons fit a frame.

use std::collections::HashSet;

use agentwire_state::{
    CloseCode, CloseInfo, MAX_REASON_BYTES, REDACTED, Severity, truncate_reason,
};
use proptest::prelude::*;

/// The names the docs and the wire contract promise, written out independently of the code.
const NAMED: &[(u16, &str)] = &[
    (1000, "normal_closure"),
    (1001, "going_away"),
    (1002, "protocol_error"),
    (1003, "unsupported_data"),
    (1004, "reserved"),
    (1005, "no_status_received"),
    (1006, "abnormal_closure"),
    (1007, "invalid_payload_data"),
    (1008, "policy_violation"),
    (1009, "message_too_big"),
    (1010, "mandatory_extension"),
    (1011, "internal_error"),
    (1012, "service_restart"),
    (1013, "try_again_later"),
    (1014, "bad_gateway"),
    (1015, "tls_handshake"),
    (4008, "slow_consumer"),
    (4401, "auth_failed"),
    (4408, "timeout"),
    (4409, "too_many_connections"),
    (4429, "rate_limited"),
];

#[test]
fn every_u16_round_trips_through_the_code_and_json() {
    for n in 0..=u16::MAX {
        let code = CloseCode::from_u16(n);
        assert_eq!(code.as_u16(), n);
        assert_eq!(u16::from(code), n);
        assert_eq!(CloseCode::from(n), code);
        assert_eq!(CloseCode::from_u16(code.as_u16()), code);
        assert!(!code.name().is_empty() && !code.description().is_empty());
        assert_eq!(code.description(), code.description().trim());
        assert_eq!(code.to_string(), format!("{n} {}", code.name()));
        assert_eq!(n.to_string().parse::<CloseCode>(), Ok(code));

        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, n.to_string());
        assert_eq!(serde_json::from_str::<CloseCode>(&json).unwrap(), code);
    }
}

#[test]
fn named_codes_have_their_documented_names() {
    for &(n, name) in NAMED {
        let code = CloseCode::from_u16(n);
        assert!(!matches!(code, CloseCode::Other(_)), "{n} has no variant");
        assert_eq!(code.name(), name);
        assert_eq!(name.parse::<CloseCode>(), Ok(code));
        assert_eq!(name.to_ascii_uppercase().parse::<CloseCode>(), Ok(code));
        assert_eq!(
            serde_json::from_str::<CloseCode>(&format!("\"{name}\"")).unwrap(),
            code
        );
    }
    let known: Vec<_> = CloseCode::KNOWN.iter().map(|c| c.as_u16()).collect();
    let documented: Vec<_> = NAMED.iter().map(|&(n, _)| n).collect();
    assert_eq!(known, documented);
    let names: HashSet<_> = CloseCode::KNOWN.iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), CloseCode::KNOWN.len(), "names are unique");
}

#[test]
fn unknown_codes_are_kept_with_their_range_name() {
    for (n, name) in [
        (0, "invalid"),
        (999, "invalid"),
        (1016, "unassigned"),
        (2999, "unassigned"),
        (3000, "iana_registered"),
        (3999, "iana_registered"),
        (4000, "private_use"),
        (4999, "private_use"),
        (5000, "invalid"),
        (u16::MAX, "invalid"),
    ] {
        let code = CloseCode::from_u16(n);
        assert_eq!(code, CloseCode::Other(n));
        assert_eq!(code.name(), name);
        assert_eq!(code.severity(), Severity::Notice);
    }
    // A hand-built Other of a named number is that named code in every respect.
    assert_eq!(CloseCode::Other(4401), CloseCode::AuthFailed);
    assert_eq!(CloseCode::Other(4401).name(), "auth_failed");
    assert!(CloseCode::Other(1011).is_server_bug());
}

#[test]
fn helpers_classify_codes() {
    assert!(CloseCode::InternalError.is_server_bug());
    assert_eq!(
        (0..=u16::MAX)
            .filter(|&n| CloseCode::from_u16(n).is_server_bug())
            .collect::<Vec<_>>(),
        [1011]
    );
    assert!(CloseCode::NormalClosure.is_normal() && CloseCode::GoingAway.is_normal());
    assert!(!CloseCode::AuthFailed.is_normal());
    for code in [4008, 4401, 4408, 4409, 4429] {
        assert!(CloseCode::from_u16(code).is_agentwire());
        assert!(CloseCode::from_u16(code).is_sendable());
    }
    assert!(!CloseCode::from_u16(4000).is_agentwire());
    for never_sent in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert!(
            !CloseCode::from_u16(never_sent).is_sendable(),
            "{never_sent}"
        );
    }
    for sendable in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
    ] {
        assert!(CloseCode::from_u16(sendable).is_sendable(), "{sendable}");
    }
    assert_eq!(CloseCode::NormalClosure.severity(), Severity::Info);
    assert_eq!(CloseCode::AuthFailed.severity(), Severity::Notice);
    assert_eq!(CloseCode::SlowConsumer.severity(), Severity::Warning);
    assert_eq!(CloseCode::InternalError.severity(), Severity::Error);
}

#[test]
fn bad_close_code_text_is_an_error() {
    for bad in [
        "", "65536", "-1", "1000.0", "normal", " 1000", "0x3e8", "999999",
    ] {
        let err = bad.parse::<CloseCode>().unwrap_err();
        assert_eq!(err.code(), "unknown_close_code");
    }
    for bad in ["65536", "-1", "1.5", "null", "true", "[]", "{}", "\"nope\""] {
        assert!(serde_json::from_str::<CloseCode>(bad).is_err(), "{bad}");
    }
}

#[test]
fn close_info_json_shape_and_round_trip() {
    let info = CloseInfo::new(CloseCode::AuthFailed, "token_expired");
    let json = serde_json::to_string(&info).unwrap();
    assert_eq!(
        json,
        r#"{"code":4401,"name":"auth_failed","reason":"token_expired"}"#
    );
    assert_eq!(serde_json::from_str::<CloseInfo>(&json).unwrap(), info);
    let bare: CloseInfo = serde_json::from_str(r#"{"code":"going_away"}"#).unwrap();
    assert_eq!(bare, CloseInfo::code_only(CloseCode::GoingAway));
    assert_eq!(bare.to_string(), "1001 going_away");
    assert_eq!(info.to_string(), "4401 auth_failed: token_expired");
    assert_eq!(CloseInfo::from(CloseCode::NormalClosure).reason(), "");
}

#[test]
fn close_reason_is_cut_to_the_frame_limit() {
    let info = CloseInfo::new(CloseCode::PolicyViolation, "a".repeat(200));
    assert_eq!(info.reason().len(), MAX_REASON_BYTES);
    // 4-byte characters: 30 fit (120 bytes), the 31st would not.
    let info = CloseInfo::new(CloseCode::PolicyViolation, "😀".repeat(40));
    assert_eq!(info.reason().len(), 120);
    let read: CloseInfo = serde_json::from_str(&format!(
        r#"{{"code":1008,"reason":"{}"}}"#,
        "b".repeat(500)
    ))
    .unwrap();
    assert_eq!(read.reason().len(), MAX_REASON_BYTES);
}

#[test]
fn a_token_cannot_be_a_close_reason() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLWJ5dGVz";
    let info = CloseInfo::new(CloseCode::AuthFailed, format!("bad token {token}"));
    assert_eq!(info.reason(), REDACTED);
}

proptest! {
    #[test]
    fn truncated_reasons_are_utf8_prefixes_that_fit(reason in ".{0,200}") {
        let cut = truncate_reason(&reason);
        prop_assert!(cut.len() <= MAX_REASON_BYTES);
        prop_assert!(reason.starts_with(cut));
        if reason.len() <= MAX_REASON_BYTES {
            prop_assert_eq!(cut, reason.as_str());
        } else {
            // As long as possible: the next character would not have fit.
            let next = reason[cut.len()..].chars().next().map_or(0, char::len_utf8);
            prop_assert!(cut.len() + next > MAX_REASON_BYTES);
        }
        let info = CloseInfo::new(CloseCode::NormalClosure, reason.clone());
        prop_assert!(info.reason() == cut || info.reason() == REDACTED);
    }

    #[test]
    fn truncated_reasons_of_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let reason = String::from_utf8_lossy(&bytes);
        let cut = truncate_reason(&reason);
        prop_assert!(cut.len() <= MAX_REASON_BYTES && reason.starts_with(cut));
    }

    #[test]
    fn close_infos_round_trip_through_json(code in any::<u16>(), reason in ".{0,150}") {
        let info = CloseInfo::new(CloseCode::from_u16(code), reason);
        let json = serde_json::to_string(&info).unwrap();
        prop_assert!(serde_json::from_str::<serde_json::Value>(&json).unwrap().is_object());
        prop_assert_eq!(serde_json::from_str::<CloseInfo>(&json).unwrap(), info);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_readers(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = serde_json::from_slice::<CloseCode>(&bytes);
        let _ = serde_json::from_slice::<CloseInfo>(&bytes);
        let _ = serde_json::from_slice::<Severity>(&bytes);
        agentwire_state::fuzz_readers(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = s.parse::<CloseCode>();
        }
    }
}
