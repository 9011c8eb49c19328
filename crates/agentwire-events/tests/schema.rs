//! The committed JSON Schema files in `docs/schema/` must match what the code generates.
//!
//! After a deliberate change of the frames, regenerate them with:
//!
//! ```text
//! AGENTWIRE_BLESS=1 cargo test -p agentwire-events --test schema
//! ```

use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema")
}

fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[test]
fn committed_schemas_match_the_code() {
    let bless = std::env::var_os("AGENTWIRE_BLESS").is_some_and(|v| v == "1");
    let dir = schema_dir();
    let mut stale = Vec::new();
    for (name, schema) in agentwire_events::schema_files() {
        let path = dir.join(name);
        let expected = render(&schema);
        if bless {
            std::fs::create_dir_all(&dir).expect("create docs/schema");
            std::fs::write(&path, &expected).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == expected => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema/{{{}}} differ from the code; if the change is intended, regenerate with \
         `AGENTWIRE_BLESS=1 cargo test -p agentwire-events --test schema`",
        stale.join(",")
    );
}

#[test]
fn schemas_are_valid_json_schema_documents() {
    for (name, schema) in agentwire_events::schema_files() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        let defs = schema["$defs"].as_object().expect("$defs");
        // Every $ref points at a definition that exists.
        let text = schema.to_string();
        for piece in text.split("\"$ref\":\"#/$defs/").skip(1) {
            let target = &piece[..piece.find('"').expect("closing quote")];
            assert!(defs.contains_key(target), "{name}: dangling $ref {target}");
        }
    }
}
