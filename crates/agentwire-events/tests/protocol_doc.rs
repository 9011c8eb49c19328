//! Every JSON example in `docs/protocol.md` is checked against the crate, so the page cannot
//! drift from the code.
//!
//! Fenced blocks are tagged after the language:
//! - `json outbound`: `parse_outbound` accepts it, and writing the frame back gives the same JSON
//!   (no field the crate would drop or add);
//! - `json inbound`: `parse_inbound` accepts it, and its canonical form parses to the same request;
//! - `json inbound-error CODE`: `parse_inbound` refuses it with `CODE`.

use std::path::PathBuf;

use agentwire_events::{ErrorCode, parse_inbound, parse_outbound};
use serde_json::Value;

struct Example {
    line: usize,
    tag: String,
    body: String,
}

fn examples() -> Vec<Example> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let text = std::fs::read_to_string(&path).expect("docs/protocol.md exists");
    let mut examples = Vec::new();
    let mut current: Option<Example> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                if let Some(info) = trimmed.strip_prefix("```json ") {
                    current = Some(Example {
                        line: index + 1,
                        tag: info.trim().to_owned(),
                        body: String::new(),
                    });
                }
            }
            Some(example) => {
                if trimmed.starts_with("```") {
                    examples.extend(current.take());
                } else {
                    example.body.push_str(line);
                    example.body.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unclosed code block in docs/protocol.md");
    examples
}

#[test]
fn protocol_examples_match_the_crate() {
    let examples = examples();
    let count = |tag: &str| examples.iter().filter(|e| e.tag.starts_with(tag)).count();
    assert!(
        count("outbound") >= 15,
        "expected an example of every outbound frame"
    );
    assert!(count("inbound") >= 10);

    for example in &examples {
        let at = format!("docs/protocol.md:{} ({})", example.line, example.tag);
        let mut words = example.tag.split_whitespace();
        match (words.next(), words.next()) {
            (Some("outbound"), None) => {
                let frame = parse_outbound(&example.body).unwrap_or_else(|e| panic!("{at}: {e}"));
                let written: Value = serde_json::from_str(&frame.to_json()).expect("valid JSON");
                let documented: Value = serde_json::from_str(&example.body).expect("valid JSON");
                assert_eq!(
                    written, documented,
                    "{at}: the crate writes this frame differently"
                );
            }
            (Some("inbound"), None) => {
                let inbound = parse_inbound(&example.body).unwrap_or_else(|e| panic!("{at}: {e}"));
                let canonical = inbound.to_json();
                let again = parse_inbound(&canonical).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(again.request(), inbound.request(), "{at}");
            }
            (Some("inbound-error"), Some(code)) => {
                let err = parse_inbound(&example.body)
                    .err()
                    .unwrap_or_else(|| panic!("{at}: accepted, expected {code}"));
                assert_eq!(err.code().as_str(), code, "{at}: {err}");
                // The page's rule for `received_type`: the `type` the frame sent, whenever it
                // was a JSON string, whatever the code.
                let sent: Option<String> = serde_json::from_str::<Value>(&example.body)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned));
                let frame: Value =
                    serde_json::from_str(&err.to_event().stamp_control().to_json()).expect("JSON");
                assert_eq!(
                    frame["payload"]["received_type"].as_str(),
                    sent.as_deref(),
                    "{at}: received_type"
                );
            }
            _ => panic!("{at}: unknown example tag"),
        }
    }
}

/// The `error` examples show what the parser really says for the matching inbound examples.
#[test]
fn error_examples_quote_the_parser() {
    let examples = examples();
    let messages: Vec<String> = examples
        .iter()
        .filter(|e| e.tag == "outbound")
        .filter_map(|e| {
            let value: Value = serde_json::from_str(&e.body).ok()?;
            (value["type"] == "error")
                .then(|| value["payload"]["message"].as_str().map(str::to_owned))?
        })
        .collect();
    for input in [
        r#"{"type": "factory_stuff", "message_id": "msg_7"}"#,
        r#"{"type": "start_agent", "message_id": "msg_8", "payload": {}}"#,
        r#"{"type": "ping",, "message_id": "msg_12"}"#,
    ] {
        let err = parse_inbound(input).unwrap_err();
        assert!(
            messages.iter().any(|m| m == err.message()),
            "no error example quotes {:?}",
            err.message()
        );
    }
}

/// The error-code table lists every `ErrorCode`, and nothing that looks like one is missing
/// from the enum.
#[test]
fn the_error_code_table_is_the_error_code_list() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let text = std::fs::read_to_string(&path).expect("docs/protocol.md exists");
    let section = text
        .split("\n## Error codes\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("an Error codes section");
    let documented: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .collect();
    for code in ErrorCode::ALL {
        assert!(
            documented.contains(&code.as_str()),
            "{code} is missing from the error-code table of docs/protocol.md"
        );
    }
    for code in &documented {
        assert!(
            ErrorCode::parse(code).is_some(),
            "the table lists {code}, which is not an ErrorCode"
        );
    }
}
