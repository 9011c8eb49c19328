//! Ids: one format, one generator per process, unique across kinds and threads.

use std::collections::HashSet;

use agentwire_events::{
    Event, IdGenerator, Stamp, StreamStamper, Timestamp, next_event_id, parse_outbound,
};

/// Splits `{kind}_{12 hex}_{hex counter}`, checking the format.
fn parts(id: &str) -> (&str, &str, u64) {
    let mut it = id.rsplitn(3, '_');
    let (counter, prefix, kind) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    assert_eq!(prefix.len(), 12, "{id}");
    assert!(
        prefix
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    assert!(!counter.is_empty() && counter.len() <= 16, "{id}");
    assert!(counter == "0" || !counter.starts_with('0'), "{id}");
    assert!(
        counter
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    (kind, prefix, u64::from_str_radix(counter, 16).unwrap())
}

#[test]
fn every_id_of_the_process_comes_from_the_global_generator() {
    let global = IdGenerator::global();
    let prefix = global.prefix();

    let event_id = next_event_id();
    let control = Stamp::control().event_id;
    let stamped = StreamStamper::new()
        .stamp(Event::agent_thinking("r", "..."))
        .event_id()
        .to_owned();
    let mut text = String::new();
    let mut stream = StreamStamper::new();
    stream.emit_into(&Event::agent_thinking("r", "..."), &mut text);
    let in_place = parse_outbound(&text).unwrap().event_id().to_owned();
    let run = global.next("run");

    let mut counters = Vec::new();
    for (id, kind) in [
        (event_id.as_str(), "evt"),
        (&control, "evt"),
        (&stamped, "evt"),
        (stream.epoch(), "ep"),
        (&in_place, "evt"),
        (&run, "run"),
    ] {
        let (k, p, n) = parts(id);
        assert_eq!((k, p), (kind, prefix), "{id}");
        counters.push(n);
    }
    // One counter for every kind, counting up.
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "{counters:?}");
}

#[test]
fn written_ids_have_the_same_format() {
    let ids = IdGenerator::new();
    assert_ne!(ids.prefix(), IdGenerator::global().prefix());
    let mut out = String::from("x");
    ids.write_next("conn", &mut out);
    assert_eq!(out, format!("xconn_{}_0", ids.prefix()));
    assert_eq!(&*ids.next("conn"), format!("conn_{}_1", ids.prefix()));
    for _ in 0..30 {
        ids.next("run");
    }
    assert_eq!(&*ids.next("run"), format!("run_{}_20", ids.prefix()));
}

#[test]
fn kinds_are_cut_to_letters_and_digits() {
    let ids = IdGenerator::new();
    let prefix = ids.prefix().to_owned();
    let cases = [
        ("conn", "conn"),
        ("conn-1", "conn"),
        ("a\"b", "a"),
        ("", ""),
        ("é", ""),
        ("évt", ""),
        ("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnop"),
        ("K9", "K9"),
    ];
    for (kind, kept) in cases {
        let id = ids.next(kind);
        assert!(
            id.starts_with(&format!("{kept}_{prefix}_")),
            "{kind:?}: {id}"
        );
        let mut out = String::new();
        ids.write_next(kind, &mut out);
        assert!(
            out.starts_with(&format!("{kept}_{prefix}_")),
            "{kind:?}: {out}"
        );
        assert!(id.len() <= IdGenerator::MAX_KIND_BYTES + 1 + 12 + 1 + 16);
    }
}

#[test]
fn ids_are_unique_across_threads() {
    let ids = IdGenerator::new();
    let all: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let ids = &ids;
                scope.spawn(move || {
                    (0..2_000)
                        .map(|i| {
                            if (i + t) % 2 == 0 {
                                ids.next("run").to_string()
                            } else {
                                let mut s = String::new();
                                ids.write_next("run", &mut s);
                                s
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 8_000);
}

#[test]
fn a_stamp_with_a_given_time_keeps_it() {
    let frame = StreamStamper::new().stamp_at(Event::heartbeat_ack(), Timestamp::UNIX_EPOCH);
    assert_eq!(frame.timestamp(), Timestamp::UNIX_EPOCH);
    assert_eq!(parts(frame.event_id()).0, "evt");
}
