//! Inputs found by the fuzz targets in `fuzz/` (see fuzz/README.md), kept as regular tests.

use agentwire_events::{Event, Frame, Payload, Stamp, Timestamp, parse_outbound};
use proptest::prelude::*;

/// Reads `text`, writes the frame back, reads that: the two frames must be equal.
fn round_trip(text: &str) -> (Frame, Frame) {
    let first = parse_outbound(text).expect("parses");
    let json = first.to_json();
    let second = parse_outbound(&json).expect("its own JSON parses");
    (first, second)
}

/// fuzz/event_roundtrip: an integer too large for u64 is read as the nearest f64 and written
/// in its shortest form, `2.2222222222222222e+23`; serde_json's default float parser read that
/// one ULP off, so the frame read back was not the frame written.
#[test]
fn large_integers_and_long_floats_round_trip_exactly() {
    for number in [
        "222222222222222222222189",
        "2.2222222222222222e+23",
        "-1.7976931348623157e308",
        "5e-324",
        "0.30000000000000004",
        "123456789012345678901234567890.123456789",
    ] {
        let text = format!(
            r#"{{"type":"tool_completed","event_id":"e1","timestamp":"2025-01-02T03:04:06.120Z",
            "run_id":"r1","seq":20,"payload":{{"tool_name":"t","tool_call_id":"c1",
            "result":{{"price":{number}}},"duration_ms":1,"status":"ok"}}}}"#
        );
        let (first, second) = round_trip(&text);
        assert_eq!(first, second, "{number}");
        let Payload::ToolCompleted(completed) = first.payload() else {
            panic!("a tool_completed payload")
        };
        // Read as the correctly rounded double.
        let expected: f64 = number.parse().expect("a number");
        assert_eq!(
            completed.result["price"].as_f64(),
            Some(expected),
            "{number}"
        );
    }
}

proptest! {
    /// Any finite double in an event's JSON comes back bit for bit.
    #[test]
    fn every_finite_float_round_trips(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let timestamp = Timestamp::from_unix_millis(1_735_787_046_120).expect("timestamp");
        let frame = Event::agent_completed("run_1", x, 5).stamp(Stamp::new("e1", timestamp).with_seq(1));
        let back = parse_outbound(&frame.to_json()).expect("parses");
        prop_assert_eq!(&back, &frame);
    }
}
