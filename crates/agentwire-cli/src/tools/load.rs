//! `agentwire load URL`: opens many connections, runs agents on them, and reports handshakes/s,
//! events/s, run latency percentiles, errors and close codes; with `--server-pid`, the
//! server's CPU per 1,000 events and memory per connection, read from `/proc`.
//!
//! Phases: ramp (open every connection, at `--ramp-rate` per second or as fast as
//! `--handshake-concurrency` allows), settle, warm-up, the measured phase (closed loop: each
//! connection runs back to back; or open loop at `--rate` runs/s in all), then close. With
//! `--idle`, the connections stay idle through the measured phase instead (memory).
//!
//! Against a loopback address the connections come from source addresses spread over
//! 127.0.0.0/8, so one machine can open many thousands without running out of ports. It only
//! ever connects to the URL it is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::procfs::{self, Sample};
use super::{percentiles_ms, round};
use agentwire_auth::Algorithm;
use agentwire_auth::mint::{Claims, SigningKey};
use agentwire_client::transport::{self, Stream, Target, TlsConfig};
use agentwire_client::{CloseInfo, Credentials, RawMessage, UpgradeError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open connection, as the measured phase reads and writes it: agentwire-client makes the
/// connection, then the hot loop works on the tokio-tungstenite stream with nothing between.
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The request text of every run (the prebuilt frames of `agentwire-baseline`, in benches/,
/// match its sizes).
pub(super) const DEFAULT_REQUEST_TEXT: &str = "What is the weather in Oslo today?";

/// Arguments of `agentwire load`.
#[derive(clap::Args)]
pub(crate) struct LoadArgs {
    /// The WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    url: String,
    /// HS256 secret: mint one token per connection, each with its own `sub` (so the per-user
    /// connection limit does not apply and each connection gets only its own runs' events).
    #[arg(long, required_unless_present = "token", conflicts_with = "token")]
    token_secret: Option<String>,
    /// One token for every connection: they all share one user (at most 10 connections by
    /// default), and every connection receives every run's events.
    #[arg(long, env = "AGENTWIRE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Prefix of the minted tokens' `sub` (`load-0`, `load-1`, ...).
    #[arg(long, default_value = "load-")]
    sub_prefix: String,
    /// Connections to open.
    #[arg(long, short = 'c', default_value_t = 100)]
    connections: usize,
    /// Connections opened per second (0: as fast as --handshake-concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    ramp_rate: f64,
    /// Handshakes in flight at once during the ramp.
    #[arg(long, default_value_t = 64)]
    handshake_concurrency: usize,
    /// Runs per second over all connections (0: closed loop, each connection runs back to
    /// back).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop after this many runs in all (instead of after --duration-secs).
    #[arg(long)]
    runs: Option<u64>,
    /// Length of the measured phase, in seconds (default 10; with --runs, no limit).
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Runs before the measured phase, not measured, in seconds.
    #[arg(long, default_value_t = 0.0)]
    warmup_secs: f64,
    /// Hold the connections idle through the measured phase (no runs): memory per connection.
    #[arg(long, conflicts_with_all = ["runs", "rate"])]
    idle: bool,
    /// The server's process id: report its CPU seconds per 1,000 events and its memory per
    /// connection, from /proc/PID.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The request text of each run.
    #[arg(long, default_value = DEFAULT_REQUEST_TEXT)]
    request_text: String,
    /// Worker threads of the load generator (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Connect from one source address even to a loopback target.
    #[arg(long)]
    no_spread: bool,
    /// Seconds a handshake or a run may take before it counts as an error.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ramp,
    Warmup,
    Measure,
    Close,
}

/// What every connection task shares with the coordinator.
struct Ctx {
    target: Target,
    addr: SocketAddr,
    spread: bool,
    tls: Option<TlsConfig>,
    /// One token per connection, or one for all, each in its subprotocol offer.
    credentials: Vec<Credentials>,
    /// The request text, JSON-encoded once.
    text_json: String,
    shared_user: bool,
    /// Time between two runs of one connection in open loop.
    interval: Option<Duration>,
    run_timeout: Duration,
    idle: bool,
    /// Runs left to start, when --runs is given.
    tickets: Option<AtomicU64>,
    established: AtomicUsize,
    failed: AtomicUsize,
    alive: AtomicUsize,
    /// Text frames received after `connection_established` (errors excluded).
    events: AtomicU64,
    runs_done: AtomicU64,
    runs_failed: AtomicU64,
    /// Runs finished (done, failed or timed out) that held a ticket.
    resolved: AtomicU64,
    /// Open-loop sends that were due while the connection's previous run was in flight.
    late_sends: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    close_codes: Mutex<BTreeMap<u16, u64>>,
    handshake_us: Mutex<Vec<u32>>,
    ramp_done: AtomicBool,
}

impl Ctx {
    fn error(&self, kind: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind.into()).or_default() += 1;
    }

    fn close_code(&self, code: u16) {
        let mut codes = self.close_codes.lock().unwrap_or_else(|e| e.into_inner());
        *codes.entry(code).or_default() += 1;
    }

    fn take_ticket(&self) -> bool {
        match &self.tickets {
            None => true,
            Some(left) => left
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn credentials(&self, index: usize) -> &Credentials {
        &self.credentials[index % self.credentials.len()]
    }

    /// Source address of connection `index`: spread over 127.0.0.1-250 for loopback targets.
    fn source(&self, index: usize) -> Option<IpAddr> {
        self.spread
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % 250) as u8)))
    }
}

/// Runs the load and prints its report; exit 1 when anything failed.
pub(crate) fn run(args: LoadArgs) -> Result<ExitCode, String> {
    let target = Target::parse(&args.url).map_err(|e| e.to_string())?;
    if args.connections == 0 {
        return Err("--connections must be at least 1".to_owned());
    }
    let nofile = super::raise_nofile_limit();
    if let Some(limit) = nofile
        && (args.connections as u64) + 32 > limit
    {
        return Err(format!(
            "{} connections need more open files than this process may have ({limit}): \
             use fewer (or raise the hard limit)",
            args.connections
        ));
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = runtime.block_on(load(&args, target))?;
    let failed = report["ok"] != true;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", human(&report));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn mint_tokens(args: &LoadArgs) -> Result<Vec<String>, String> {
    match (&args.token, &args.token_secret) {
        (Some(token), _) => Ok(vec![token.trim().to_owned()]),
        (None, Some(secret)) => {
            let key = SigningKey::hmac(Algorithm::HS256, secret.as_bytes())
                .map_err(|e| format!("--token-secret: {e}"))?;
            (0..args.connections)
                .map(|i| {
                    Claims::new(format!("{}{i}", args.sub_prefix))
                        .expires_in(Duration::from_secs(24 * 3600))
                        .sign(&key)
                        .map(|t| t.expose_secret().to_owned())
                        .map_err(|e| e.to_string())
                })
                .collect()
        }
        (None, None) => Err("give --token-secret or --token".to_owned()),
    }
}

async fn load(args: &LoadArgs, target: Target) -> Result<Value, String> {
    let tokens = mint_tokens(args)?;
    let addr = target.resolve_all().await.map_err(|e| e.to_string())?[0];
    let tls = if target.is_tls() {
        Some(transport::default_tls_config().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let n = args.connections;
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(n as f64 / args.rate));
    let ctx = Arc::new(Ctx {
        spread: !args.no_spread && matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()),
        target,
        addr,
        tls,
        shared_user: tokens.len() == 1 && n > 1,
        credentials: tokens.into_iter().map(Credentials::subprotocol).collect(),
        text_json: serde_json::to_string(&args.request_text).map_err(|e| e.to_string())?,
        interval,
        run_timeout: Duration::from_secs(args.timeout_secs.max(1)),
        idle: args.idle,
        tickets: args.runs.map(AtomicU64::new),
        established: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        alive: AtomicUsize::new(0),
        events: AtomicU64::new(0),
        runs_done: AtomicU64::new(0),
        runs_failed: AtomicU64::new(0),
        resolved: AtomicU64::new(0),
        late_sends: AtomicU64::new(0),
        errors: Mutex::default(),
        close_codes: Mutex::default(),
        handshake_us: Mutex::new(Vec::with_capacity(n)),
        ramp_done: AtomicBool::new(false),
    });
    let pid = args.server_pid;
    let server_sample = || pid.map(procfs::sample).transpose();
    let self_sample = || procfs::sample(std::process::id()).ok();

    let progress = std::io::stderr().is_terminal().then(|| {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(progress_line(ctx))
    });

    // Ramp.
    let (phase_tx, phase_rx) = watch::channel(Phase::Ramp);
    let before = server_sample()?;
    let ramp_started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.handshake_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..n {
        if args.ramp_rate > 0.0 {
            let due = ramp_started + Duration::from_secs_f64(index as f64 / args.ramp_rate);
            sleep_until(due.into()).await;
        }
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let ctx = Arc::clone(&ctx);
        let phase = phase_rx.clone();
        tasks.spawn(async move { connection(ctx, index, phase, permit).await });
    }
    while ctx.established.load(Relaxed) + ctx.failed.load(Relaxed) < n {
        sleep(Duration::from_millis(5)).await;
    }
    let ramp = ramp_started.elapsed();
    ctx.ramp_done.store(true, Relaxed);
    let after_ramp_now = server_sample()?;
    // Let the server settle (tasks finish their first steps, freed memory is reused).
    sleep(Duration::from_millis(1000)).await;
    let after_ramp = server_sample()?;

    // Warm-up, then the measured phase.
    if args.warmup_secs > 0.0 && !args.idle {
        phase_tx.send_replace(Phase::Warmup);
        sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    }
    let events_start = ctx.events.load(Relaxed);
    let done_start = ctx.runs_done.load(Relaxed);
    let measure_start_server = server_sample()?;
    let measure_start_self = self_sample();
    let measure_started = Instant::now();
    if !args.idle {
        phase_tx.send_replace(Phase::Measure);
    }
    let limit = args
        .duration_secs
        .or(if args.runs.is_some() {
            None
        } else {
            Some(10.0)
        })
        .map(Duration::from_secs_f64);
    loop {
        if limit.is_some_and(|limit| measure_started.elapsed() >= limit) {
            break;
        }
        if let Some(runs) = args.runs
            && (ctx.resolved.load(Relaxed) >= runs || ctx.alive.load(Relaxed) == 0)
        {
            break;
        }
        if !args.idle && ctx.alive.load(Relaxed) == 0 {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let measured = measure_started.elapsed();
    let events = ctx.events.load(Relaxed) - events_start;
    let runs_done = ctx.runs_done.load(Relaxed) - done_start;
    let measure_end_server = server_sample()?;
    let measure_end_self = self_sample();
    let alive_at_end = ctx.alive.load(Relaxed);

    // Close.
    phase_tx.send_replace(Phase::Close);
    let mut latencies: Vec<u32> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(mut own) = joined {
            latencies.append(&mut own);
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[2K");
    }
    latencies.sort_unstable();
    let mut handshakes =
        std::mem::take(&mut *ctx.handshake_us.lock().unwrap_or_else(|e| e.into_inner()));
    handshakes.sort_unstable();

    let established = ctx.established.load(Relaxed);
    let failed = ctx.failed.load(Relaxed);
    let errors = ctx.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let close_codes = ctx
        .close_codes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let runs_failed = ctx.runs_failed.load(Relaxed);
    let incomplete = args
        .runs
        .is_some_and(|runs| ctx.resolved.load(Relaxed) < runs);
    let ok = failed == 0 && errors.is_empty() && !incomplete;

    let secs = measured.as_secs_f64().max(1e-9);
    let mut report = json!({
        "target": ctx.target.url(),
        "ok": ok,
        "mode": if args.idle { "idle" } else if args.rate > 0.0 { "open_loop" } else { "closed_loop" },
        "rate_runs_per_sec": if args.rate > 0.0 { json!(args.rate) } else { Value::Null },
        "connections": {
            "requested": n,
            "established": established,
            "failed": failed,
            "alive_at_end": alive_at_end,
            "source_addresses": if ctx.spread { "127.0.0.1-127.0.0.250" } else { "one" },
        },
        "ramp": {
            "seconds": round(ramp.as_secs_f64(), 3),
            "handshakes_per_sec": round(established as f64 / ramp.as_secs_f64().max(1e-9), 1),
            "handshake_ms": percentiles_ms(&handshakes),
        },
        "run": {
            "seconds": round(secs, 3),
            "runs_completed": runs_done,
            "runs_failed": runs_failed,
            "runs_per_sec": round(runs_done as f64 / secs, 1),
            "events": events,
            "events_per_sec": round(events as f64 / secs, 1),
            "late_sends": ctx.late_sends.load(Relaxed),
            "latency_ms": percentiles_ms(&latencies),
        },
        "errors": errors,
        "close_codes": close_codes.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    });
    if let (Some(start), Some(end)) = (measure_start_self, measure_end_self) {
        let cpu = start.cpu_seconds_until(&end);
        report["load_generator"] = json!({
            "threads": args.threads,
            "cpu_seconds": round(cpu, 3),
        });
    }
    if let (Some(pid), Some(before), Some(after_now), Some(after), Some(start), Some(end)) = (
        pid,
        before,
        after_ramp_now,
        after_ramp,
        measure_start_server,
        measure_end_server,
    ) {
        let cpu = start.cpu_seconds_until(&end);
        let per_conn = |sample: &Sample| {
            (sample.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / established.max(1) as f64
        };
        report["server"] = json!({
            "pid": pid,
            "clock_ticks_per_sec": procfs::clock_ticks_per_second(),
            "clock_ticks_source": "AT_CLKTCK (getconf CLK_TCK)",
            "measured_cpu_seconds": round(cpu, 3),
            "cpu_s_per_1k_events": if events > 0 { json!(round(cpu * 1000.0 / events as f64, 5)) } else { Value::Null },
            "cpu_us_per_event": if events > 0 { json!(round(cpu * 1e6 / events as f64, 3)) } else { Value::Null },
            "cpu_utilization": round(cpu / secs, 3),
            "ramp_cpu_us_per_handshake": round(before.cpu_seconds_until(&after_now) * 1e6 / established.max(1) as f64, 1),
            "rss_before_kib": before.rss_kib,
            "rss_after_ramp_kib": after.rss_kib,
            "rss_end_kib": end.rss_kib,
            "rss_per_connection_bytes_after_ramp": round(per_conn(&after), 0),
            "rss_per_connection_bytes_end": round(per_conn(&end), 0),
        });
    }
    Ok(report)
}

fn human(report: &Value) -> String {
    let mut out = String::new();
    let c = &report["connections"];
    let r = &report["ramp"];
    let run = &report["run"];
    let lat = |v: &Value| {
        if v["samples"] == 0 {
            "no samples".to_owned()
        } else {
            format!(
                "p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({} samples)",
                v["p50"], v["p90"], v["p99"], v["p99_9"], v["max"], v["samples"]
            )
        }
    };
    let _ = writeln!(
        out,
        "agentwire load {}: {} connections, {}",
        report["target"].as_str().unwrap_or_default(),
        c["requested"],
        report["mode"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  handshakes   {} ok, {} failed in {} s: {}/s; {}",
        c["established"],
        c["failed"],
        r["seconds"],
        r["handshakes_per_sec"],
        lat(&r["handshake_ms"])
    );
    if report["mode"] != "idle" {
        let _ = writeln!(
            out,
            "  runs         {} completed ({}/s), {} failed, in {} s",
            run["runs_completed"], run["runs_per_sec"], run["runs_failed"], run["seconds"]
        );
        let _ = writeln!(
            out,
            "  events       {} ({}/s)",
            run["events"], run["events_per_sec"]
        );
        let _ = writeln!(out, "  latency      {}", lat(&run["latency_ms"]));
    } else {
        let _ = writeln!(out, "  held idle    {} s", run["seconds"]);
    }
    if let Some(s) = report.get("server") {
        let _ = writeln!(
            out,
            "  server       pid {}: {} CPU s measured ({} of a core), {} CPU s per 1,000 events \
             ({} us/event), {} us CPU per handshake",
            s["pid"],
            s["measured_cpu_seconds"],
            s["cpu_utilization"],
            s["cpu_s_per_1k_events"],
            s["cpu_us_per_event"],
            s["ramp_cpu_us_per_handshake"]
        );
        let _ = writeln!(
            out,
            "               RSS {} KiB -> {} KiB after the ramp, {} KiB at the end: {} bytes per \
             connection ({} at the end)",
            s["rss_before_kib"],
            s["rss_after_ramp_kib"],
            s["rss_end_kib"],
            s["rss_per_connection_bytes_after_ramp"],
            s["rss_per_connection_bytes_end"]
        );
    }
    if let Some(g) = report.get("load_generator") {
        let _ = writeln!(
            out,
            "  generator    {} thread(s), {} CPU s measured",
            g["threads"], g["cpu_seconds"]
        );
    }
    let errors = report["errors"].as_object().filter(|e| !e.is_empty());
    match errors {
        None => out.push_str("  errors       none\n"),
        Some(errors) => {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            let _ = writeln!(out, "  errors       {}", list.join(", "));
        }
    }
    if let Some(codes) = report["close_codes"].as_object() {
        let list: Vec<String> = codes.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        let _ = writeln!(out, "  close codes  {}", list.join(", "));
    }
    out.push_str(if report["ok"] == true {
        "OK\n"
    } else {
        "FAILED\n"
    });
    out
}

async fn progress_line(ctx: Arc<Ctx>) {
    let started = Instant::now();
    loop {
        sleep(Duration::from_secs(1)).await;
        let mut err = std::io::stderr().lock();
        let errors: u64 = ctx
            .errors
            .lock()
            .map(|e| e.values().sum())
            .unwrap_or_default();
        let _ = write!(
            err,
            "\r\x1b[2K[{:>4} s] {} {} connected, {} failed, {} alive | runs {} | events {} | errors {}",
            started.elapsed().as_secs(),
            if ctx.ramp_done.load(Relaxed) {
                "run "
            } else {
                "ramp"
            },
            ctx.established.load(Relaxed),
            ctx.failed.load(Relaxed),
            ctx.alive.load(Relaxed),
            ctx.runs_done.load(Relaxed),
            ctx.events.load(Relaxed),
            errors,
        );
        let _ = err.flush();
    }
}

/// One connection: handshake, then runs as the phases say, then close. Returns the latencies
/// (microseconds) of its measured runs.
async fn connection(
    ctx: Arc<Ctx>,
    index: usize,
    phase: watch::Receiver<Phase>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Vec<u32> {
    let started = Instant::now();
    let ws = match timeout(ctx.run_timeout, handshake(&ctx, index)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(kind)) => {
            ctx.error(kind);
            ctx.failed.fetch_add(1, Relaxed);
            return Vec::new();
        }
        Err(_) => {
            ctx.error("handshake_timeout");
            ctx.failed.fetch_add(1, Relaxed);
            return Vec::new();
        }
    };
    drop(permit);
    let took = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    ctx.handshake_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(took);
    ctx.alive.fetch_add(1, Relaxed);
    ctx.established.fetch_add(1, Relaxed);
    let mut driver = Driver {
        ctx: Arc::clone(&ctx),
        index,
        ws,
        phase,
        in_flight: None,
        seq: 0,
        latencies: Vec::new(),
        next_send: None,
        poisoned: false,
    };
    let closed_by_server = driver.drive().await;
    if !closed_by_server {
        driver.close().await;
    }
    ctx.alive.fetch_sub(1, Relaxed);
    driver.latencies
}

/// TCP (from the connection's source address), TLS, upgrade, then `connection_established`.
async fn handshake(ctx: &Ctx, index: usize) -> Result<Ws, String> {
    let tcp = transport::tcp_connect(ctx.addr, ctx.source(index))
        .await
        .map_err(|e| format!("connect: {}", io_kind(&e)))?;
    let stream = match &ctx.tls {
        Some(config) => Stream::tls(tcp, ctx.target.host(), Arc::clone(config))
            .await
            .map_err(|e| format!("tls: {}", io_kind(&e)))?,
        None => Stream::plain(tcp),
    };
    let (mut ws, response) = transport::upgrade(stream, &ctx.target, ctx.credentials(index))
        .await
        .map_err(|e| match e {
            UpgradeError::Refused(r) => format!("upgrade: http {}", r.status),
            UpgradeError::Io { kind, .. } => format!("upgrade: {kind:?}"),
            UpgradeError::Closed { .. } => "upgrade: closed".to_owned(),
            other => format!("upgrade: {other}"),
        })?;
    if response.header("sec-websocket-protocol") != Some("jwt-auth") {
        return Err("upgrade: no jwt-auth subprotocol answer".to_owned());
    }
    loop {
        match ws.recv().await {
            Ok(Some(RawMessage::Text(text))) => {
                return match frame_type(&text) {
                    "connection_established" => Ok(ws.into_inner()),
                    "error" => Err(format!(
                        "established: error {}",
                        field(&text, "code").unwrap_or("?")
                    )),
                    other => Err(format!("established: first frame {other}")),
                };
            }
            Ok(Some(RawMessage::Close(close))) => {
                let code = close_code(close.as_ref());
                ctx.close_code(code);
                return Err(format!("established: closed {code}"));
            }
            Ok(Some(_)) => {}
            Err(e) => return Err(format!("established: {e}")),
            Ok(None) => return Err("established: connection ended".to_owned()),
        }
    }
}

/// The code of a received close frame (1005 when it had none).
fn close_code(close: Option<&CloseInfo>) -> u16 {
    close.map_or(1005, |c| c.code().as_u16())
}

fn io_kind(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => format!("{:?} (os error {code})", error.kind()),
        None => format!("{:?}", error.kind()),
    }
}

/// The `type` of a server frame: agentwire and the baseline write it first.
fn frame_type(text: &str) -> &str {
    text.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("?")
}

/// The first string value of `"name":"..."` in a frame (no escapes expected in ids and codes).
fn field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    text[start..].split('"').next()
}

struct InFlight {
    sent: Instant,
    measured: bool,
    message_id: String,
}

struct Driver {
    ctx: Arc<Ctx>,
    index: usize,
    ws: Ws,
    phase: watch::Receiver<Phase>,
    in_flight: Option<InFlight>,
    seq: u64,
    latencies: Vec<u32>,
    /// Open loop: when the next run is due.
    next_send: Option<tokio::time::Instant>,
    /// A run timed out: its events may still come, so this connection starts no more runs.
    poisoned: bool,
}

impl Driver {
    fn running(&self) -> bool {
        !self.ctx.idle && matches!(*self.phase.borrow(), Phase::Warmup | Phase::Measure)
    }

    /// Runs the connection until the close phase (`false`) or the server ends it (`true`).
    async fn drive(&mut self) -> bool {
        const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
        let far = || tokio::time::Instant::now() + FAR;
        let send_timer = sleep(FAR);
        let run_deadline = sleep(FAR);
        tokio::pin!(send_timer, run_deadline);
        let mut phase_open = true;
        if self.start_phase().await.is_err() {
            return true;
        }
        if let Some(at) = self.next_send {
            send_timer.as_mut().reset(at);
        }
        loop {
            tokio::select! {
                biased;
                changed = self.phase.changed(), if phase_open => {
                    if changed.is_err() {
                        phase_open = false;
                        continue;
                    }
                    let phase = *self.phase.borrow_and_update();
                    if phase == Phase::Close {
                        return false;
                    }
                    if self.start_phase().await.is_err() {
                        return true;
                    }
                    if let Some(at) = self.next_send {
                        send_timer.as_mut().reset(at);
                    }
                    if self.in_flight.is_some() {
                        run_deadline.as_mut().reset((Instant::now() + self.ctx.run_timeout).into());
                    }
                }
                message = self.ws.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map_or(1005, |f| u16::from(f.code));
                            self.ctx.close_code(code);
                            self.ctx.error(format!("closed_by_server: {code}"));
                            self.abandon();
                            return true;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            self.ctx.error(format!("read: {e}"));
                            self.abandon();
                            return true;
                        }
                        None => {
                            self.ctx.close_code(1006);
                            self.ctx.error("closed_by_server: 1006");
                            self.abandon();
                            return true;
                        }
                    };
                    if self.on_text(&text) {
                        run_deadline.as_mut().reset(far());
                        if self.after_run().await.is_err() {
                            return true;
                        }
                        if self.in_flight.is_some() {
                            run_deadline.as_mut().reset((Instant::now() + self.ctx.run_timeout).into());
                        }
                        if let Some(at) = self.next_send {
                            send_timer.as_mut().reset(at);
                        }
                    }
                }
                () = &mut send_timer => {
                    send_timer.as_mut().reset(far());
                    if self.in_flight.is_some() {
                        // Sent when the run in flight ends (after_run sees the due time).
                        self.ctx.late_sends.fetch_add(1, Relaxed);
                        continue;
                    }
                    if self.send_due().await.is_err() {
                        return true;
                    }
                    if self.in_flight.is_some() {
                        run_deadline.as_mut().reset((Instant::now() + self.ctx.run_timeout).into());
                    }
                    if let Some(at) = self.next_send {
                        send_timer.as_mut().reset(at);
                    }
                }
                () = &mut run_deadline => {
                    run_deadline.as_mut().reset(far());
                    if let Some(run) = self.in_flight.take() {
                        self.ctx.error("run_timeout");
                        self.ctx.runs_failed.fetch_add(1, Relaxed);
                        if run.measured {
                            self.ctx.resolved.fetch_add(1, Relaxed);
                        }
                        self.poisoned = true;
                    }
                }
            }
        }
    }

    /// A phase began: start running (closed loop: at once; open loop: at this connection's
    /// offset in the interval).
    async fn start_phase(&mut self) -> Result<(), ()> {
        if !self.running() || self.in_flight.is_some() {
            return Ok(());
        }
        match self.ctx.interval {
            None => self.send().await,
            Some(interval) => {
                if self.next_send.is_none() {
                    // Golden-ratio offsets spread the connections evenly over the interval.
                    let offset = (self.index as f64 * 0.618_033_988_75).fract();
                    self.next_send = Some(tokio::time::Instant::now() + interval.mul_f64(offset));
                }
                Ok(())
            }
        }
    }

    /// A run ended: closed loop sends the next at once; open loop sends when it is due.
    async fn after_run(&mut self) -> Result<(), ()> {
        if !self.running() {
            return Ok(());
        }
        match self.ctx.interval {
            None => self.send().await,
            Some(_) => {
                if self
                    .next_send
                    .is_some_and(|at| at <= tokio::time::Instant::now())
                {
                    self.send_due().await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Open loop: send the run that is due and schedule the next one.
    async fn send_due(&mut self) -> Result<(), ()> {
        if !self.running() {
            return Ok(());
        }
        if let (Some(at), Some(interval)) = (self.next_send, self.ctx.interval) {
            let now = tokio::time::Instant::now();
            // Runs missed while the previous one was in flight are not made up for.
            let mut next = at + interval;
            if next <= now {
                next = now + interval;
            }
            self.next_send = Some(next);
        }
        self.send().await
    }

    async fn send(&mut self) -> Result<(), ()> {
        let measured = *self.phase.borrow() == Phase::Measure;
        // Only measured runs hold a ticket: warm-up runs do not count towards --runs.
        if self.poisoned || (measured && !self.ctx.take_ticket()) {
            return Ok(());
        }
        self.seq += 1;
        let message_id = format!("c{}-{}", self.index, self.seq);
        let request = format!(
            r#"{{"type":"start_agent","message_id":"{message_id}","payload":{{"user_request":{}}}}}"#,
            self.ctx.text_json
        );
        self.in_flight = Some(InFlight {
            sent: Instant::now(),
            measured,
            message_id,
        });
        if let Err(e) = self.ws.send(Message::text(request)).await {
            self.ctx.error(format!("write: {e}"));
            self.abandon();
            return Err(());
        }
        Ok(())
    }

    /// Counts a frame; `true` when it ended the run in flight.
    fn on_text(&mut self, text: &str) -> bool {
        let kind = frame_type(text);
        let terminal = matches!(kind, "agent_completed" | "agent_error");
        if kind == "error" {
            let code = field(text, "code").unwrap_or("?");
            self.ctx.error(format!("error_frame: {code}"));
        } else {
            self.ctx.events.fetch_add(1, Relaxed);
        }
        if !(terminal || kind == "error") {
            return false;
        }
        let Some(run) = &self.in_flight else {
            return false;
        };
        // One user per connection: the first terminal event is this run's. A shared user
        // receives every connection's runs: match the reply_to.
        if self.ctx.shared_user && field(text, "reply_to") != Some(run.message_id.as_str()) {
            return false;
        }
        let run = self.in_flight.take().expect("checked");
        if kind == "agent_completed" {
            self.ctx.runs_done.fetch_add(1, Relaxed);
            if run.measured {
                let took = u32::try_from(run.sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                self.latencies.push(took);
            }
        } else {
            if kind == "agent_error" {
                self.ctx.error(format!(
                    "agent_error: {}",
                    field(text, "code").unwrap_or("?")
                ));
            }
            self.ctx.runs_failed.fetch_add(1, Relaxed);
        }
        if run.measured {
            self.ctx.resolved.fetch_add(1, Relaxed);
        }
        true
    }

    /// The connection ended with a run in flight: that run failed.
    fn abandon(&mut self) {
        if let Some(run) = self.in_flight.take() {
            self.ctx.runs_failed.fetch_add(1, Relaxed);
            if run.measured {
                self.ctx.resolved.fetch_add(1, Relaxed);
            }
        }
    }

    /// Sends a close frame (1000) and reads until the server's answer.
    async fn close(&mut self) {
        let frame = CloseFrame {
            code: WsCloseCode::Normal,
            reason: "".into(),
        };
        if self.ws.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        let answer = timeout(Duration::from_secs(10), async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        return Some(frame.map_or(1005, |f| u16::from(f.code)));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await;
        match answer {
            Ok(Some(code)) => self.ctx.close_code(code),
            Ok(None) => self.ctx.error("close: no close frame"),
            Err(_) => self.ctx.error("close: timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_fields() {
        let text =
            r#"{"type":"agent_completed","event_id":"e","reply_to":"c1-2","payload":{"code":"x"}}"#;
        assert_eq!(frame_type(text), "agent_completed");
        assert_eq!(field(text, "reply_to"), Some("c1-2"));
        assert_eq!(field(text, "code"), Some("x"));
        assert_eq!(frame_type("[]"), "?");
    }

    #[test]
    fn percentiles() {
        let samples: Vec<u32> = (1..=1000).collect();
        let p = percentiles_ms(&samples);
        assert_eq!(p["p50"], 0.5);
        assert_eq!(p["p99"], 0.99);
        assert_eq!(p["p99_9"], 0.999);
        assert_eq!(p["max"], 1.0);
    }
}
