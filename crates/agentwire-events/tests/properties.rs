//! Property tests: JSON round trips of every event and request, the run validator against
//! valid runs and their single mutations, and the parsers against arbitrary input.

use std::borrow::Cow;

use agentwire_events::{
    AgentCompleted, AgentError, AgentResponseChunk, AgentStarted, AgentThinking, AuthRefreshed,
    ConnectionEstablished, ErrorReply, Event, Frame, HeartbeatAck, Inbound, OtherPayload,
    OtherRequest, Payload, Pong, RawJson, Request, RunRequest, RunRule, Stamp, StreamPosition,
    StreamStamper, Timestamp, ToolCompleted, ToolExecuting, parse_inbound, parse_outbound,
    validate_run, validate_run_events, validate_run_json,
};
use agentwire_types::MessageType;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Generators.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_0-9]{0,12}",
        "\\PC{0,24}",
        Just("quote \" backslash \\ newline \n tab \t nul \u{0}".to_owned()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Floats with a short exact decimal form round-trip through text exactly.
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(text(), json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (Timestamp::MIN.unix_millis()..=Timestamp::MAX.unix_millis())
        .prop_map(|ms| Timestamp::from_unix_millis(ms).expect("in range"))
}

fn payload() -> impl Strategy<Value = Payload> {
    let generic_types: Vec<MessageType> = MessageType::ALL
        .iter()
        .copied()
        .filter(|t| t.direction().server_may_send() && !Payload::is_typed(*t))
        .collect();
    prop_oneof![
        (text(), text()).prop_map(|(a, b)| AgentStarted::new(a, b).into()),
        (text(), any::<Option<u32>>()).prop_map(|(r, step)| {
            let mut thinking = AgentThinking::new(r);
            thinking.step = step;
            thinking.into()
        }),
        (text(), text(), json_object())
            .prop_map(|(n, id, p)| ToolExecuting::new(n, id).with_parameters(p).into()),
        (text(), text(), json_value(), any::<u64>(), any::<bool>()).prop_map(
            |(n, id, result, ms, ok)| if ok {
                ToolCompleted::ok(n, id, result, ms).into()
            } else {
                ToolCompleted::error(n, id, result, ms).into()
            }
        ),
        (text(), any::<u32>()).prop_map(|(d, i)| AgentResponseChunk::new(d, i).into()),
        (json_value(), any::<u64>()).prop_map(|(r, ms)| AgentCompleted::new(r, ms).into()),
        (text(), text(), any::<bool>()).prop_map(|(c, m, r)| AgentError::new(c, m, r).into()),
        (
            text(),
            text(),
            any::<u64>(),
            any::<u64>(),
            timestamp(),
            text(),
            any::<u64>()
        )
            .prop_map(|(c, u, hb, max, t, epoch, seq)| {
                ConnectionEstablished::new(c, u, hb, max, t, StreamPosition::new(epoch, seq)).into()
            }),
        timestamp().prop_map(|t| Pong::new(t).into()),
        Just(HeartbeatAck::new().into()),
        (
            text(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            any::<(Option<u64>, Option<u64>, Option<u64>)>()
        )
            .prop_map(
                |(code, message, received_type, field, (line, column, retry))| {
                    let mut reply = ErrorReply::new(code, message);
                    reply.received_type = received_type;
                    reply.field = field;
                    reply.line = line;
                    reply.column = column;
                    reply.retry_after_ms = retry;
                    reply.into()
                }
            ),
        timestamp().prop_map(|t| AuthRefreshed::new(t).into()),
        (select(generic_types), json_object())
            .prop_map(|(t, p)| OtherPayload::new(t, p).expect("generic type").into()),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        payload(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        text(),
        timestamp(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(payload, run_id, thread_id, reply_to, event_id, timestamp, seq)| {
                let mut event = Event::new(payload);
                if let Some(r) = run_id {
                    event = event.with_run_id(r);
                }
                if let Some(t) = thread_id {
                    event = event.with_thread_id(t);
                }
                if let Some(r) = reply_to {
                    event = event.with_reply_to(r);
                }
                let mut stamp = Stamp::new(event_id, timestamp);
                stamp.seq = seq;
                event.stamp(stamp)
            },
        )
}

fn nonblank() -> impl Strategy<Value = String> {
    text().prop_filter("request text is non-empty", |t| !t.trim().is_empty())
}

fn run_request() -> impl Strategy<Value = RunRequest<'static>> {
    (
        nonblank(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(json_object()),
    )
        .prop_map(|(t, agent, thread, context)| {
            let mut r = RunRequest::new(t);
            r.agent_name = agent.map(Cow::Owned);
            r.thread_id = thread.map(Cow::Owned);
            r.context = context.map(|c| RawJson::from_value(&Value::Object(c)));
            r
        })
}

fn request() -> impl Strategy<Value = Request<'static>> {
    let generic_types: Vec<MessageType> = MessageType::ALL
        .iter()
        .copied()
        .filter(|t| t.direction().client_may_send() && !Request::is_typed(*t))
        .collect();
    prop_oneof![
        Just(Request::Ping),
        Just(Request::Heartbeat),
        run_request().prop_map(Request::StartAgent),
        run_request().prop_map(Request::UserMessage),
        "[A-Za-z0-9._-]{1,64}".prop_map(|t| Inbound::auth_refresh(t).into_request()),
        proptest::option::of(text()).prop_map(|r| {
            Inbound::cancel_agent(r.as_deref())
                .into_owned()
                .into_request()
        }),
        (
            select(generic_types),
            proptest::option::of(json_value().prop_filter("null means absent", |v| !v.is_null()))
        )
            .prop_map(|(t, p)| Request::Other(
                OtherRequest::new(t, p.as_ref().map(RawJson::from_value)).expect("generic")
            )),
    ]
}

fn inbound() -> impl Strategy<Value = Inbound<'static>> {
    (
        request(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(timestamp()),
    )
        .prop_map(|(request, id, thread, ts)| {
            let mut frame = Inbound::new(request);
            if let Some(id) = id {
                frame = frame.with_message_id(id);
            }
            if let Some(thread) = thread {
                frame = frame.with_thread_id(thread);
            }
            if let Some(ts) = ts {
                frame = frame.with_timestamp(ts);
            }
            frame
        })
}

/// One step in the middle of a generated run.
#[derive(Clone, Debug)]
enum Step {
    Thinking,
    Chunk,
    ToolStart,
    /// Completes the open tool call at this position (modulo the number open), if any.
    ToolFinish(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Thinking),
        Just(Step::Chunk),
        Just(Step::ToolStart),
        any::<usize>().prop_map(Step::ToolFinish),
    ]
}

/// A well-formed run of stamped frames (seq gaps stand for other runs' events).
fn valid_run() -> impl Strategy<Value = Vec<Frame>> {
    (
        "[a-z0-9]{1,8}",
        prop::collection::vec(step(), 0..12),
        any::<bool>(),
        prop::collection::vec(1u64..4, 16),
        0u64..1_000,
    )
        .prop_map(|(run_id, steps, completed, gaps, start)| {
            let mut events = vec![Event::agent_started(&*run_id, "agent", "request")];
            let mut open: Vec<String> = Vec::new();
            let mut next_call = 0;
            for (i, step) in steps.into_iter().enumerate() {
                events.push(match step {
                    Step::Thinking => Event::agent_thinking(&*run_id, "thinking"),
                    Step::Chunk => Event::agent_response_chunk(&*run_id, "chunk", i as u32),
                    Step::ToolFinish(k) if !open.is_empty() => {
                        let id = open.remove(k % open.len());
                        Event::tool_completed(&*run_id, "tool", id, Value::Null, 1)
                    }
                    Step::ToolStart | Step::ToolFinish(_) => {
                        next_call += 1;
                        let id = format!("call_{next_call}");
                        open.push(id.clone());
                        Event::in_run(&*run_id, ToolExecuting::new("tool", id))
                    }
                });
            }
            events.push(if completed {
                Event::agent_completed(&*run_id, "done", 5)
            } else {
                Event::agent_error(&*run_id, "failed", "it failed", false)
            });
            let mut seq = start;
            events
                .into_iter()
                .enumerate()
                .map(|(i, event)| {
                    seq += gaps[i % gaps.len()];
                    event.stamp(Stamp::new(format!("evt_{i}"), Timestamp::UNIX_EPOCH).with_seq(seq))
                })
                .collect()
        })
}

fn restamp(frame: &Frame, seq: Option<u64>) -> Frame {
    let (event, mut stamp) = frame.clone().into_parts();
    stamp.seq = seq;
    event.stamp(stamp)
}

/// A single mutation of a valid run; each must make it invalid.
#[derive(Clone, Debug)]
enum Mutation {
    DropFirst,
    DropLast,
    Duplicate(usize),
    AppendAfterTerminal,
    ChangeRunId(usize),
    RepeatSeq(usize),
    DropSeq(usize),
    DropToolExecuting(usize),
    InsertControlFrame(usize),
    MoveTerminalEarlier(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::DropFirst),
        Just(Mutation::DropLast),
        any::<usize>().prop_map(Mutation::Duplicate),
        Just(Mutation::AppendAfterTerminal),
        any::<usize>().prop_map(Mutation::ChangeRunId),
        any::<usize>().prop_map(Mutation::RepeatSeq),
        any::<usize>().prop_map(Mutation::DropSeq),
        any::<usize>().prop_map(Mutation::DropToolExecuting),
        any::<usize>().prop_map(Mutation::InsertControlFrame),
        any::<usize>().prop_map(Mutation::MoveTerminalEarlier),
    ]
}

/// Applies `mutation`; `None` when it does not apply to this run (e.g. no completed tool call).
fn mutate(mut run: Vec<Frame>, mutation: &Mutation) -> Option<(Vec<Frame>, RunRule)> {
    let n = run.len();
    let rule = match *mutation {
        Mutation::DropFirst => {
            run.remove(0);
            RunRule::FirstNotAgentStarted
        }
        Mutation::DropLast => {
            run.pop();
            RunRule::MissingTerminal
        }
        Mutation::Duplicate(i) => {
            let i = i % n;
            let copy = run[i].clone();
            run.insert(i + 1, copy);
            if i == n - 1 {
                RunRule::EventAfterTerminal
            } else {
                RunRule::SeqNotIncreasing
            }
        }
        Mutation::AppendAfterTerminal => {
            let last = run[n - 1].clone();
            let seq = last.seq().map(|s| s + 1);
            let (_, mut stamp) = last.into_parts();
            stamp.seq = seq;
            let run_id = run[0].run_id().map(str::to_owned).unwrap_or_default();
            run.push(Event::agent_thinking(run_id, "late").stamp(stamp));
            RunRule::EventAfterTerminal
        }
        Mutation::ChangeRunId(i) => {
            let i = i % n;
            let (event, stamp) = run[i].clone().into_parts();
            let other = format!("{}_other", event.run_id().unwrap_or_default());
            run[i] = event.with_run_id(other).stamp(stamp);
            RunRule::RunIdChanged
        }
        Mutation::RepeatSeq(i) => {
            let i = 1 + i % (n - 1);
            run[i] = restamp(&run[i], run[i - 1].seq());
            RunRule::SeqNotIncreasing
        }
        Mutation::DropSeq(i) => {
            let i = i % n;
            run[i] = restamp(&run[i], None);
            RunRule::MissingSeq
        }
        Mutation::DropToolExecuting(k) => {
            let completed: Vec<usize> = run
                .iter()
                .enumerate()
                .filter(|(_, f)| f.message_type() == MessageType::ToolCompleted)
                .map(|(i, _)| i)
                .collect();
            if completed.is_empty() {
                return None;
            }
            let target = completed[k % completed.len()];
            let id = run[target].payload().tool_call_id().map(str::to_owned);
            let start = run.iter().position(|f| {
                f.message_type() == MessageType::ToolExecuting
                    && f.payload().tool_call_id().map(str::to_owned) == id
            })?;
            run.remove(start);
            RunRule::ToolCompletedWithoutExecuting
        }
        Mutation::InsertControlFrame(i) => {
            let i = 1 + i % (n - 1);
            let pong =
                Event::pong(Timestamp::UNIX_EPOCH).stamp(Stamp::new("pong", Timestamp::UNIX_EPOCH));
            run.insert(i, pong);
            RunRule::NotARunEvent
        }
        Mutation::MoveTerminalEarlier(i) => {
            if n < 3 {
                return None;
            }
            // Put the terminal event (with its seq) between two earlier events.
            let i = 1 + i % (n - 2);
            let terminal = run.pop()?;
            run.insert(i, terminal);
            RunRule::EventAfterTerminal
        }
    };
    Some((run, rule))
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #[test]
    fn every_frame_round_trips_through_json(frame in frame()) {
        let text = frame.to_json();
        // The hand-written writer and serde_json agree byte for byte.
        prop_assert_eq!(&text, &serde_json::to_string(&frame).unwrap());
        prop_assert_eq!(&parse_outbound(&text).unwrap(), &frame);
        prop_assert_eq!(&serde_json::from_str::<Frame>(&text).unwrap(), &frame);
        let encoded = frame.encode();
        prop_assert_eq!(encoded.as_str(), text.as_str());
    }

    #[test]
    fn every_request_round_trips_through_json(frame in inbound()) {
        let text = frame.to_json();
        let parsed = parse_inbound(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&frame), "{}", text);
    }

    #[test]
    fn valid_runs_pass(run in valid_run()) {
        let summary = validate_run(&run);
        prop_assert!(summary.is_ok(), "{:?}", summary);
        let events: Vec<Event> = run.iter().map(|f| f.event().clone()).collect();
        prop_assert!(validate_run_events(&events).is_ok());
        let texts: Vec<String> = run.iter().map(Frame::to_json).collect();
        prop_assert!(validate_run_json(texts.iter().map(String::as_str)).is_ok());
    }

    #[test]
    fn single_mutations_fail(run in valid_run(), mutation in mutation()) {
        let Some((mutated, expected)) = mutate(run, &mutation) else {
            return Ok(());
        };
        let err = validate_run(&mutated).unwrap_err();
        // Where one mutation breaks two rules at once, the validator reports the first event
        // that breaks any; the expected rule is the one the mutation targets.
        let acceptable = match mutation {
            Mutation::ChangeRunId(_) => vec![RunRule::RunIdChanged],
            Mutation::Duplicate(_) => {
                vec![expected, RunRule::DuplicateAgentStarted]
            }
            _ => vec![expected],
        };
        prop_assert!(acceptable.contains(&err.rule()), "{:?} gave {:?}", mutation, err);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_inbound(&text);
        let _ = parse_outbound(&text);
    }

    #[test]
    fn arbitrary_frames_never_panic_and_accepted_ones_are_stable(
        value in frame_like()
    ) {
        let text = value.to_string();
        if let Ok(inbound) = parse_inbound(&text) {
            // Whatever was accepted re-encodes to a frame that parses to the same request.
            let canonical = inbound.to_json();
            let again = parse_inbound(&canonical).expect("canonical form parses");
            prop_assert_eq!(again.request(), inbound.request());
            prop_assert_eq!(again.message_id(), inbound.message_id());
            prop_assert_eq!(again.thread_id(), inbound.thread_id());
            prop_assert_eq!(again.timestamp(), inbound.timestamp());
        }
        let _ = parse_outbound(&text);
    }

    #[test]
    fn member_order_does_not_matter(value in frame_like()) {
        // With `type` first the payload is read in the same pass; with `type` after the
        // payload it is read in a second one. Both must give the same answer.
        let object = value.as_object().expect("frame_like gives objects");
        let type_first = {
            let mut text = format!("{{\"type\":{}", object["type"]);
            for (k, v) in object.iter().filter(|(k, _)| *k != "type") {
                text.push_str(&format!(",{}:{}", Value::from(k.as_str()), v));
            }
            text.push('}');
            text
        };
        let type_last = {
            let mut text = String::from("{");
            for (k, v) in object.iter().filter(|(k, _)| *k != "type") {
                text.push_str(&format!("{}:{},", Value::from(k.as_str()), v));
            }
            text.push_str(&format!("\"type\":{}}}", object["type"]));
            text
        };
        prop_assert_eq!(parse_inbound(&type_first), parse_inbound(&type_last));
    }

    #[test]
    fn emit_into_writes_the_stamped_frame(frame in frame(), prefix in text()) {
        // Whatever stamp `emit_into` chooses, its text is the frame serde_json writes for the
        // same event and that stamp, appended after what the buffer held.
        let event = frame.into_event();
        let mut stream = StreamStamper::resume("ep", 7);
        let mut out = prefix.clone();
        let seq = stream.emit_into(&event, &mut out);
        prop_assert!(out.starts_with(&prefix));
        let written = &out[prefix.len()..];
        let parsed = parse_outbound(written).unwrap();
        prop_assert_eq!(parsed.event(), &event);
        prop_assert_eq!(parsed.seq(), seq);
        prop_assert_eq!(seq, event.is_stream_event().then_some(8));
        prop_assert!(parsed.event_id().starts_with("evt_"));
        prop_assert_eq!(written, serde_json::to_string(&parsed).unwrap());
    }

    #[test]
    fn write_unsequenced_leaves_the_place_of_the_seq(
        frame in frame(),
        prefix in text(),
        seq in any::<u64>(),
    ) {
        // With any `seq` put where it says, the text is the frame serde_json writes for the
        // same event and stamp; a control frame writes nothing.
        let event = frame.into_event();
        let mut out = prefix.clone();
        let at = event.write_unsequenced(&mut out);
        prop_assert!(out.starts_with(&prefix));
        let Some(at) = at else {
            prop_assert!(!event.is_stream_event());
            prop_assert_eq!(out, prefix);
            return Ok(());
        };
        prop_assert!(out[..at].ends_with("\"seq\":"));
        let written = format!("{}{seq}{}", &out[prefix.len()..at], &out[at..]);
        let parsed = parse_outbound(&written).unwrap();
        prop_assert_eq!(parsed.event(), &event);
        prop_assert_eq!(parsed.seq(), Some(seq));
        prop_assert!(parsed.event_id().starts_with("evt_"));
        prop_assert_eq!(written, serde_json::to_string(&parsed).unwrap());
    }

    #[test]
    fn stream_stamper_seq_is_dense(count in 1usize..50, start in 0u64..1_000_000) {
        let mut stream = StreamStamper::resume("ep", start);
        for i in 0..count {
            let frame = stream.stamp(Event::agent_thinking("r", "x"));
            prop_assert_eq!(frame.seq(), Some(start + 1 + i as u64));
        }
    }
}

/// JSON objects built from the names and shapes the parser looks at, to reach deep paths.
fn frame_like() -> impl Strategy<Value = Value> {
    let names: Vec<String> = MessageType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .chain(
            agentwire_types::ALIASES
                .iter()
                .map(|a| a.name.to_ascii_uppercase()),
        )
        .chain(["".to_owned(), "nonsense".to_owned()])
        .collect();
    let keys = select(vec![
        "type",
        "payload",
        "data",
        "message_id",
        "thread_id",
        "timestamp",
        "user_request",
        "message",
        "content",
        "text",
        "agent_name",
        "context",
        "token",
        "run_id",
        "extra",
    ]);
    let field_value = prop_oneof![
        json_value(),
        select(names.clone()).prop_map(Value::String),
        Just(Value::from(1_735_787_045.5)),
        Just(Value::from("2025-01-02T03:04:05Z")),
    ];
    let inner = prop::collection::btree_map(keys.clone(), field_value.clone(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    (
        select(names),
        prop::collection::btree_map(keys, prop_oneof![field_value, inner], 0..5),
    )
        .prop_map(|(ty, fields)| {
            let mut object: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            object.entry("type").or_insert(Value::String(ty));
            Value::Object(object)
        })
}
