//! JSON Schema (draft 2020-12) of every inbound and outbound frame.
//!
//! The outbound payload schemas are derived from the payload types; the envelope and the
//! inbound frames are written here from the same constants the parser and serializer use.
//! The committed copies live in `docs/schema/`; a test fails when they and this code disagree.

use agentwire_types::MessageType;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::inbound::Request;
use crate::payload::Payload;

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema files of the protocol, as `(file name, schema)`: `outbound.json` (every frame a
/// server sends) and `inbound.json` (every frame a client sends). Each has one `$defs` entry per
/// frame type (`AgentStartedFrame`, `StartAgentFrame`, ...) and a root `oneOf` over them.
pub fn schema_files() -> Vec<(&'static str, Value)> {
    vec![
        ("outbound.json", outbound_schema()),
        ("inbound.json", inbound_schema()),
    ]
}

/// `UpperCamelCase` of a snake_case wire name.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn string_schema(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// Types a frame schema cannot express: `null` in `type` arrays of optional fields (they are
/// omitted, never `null`). Applied to every object schema in `defs`.
fn drop_null_from_optional(defs: &mut Map<String, Value>) {
    for def in defs.values_mut() {
        let Some(object) = def.as_object_mut() else {
            continue;
        };
        let required: Vec<String> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, property) in properties.iter_mut() {
            if required.contains(name) {
                continue;
            }
            let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) else {
                continue;
            };
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let single = types[0].clone();
                property["type"] = single;
            }
        }
    }
}

/// The schema of every outbound frame.
pub fn outbound_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let typed = Payload::typed_schemas(&mut generator);
    let timestamp = generator.subschema_for::<crate::Timestamp>().to_value();
    let mut defs = generator.take_definitions(true);
    drop_null_from_optional(&mut defs);

    let mut one_of = Vec::new();
    let envelope = |ty: Value, description: &str, payload: Value, stream: bool| {
        let mut properties = json!({
            "type": ty,
            "event_id": string_schema("Unique id of this frame."),
            "timestamp": timestamp.clone(),
            "run_id": string_schema("The run this frame belongs to."),
            "thread_id": string_schema("The thread this frame belongs to."),
            "reply_to": string_schema("The client message_id this frame answers."),
            "payload": payload,
        });
        let mut required = vec!["type", "event_id", "timestamp", "payload"];
        if stream {
            properties["seq"] = json!({
                "type": "integer",
                "minimum": 1,
                "description": "Position on the user's event stream; increases by one per \
                                stream event."
            });
            required.extend(["run_id", "seq"]);
        }
        json!({
            "type": "object",
            "description": description,
            "properties": properties,
            "required": required,
        })
    };

    for (message_type, stream, payload) in typed {
        let name = format!("{}Frame", camel(message_type.as_str()));
        let ty = json!({ "const": message_type.as_str() });
        let description = if stream {
            format!(
                "{} A run event: carries run_id and seq.",
                message_type.description()
            )
        } else {
            format!(
                "{} A connection-scoped control frame: no seq.",
                message_type.description()
            )
        };
        defs.insert(
            name.clone(),
            envelope(ty, &description, payload.to_value(), stream),
        );
        one_of.push(json!({ "$ref": format!("#/$defs/{name}") }));
    }

    let generic: Vec<&str> = MessageType::ALL
        .iter()
        .filter(|t| t.direction().server_may_send() && !Payload::is_typed(**t))
        .map(|t| t.as_str())
        .collect();
    let mut generic_frame = envelope(
        json!({ "enum": generic }),
        "A server-to-client type without a typed payload (sent by custom services); \
         a stream event (seq), in a run (run_id) or outside any (a notification).",
        json!({ "type": "object" }),
        true,
    );
    // Unlike the run events, these may come outside any run: no run_id then.
    if let Some(required) = generic_frame["required"].as_array_mut() {
        required.retain(|field| field != "run_id");
    }
    defs.insert("GenericFrame".to_owned(), generic_frame);
    one_of.push(json!({ "$ref": "#/$defs/GenericFrame" }));

    json!({
        "$schema": DRAFT,
        "$id": "https://agentwire.invalid/schema/v1/outbound.json",
        "title": "agentwire outbound frame (server to client), protocol version 1",
        "description": "Every frame a server sends has this one envelope: type, event_id, \
                        timestamp, run_id?, thread_id?, seq?, reply_to?, payload. Optional \
                        fields are omitted, never null. Unknown fields may be added in later \
                        versions; clients ignore them.",
        "oneOf": one_of,
        "$defs": defs,
    })
}

/// The schema of every inbound frame, in the canonical form [`Inbound::to_json`] writes.
///
/// [`Inbound::to_json`]: crate::Inbound::to_json
pub fn inbound_schema() -> Value {
    let message_id = json!({
        "type": ["string", "integer"],
        "description": "Client-chosen id; the server's answers carry it as reply_to."
    });
    let timestamp = json!({
        "description": "Client time: RFC 3339 text, or a Unix number (seconds; from 1e11 on, \
                        milliseconds).",
        "type": ["string", "number"]
    });
    let text =
        |description: &str| json!({ "type": "string", "minLength": 1, "description": description });
    let run_payload = |text_field: &str, others: &str| {
        json!({
            "type": "object",
            "properties": {
                text_field: text(&format!(
                    "The request text (non-empty). May instead be sent as {others}."
                )),
                "agent_name": string_schema("The agent to run; the server's default when absent."),
                "thread_id": string_schema("The thread of the run (overrides the envelope's)."),
                "context": { "type": "object", "description": "Extra context for the agent." },
            },
            "required": [text_field],
        })
    };

    let frame = |ty: Value, description: &str, payload: Option<Value>| {
        let payload_required = payload.is_some();
        let mut required = vec!["type"];
        if payload_required {
            required.push("payload");
        }
        json!({
            "type": "object",
            "description": description,
            "properties": {
                "type": ty,
                "message_id": message_id.clone(),
                "thread_id": string_schema("The thread this message belongs to."),
                "timestamp": timestamp.clone(),
                "payload": payload.unwrap_or_else(|| json!({ "type": "object" })),
            },
            "required": required,
        })
    };

    let aliases = "The type may also be any alias of agentwire-types (any ASCII case), and \
                   `data` is accepted in place of `payload`.";
    let mut defs = Map::new();
    let mut add = |name: &str, value: Value| {
        defs.insert(name.to_owned(), value);
    };
    add(
        "PingFrame",
        frame(json!({ "const": "ping" }), "Answered by pong.", None),
    );
    add(
        "HeartbeatFrame",
        frame(
            json!({ "const": "heartbeat" }),
            "Answered by heartbeat_ack.",
            None,
        ),
    );
    add(
        "StartAgentFrame",
        frame(
            json!({ "const": "start_agent" }),
            &format!("Starts a run. {aliases}"),
            Some(run_payload("user_request", "message, content or text")),
        ),
    );
    add(
        "UserMessageFrame",
        frame(
            json!({ "const": "user_message" }),
            &format!("A chat turn; starts a run. {aliases}"),
            Some(run_payload("message", "content, text or user_request")),
        ),
    );
    add(
        "AuthRefreshFrame",
        frame(
            json!({ "const": "auth_refresh" }),
            "Presents a fresh token for the same user; answered by auth_refreshed.",
            Some(json!({
                "type": "object",
                "properties": { "token": text("The new compact JWT.") },
                "required": ["token"],
            })),
        ),
    );
    add(
        "CancelAgentFrame",
        frame(
            json!({ "const": "cancel_agent" }),
            "Cancels a run; the run ends with agent_error.",
            Some(json!({
                "type": "object",
                "properties": {
                    "run_id": string_schema("The run to cancel; absent: the current run."),
                },
            })),
        ),
    );
    let generic: Vec<&str> = MessageType::ALL
        .iter()
        .filter(|t| t.direction().client_may_send() && !Request::is_typed(**t))
        .map(|t| t.as_str())
        .collect();
    add(
        "GenericRequestFrame",
        frame(
            json!({ "enum": generic }),
            "Other client types, passed to custom handlers with the payload unparsed; a \
             server without a handler answers unsupported_message_type.",
            None,
        ),
    );
    let one_of: Vec<Value> = defs
        .keys()
        .map(|name| json!({ "$ref": format!("#/$defs/{name}") }))
        .collect();

    json!({
        "$schema": DRAFT,
        "$id": "https://agentwire.invalid/schema/v1/inbound.json",
        "title": "agentwire inbound frame (client to server), protocol version 1",
        "description": "The canonical form of every frame a client sends. Unknown fields are \
                        ignored; null counts as absent.",
        "oneOf": one_of,
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names() {
        assert_eq!(camel("agent_started"), "AgentStarted");
        assert_eq!(camel("pong"), "Pong");
    }

    #[test]
    fn every_outbound_type_has_a_frame() {
        let schema = outbound_schema();
        let defs = schema["$defs"].as_object().unwrap();
        for t in Payload::TYPED {
            assert!(
                defs.contains_key(&format!("{}Frame", camel(t.as_str()))),
                "{t}"
            );
        }
        // Optional payload fields are plain types, not nullable.
        assert_eq!(
            schema["$defs"]["AgentThinking"]["properties"]["step"]["type"],
            "integer"
        );
    }
}
