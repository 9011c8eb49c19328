//! Single-pass, zero-copy reading of inbound frames.
//!
//! The envelope visitor reads each known member as it goes: strings without escapes are
//! borrowed from the input, `context` and generic payloads are kept as borrowed raw JSON, and
//! unknown members are skipped. When the `type` comes before the payload (as clients write
//! it), the payload's fields are read in the same pass; otherwise the payload is kept raw and
//! read once the type is known.

use std::borrow::Cow;
use std::fmt;

use agentwire_types::{MessageType, normalize};
use serde::Deserialize as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON value as far as the parser needs to know it.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    /// A boolean, an array or an object (consumed, not kept): its kind.
    Other(&'static str),
}

impl Scalar<'_> {
    /// The kind, for messages: "a string", "an object", ...
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Str(_) => "a string",
            Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_) => "a number",
            Scalar::Other(kind) => kind,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other("a boolean"))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
    }
}

/// The payload members any typed request reads.
#[derive(Debug, Default)]
pub(crate) struct PayloadFields<'a> {
    pub(crate) user_request: Option<Scalar<'a>>,
    pub(crate) message: Option<Scalar<'a>>,
    pub(crate) content: Option<Scalar<'a>>,
    pub(crate) text: Option<Scalar<'a>>,
    pub(crate) agent_name: Option<Scalar<'a>>,
    pub(crate) thread_id: Option<Scalar<'a>>,
    pub(crate) context: Option<&'a RawValue>,
    pub(crate) token: Option<Scalar<'a>>,
    pub(crate) run_id: Option<Scalar<'a>>,
    /// The first member given more than once (the first occurrence is kept).
    pub(crate) duplicate: Option<&'static str>,
}

/// A payload (`payload` or `data`) as captured.
// Boxing the fields would cost an allocation per frame; the enum lives on the stack only.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// Kept unparsed: a generic request's payload, or one that came before the `type`.
    Raw(&'a RawValue),
    /// Read in the same pass.
    Fields(PayloadFields<'a>),
    /// `null`.
    Null,
    /// Read in the same pass, and not an object: its kind.
    NotObject(&'static str),
}

impl<'a> Body<'a> {
    pub(crate) fn is_null(&self) -> bool {
        match self {
            Body::Null => true,
            Body::Raw(raw) => raw.get() == "null",
            _ => false,
        }
    }

    /// The payload's fields, reading a raw payload now if it was kept raw.
    pub(crate) fn into_fields(self) -> Result<PayloadFields<'a>, &'static str> {
        match self {
            Body::Fields(fields) => Ok(fields),
            Body::Null => Ok(PayloadFields::default()),
            Body::NotObject(kind) => Err(kind),
            Body::Raw(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                // The text was validated as part of the frame: only an impossible error could
                // come back, and it reads as "not an object".
                match BodySeed::Fields.deserialize(&mut de) {
                    Ok(body) => body.into_fields(),
                    Err(_) => Err("an invalid value"),
                }
            }
        }
    }
}

/// How to read a payload.
#[derive(Clone, Copy)]
enum BodySeed {
    Raw,
    Fields,
}

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Body<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self {
            BodySeed::Raw => <&RawValue>::deserialize(deserializer).map(Body::Raw),
            BodySeed::Fields => deserializer.deserialize_any(BodyVisitor),
        }
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a payload object")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Body::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Body::NotObject("a boolean"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Body::NotObject("a number"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Body::NotObject("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Body::NotObject("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Body::NotObject("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::NotObject("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut f = PayloadFields::default();
        while let Some(key) = map.next_key::<PayloadKey>()? {
            let (slot, name) = match key {
                PayloadKey::Context => {
                    let value: &'de RawValue = map.next_value()?;
                    if f.context.is_some() {
                        f.duplicate.get_or_insert("context");
                    } else {
                        f.context = Some(value);
                    }
                    continue;
                }
                PayloadKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                PayloadKey::UserRequest => (&mut f.user_request, "user_request"),
                PayloadKey::Message => (&mut f.message, "message"),
                PayloadKey::Content => (&mut f.content, "content"),
                PayloadKey::Text => (&mut f.text, "text"),
                PayloadKey::AgentName => (&mut f.agent_name, "agent_name"),
                PayloadKey::ThreadId => (&mut f.thread_id, "thread_id"),
                PayloadKey::Token => (&mut f.token, "token"),
                PayloadKey::RunId => (&mut f.run_id, "run_id"),
            };
            let value: Scalar<'de> = map.next_value()?;
            if slot.is_some() {
                f.duplicate.get_or_insert(name);
            } else {
                *slot = Some(value);
            }
        }
        Ok(Body::Fields(f))
    }
}

/// Declares a member-name enum read without allocating.
macro_rules! keys {
    ($name:ident { $($variant:ident = $text:literal,)+ }) => {
        #[derive(Clone, Copy)]
        enum $name {
            $($variant,)+
            Other,
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct KeyVisitor;

                impl Visitor<'_> for KeyVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a member name")
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok(match v {
                            $($text => $name::$variant,)+
                            _ => $name::Other,
                        })
                    }
                }

                deserializer.deserialize_str(KeyVisitor)
            }
        }
    };
}

keys!(PayloadKey {
    UserRequest = "user_request",
    Message = "message",
    Content = "content",
    Text = "text",
    AgentName = "agent_name",
    ThreadId = "thread_id",
    Context = "context",
    Token = "token",
    RunId = "run_id",
});

keys!(EnvelopeKey {
    Type = "type",
    MessageId = "message_id",
    ThreadId = "thread_id",
    Timestamp = "timestamp",
    Payload = "payload",
    Data = "data",
});

/// The top-level members of an inbound frame.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub(crate) ty: Option<Scalar<'a>>,
    /// `normalize` of `ty` when `ty` is a string (computed as soon as it is read, so the
    /// payload can be read in the same pass): `Some(None)` when it did not resolve.
    pub(crate) resolved: Option<Option<MessageType>>,
    pub(crate) message_id: Option<Scalar<'a>>,
    pub(crate) thread_id: Option<Scalar<'a>>,
    pub(crate) timestamp: Option<Scalar<'a>>,
    pub(crate) payload: Option<Body<'a>>,
    pub(crate) data: Option<Body<'a>>,
    /// The first member given more than once (the first occurrence is kept).
    pub(crate) duplicate: Option<&'static str>,
}

/// Whether a request of this type has payload fields worth reading in the first pass.
fn reads_fields(resolved: Option<Option<MessageType>>) -> bool {
    matches!(
        resolved,
        Some(Some(
            MessageType::StartAgent
                | MessageType::UserMessage
                | MessageType::AuthRefresh
                | MessageType::CancelAgent
        ))
    )
}

/// Reads the envelope of `text` (which must be the whole input) into `out`.
///
/// The visitor fills `out` in place rather than returning it, so the (large) envelope is never
/// moved around while parsing.
pub(crate) fn envelope<'de>(
    text: &'de str,
    out: &mut Envelope<'de>,
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(EnvelopeVisitor { out })?;
    de.end()
}

struct EnvelopeVisitor<'o, 'de> {
    out: &'o mut Envelope<'de>,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let e = self.out;
        while let Some(key) = map.next_key::<EnvelopeKey>()? {
            let (slot, name) = match key {
                EnvelopeKey::Payload | EnvelopeKey::Data => {
                    let seed = if reads_fields(e.resolved) {
                        BodySeed::Fields
                    } else {
                        BodySeed::Raw
                    };
                    let (slot, name) = match key {
                        EnvelopeKey::Payload => (&mut e.payload, "payload"),
                        _ => (&mut e.data, "data"),
                    };
                    if slot.is_some() {
                        e.duplicate.get_or_insert(name);
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        *slot = Some(map.next_value_seed(seed)?);
                    }
                    continue;
                }
                EnvelopeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                EnvelopeKey::Type => (&mut e.ty, "type"),
                EnvelopeKey::MessageId => (&mut e.message_id, "message_id"),
                EnvelopeKey::ThreadId => (&mut e.thread_id, "thread_id"),
                EnvelopeKey::Timestamp => (&mut e.timestamp, "timestamp"),
            };
            if slot.is_some() {
                e.duplicate.get_or_insert(name);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            if let (EnvelopeKey::Type, Scalar::Str(name)) = (key, &value) {
                e.resolved = Some(normalize(name).ok());
            }
            *slot = Some(value);
        }
        Ok(())
    }
}
