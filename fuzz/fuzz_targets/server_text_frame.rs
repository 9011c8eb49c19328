//! The server's whole inbound path for one text frame (parse, normalize, decide, encode the
//! reply and read it back), without a socket.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| agentwire_server::fuzzing::text_frame(text));
