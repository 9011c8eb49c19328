//! `ConnectionState`: the transition table, the text forms and the lenient reader.

use agentwire_state::ConnectionState::{self, Closed, Closing, Connecting, Failed, Open};
use proptest::prelude::*;

/// The documented transition table, written out independently of the code.
const LEGAL: &[(ConnectionState, ConnectionState)] = &[
    (Connecting, Open),
    (Connecting, Failed),
    (Open, Closing),
    (Open, Closed),
    (Open, Failed),
    (Closing, Closed),
    (Closing, Failed),
];

/// Every spelling the docs promise, with the state it must read as.
const DOCUMENTED: &[(&str, ConnectionState)] = &[
    ("connecting", Connecting),
    ("open", Open),
    ("closing", Closing),
    ("closed", Closed),
    ("failed", Failed),
    ("connected", Open),
    ("active", Open),
    ("disconnecting", Closing),
    ("disconnected", Closed),
    ("error", Failed),
    ("CONNECTING", Connecting),
    ("CONNECTED", Open),
    ("DISCONNECTED", Closed),
    ("RESPONSE", Failed),
    ("OPEN", Open),
    ("CLOSING", Closing),
    ("CLOSED", Closed),
    ("WebSocketState.CONNECTED", Open),
    ("WebSocketState.DISCONNECTED", Closed),
    ("WebSocketState.RESPONSE", Failed),
    ("websocketstate.connecting", Connecting),
];

#[test]
fn transition_table_is_exactly_the_documented_one() {
    for &from in ConnectionState::ALL {
        for &to in ConnectionState::ALL {
            let legal = LEGAL.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), legal, "{from} -> {to}");
            match from.transition(to) {
                Ok(next) => {
                    assert!(legal, "{from} -> {to} accepted");
                    assert_eq!(next, to);
                }
                Err(err) => {
                    assert!(!legal, "{from} -> {to} refused");
                    assert_eq!(err.code(), "illegal_state_transition");
                    assert_eq!(err.from(), from);
                    assert_eq!(err.to(), to);
                    assert_eq!(
                        err.to_string(),
                        format!("illegal connection state transition from {from} to {to}")
                    );
                }
            }
        }
    }
}

#[test]
fn terminal_states_have_no_way_out_and_everything_else_can_end() {
    for &state in ConnectionState::ALL {
        let exits = ConnectionState::ALL
            .iter()
            .filter(|&&to| state.can_transition_to(to))
            .count();
        assert_eq!(state.is_terminal(), exits == 0, "{state}");
        assert!(!state.can_transition_to(state), "{state} -> itself");
        if !state.is_terminal() {
            assert!(state.can_transition_to(Failed), "{state} cannot fail");
        }
    }
    assert!(Open.can_send());
    assert!(!Closing.can_send() && !Connecting.can_send());
}

#[test]
fn every_path_from_connecting_ends_in_a_terminal_state() {
    // Follow every legal path; there are no cycles, and every path ends closed or failed.
    fn walk(state: ConnectionState, depth: usize) {
        assert!(depth <= ConnectionState::ALL.len(), "cycle through {state}");
        let next: Vec<_> = ConnectionState::ALL
            .iter()
            .copied()
            .filter(|&to| state.can_transition_to(to))
            .collect();
        if next.is_empty() {
            assert!(matches!(state, Closed | Failed));
        }
        for to in next {
            walk(to, depth + 1);
        }
    }
    walk(Connecting, 0);
}

#[test]
fn canonical_names_are_stable_lowercase() {
    let names: Vec<_> = ConnectionState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["connecting", "open", "closing", "closed", "failed"]);
    for &state in ConnectionState::ALL {
        assert_eq!(state.to_string(), state.as_str());
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            format!("\"{}\"", state.as_str())
        );
        assert_eq!(state.as_str().parse::<ConnectionState>(), Ok(state));
        assert!(!state.description().is_empty());
    }
}

#[test]
fn every_documented_spelling_reads_as_its_state_and_writes_canonical() {
    for &(name, state) in DOCUMENTED {
        assert_eq!(name.parse::<ConnectionState>(), Ok(state), "{name}");
        let read: ConnectionState = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(read, state, "{name}");
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            format!("\"{}\"", state.as_str())
        );
    }
    // The exported table says the same as the docs.
    for &(name, state) in ConnectionState::LEGACY_NAMES {
        assert!(DOCUMENTED.contains(&(name, state)), "{name} undocumented");
    }
}

#[test]
fn starlette_integers_read_as_documented() {
    let expected = [(0, Connecting), (1, Open), (2, Closed), (3, Failed)];
    for (n, state) in expected {
        assert_eq!(ConnectionState::from_starlette(n), Some(state));
        assert_eq!(
            serde_json::from_str::<ConnectionState>(&n.to_string()).unwrap(),
            state
        );
    }
    for bad in [
        "4",
        "-1",
        "1.0",
        "1e0",
        "18446744073709551616",
        "true",
        "null",
        "[]",
        "{}",
    ] {
        assert!(
            serde_json::from_str::<ConnectionState>(bad).is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn unknown_names_are_errors_with_a_stable_code() {
    for bad in [
        "",
        "opened",
        "WebSocketState.",
        "connected ",
        "websocketstate.foo",
    ] {
        let err = bad.parse::<ConnectionState>().unwrap_err();
        assert_eq!(err.code(), "unknown_connection_state");
        assert!(serde_json::from_str::<ConnectionState>(&format!("\"{bad}\"")).is_err());
    }
    let long = "x".repeat(1000);
    let err = long.parse::<ConnectionState>().unwrap_err();
    assert_eq!(err.received().len(), agentwire_state::MAX_RECEIVED_BYTES);
}

#[test]
fn a_token_in_a_bad_state_name_is_not_echoed() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
    let err = token.parse::<ConnectionState>().unwrap_err();
    assert_eq!(err.received(), "[redacted]");
    assert!(!err.to_string().contains("eyJ"));
    let json_err = serde_json::from_str::<ConnectionState>(&format!("\"{token}\"")).unwrap_err();
    assert!(!json_err.to_string().contains("eyJ"));
}

fn any_state() -> impl Strategy<Value = ConnectionState> {
    prop::sample::select(ConnectionState::ALL)
}

/// A documented spelling in a random ASCII case.
fn any_spelling() -> impl Strategy<Value = (String, ConnectionState)> {
    (
        prop::sample::select(DOCUMENTED),
        prop::collection::vec(any::<bool>(), 40),
    )
        .prop_map(|((name, state), upper)| {
            let cased = name
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &up)| {
                    if up {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            (cased, state)
        })
}

proptest! {
    #[test]
    fn states_round_trip_through_json(state in any_state()) {
        let json = serde_json::to_string(&state).unwrap();
        prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        prop_assert_eq!(serde_json::from_str::<ConnectionState>(&json).unwrap(), state);
    }

    #[test]
    fn spellings_read_in_any_ascii_case((name, state) in any_spelling()) {
        prop_assert_eq!(name.parse::<ConnectionState>(), Ok(state));
        let json = serde_json::to_string(&name).unwrap();
        prop_assert_eq!(serde_json::from_str::<ConnectionState>(&json).unwrap(), state);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = serde_json::from_slice::<ConnectionState>(&bytes);
        let _ = std::str::from_utf8(&bytes).map(str::parse::<ConnectionState>);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_reader(s in ".*") {
        let parsed = s.parse::<ConnectionState>();
        if let Err(err) = &parsed {
            prop_assert!(err.received().len() <= agentwire_state::MAX_RECEIVED_BYTES);
        }
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<ConnectionState>(&json).ok(), parsed.ok());
        agentwire_state::fuzz_readers(json.as_bytes());
        agentwire_state::fuzz_readers(s.as_bytes());
    }

    #[test]
    fn arbitrary_integers_read_only_in_range(n in any::<i64>()) {
        let read = serde_json::from_str::<ConnectionState>(&n.to_string()).ok();
        let expected = u64::try_from(n).ok().and_then(ConnectionState::from_starlette);
        prop_assert_eq!(read, expected);
        prop_assert_eq!(read.is_some(), (0..=3).contains(&n));
    }
}
