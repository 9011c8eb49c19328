//! `normalize()` over every canonical name and alias, in three ASCII cases.
//!
//! Run: `cargo bench -p agentwire-benches --bench types`

use std::hint::black_box;

use agentwire_types::{ALIASES, MessageType, normalize};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Every known name in lower, upper and mixed case.
fn names() -> Vec<String> {
    let known = MessageType::ALL
        .iter()
        .map(|t| t.as_str())
        .chain(ALIASES.iter().map(|a| a.name));
    known
        .flat_map(|name| {
            let mixed: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            [name.to_owned(), name.to_ascii_uppercase(), mixed]
        })
        .collect()
}

fn bench_normalize(c: &mut Criterion) {
    let names = names();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(names.len() as u64));
    group.bench_function("all_names_mixed_case", |b| {
        b.iter(|| {
            for name in &names {
                let _ = black_box(normalize(black_box(name)));
            }
        })
    });
    group.bench_function("one_alias_upper_case", |b| {
        b.iter(|| normalize(black_box("EXECUTE_AGENT")))
    });
    group.bench_function("unknown_name", |b| {
        b.iter(|| normalize(black_box("definitely_not_a_message_type")))
    });
    group.finish();
}

criterion_group!(benches, bench_normalize);
criterion_main!(benches);
