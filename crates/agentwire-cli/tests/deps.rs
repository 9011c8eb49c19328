//! What gets compiled into what users deploy, read from `cargo tree` on this workspace:
//!
//! - the `agentwire` binary's normal dependencies build agentwire-auth without its `testing`
//!   feature (the committed fixture private keys);
//! - a service that links agentwire-server compiles none of the CLI's crates, nor the client
//!   library (agentwire-client and the TLS client it brings).
//!
//! `-e normal` leaves out dev-dependencies, and with them the features only they enable (the
//! tests here do enable `testing`), so this is the graph of `cargo build --release`.

use std::path::Path;
use std::process::Command;

/// The CLI's and the client library's crates: none may be in agentwire-server's normal
/// dependency graph.
const CLI_ONLY: [&str; 8] = [
    "agentwire-client",
    "clap",
    "tracing-subscriber",
    "rustls",
    "tokio-rustls",
    "webpki-roots",
    "mimalloc",
    "rustix",
];

/// `cargo tree` on the workspace with `args`, one `{p}|{f}` line per package (no tree
/// drawing): `name vX.Y.Z (source)|feature,feature`.
fn cargo_tree(args: &[&str]) -> Vec<(String, Vec<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(cargo)
        .arg("tree")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(args)
        .args(["--prefix", "none", "--format", "{p}|{f}"])
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let packages: Vec<(String, Vec<String>)> = stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (package, features) = line.split_once('|').unwrap_or((line, ""));
            let name = package.split_whitespace().next().unwrap_or("").to_owned();
            // A package seen before ends in " (*)".
            let features = features
                .trim_end_matches("(*)")
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect();
            (name, features)
        })
        .collect();
    assert!(
        !packages.is_empty(),
        "cargo tree {args:?} printed nothing: {stdout}"
    );
    packages
}

#[test]
fn the_binary_builds_agentwire_auth_without_test_fixtures() {
    let packages = cargo_tree(&["-p", "agentwire-cli", "-e", "normal"]);
    let auth: Vec<&Vec<String>> = packages
        .iter()
        .filter(|(name, _)| name == "agentwire-auth")
        .map(|(_, features)| features)
        .collect();
    assert!(
        !auth.is_empty(),
        "agentwire-auth is not in the binary's dependencies: {packages:?}"
    );
    for features in auth {
        assert!(
            !features.iter().any(|f| f == "testing"),
            "agentwire-auth is built with the `testing` feature (fixture keys) in the \
             `agentwire` binary: features {features:?}"
        );
    }
}

#[test]
fn a_service_linking_the_server_compiles_no_cli_crate() {
    let packages = cargo_tree(&["-p", "agentwire-server", "-e", "normal"]);
    assert!(
        packages.iter().any(|(name, _)| name == "agentwire-server"),
        "{packages:?}"
    );
    let found: Vec<&str> = packages
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| CLI_ONLY.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "agentwire-server's normal dependencies include CLI or client crates: {found:?}"
    );
    // And agentwire-server's own graph has no fixtures either.
    for (name, features) in &packages {
        assert!(
            !(name == "agentwire-auth" && features.iter().any(|f| f == "testing")),
            "agentwire-server builds agentwire-auth with `testing`"
        );
    }
}

#[test]
fn a_service_linking_the_client_compiles_no_server_crate() {
    let packages = cargo_tree(&["-p", "agentwire-client", "-e", "normal"]);
    assert!(
        packages.iter().any(|(name, _)| name == "agentwire-client"),
        "{packages:?}"
    );
    let server_side = [
        "agentwire-server",
        "agentwire-session",
        "agentwire-stream",
        "axum",
        "hyper",
    ];
    let found: Vec<&str> = packages
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| server_side.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "agentwire-client's normal dependencies include server crates: {found:?}"
    );
    for (name, features) in &packages {
        assert!(
            !(name == "agentwire-auth" && features.iter().any(|f| f == "testing")),
            "agentwire-client builds agentwire-auth with `testing`"
        );
    }
}
