//! UserStream and WindowStore through the public API: stamping, storing, the three eviction
//! rules, replay, resume and expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_events::{Event, Timestamp, parse_outbound};
use agentwire_stream::{
    Decision, EVENT_OVERHEAD_BYTES, Frame, Held, ResetReason, ResumeRequest, StreamState,
    UserStream, WindowConfig, WindowStats, WindowStore,
};

fn config(max_events: usize, max_age_secs: u64, max_bytes: usize) -> WindowConfig {
    let mut config = WindowConfig::default();
    config.max_events = max_events;
    config.max_age = Duration::from_secs(max_age_secs);
    config.max_bytes = max_bytes;
    config
}

fn store(config: WindowConfig) -> WindowStore {
    WindowStore::new(&config, 1).unwrap()
}

fn event(n: usize) -> Event {
    Event::agent_thinking("run_1", format!("step {n}"))
}

fn seq_of(frame: &str) -> u64 {
    parse_outbound(frame).unwrap().seq().unwrap()
}

fn held(stream: &UserStream, store: &WindowStore) -> Held {
    match stream.state(store) {
        StreamState::Known { held, .. } => held,
        StreamState::Unknown => unreachable!("a UserStream is always known"),
    }
}

fn request(stream: &UserStream, since: u64) -> ResumeRequest {
    ResumeRequest::new(stream.epoch(), since).unwrap()
}

fn cost(frame: &str) -> usize {
    frame.len() + EVENT_OVERHEAD_BYTES
}

#[test]
fn append_stamps_consecutive_seqs_and_keeps_the_frames_it_returns() {
    let mut store = store(WindowConfig::default());
    let now = Instant::now();
    let mut stream = UserStream::new(now);
    assert_eq!((stream.last_seq(), stream.position().seq), (0, 0));
    assert_eq!(held(&stream, &store), Held::Nothing);
    let frames: Vec<Arc<str>> = (1..=5)
        .map(|n| {
            let appended = stream.append(&event(n), now, &mut store);
            assert_eq!(appended.seq, Some(n as u64));
            assert_eq!(seq_of(&appended.frame), n as u64);
            appended.frame
        })
        .collect();
    assert_eq!(stream.last_seq(), 5);
    assert_eq!(stream.position().epoch, stream.epoch());
    assert_eq!(held(&stream, &store), Held::From(1));
    assert_eq!(stream.held(&store), 5);
    let stats = store.stats();
    assert_eq!((stats.held_events, stats.stored), (5, 5));
    assert_eq!(
        stats.held_bytes,
        frames.iter().map(|f| cost(f)).sum::<usize>()
    );
    // The window keeps a copy of the text: replay is byte for byte the frame first sent.
    let replayed: Vec<Arc<str>> = stream.replay(&store, 2, 4).collect();
    assert_eq!(replayed, frames[1..4]);
}

#[test]
fn a_control_frame_takes_no_seq_and_is_not_kept() {
    let mut store = store(WindowConfig::default());
    let now = Instant::now();
    let mut stream = UserStream::new(now);
    stream.append(&event(1), now, &mut store);
    let pong = stream.append(&Event::pong(Timestamp::UNIX_EPOCH), now, &mut store);
    assert_eq!(pong.seq, None);
    assert!(pong.frame.starts_with(r#"{"type":"pong""#));
    assert_eq!(stream.append(&event(2), now, &mut store).seq, Some(2));
    assert_eq!(store.stats().held_events, 2);
}

#[test]
fn replay_yields_only_held_events_and_never_skips_one() {
    let mut store = store(config(3, 300, 1 << 20));
    let now = Instant::now();
    let mut stream = UserStream::new(now);
    for n in 1..=6 {
        stream.append(&event(n), now, &mut store);
    }
    // Held: 4, 5, 6.
    let seqs = |from, to| -> Vec<u64> {
        stream
            .replay(&store, from, to)
            .map(|f| seq_of(&f))
            .collect()
    };
    assert_eq!(seqs(4, 6), [4, 5, 6]);
    assert_eq!(seqs(5, 99), [5, 6]);
    assert_eq!(seqs(6, 6), [6]);
    // Starting before the window: nothing rather than a run with a hole at its start.
    assert!(seqs(3, 6).is_empty());
    assert!(seqs(1, 6).is_empty());
    assert!(seqs(7, 9).is_empty());
    assert!(seqs(6, 5).is_empty());
    assert_eq!(stream.replay(&store, 4, 6).size_hint(), (0, Some(3)));
}

#[test]
fn count_limit_evicts_the_streams_own_oldest() {
    let mut store = store(config(3, 300, 1 << 20));
    let now = Instant::now();
    let mut stream = UserStream::new(now);
    for n in 1..=5 {
        stream.append(&event(n), now, &mut store);
    }
    assert_eq!(held(&stream, &store), Held::From(3));
    let stats = store.stats();
    assert_eq!((stats.held_events, stats.evicted_by_count), (3, 2));
    let resume = |since| stream.resume(&store, &request(&stream, since)).decision;
    assert_eq!(resume(1), Decision::Reset(ResetReason::OutsideWindow));
    let Decision::Resumed(replay) = resume(2) else {
        panic!("since 2 needs 3..=5, all held")
    };
    assert_eq!((replay.from_seq(), replay.to_seq()), (3, 5));
}

#[test]
fn age_limit_evicts_what_is_older_than_max_age_at_now() {
    let mut store = store(config(100, 60, 1 << 20));
    let start = Instant::now();
    let mut stream = UserStream::new(start);
    for n in 0..4u64 {
        let at = start + Duration::from_secs(10 * n);
        stream.append(&event(n as usize), at, &mut store);
    }
    // Stored at 0, 10, 20, 30 s; at 60 s the first is exactly max_age old.
    assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(60)));
    store.expire(start + Duration::from_secs(59));
    assert_eq!(store.stats().held_events, 4);
    store.expire(start + Duration::from_secs(60));
    assert_eq!(store.stats().held_events, 3);
    assert_eq!(held(&stream, &store), Held::From(2));
    // An append expires too.
    stream.append(&event(9), start + Duration::from_secs(85), &mut store);
    assert_eq!(held(&stream, &store), Held::From(4));
    assert_eq!(store.stats().evicted_by_age, 3);
    // `now` going backwards expires nothing early.
    store.expire(start);
    assert_eq!(store.stats().held_events, 2);
    store.expire(start + Duration::from_secs(3600));
    assert!(store.is_empty());
    assert_eq!(store.next_expiry(), None);
    assert_eq!(held(&stream, &store), Held::Nothing);
    assert_eq!(store.stats().held_bytes, 0);
}

#[test]
fn the_budget_evicts_the_oldest_events_of_the_shard_whoever_they_belong_to() {
    let now = Instant::now();
    // Measure one frame to size a budget of about four events.
    let mut probe_store = store(WindowConfig::default());
    let probe = UserStream::new(now).append(&event(1), now, &mut probe_store);
    let budget = 4 * cost(&probe.frame) + 10;
    let mut store = store(config(100, 300, budget));
    let mut alice = UserStream::new(now);
    let mut bob = UserStream::new(now);
    alice.append(&event(1), now, &mut store);
    alice.append(&event(2), now, &mut store);
    bob.append(&event(1), now, &mut store);
    bob.append(&event(2), now, &mut store);
    assert_eq!(store.stats().evicted_by_budget, 0);
    // Bob's third event goes over: Alice's first, the shard's oldest, goes.
    bob.append(&event(3), now, &mut store);
    assert_eq!(store.stats().evicted_by_budget, 1);
    assert_eq!(held(&alice, &store), Held::From(2));
    assert_eq!(held(&bob, &store), Held::From(1));
    bob.append(&event(4), now, &mut store);
    assert_eq!(held(&alice, &store), Held::Nothing);
    assert_eq!(held(&bob, &store), Held::From(1));
    let stats = store.stats();
    assert!(stats.held_bytes <= store.max_bytes());
    assert_eq!((stats.held_events, stats.evicted_by_budget), (4, 2));
    // Alice processed seq 2, her last: she missed nothing and resumes, though nothing is held.
    assert!(matches!(
        alice.resume(&store, &request(&alice, 2)).decision,
        Decision::Resumed(r) if r.is_empty()
    ));
    assert_eq!(
        alice.resume(&store, &request(&alice, 1)).decision,
        Decision::Reset(ResetReason::OutsideWindow)
    );
}

#[test]
fn a_frame_larger_than_the_budget_is_delivered_but_not_kept() {
    let now = Instant::now();
    let mut store = store(config(100, 300, 600));
    let mut stream = UserStream::new(now);
    stream.append(&event(1), now, &mut store);
    let big = stream.append(
        &Event::agent_thinking("run_1", "x".repeat(1_000)),
        now,
        &mut store,
    );
    assert_eq!(big.seq, Some(2));
    assert!(big.frame.len() > 1_000);
    assert!(store.is_empty());
    assert_eq!(store.stats().evicted_by_budget, 2);
    assert_eq!(held(&stream, &store), Held::Nothing);
    // The next small one is kept again, and the window starts at it.
    stream.append(&event(3), now, &mut store);
    assert_eq!(held(&stream, &store), Held::From(3));
    assert_eq!(
        stream.resume(&store, &request(&stream, 1)).decision,
        Decision::Reset(ResetReason::OutsideWindow)
    );
    assert_eq!(
        stream.resume(&store, &request(&stream, 2)).frames.len(),
        1,
        "since 2 needs only seq 3"
    );
}

#[test]
fn replay_off_keeps_nothing_and_answers_unavailable() {
    let now = Instant::now();
    let mut store = store(WindowConfig::off());
    let mut stream = UserStream::new(now);
    for n in 1..=3 {
        assert_eq!(
            stream.append(&event(n), now, &mut store).seq,
            Some(n as u64)
        );
    }
    assert!(store.is_empty());
    assert_eq!(store.stats().stored, 0);
    assert_eq!(held(&stream, &store), Held::Off);
    assert_eq!(
        stream.resume(&store, &request(&stream, 1)).decision,
        Decision::Reset(ResetReason::Unavailable)
    );
    assert!(matches!(
        stream.resume(&store, &request(&stream, 3)).decision,
        Decision::Resumed(r) if r.is_empty()
    ));
    // Nothing to keep: the stream may go with its last connection.
    assert!(stream.is_expired(&store, now));
}

#[test]
fn resume_collects_exactly_the_missed_frames() {
    let now = Instant::now();
    let mut store = store(WindowConfig::default());
    let mut stream = UserStream::new(now);
    let sent: Vec<Arc<str>> = (1..=10)
        .map(|n| stream.append(&event(n), now, &mut store).frame)
        .collect();
    for since in 0..=10u64 {
        let resume = stream.resume(&store, &request(&stream, since));
        let Decision::Resumed(replay) = resume.decision else {
            panic!("since {since}: everything is held")
        };
        assert_eq!(replay.len(), 10 - since);
        assert_eq!(resume.frames, sent[since as usize..]);
    }
    let other = ResumeRequest::new("ep_other", 3).unwrap();
    let resume = stream.resume(&store, &other);
    assert_eq!(resume.decision, Decision::Reset(ResetReason::EpochChanged));
    assert!(resume.frames.is_empty());
    assert_eq!(
        stream.resume(&store, &request(&stream, 11)).decision,
        Decision::Reset(ResetReason::OutsideWindow)
    );
}

#[test]
fn a_stream_is_kept_max_age_after_its_last_activity_then_expires() {
    let start = Instant::now();
    let mut store = store(config(100, 60, 1 << 20));
    let mut stream = UserStream::new(start);
    assert!(!stream.is_expired(&store, start + Duration::from_secs(59)));
    assert!(stream.is_expired(&store, start + Duration::from_secs(60)));
    stream.append(&event(1), start + Duration::from_secs(10), &mut store);
    // Held events keep it, whatever the time, until they expire.
    let at = start + Duration::from_secs(100);
    assert!(!stream.is_expired(&store, at));
    store.expire(at);
    assert!(stream.is_empty(&store));
    assert!(stream.is_expired(&store, at));
    // A disconnect at 100 s keeps the stream (epoch and seq) another max_age, so a client
    // that missed nothing resumes instead of being told the epoch changed.
    stream.touch(at);
    assert!(!stream.is_expired(&store, at + Duration::from_secs(59)));
    assert!(matches!(
        stream.resume(&store, &request(&stream, 1)).decision,
        Decision::Resumed(r) if r.is_empty()
    ));
    assert!(stream.is_expired(&store, at + Duration::from_secs(60)));
    // touch never moves activity back.
    stream.touch(start);
    assert!(!stream.is_expired(&store, at + Duration::from_secs(59)));
}

#[test]
fn clear_drops_the_streams_events_and_the_seq_goes_on() {
    let now = Instant::now();
    let mut store = store(WindowConfig::default());
    let mut alice = UserStream::new(now);
    let mut bob = UserStream::new(now);
    for n in 1..=3 {
        alice.append(&event(n), now, &mut store);
        bob.append(&event(n), now, &mut store);
    }
    alice.clear(&mut store);
    assert_eq!(held(&alice, &store), Held::Nothing);
    assert_eq!(held(&bob, &store), Held::From(1));
    assert_eq!(store.stats().cleared, 3);
    assert_eq!(store.stats().held_events, 3);
    assert_eq!(alice.append(&event(4), now, &mut store).seq, Some(4));
    assert_eq!(held(&alice, &store), Held::From(4));
    bob.clear(&mut store);
    alice.clear(&mut store);
    assert!(store.is_empty());
    assert_eq!(store.stats().held_bytes, 0);
}

#[test]
fn a_stream_never_finds_another_streams_events_in_the_wrong_store() {
    let now = Instant::now();
    let mut store_a = store(WindowConfig::default());
    let mut store_b = store(WindowConfig::default());
    let mut alice = UserStream::new(now);
    let mut bob = UserStream::new(now);
    for n in 1..=3 {
        alice.append(&event(n), now, &mut store_a);
        bob.append(&event(n), now, &mut store_b);
    }
    // Same tickets in both stores; Alice reading Bob's store gets none of Bob's frames.
    assert_eq!(alice.replay(&store_b, 1, 3).count(), 0);
    let resume = alice.resume(&store_b, &request(&alice, 0));
    assert_eq!(resume.decision, Decision::Reset(ResetReason::OutsideWindow));
    assert!(resume.frames.is_empty());
    // Nor does clearing against the wrong store drop Bob's.
    alice.clear(&mut store_b);
    assert_eq!(store_b.stats().held_events, 3);
}

#[test]
fn many_count_evictions_behind_an_old_event_keep_the_store_consistent() {
    // Alice's one event stays at the front while Bob's window of 2 turns over many times:
    // the slots Bob evicts sit behind it until compacted.
    let now = Instant::now();
    let mut store = store(config(2, 300, 1 << 20));
    let mut alice = UserStream::new(now);
    let mut bob = UserStream::new(now);
    let first = alice.append(&event(0), now, &mut store).frame;
    let mut bob_frames = Vec::new();
    for n in 1..=500 {
        bob_frames.push(bob.append(&event(n), now, &mut store).frame);
        assert_eq!(store.stats().held_events, 1 + n.min(2));
    }
    assert_eq!(store.stats().evicted_by_count, 498);
    assert_eq!(
        store.stats().held_bytes,
        cost(&first) + bob_frames[498..].iter().map(|f| cost(f)).sum::<usize>()
    );
    assert_eq!(held(&bob, &store), Held::From(499));
    let replayed: Vec<_> = bob.replay(&store, 499, 500).collect();
    assert_eq!(replayed, bob_frames[498..]);
    assert_eq!(alice.resume(&store, &request(&alice, 0)).frames, [first]);
}

#[test]
fn shares_split_the_budget_and_stats_add_up() {
    let config = config(10, 300, 1_000);
    let stores: Vec<WindowStore> = (0..3)
        .map(|_| WindowStore::new(&config, 3).unwrap())
        .collect();
    assert!(stores.iter().all(|s| s.max_bytes() == 333));
    assert_eq!(
        WindowStore::<Arc<str>>::new(&config, 0)
            .unwrap()
            .max_bytes(),
        1_000
    );
    assert!(WindowStore::<Arc<str>>::new(&config, 1_001).is_err());
    // With replay off the byte budget does not matter.
    assert!(WindowStore::<Arc<str>>::new(&WindowConfig::off(), 1_001).is_ok());
    let mut invalid = config;
    invalid.max_age = Duration::ZERO;
    assert_eq!(
        WindowStore::<Arc<str>>::new(&invalid, 1)
            .unwrap_err()
            .code(),
        "invalid_window_config"
    );

    let now = Instant::now();
    let mut a = store(WindowConfig::default());
    let mut b = store(WindowConfig::default());
    let mut stream = UserStream::new(now);
    stream.append(&event(1), now, &mut a);
    stream.append(&event(2), now, &mut b);
    let total: WindowStats = [a.stats(), b.stats()].into_iter().sum();
    assert_eq!(total.held_events, 2);
    assert_eq!(
        total.held_bytes,
        a.stats().held_bytes + b.stats().held_bytes
    );
    assert_eq!(total, a.stats() + b.stats());
}

/// A server's own outbound type: the frame and its type, for metrics without parsing.
#[derive(Clone, Debug, PartialEq)]
struct Outbound {
    text: Arc<str>,
    message_type: &'static str,
}

impl Frame for Outbound {
    type Tag = &'static str;

    fn from_json(json: &str, event: &Event) -> Self {
        Outbound {
            text: Arc::from(json),
            message_type: event.message_type().as_str(),
        }
    }

    fn json(&self) -> &str {
        &self.text
    }

    fn tag(&self) -> &'static str {
        self.message_type
    }

    fn from_stored(json: &str, message_type: &'static str) -> Self {
        Outbound {
            text: Arc::from(json),
            message_type,
        }
    }
}

#[test]
fn a_server_can_keep_its_own_frame_type() {
    let now = Instant::now();
    let mut store: WindowStore<Outbound> = WindowStore::new(&WindowConfig::default(), 64).unwrap();
    let mut stream = UserStream::new(now);
    let sent = stream.append(&event(1), now, &mut store).frame;
    assert_eq!(sent.message_type, "agent_thinking");
    let resume = stream.resume(&store, &request(&stream, 0));
    // The replayed frame is rebuilt from the kept copy: the same bytes and type.
    assert_eq!(resume.frames, std::slice::from_ref(&sent));
    assert!(!Arc::ptr_eq(&resume.frames[0].text, &sent.text));
    assert_eq!(
        store.stats().held_bytes,
        sent.text.len() + EVENT_OVERHEAD_BYTES
    );
}
