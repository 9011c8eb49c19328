//! Entry point for fuzz targets and property tests of the readers.

use crate::close::{CloseCode, CloseInfo, MAX_REASON_BYTES};
use crate::record::ConnectionRecord;
use crate::severity::Severity;
use crate::state::ConnectionState;

/// Feeds `data` to every reader of this crate (JSON for [`ConnectionState`], [`CloseCode`],
/// [`CloseInfo`], [`Severity`] and [`ConnectionRecord`]; text for the `FromStr` impls) and
/// checks what they accept: it writes back to JSON that reads as the same value, a close
/// reason fits a close frame, and a record's two JSON writers agree.
///
/// A fuzz target is one call: `fuzz_target!(|data: &[u8]| agentwire_state::fuzz_readers(data));`
///
/// # Panics
///
/// Only when one of those invariants is broken, which is a bug in this crate; no input makes
/// the readers themselves panic.
pub fn fuzz_readers(data: &[u8]) {
    if let Ok(state) = serde_json::from_slice::<ConnectionState>(data) {
        let json = serde_json::to_string(&state).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", state.as_str()));
        assert_eq!(
            serde_json::from_str::<ConnectionState>(&json).ok(),
            Some(state)
        );
    }
    if let Ok(code) = serde_json::from_slice::<CloseCode>(data) {
        let json = serde_json::to_string(&code).unwrap_or_default();
        assert_eq!(serde_json::from_str::<CloseCode>(&json).ok(), Some(code));
    }
    if let Ok(info) = serde_json::from_slice::<CloseInfo>(data) {
        assert!(info.reason().len() <= MAX_REASON_BYTES);
        let json = serde_json::to_string(&info).unwrap_or_default();
        assert_eq!(serde_json::from_str::<CloseInfo>(&json).ok(), Some(info));
    }
    if let Ok(severity) = serde_json::from_slice::<Severity>(data) {
        let json = serde_json::to_string(&severity).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Severity>(&json).ok(), Some(severity));
    }
    if let Ok(record) = serde_json::from_slice::<ConnectionRecord<'_>>(data) {
        let json = record.to_json();
        assert_eq!(
            serde_json::to_string(&record).ok().as_deref(),
            Some(json.as_str())
        );
        let back = serde_json::from_str::<ConnectionRecord<'_>>(&json);
        assert_eq!(back.ok().as_ref(), Some(&record));
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(state) = text.parse::<ConnectionState>() {
            assert_eq!(state.as_str().parse::<ConnectionState>().ok(), Some(state));
        }
        if let Ok(code) = text.parse::<CloseCode>() {
            assert_eq!(
                code.as_u16().to_string().parse::<CloseCode>().ok(),
                Some(code)
            );
        }
    }
}
