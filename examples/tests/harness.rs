//! The harness example against a live server over loopback: as a library call and as the
//! `test-harness` program.

use std::time::Duration;

use agentwire_examples::{embed, harness};
use agentwire_server::Config;
use tokio::net::TcpListener;

const SECRET: &str = "an example secret of at least 32 bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_checks_a_live_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(embed::serve(listener, SECRET, Config::default(), async {
        let _ = stopped.await;
    }));
    let url = format!("ws://{addr}/ws");

    let report = harness::check(&url, SECRET)
        .await
        .expect("the harness runs");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.user_id, "harness-user");
    assert_eq!(report.valid_runs.len(), 2, "{report:#?}");
    let refusals: Vec<(&str, &str, u16)> = report
        .refusals
        .iter()
        .map(|(case, code, close)| (*case, code.as_str(), *close))
        .collect();
    assert_eq!(
        refusals,
        [
            ("expired", "token_expired", 4401),
            ("not yet valid", "token_not_yet_valid", 4401)
        ]
    );
    let mut control = report.control.clone();
    control.sort();
    assert_eq!(
        control,
        ["error:invalid_json", "error:invalid_payload", "pong"]
    );

    // The same as a program, exit status and all.
    let bin = env!("CARGO_BIN_EXE_test-harness");
    let run = |secret: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin)
                .args([url.as_str(), secret])
                .output()
                .expect("run")
        })
    };
    let output = tokio::time::timeout(Duration::from_secs(60), run(SECRET))
        .await
        .expect("the program ends")
        .expect("join");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A wrong secret: every check fails, and the program says so.
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        run("a different secret of at least 32 bytes"),
    )
    .await
    .expect("the program ends")
    .expect("join");
    assert!(!output.status.success());

    let _ = stop.send(());
    served.await.expect("join").expect("served");
}
