//! One client text frame through the inbound parser, and any text through `normalize`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = agentwire_events::parse_inbound(text);
    let _ = agentwire_types::normalize(text);
});
