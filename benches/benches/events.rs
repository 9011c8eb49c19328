//! agentwire-events on the hot paths: parsing an inbound request, encoding an outbound event.
//!
//! Run: `cargo bench -p agentwire-benches --bench events`
//!
//! Targets (docs/performance.md): parse + normalize + validate of a ~300-byte `start_agent`
//! frame at most 1 us; serializing one `tool_completed` event with a small result at most
//! 500 ns.

use std::hint::black_box;

use agentwire_events::{
    Event, Frame, Stamp, StreamStamper, Timestamp, ToolExecuting, parse_inbound, parse_outbound,
    validate_run,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

/// A typical `start_agent` frame of about 300 bytes.
const START_AGENT: &str = r#"{"type":"start_agent","message_id":"msg_01HZX3K9Q2M4","thread_id":"thread_7f3a9c","timestamp":1735787045.678,"payload":{"user_request":"Find three direct flights from Oslo to Lisbon next Friday under 300 EUR and summarize the options","agent_name":"travel_planner","context":{"locale":"en-GB","timezone":"Europe/Oslo"}}}"#;

/// The same request as an old client sends it: alias in upper case, `data`, `message`.
const LEGACY_START_AGENT: &str = r#"{"type":"EXECUTE_AGENT","message_id":"msg_01HZX3K9Q2M4","thread_id":"thread_7f3a9c","timestamp":"2025-01-02T03:04:05.678Z","data":{"message":"Find three direct flights from Oslo to Lisbon next Friday under 300 EUR and summarize the options","agent_name":"travel_planner","context":{"locale":"en-GB","timezone":"Europe/Oslo"}}}"#;

fn tool_completed() -> Event {
    Event::tool_completed(
        "run_5f2c9a",
        "search_flights",
        "call_01",
        json!({"hits": 3}),
        42,
    )
    .with_thread_id("thread_7f3a9c")
}

fn stamp() -> Stamp {
    let timestamp = Timestamp::from_unix_millis(1_735_787_045_678).expect("in range");
    Stamp::new("evt_3f9a2c1b7d4e_1a", timestamp).with_seq(17)
}

fn bench_inbound(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbound");
    for (name, frame) in [
        ("start_agent_300b", START_AGENT),
        ("start_agent_legacy_300b", LEGACY_START_AGENT),
    ] {
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_inbound(black_box(frame)).map(|f| f.message_type()))
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("unknown_type_error", |b| {
        b.iter(|| parse_inbound(black_box(r#"{"type":"factory_stuff","message_id":"m1"}"#)))
    });
    group.finish();
}

fn bench_outbound(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbound");
    group.throughput(Throughput::Elements(1));
    let frame: Frame = tool_completed().stamp(stamp());
    group.bench_function("tool_completed_to_json", |b| {
        b.iter(|| black_box(&frame).to_json())
    });
    group.bench_function("tool_completed_encode", |b| {
        b.iter(|| black_box(&frame).encode())
    });
    let mut stream = StreamStamper::new();
    group.bench_function("tool_completed_stamp_and_encode", |b| {
        b.iter_batched(
            tool_completed,
            |event| stream.emit(event),
            BatchSize::SmallInput,
        )
    });
    let encoded = frame.encode();
    group.bench_function("encoded_frame_clone_x10", |b| {
        b.iter(|| {
            for _ in 0..10 {
                black_box(encoded.clone());
            }
        })
    });
    let text = frame.to_json();
    group.bench_function("tool_completed_parse_outbound", |b| {
        b.iter(|| parse_outbound(black_box(&text)))
    });
    group.finish();
}

fn bench_validate(c: &mut Criterion) {
    let mut stream = StreamStamper::new();
    let run: Vec<Frame> = [
        Event::agent_started("r1", "demo", "hello"),
        Event::agent_thinking("r1", "planning"),
        Event::in_run(
            "r1",
            ToolExecuting::new("echo", "c1").with_parameter("text", "hello"),
        ),
        Event::tool_completed("r1", "echo", "c1", json!("hello"), 1),
        Event::agent_completed("r1", json!("hello"), 3),
    ]
    .into_iter()
    .map(|e| stream.stamp(e))
    .collect();
    c.bench_function("validate_run_5_frames", |b| {
        b.iter(|| validate_run(black_box(&run)))
    });
}

criterion_group!(benches, bench_inbound, bench_outbound, bench_validate);
criterion_main!(benches);
