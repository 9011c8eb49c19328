//! What the load peers' tests share: stopping a peer the way scripts do.

use std::process::{Child, Command};
use std::time::Duration;

/// Sends SIGTERM to `child` and asserts that it exits with success within `patience`
/// (killed, and the assertion fails, when it does not).
pub(crate) async fn stop_with_sigterm(mut child: Child, patience: Duration) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("waiter");
    let status = status.expect("the peer exits after SIGTERM");
    assert!(status.success(), "{status}");
}
