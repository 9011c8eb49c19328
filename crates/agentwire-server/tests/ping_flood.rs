//! A ping flood from a client that never reads, from raw sockets: the server closes it (4429
//! under the rate limit, 4008 by the write timeout without one) and its memory stays
//! bounded. Alone in its test binary, so the process's RSS is the server's and this test's
//! only.

mod common;

use std::time::Duration;

use agentwire_server::Config;
use common::*;
use tokio::io::AsyncWriteExt;

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

/// Floods a new connection of `server` with 125-byte masked pings (80 MB at most, as fast
/// as the socket takes them) without ever reading, until the server closes it with `code`.
/// Returns the peak RSS growth over `idle`, in KiB.
async fn flood(server: &TestServer, idle: u64, code: u16) -> u64 {
    let closes = format!("agentwire_closes_total{{code=\"{code}\"");
    let before = metric(server.addr, &closes).await;
    let mut flooder = raw_connect(server.addr, &token("flood")).await;
    let ping = raw_frame(true, 0x9, &[0x5a; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 512)
        .collect();
    let mut sent = 0usize;
    let mut peak = idle;
    while sent < 80_000_000 {
        match tokio::time::timeout(Duration::from_secs(2), flooder.write_all(&burst)).await {
            Ok(Ok(())) => sent += burst.len(),
            // The server stopped reading (it waits to write the pongs), or closed: done.
            Ok(Err(_)) | Err(_) => break,
        }
        peak = peak.max(rss_kib());
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(server.addr, &closes).await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flooder was not closed {code} (sent {sent} bytes)"
        );
        peak = peak.max(rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak = peak.max(rss_kib());
    drop(flooder);
    await_active(server.addr, 1).await;
    eprintln!("ping flood ({code}): sent {sent} bytes, idle RSS {idle} KiB, peak {peak} KiB");
    peak.saturating_sub(idle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_is_closed_with_bounded_memory() {
    for (rate_limit, code) in [(20, 4429), (0, 4008)] {
        let config = Config::builder()
            .rate_limit_per_sec(rate_limit)
            .write_timeout(Duration::from_secs(1))
            .build()
            .expect("config");
        let server = start(config).await;
        // A live client first, so the server's steady state is in the idle figure.
        let (mut live, _) = connect(&server, &token("calm")).await;
        send_json(&mut live, &serde_json::json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut live).await["type"], "pong");
        let idle = rss_kib();

        let growth = flood(&server, idle, code).await;
        // Unbounded pongs grew the RSS by 124-150 MiB from ~10 MiB idle; bounded, the flood
        // costs a fraction of the idle footprint.
        assert!(
            growth * 2 < idle,
            "RSS grew {growth} KiB from {idle} KiB idle during the flood (close {code})"
        );
        assert!(
            metric(server.addr, "agentwire_control_frames_in_total ").await > 0,
            "pings are counted"
        );
        // The live client was served throughout.
        send_json(&mut live, &serde_json::json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut live).await["type"], "pong");
        assert_no_1011(server.addr).await;
        server.stop().await;
    }
}
