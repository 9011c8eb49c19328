//! Criterion benchmarks for the agentwire crates (see `benches/` and docs/performance.md),
//! and what the load peers in `src/bin/` share.

/// Raises the soft open-file limit to the hard one, for many thousand connections.
pub fn raise_nofile_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// A multi-thread runtime with `threads` workers (tokio's default when `None`), after raising
/// the open-file limit.
///
/// # Errors
///
/// When tokio cannot start the runtime.
pub fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    raise_nofile_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Ctrl-C or SIGTERM, whichever comes first.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// The exit code of a load peer's `run`: success, or its message on stderr after `program`'s
/// name and exit code 2.
pub fn exit(program: &str, result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{program}: {message}");
            std::process::ExitCode::from(2)
        }
    }
}
