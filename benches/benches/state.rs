//! agentwire-state: connection-record serialization (target: at most 300 ns), record
//! construction, and reading states and close codes.
//!
//! `serialize_close_record` is `ConnectionRecord::write_json` (the hand-written writer the
//! server uses); `serde_json_to_writer_close_record` is the same record through the `Serialize`
//! impl and `serde_json::to_writer`, which writes the same bytes.
//!
//! Run: `cargo bench -p agentwire-benches --bench state`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use agentwire_state::{CloseCode, CloseInfo, ConnectionRecord, ConnectionState, Counters};
use criterion::{Criterion, criterion_group, criterion_main};

/// What the server knows about a connection: borrowed into each record.
struct Connection {
    id: String,
    user: String,
    origin: String,
    addr: SocketAddr,
}

fn connection() -> Connection {
    Connection {
        id: "c-01J9Z6Q8M4X7".to_owned(),
        user: "user-6f1c2a9e-42".to_owned(),
        origin: "https://app.example.com".to_owned(),
        addr: "203.0.113.9:50412".parse().expect("address"),
    }
}

/// The fullest record the server writes: a close with every field set.
fn close_record(conn: &Connection) -> ConnectionRecord<'_> {
    ConnectionRecord::new(conn.id.as_str(), ConnectionState::Closed)
        .with_previous_state(ConnectionState::Closing)
        .with_user_id(conn.user.as_str())
        .with_close(CloseInfo::new(CloseCode::AuthFailed, "token_expired"))
        .with_remote_addr(conn.addr)
        .with_origin(conn.origin.as_str())
        .with_counters(Counters::new().with_in(42, 12_600).with_out(1337, 401_100))
        .with_duration(Duration::from_millis(93_512))
        .with_connected(Duration::from_millis(93_488))
}

fn bench_record(c: &mut Criterion) {
    let conn = connection();
    let full = close_record(&conn);
    let open = ConnectionRecord::new(conn.id.as_str(), ConnectionState::Open)
        .with_previous_state(ConnectionState::Connecting)
        .with_user_id(conn.user.as_str())
        .with_remote_addr(conn.addr)
        .with_duration(Duration::from_millis(3));
    println!(
        "close record: {} bytes of JSON\n{}",
        full.to_json().len(),
        full.to_json()
    );

    let mut group = c.benchmark_group("record");
    let mut buf = Vec::with_capacity(512);
    group.bench_function("serialize_close_record", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&full).write_json(&mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("serde_json_to_writer_close_record", |b| {
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&full)).expect("a Vec cannot fail");
            black_box(buf.len())
        })
    });
    group.bench_function("serialize_open_record", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&open).write_json(&mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("to_json_close_record", |b| {
        b.iter(|| black_box(&full).to_json())
    });
    group.bench_function("build_close_record", |b| {
        b.iter(|| close_record(black_box(&conn)))
    });
    group.bench_function("build_and_serialize_close_record", |b| {
        b.iter(|| {
            buf.clear();
            close_record(black_box(&conn)).write_json(&mut buf);
            black_box(buf.len())
        })
    });
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group.bench_function("state_from_json_legacy_name", |b| {
        b.iter(|| serde_json::from_str::<ConnectionState>(black_box("\"DISCONNECTED\"")))
    });
    group.bench_function("state_from_json_integer", |b| {
        b.iter(|| serde_json::from_str::<ConnectionState>(black_box("2")))
    });
    group.bench_function("state_parse_canonical", |b| {
        b.iter(|| black_box("closing").parse::<ConnectionState>())
    });
    group.bench_function("close_code_from_u16", |b| {
        b.iter(|| CloseCode::from_u16(black_box(4401)).name())
    });
    group.finish();
}

criterion_group!(benches, bench_record, bench_read);
criterion_main!(benches);
