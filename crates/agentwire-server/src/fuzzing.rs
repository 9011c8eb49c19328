//! Entry points for the fuzz targets (cargo feature `fuzzing`; not a stable API).

use crate::dispatch::{Action, decide};

/// Runs the server's whole inbound path for one text frame, without a socket: parse,
/// normalize, decide, and encode the reply the connection would send. Panics only if that
/// path has a bug (which is what the fuzzer looks for).
pub fn text_frame(text: &str) {
    let decision = decide(text, |t| t.index() % 2 == 0);
    if let Action::Reply(event) = decision.action {
        let frame = event.stamp_control().encode();
        let reparsed = agentwire_events::parse_outbound(frame.as_str());
        assert!(
            reparsed.is_ok(),
            "the server's own reply must parse: {frame}"
        );
    }
}
