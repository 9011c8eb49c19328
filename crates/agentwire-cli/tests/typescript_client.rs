//! The TypeScript client's tests (`npm test` in clients/typescript: node's test runner, and
//! Debian's chromium driven by playwright-core) against this crate's `agentwire` binary, so
//! that `scripts/test.sh` runs them. They need what scripts/setup/node.sh installs; without
//! it this test fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP: &str = "run scripts/setup/node.sh";

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/typescript")
}

/// Node.js 20+, the package's node_modules and chromium, or a panic naming the setup script.
fn check_tools(dir: &Path) {
    let node = Command::new("node")
        .args(["-p", "process.versions.node"])
        .output();
    let version = match node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!("node is not installed: {SETUP}"),
    };
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "Node.js {version} is too old (20 or later): {SETUP}"
    );
    for module in ["typescript", "playwright-core", "json-schema-to-typescript"] {
        assert!(
            dir.join("node_modules").join(module).is_dir(),
            "clients/typescript/node_modules/{module} is missing: {SETUP}"
        );
    }
    let chromium =
        std::env::var("AGENTWIRE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "no chromium at {chromium}: {SETUP}"
    );
}

#[test]
fn typescript_client_tests_pass_against_this_binary() {
    let dir = client_dir();
    check_tools(&dir);
    let output = Command::new("npm")
        .arg("test")
        .current_dir(&dir)
        .env("AGENTWIRE_BIN", env!("CARGO_BIN_EXE_agentwire"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}): {SETUP}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "npm test in clients/typescript failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The runner's summary: some tests ran, none failed.
    let count = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert_eq!(count("fail"), Some(0), "{stdout}");
    assert!(count("pass").unwrap_or(0) > 0, "no test ran:\n{stdout}");
}
