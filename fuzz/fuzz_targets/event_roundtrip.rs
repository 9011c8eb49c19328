//! An outbound frame that parses must write (both writers, byte for byte the same) to JSON
//! that parses back to the same frame.
#![no_main]

use agentwire_events::parse_outbound;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(frame) = parse_outbound(text) {
        let json = frame.to_json();
        assert_eq!(
            serde_json::to_string(&frame).ok().as_deref(),
            Some(json.as_str())
        );
        assert_eq!(parse_outbound(&json).as_ref(), Ok(&frame), "{json}");
    }
});
