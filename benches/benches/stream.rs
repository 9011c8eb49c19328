//! agentwire-stream on the hot paths: appending an event to a user stream (stamp, encode once,
//! keep for replay, evict), and resuming after a reconnect (decide, then collect the frames
//! to replay).
//!
//! Run: `cargo bench -p agentwire-benches --bench stream`
//!
//! `append/replay_off` is the stamp and encode alone (what the server does per event without
//! a window); the other append figures add keeping the frame and evicting one: by the
//! stream's count limit with a full window, and by the shard's byte budget with many users.

use std::hint::black_box;
use std::time::Instant;

use agentwire_events::Event;
use agentwire_stream::{ResumeRequest, UserStream, WindowConfig, WindowStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

/// The server's shard count: each store holds a 64th of the default 64 MiB.
const SHARDS: usize = 64;

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

fn store(config: &WindowConfig) -> WindowStore {
    WindowStore::new(config, SHARDS).expect("valid config")
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    let event = tool_completed();
    let now = Instant::now();

    let mut off = store(&WindowConfig::off());
    let mut stream = UserStream::new(now);
    group.bench_function("replay_off", |b| {
        b.iter(|| stream.append(black_box(&event), now, &mut off))
    });

    // One user with a full window of 1,000: each append evicts the stream's oldest.
    let mut full = store(&WindowConfig::default());
    let mut stream = UserStream::new(now);
    for _ in 0..1_000 {
        stream.append(&event, now, &mut full);
    }
    group.bench_function("window_full", |b| {
        b.iter(|| stream.append(black_box(&event), now, &mut full))
    });

    // 200 users in the shard, their windows far from full, the shard at its 1 MiB share:
    // each append evicts the shard's oldest event, another user's.
    let mut budget = store(&WindowConfig::default());
    const USERS: usize = 200;
    let mut streams: Vec<UserStream> = (0..USERS).map(|_| UserStream::new(now)).collect();
    for i in 0..10_000 {
        streams[i % USERS].append(&event, now, &mut budget);
    }
    assert!(budget.stats().evicted_by_budget > 0);
    let mut i = 0;
    group.bench_function("over_budget_200_users", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            streams[i].append(black_box(&event), now, &mut budget)
        })
    });
    group.finish();
}

fn bench_resume(c: &mut Criterion) {
    let mut group = c.benchmark_group("resume");
    let event = tool_completed();
    let now = Instant::now();
    // Two users' full windows (1,000 of their 1,100 events each) interleaved in one shard's
    // store.
    let mut store = store(&WindowConfig::default());
    let mut alice = UserStream::new(now);
    let mut bob = UserStream::new(now);
    for _ in 0..1_100 {
        alice.append(&event, now, &mut store);
        bob.append(&event, now, &mut store);
    }
    assert_eq!(store.stats().held_events, 2_000);
    let missed_100 = ResumeRequest::new(alice.epoch(), alice.last_seq() - 100).unwrap();
    let missed_none = ResumeRequest::new(alice.epoch(), alice.last_seq()).unwrap();
    let too_late = ResumeRequest::new(alice.epoch(), 1).unwrap();

    group.throughput(Throughput::Elements(100));
    group.bench_function("replay_100", |b| {
        b.iter(|| alice.resume(&store, black_box(&missed_100)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("missed_nothing", |b| {
        b.iter(|| alice.resume(&store, black_box(&missed_none)))
    });
    group.bench_function("reset_outside_window", |b| {
        b.iter(|| alice.resume(&store, black_box(&too_late)))
    });
    group.bench_function("from_query", |b| {
        b.iter(|| ResumeRequest::from_query(black_box(Some("epoch=ep_3f9a2c1b7d4e_0&since=1893"))))
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_resume);
criterion_main!(benches);
