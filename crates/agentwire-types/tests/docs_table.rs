//! `docs/message-types.md` holds a table generated from the code; this test keeps them equal.
//!
//! After changing the types or the alias table, regenerate the file with
//! `AGENTWIRE_BLESS=1 cargo test -p agentwire-types --test docs_table`.

use std::fmt::Write as _;
use std::path::Path;

use agentwire_types::{ALIASES, AliasTarget, MessageType};

const BEGIN: &str = "<!-- BEGIN GENERATED: cargo test -p agentwire-types --test docs_table -->";
const END: &str = "<!-- END GENERATED -->";

fn generated() -> String {
    let mut out = String::new();
    out.push_str("### Canonical types\n\n");
    out.push_str("| type | class | direction | aliases read as this type | meaning |\n");
    out.push_str("|---|---|---|---|---|\n");
    for &t in MessageType::ALL {
        let aliases: Vec<String> = ALIASES
            .iter()
            .filter(|a| a.target == AliasTarget::Type(t))
            .map(|a| format!("`{}`", a.name))
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            t,
            t.class(),
            t.direction(),
            aliases.join(", "),
            t.description()
        );
    }
    out.push_str("\n### Aliases\n\n");
    out.push_str("| name | read as | from |\n|---|---|---|\n");
    for alias in ALIASES {
        let target = match alias.target {
            AliasTarget::Type(t) => format!("`{t}`"),
            AliasTarget::Rejected(why) => format!("rejected (`unsupported_message_type`): {why}"),
            _ => unreachable!("no other alias targets exist"),
        };
        let _ = writeln!(out, "| `{}` | {} | {} |", alias.name, target, alias.source);
    }
    out
}

#[test]
fn docs_table_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/message-types.md");
    let doc = std::fs::read_to_string(&path).expect("docs/message-types.md exists");
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let expected = format!("{head}{BEGIN}\n\n{}\n{END}{tail}", generated());
    if std::env::var_os("AGENTWIRE_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write docs");
    } else {
        assert!(
            doc == expected,
            "docs/message-types.md is out of date: run \
             AGENTWIRE_BLESS=1 cargo test -p agentwire-types --test docs_table"
        );
    }
}
