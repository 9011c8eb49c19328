//! How long zero-filling a read buffer takes (tungstenite does it before every socket read),
//! for docs/performance.md: callgrind counts glibc's `rep stosb` per byte, this times it.
//!
//!     rustc -O scripts/zero-fill-cost.rs -o /tmp/zero-fill-cost && /tmp/zero-fill-cost

use std::hint::black_box;
use std::time::Instant;
fn main() {
    for size in [1024usize, 2048, 4096] {
        let mut v: Vec<u8> = Vec::with_capacity(size);
        let n = 5_000_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..n {
                v.resize(size, 0);
                black_box(&mut v);
                v.truncate(0);
            }
            best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
        }
        println!("zero-fill {size} B: {best:.1} ns (best of 5 x 5M)");
    }
}
