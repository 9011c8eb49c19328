//! The run validator: one test per rule, on frames, events and JSON text.

use agentwire_events::{
    Event, Frame, RunRule, RunValidator, Stamp, Timestamp, ToolExecuting, validate_run,
    validate_run_events, validate_run_json,
};
use agentwire_types::MessageType;
use serde_json::json;

fn frames(events: Vec<Event>) -> Vec<Frame> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.stamp(Stamp::new(format!("e{i}"), Timestamp::UNIX_EPOCH).with_seq(10 + 2 * i as u64))
        })
        .collect()
}

fn good_run() -> Vec<Event> {
    vec![
        Event::agent_started("r", "demo", "q"),
        Event::agent_thinking("r", "plan"),
        Event::in_run("r", ToolExecuting::new("a", "c1")),
        Event::in_run("r", ToolExecuting::new("b", "c2")),
        Event::tool_completed("r", "b", "c2", json!(2), 1),
        Event::tool_completed("r", "a", "c1", json!(1), 1),
        Event::agent_response_chunk("r", "x", 0),
        Event::agent_completed("r", json!("done"), 5),
    ]
}

fn rule_of(events: Vec<Event>) -> (usize, RunRule) {
    let from_events = validate_run_events(&events).map(|_| ()).unwrap_err();
    let frames = frames(events);
    let from_frames = validate_run(&frames).map(|_| ()).unwrap_err();
    let texts: Vec<String> = frames.iter().map(Frame::to_json).collect();
    let from_json = validate_run_json(texts.iter().map(String::as_str))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(from_events, from_frames);
    assert_eq!(from_frames, from_json);
    (from_frames.index(), from_frames.rule())
}

#[test]
fn a_good_run_passes_in_every_form() {
    let summary = validate_run_events(&good_run()).unwrap();
    assert_eq!((summary.run_id.as_str(), summary.events), ("r", 8));
    assert_eq!(summary.terminal, MessageType::AgentCompleted);
    assert_eq!(summary.last_seq, None);
    let frames = frames(good_run());
    assert_eq!(validate_run(&frames).unwrap().last_seq, Some(24));
    let texts: Vec<String> = frames.iter().map(Frame::to_json).collect();
    assert!(validate_run_json(texts.iter().map(String::as_str)).is_ok());

    let minimal = vec![
        Event::agent_started("r", "demo", "q"),
        Event::agent_error("r", "boom", "failed", true),
    ];
    assert_eq!(
        validate_run_events(&minimal).unwrap().terminal,
        MessageType::AgentError
    );
}

#[test]
fn each_rule() {
    let mut run = good_run();
    run.remove(0);
    assert_eq!(rule_of(run), (0, RunRule::FirstNotAgentStarted));

    let mut run = good_run();
    run.insert(2, Event::agent_started("r", "demo", "q"));
    assert_eq!(rule_of(run), (2, RunRule::DuplicateAgentStarted));

    let mut run = good_run();
    run.insert(1, Event::heartbeat_ack());
    assert_eq!(rule_of(run), (1, RunRule::NotARunEvent));

    let mut run = good_run();
    run.insert(
        1,
        Event::new(agentwire_events::AgentThinking::new("no run")),
    );
    assert_eq!(rule_of(run), (1, RunRule::MissingRunId));

    let mut run = good_run();
    run[3] = Event::in_run("other", ToolExecuting::new("b", "c2"));
    assert_eq!(rule_of(run), (3, RunRule::RunIdChanged));

    let mut run = good_run();
    run.insert(4, Event::in_run("r", ToolExecuting::new("b", "c2")));
    assert_eq!(rule_of(run), (4, RunRule::DuplicateToolCallId));

    let mut run = good_run();
    run.remove(2);
    assert_eq!(rule_of(run), (4, RunRule::ToolCompletedWithoutExecuting));

    let mut run = good_run();
    run.insert(5, Event::tool_completed("r", "b", "c2", json!(2), 1));
    assert_eq!(rule_of(run), (5, RunRule::DuplicateToolCompleted));

    let mut run = good_run();
    run[4] = Event::tool_completed("r", "not_b", "c2", json!(2), 1);
    assert_eq!(rule_of(run), (4, RunRule::ToolNameMismatch));

    let mut run = good_run();
    run.push(Event::agent_thinking("r", "late"));
    assert_eq!(rule_of(run), (8, RunRule::EventAfterTerminal));

    let mut run = good_run();
    run.push(Event::agent_error("r", "x", "y", false));
    assert_eq!(rule_of(run), (8, RunRule::EventAfterTerminal));

    let mut run = good_run();
    run.pop();
    assert_eq!(rule_of(run), (7, RunRule::MissingTerminal));

    assert_eq!(
        validate_run_events(&[]).unwrap_err().rule(),
        RunRule::EmptyRun
    );
}

#[test]
fn seq_rules_on_frames() {
    let mut run = frames(good_run());
    let (event, mut stamp) = run[3].clone().into_parts();
    stamp.seq = run[2].seq();
    run[3] = event.stamp(stamp);
    let err = validate_run(&run).unwrap_err();
    assert_eq!((err.index(), err.rule()), (3, RunRule::SeqNotIncreasing));
    assert_eq!(err.code(), "seq_not_increasing");
    assert!(err.to_string().starts_with("event 3: seq_not_increasing: "));

    let mut run = frames(good_run());
    let (event, mut stamp) = run[5].clone().into_parts();
    stamp.seq = None;
    run[5] = event.stamp(stamp);
    let err = validate_run(&run).unwrap_err();
    assert_eq!((err.index(), err.rule()), (5, RunRule::MissingSeq));
}

#[test]
fn invalid_json_frames_and_incremental_use() {
    let frames = frames(good_run());
    let mut texts: Vec<String> = frames.iter().map(Frame::to_json).collect();
    texts[2] = texts[2].replace("tool_name", "toolname");
    let err = validate_run_json(texts.iter().map(String::as_str)).unwrap_err();
    assert_eq!((err.index(), err.rule()), (2, RunRule::InvalidFrame));
    assert!(err.message().contains("tool_name"), "{}", err.message());

    let mut validator = RunValidator::new();
    assert!(validator.is_empty());
    for frame in &frames[..7] {
        validator.push_frame(frame).unwrap();
    }
    let terminal = &frames[7];
    validator.push_frame(terminal).unwrap();
    assert_eq!(
        validator.push_frame(terminal).unwrap_err().rule(),
        RunRule::EventAfterTerminal
    );
    assert_eq!(validator.len(), 9);
    assert_eq!(
        validator.finish().unwrap_err().rule(),
        RunRule::EventAfterTerminal
    );
}

#[test]
fn rule_codes_are_unique_snake_case() {
    let mut codes: Vec<&str> = RunRule::ALL.iter().map(|r| r.code()).collect();
    assert!(
        codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), RunRule::ALL.len());
}
