//! A whole connection session (frames, control frames, time passing, runs ending) driven by a
//! script, without a socket: see `agentwire_session::fuzzing::session`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agentwire_session::fuzzing::session(data));
