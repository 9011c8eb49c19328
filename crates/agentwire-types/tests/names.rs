//! Round-trip and mapping coverage of the message-type table, through the public API.

use std::collections::HashSet;

use agentwire_types::{
    ALIASES, AliasTarget, MAX_RECEIVED_BYTES, MessageClass, MessageType, normalize,
};
use proptest::prelude::*;

/// Every name `normalize` knows: canonical names and aliases.
fn known_names() -> Vec<&'static str> {
    MessageType::ALL
        .iter()
        .map(|t| t.as_str())
        .chain(ALIASES.iter().map(|a| a.name))
        .collect()
}

#[test]
fn every_canonical_name_round_trips() {
    for &t in MessageType::ALL {
        let name = t.to_string();
        assert_eq!(name, t.as_str());
        assert_eq!(name.parse::<MessageType>(), Ok(t), "FromStr of {name}");
        let json = serde_json::to_string(&t).expect("serialize");
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<MessageType>(&json).expect("deserialize"),
            t
        );
        assert_eq!(normalize(&name), Ok(t));
    }
}

#[test]
fn canonical_names_are_unique_snake_case() {
    let mut seen = HashSet::new();
    for &t in MessageType::ALL {
        let name = t.as_str();
        assert!(seen.insert(name), "duplicate canonical name {name}");
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !name.starts_with('_')
                && !name.ends_with('_'),
            "{name} is not snake_case"
        );
        assert!(!t.description().is_empty());
    }
    assert_eq!(seen.len(), <MessageType as strum::EnumCount>::COUNT);
}

#[test]
fn every_alias_normalizes_to_its_target() {
    for alias in ALIASES {
        match alias.target {
            AliasTarget::Type(t) => assert_eq!(normalize(alias.name), Ok(t), "{}", alias.name),
            AliasTarget::Rejected(why) => {
                let err = normalize(alias.name).expect_err(alias.name);
                assert_eq!(err.code(), "unsupported_message_type");
                assert_eq!(err.rejection_reason(), Some(why));
                assert_eq!(err.received(), alias.name);
                assert!(err.to_string().contains(why));
            }
            _ => unreachable!("no other alias targets exist"),
        }
    }
}

#[test]
fn no_alias_shadows_a_canonical_name_or_another_alias() {
    let canonical: HashSet<&str> = MessageType::ALL.iter().map(|t| t.as_str()).collect();
    let mut aliases = HashSet::new();
    for alias in ALIASES {
        assert!(
            !canonical.contains(alias.name),
            "{} is canonical",
            alias.name
        );
        assert!(aliases.insert(alias.name), "{} listed twice", alias.name);
        assert_eq!(
            alias.name,
            alias.name.to_ascii_lowercase(),
            "aliases are lower case"
        );
    }
}

/// The reference's routing classes, from the incident report that fixed `execute_agent`.
#[test]
fn incident_report_routing_classes_hold() {
    let routes = [
        ("agent_started", MessageClass::StartAgent),
        ("agent_thinking", MessageClass::AgentProgress),
        ("tool_executing", MessageClass::AgentProgress),
        ("tool_completed", MessageClass::AgentProgress),
        ("agent_completed", MessageClass::ResponseComplete),
    ];
    let mut distinct = HashSet::new();
    for (name, class) in routes {
        let t = normalize(name).expect(name);
        assert_eq!(t.class(), class, "{name}");
        assert_eq!(t.as_str(), name, "{name} travels unchanged on the wire");
        assert!(distinct.insert(t));
        assert!(t.direction().server_may_send() && !t.direction().client_may_send());
    }
    assert_eq!(
        normalize("execute_agent").map(MessageType::class),
        Ok(MessageClass::StartAgent)
    );
}

#[test]
fn requests_the_server_handles_are_client_sendable() {
    for name in [
        "ping",
        "heartbeat",
        "start_agent",
        "user_message",
        "auth_refresh",
        "cancel_agent",
    ] {
        let t = normalize(name).expect(name);
        assert!(t.direction().client_may_send(), "{name}");
    }
}

/// Every name in shared/reference/legacy-message-types.md, kept as a fixture.
#[test]
fn reference_names_resolve_as_documented() {
    let fixture = include_str!("fixtures/legacy-names.txt");
    let mut checked = 0;
    for line in fixture
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.split_whitespace();
        let (name, expected) = (
            parts.next().expect("name"),
            parts.next().expect("expectation"),
        );
        match (expected, normalize(name)) {
            ("rejected", Err(err)) => assert_eq!(err.code(), "unsupported_message_type", "{name}"),
            (canonical, Ok(t)) => assert_eq!(t.as_str(), canonical, "{name}"),
            (_, got) => panic!("{name}: expected {expected}, got {got:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 132, "every name of the fixture was checked");
}

#[test]
fn unknown_error_is_bounded_and_explains() {
    let long = "x".repeat(10_000);
    let err = normalize(&long).expect_err("unknown");
    assert_eq!(err.code(), "unknown_message_type");
    assert_eq!(err.received().len(), MAX_RECEIVED_BYTES);
    assert!(err.is_truncated());
    assert!(
        err.to_string().contains("start_agent"),
        "says what was expected"
    );
    assert!(err.to_string().len() < 400);

    // Cut on a character boundary: 63 ASCII bytes then a 2-byte character.
    let name = format!("{}é", "a".repeat(63));
    let err = normalize(&name).expect_err("unknown");
    assert_eq!(err.received(), "a".repeat(63));
}

/// One of the known names with each ASCII letter's case chosen by `mask`.
fn recase(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn every_case_variant_normalizes_the_same(index in any::<prop::sample::Index>(), mask: u64) {
        let names = known_names();
        let name = names[index.index(names.len())];
        let variant = recase(name, mask);
        let code = |n: &str| normalize(n).map_err(|e| e.code());
        prop_assert_eq!(code(&variant), code(name));
        // Through FromStr and serde as well.
        prop_assert_eq!(variant.parse::<MessageType>().ok(), normalize(name).ok());
        let json = serde_json::to_string(&variant).expect("string");
        prop_assert_eq!(serde_json::from_str::<MessageType>(&json).ok(), normalize(name).ok());
    }

    #[test]
    fn arbitrary_strings_never_panic_and_errors_echo_a_prefix(s in any::<String>()) {
        match normalize(&s) {
            Ok(t) => {
                let lowered = s.to_ascii_lowercase();
                prop_assert!(known_names().contains(&lowered.as_str()));
                prop_assert_eq!(normalize(&lowered), Ok(t));
            }
            Err(err) => {
                prop_assert!(s.starts_with(err.received()));
                prop_assert!(err.received().len() <= MAX_RECEIVED_BYTES);
                prop_assert_eq!(err.is_truncated(), err.received().len() < s.len());
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }

    #[test]
    fn near_misses_are_unknown(index in any::<prop::sample::Index>(), suffix in "[a-z0-9_]{1,4}") {
        let names = known_names();
        let candidate = format!("{}{suffix}", names[index.index(names.len())]);
        prop_assume!(!names.contains(&candidate.as_str()));
        let err = normalize(&candidate).expect_err("not a known name");
        prop_assert_eq!(err.code(), "unknown_message_type");
    }
}

#[test]
fn index_is_the_position_in_all() {
    for (position, &t) in MessageType::ALL.iter().enumerate() {
        assert_eq!(t.index(), position, "{t}");
    }
}
