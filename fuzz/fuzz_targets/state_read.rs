//! Every reader of agentwire-state (JSON and `FromStr` of states, close codes, close infos,
//! severities and connection records), with its write-back invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agentwire_state::fuzz_readers(data));
