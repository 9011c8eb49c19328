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
    if fast::envelope(text, out).is_some() {
        return Ok(());
    }
    *out = Envelope::default();
    serde_envelope(text, out)
}

/// [`envelope`] through serde alone: any JSON, with serde_json's errors.
fn serde_envelope<'de>(text: &'de str, out: &mut Envelope<'de>) -> Result<(), serde_json::Error> {
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

/// The common shape of a request, read without serde: a flat object of known members whose
/// values are strings without escapes, numbers, or (for `context`) any JSON value, and a
/// payload object of the same kind after the `type`. Anything else (an escape, an unknown or
/// repeated member, a payload before the type or of a type that keeps it raw, a value of
/// another kind, invalid JSON) gives `None`, and the caller reads the frame with serde from
/// the start. What it does read, it reads exactly as the serde visitors do (a test holds the
/// two equal over the fuzz corpus and generated variants).
mod fast {
    use super::*;

    /// Returns `None` as soon as the text leaves the shape; `out` is then partly filled.
    pub(super) fn envelope<'de>(text: &'de str, out: &mut Envelope<'de>) -> Option<()> {
        let mut c = Cursor { text, at: 0 };
        c.eat(b'{')?;
        if !c.eat_if(b'}') {
            loop {
                let key = c.plain_str()?;
                c.eat(b':')?;
                match key {
                    "type" => {
                        let name = c.plain_str()?;
                        set(&mut out.ty, Scalar::Str(Cow::Borrowed(name)))?;
                        out.resolved = Some(normalize(name).ok());
                    }
                    "message_id" => set(&mut out.message_id, c.scalar()?)?,
                    "thread_id" => set(&mut out.thread_id, c.scalar()?)?,
                    "timestamp" => set(&mut out.timestamp, c.scalar()?)?,
                    "payload" | "data" if reads_fields(out.resolved) => {
                        let fields = c.payload()?;
                        let slot = if key == "payload" {
                            &mut out.payload
                        } else {
                            &mut out.data
                        };
                        set(slot, Body::Fields(fields))?;
                    }
                    _ => return None,
                }
                if !c.eat_if(b',') {
                    break;
                }
            }
            c.eat(b'}')?;
        }
        c.skip_ws();
        (c.at == text.len()).then_some(())
    }

    /// Fills an empty slot; a repeated member leaves the shape.
    fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(value);
        Some(())
    }

    struct Cursor<'de> {
        text: &'de str,
        at: usize,
    }

    impl<'de> Cursor<'de> {
        fn skip_ws(&mut self) {
            let bytes = self.text.as_bytes();
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
                self.at += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.skip_ws();
            self.text.as_bytes().get(self.at).copied()
        }

        fn eat(&mut self, byte: u8) -> Option<()> {
            self.eat_if(byte).then_some(())
        }

        fn eat_if(&mut self, byte: u8) -> bool {
            let found = self.peek() == Some(byte);
            if found {
                self.at += 1;
            }
            found
        }

        /// A string without escapes or control characters, borrowed from the text.
        fn plain_str(&mut self) -> Option<&'de str> {
            self.eat(b'"')?;
            let start = self.at;
            let rest = self.text.as_bytes().get(start..)?;
            // The first quote, backslash or control character: only a quote may end it here.
            let len = agentwire_types::json::find_escape(rest)?;
            if rest[len] != b'"' {
                return None;
            }
            self.at = start + len + 1;
            self.text.get(start..start + len)
        }

        /// A member's value as [`Scalar`] reads it: strings without escapes and numbers here
        /// (numbers through serde_json, so they convert exactly as in the serde path).
        fn scalar(&mut self) -> Option<Scalar<'de>> {
            match self.peek()? {
                b'"' => self.plain_str().map(|s| Scalar::Str(Cow::Borrowed(s))),
                b'-' | b'0'..=b'9' => {
                    let start = self.at;
                    let bytes = self.text.as_bytes();
                    while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') =
                        bytes.get(self.at)
                    {
                        self.at += 1;
                    }
                    serde_json::from_str(self.text.get(start..self.at)?).ok()
                }
                _ => None,
            }
        }

        /// The payload object of a request whose fields are read in the first pass.
        fn payload(&mut self) -> Option<PayloadFields<'de>> {
            let mut f = PayloadFields::default();
            self.eat(b'{')?;
            if self.eat_if(b'}') {
                return Some(f);
            }
            loop {
                let key = self.plain_str()?;
                self.eat(b':')?;
                if key == "context" {
                    set(&mut f.context, self.raw_value()?)?;
                } else {
                    let slot = match key {
                        "user_request" => &mut f.user_request,
                        "message" => &mut f.message,
                        "content" => &mut f.content,
                        "text" => &mut f.text,
                        "agent_name" => &mut f.agent_name,
                        "thread_id" => &mut f.thread_id,
                        "token" => &mut f.token,
                        "run_id" => &mut f.run_id,
                        _ => return None,
                    };
                    set(slot, self.scalar()?)?;
                }
                if !self.eat_if(b',') {
                    break;
                }
            }
            self.eat(b'}')?;
            Some(f)
        }

        /// Any JSON value, kept raw: its extent found by matching brackets outside strings,
        /// then checked by serde_json (which also borrows it).
        fn raw_value(&mut self) -> Option<&'de RawValue> {
            self.skip_ws();
            let start = self.at;
            let bytes = self.text.as_bytes();
            let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
            loop {
                let b = *bytes.get(self.at)?;
                self.at += 1;
                if in_string {
                    match b {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => in_string = false,
                        _ => {}
                    }
                    if !in_string && depth == 0 {
                        break;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            break;
                        }
                    }
                    // A scalar at the top: up to the next delimiter.
                    b',' if depth == 0 => return None,
                    _ if depth == 0 => {
                        while let Some(next) = bytes.get(self.at) {
                            if matches!(next, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                                break;
                            }
                            self.at += 1;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            serde_json::from_str(self.text.get(start..self.at)?).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope as serde reads it, or its error.
    fn by_serde(text: &str) -> Result<String, String> {
        let mut e = Envelope::default();
        serde_envelope(text, &mut e)
            .map(|()| format!("{e:?}"))
            .map_err(|e| e.to_string())
    }

    /// Whether the fast path read `text`; when it did, it must have read what serde reads.
    fn agrees(text: &str) -> bool {
        let mut e = Envelope::default();
        if fast::envelope(text, &mut e).is_none() {
            return false;
        }
        assert_eq!(Ok(format!("{e:?}")), by_serde(text), "{text}");
        true
    }

    #[test]
    fn the_fast_path_reads_common_requests() {
        for text in [
            r#"{"type":"start_agent","message_id":"c500-17","payload":{"user_request":"What is the weather in Oslo today?"}}"#,
            r#"{"type":"start_agent","message_id":"msg_01HZX3K9Q2M4","thread_id":"thread_7f3a9c","timestamp":1735787045.678,"payload":{"user_request":"Find flights","agent_name":"travel_planner","context":{"locale":"en-GB","timezone":"Europe/Oslo"}}}"#,
            " { \"type\" : \"user_message\" , \"data\" : { \"message\" : \"hi\" } } \n",
            r#"{"type":"cancel_agent","payload":{"run_id":"run_1"}}"#,
            r#"{}"#,
        ] {
            assert!(agrees(text), "not read by the fast path: {text}");
        }
    }

    #[test]
    fn the_fast_path_reads_what_serde_reads_or_leaves_the_frame_to_it() {
        let types = [
            r#""start_agent""#,
            r#""START_AGENT""#,
            r#""user_message""#,
            r#""ping""#,
            r#""cancel_agent""#,
            r#""auth_refresh""#,
            r#""no_such_type""#,
            r#""start\u005fagent""#,
            "7",
            "null",
        ];
        let ids = [
            r#""m1""#,
            "42",
            "-1",
            "1.5e3",
            r#""a\"b""#,
            "[1]",
            "01",
            "-",
            "1e400",
        ];
        let payloads = [
            "{}",
            "null",
            "[]",
            r#""text""#,
            r#"{"user_request":"hi"}"#,
            r#"{"user_request":"hi","context":{"a":[1,{"b":"}]\"{"}],"c":null}}"#,
            r#"{"context":"s\"}"}"#,
            r#"{"context":12.5}"#,
            r#"{"context":null}"#,
            r#"{"context":{"a":1}]}"#,
            r#"{"context":{"a":}}"#,
            r#"{"user_request":1}"#,
            r#"{"user_request":true}"#,
            r#"{"text":"x","message":"y","content":"z"}"#,
            r#"{"user_request":"a","user_request":"b"}"#,
            r#"{"other":1}"#,
            r#"{"user_request":"tab\there"}"#,
            "{\"user_request\":\"raw\u{1}control\"}",
            r#"{"agent_name":"é 日本 🎉","thread_id":"t","token":"x.y.z","run_id":"r"}"#,
        ];
        let mut read = 0;
        let mut total = 0;
        for ty in types {
            for id in ids {
                for payload in payloads {
                    for key in ["payload", "data"] {
                        let members = [
                            format!(r#""type":{ty}"#),
                            format!(r#""message_id":{id}"#),
                            format!(r#""{key}":{payload}"#),
                        ];
                        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
                            let body: Vec<&str> =
                                order.iter().map(|&i| members[i].as_str()).collect();
                            for (sep, open, close) in
                                [(",", "{", "}"), (" ,\n ", " {\t", "} "), (",", "{", "}x")]
                            {
                                let text = format!("{open}{}{close}", body.join(sep));
                                total += 1;
                                if agrees(&text) {
                                    read += 1;
                                }
                                // Cut short anywhere: never read as something else.
                                if total % 7 == 0 {
                                    for cut in 0..text.len() {
                                        if let Some(prefix) = text.get(..cut) {
                                            agrees(prefix);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Both paths get work: the generator is not all one shape (720 of 30,780 take the
        // fast path when this was written).
        assert!(read > 500 && read < total / 2, "{read} of {total}");
    }

    /// The committed seeds; `AGENTWIRE_INBOUND_CORPUS=DIR` checks a long-run corpus kept
    /// outside git instead (fuzz/README.md).
    #[test]
    fn the_fast_path_agrees_with_serde_on_the_fuzz_corpus() {
        let dir = std::env::var("AGENTWIRE_INBOUND_CORPUS").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fuzz/corpus/inbound_frame"
            )
            .to_owned()
        });
        let (mut files, mut fast) = (0, 0);
        for entry in std::fs::read_dir(&dir).expect("the corpus") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            files += 1;
            if std::str::from_utf8(&bytes).is_ok_and(agrees) {
                fast += 1;
            }
        }
        assert!(files > 10, "{files} files in {dir}");
        assert!(fast > 0, "none of {files} files took the fast path");
    }
}
