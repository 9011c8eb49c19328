//! `agentwire`: run the server (`serve`), mint a token (`token`), check an endpoint (`probe`)
//! or measure one (`load`; the bare server it is compared with is `agentwire-baseline`, in
//! the benchmarks crate).
//!
//! Every `serve` flag also reads an `AGENTWIRE_*` environment variable; see
//! `agentwire serve --help` and docs/operations.md.

/// mimalloc instead of the system allocator: a run makes about 30 small allocations, and
/// mimalloc's fast paths cost the server 7 % fewer instructions per run than glibc's malloc,
/// with less memory per idle connection (docs/performance.md). The load tool in this binary
/// and the bare `agentwire-baseline` use it too, so comparisons stay like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentwire_auth::mint::{Claims, SigningKey, offer_header};
use agentwire_auth::{Algorithm, Key, Validator};
use agentwire_server::{Config, DemoAgent, PublishConfig, PublishKey, Server};
use clap::{Parser, Subcommand, ValueEnum};

mod logging;
mod tools;

#[derive(Parser)]
#[command(name = "agentwire", version, about = "The agentwire WebSocket server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Mint an HS256 token (for tests and local clients).
    Token(TokenArgs),
    /// Check an endpoint step by step (TCP, TLS, upgrade, subprotocol, session, a run, ping,
    /// idle survival) and name the step that fails, with its likely cause; with --monitor,
    /// again and again, then availability, timings and failures.
    Probe(Box<tools::probe::ProbeArgs>),
    /// Open many connections, run agents on them, and report handshakes/s, events/s, run
    /// latency percentiles, errors and close codes (and, given --server-pid, the server's CPU
    /// per 1,000 events and memory per connection).
    Load(Box<tools::load::LoadArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Pretty,
}

#[derive(Parser)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AGENTWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// HMAC secret for HS256/384/512 tokens (at least 32 bytes).
    #[arg(long, env = "AGENTWIRE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM file with the public key (RSA, EC or Ed25519) that verifies tokens.
    #[arg(long, env = "AGENTWIRE_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// JWKS file (JSON) with the public keys that verify tokens, chosen by `kid`.
    #[arg(long, env = "AGENTWIRE_JWKS")]
    jwks: Option<PathBuf>,
    /// Accepted algorithms, comma-separated (default: every one the keys support).
    #[arg(long, env = "AGENTWIRE_JWT_ALGORITHMS", value_delimiter = ',')]
    jwt_algorithms: Vec<String>,
    /// Required `iss` claim.
    #[arg(long, env = "AGENTWIRE_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "AGENTWIRE_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds (the library's default).
    #[arg(long, env = "AGENTWIRE_JWT_LEEWAY_SECS", default_value_t = agentwire_auth::DEFAULT_LEEWAY.as_secs())]
    jwt_leeway_secs: u64,
    /// Browser origin allowed to connect (repeatable); none set allows any.
    #[arg(long, env = "AGENTWIRE_ALLOWED_ORIGIN", value_delimiter = ',')]
    allowed_origin: Vec<String>,
    /// Accept `?token=` in the URL (off: query strings end up in access logs).
    #[arg(long, env = "AGENTWIRE_ALLOW_QUERY_TOKEN")]
    allow_query_token: bool,
    /// Pause of the demo agent between events, in milliseconds (0 for benchmarks).
    #[arg(long, env = "AGENTWIRE_DEMO_STEP_MS", default_value_t = 100)]
    demo_step_ms: u64,
    /// Server ping interval, in seconds.
    #[arg(long, env = "AGENTWIRE_HEARTBEAT_SECS", default_value_t = 25)]
    heartbeat_secs: u64,
    /// Largest inbound message, in bytes.
    #[arg(long, env = "AGENTWIRE_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    max_message_bytes: usize,
    /// Open connections per user; the next one is closed 4409.
    #[arg(long, env = "AGENTWIRE_MAX_CONNECTIONS_PER_USER", default_value_t = 10)]
    max_connections_per_user: usize,
    /// Inbound messages per second per connection (0: no limit).
    #[arg(long, env = "AGENTWIRE_RATE_LIMIT_PER_SEC", default_value_t = 20)]
    rate_limit_per_sec: u32,
    /// Seconds a shutdown waits for connections to close.
    #[arg(long, env = "AGENTWIRE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    shutdown_timeout_secs: u64,
    /// Seconds a client may take to send its upgrade request head.
    #[arg(long, env = "AGENTWIRE_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Seconds one socket write may block before the client is closed 4008 (slow consumer).
    #[arg(long, env = "AGENTWIRE_WRITE_TIMEOUT_SECS", default_value_t = 10)]
    write_timeout_secs: u64,
    /// TCP connections in the HTTP phase (before the upgrade) at once; more are closed at accept.
    #[arg(long, env = "AGENTWIRE_MAX_PENDING_HANDSHAKES", default_value_t = 4096)]
    max_pending_handshakes: usize,
    /// Of those, from one peer address (trusted proxies are exempt).
    #[arg(
        long,
        env = "AGENTWIRE_MAX_PENDING_HANDSHAKES_PER_PEER",
        default_value_t = 1024
    )]
    max_pending_handshakes_per_peer: usize,
    /// A proxy or load balancer in front of the server (address or CIDR, repeatable): exempt
    /// from the per-peer cap; its X-Forwarded-For names the client in logs.
    #[arg(long, env = "AGENTWIRE_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<String>,
    /// Socket send buffer per connection, in bytes (0: the kernel's auto-tuning).
    #[arg(long, env = "AGENTWIRE_SEND_BUFFER_BYTES", default_value_t = agentwire_server::DEFAULT_SEND_BUFFER_BYTES)]
    send_buffer_bytes: usize,
    /// Listen backlog: connections the kernel queues before the server accepts them (capped
    /// by net.core.somaxconn).
    #[arg(long, env = "AGENTWIRE_LISTEN_BACKLOG", default_value_t = 4096)]
    listen_backlog: u32,
    /// Deepest nesting of arrays and objects in JSON handed on unparsed (payload.context).
    #[arg(long, env = "AGENTWIRE_MAX_JSON_DEPTH", default_value_t = agentwire_server::DEFAULT_MAX_JSON_DEPTH)]
    max_json_depth: usize,
    /// Events kept per user for resume after reconnect (0 turns replay off).
    #[arg(long, env = "AGENTWIRE_REPLAY_MAX_EVENTS", default_value_t = agentwire_server::stream::DEFAULT_MAX_EVENTS)]
    replay_max_events: usize,
    /// Seconds an event is kept for resume.
    #[arg(long, env = "AGENTWIRE_REPLAY_MAX_AGE_SECS", default_value_t = agentwire_server::stream::DEFAULT_MAX_AGE.as_secs())]
    replay_max_age_secs: u64,
    /// Server-wide memory budget of the replay window, in bytes (oldest evicted first).
    #[arg(long, env = "AGENTWIRE_REPLAY_MAX_BYTES", default_value_t = agentwire_server::stream::DEFAULT_MAX_BYTES)]
    replay_max_bytes: usize,
    /// Redis for several nodes (redis://[user:password@]host[:port][/db]): every node with the
    /// same Redis shares one stream per user (fan-out, seq, resume on any node). Without it,
    /// streams are in-process.
    #[arg(long, env = "AGENTWIRE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The agent service runs are forwarded to (HTTP POST, streamed response); without it (and
    /// without named agents) the built-in demo agent answers.
    #[arg(long, env = "AGENTWIRE_AGENT_URL")]
    agent_url: Option<String>,
    /// The protocol of the agent services: ndjson or ag-ui (a named agent may choose its own:
    /// NAME=PROTOCOL+URL).
    #[arg(long, env = "AGENTWIRE_AGENT_PROTOCOL", default_value = "ndjson")]
    agent_protocol: String,
    /// A named agent service, NAME=URL or NAME=PROTOCOL+URL (e.g. weather=ag-ui+http://h/run;
    /// repeatable; the variable takes a comma list): requests with payload.agent_name NAME go
    /// there, in PROTOCOL when given, else in the common agent protocol.
    #[arg(long = "agent", env = "AGENTWIRE_AGENT", value_delimiter = ',')]
    agents: Vec<String>,
    /// HMAC secret (at least 32 bytes) for the short-lived token sent to agent services as
    /// `Authorization: Bearer` (sub = user id, run_id; aud agent-service).
    #[arg(long, env = "AGENTWIRE_AGENT_SECRET", hide_env_values = true)]
    agent_secret: Option<String>,
    /// Address of the publish API (POST /api/v1/users/{user_id}/events, for other services);
    /// off unless set. Needs a key: a key file or AGENTWIRE_PUBLISH_KEY.
    #[arg(long, env = "AGENTWIRE_PUBLISH_ADDR")]
    publish_addr: Option<SocketAddr>,
    /// File with the publish API's keys, one per line (# comments); any of them is accepted.
    #[arg(long, env = "AGENTWIRE_PUBLISH_KEY_FILE")]
    publish_key_file: Option<PathBuf>,
    /// A publish API key (16 to 1024 visible ASCII characters); prefer the variable or the
    /// key file: a command line is visible to every user of the machine.
    #[arg(long, env = "AGENTWIRE_PUBLISH_KEY", hide_env_values = true)]
    publish_key: Option<String>,
    /// Largest publish request body, in bytes (larger: 413).
    #[arg(long, env = "AGENTWIRE_PUBLISH_MAX_BODY_BYTES", default_value_t = agentwire_server::DEFAULT_PUBLISH_MAX_BODY_BYTES)]
    publish_max_body_bytes: usize,
    /// Most events in one publish batch (more: 413).
    #[arg(long, env = "AGENTWIRE_PUBLISH_MAX_BATCH_EVENTS", default_value_t = agentwire_server::DEFAULT_PUBLISH_MAX_BATCH_EVENTS)]
    publish_max_batch_events: usize,
    /// Let clients open without credentials and authenticate with `auth_refresh` first.
    #[arg(long, env = "AGENTWIRE_IN_BAND_AUTH")]
    in_band_auth: bool,
    /// Seconds such a client has to authenticate before it is closed 4408.
    #[arg(long, env = "AGENTWIRE_AUTH_TIMEOUT_SECS", default_value_t = 10)]
    auth_timeout_secs: u64,
    /// Log format (default: json when stderr is not a terminal, else pretty).
    #[arg(long, env = "AGENTWIRE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Development mode: make a random HS256 secret, print a ready token, and serve the dev
    /// console page at `/`.
    #[arg(long, env = "AGENTWIRE_DEV")]
    dev: bool,
}

#[derive(Parser)]
struct TokenArgs {
    /// HMAC secret to sign with (at least 32 bytes).
    #[arg(long, env = "AGENTWIRE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The user id (`sub`).
    #[arg(long)]
    sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// `iss` claim.
    #[arg(long)]
    iss: Option<String>,
    /// `aud` claim.
    #[arg(long)]
    aud: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).map(|()| ExitCode::SUCCESS),
        Command::Token(args) => token(&args).map(|()| ExitCode::SUCCESS),
        Command::Probe(args) => tools::probe::run(*args),
        Command::Load(args) => tools::load::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("agentwire: {message}");
            ExitCode::from(2)
        }
    }
}

fn token(args: &TokenArgs) -> Result<(), String> {
    let key = SigningKey::hmac(Algorithm::HS256, args.jwt_secret.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut claims = Claims::new(&args.sub).expires_in(Duration::from_secs(args.ttl_secs));
    if let Some(iss) = &args.iss {
        claims = claims.issuer(iss);
    }
    if let Some(aud) = &args.aud {
        claims = claims.audience(aud);
    }
    let token = claims.sign(&key).map_err(|e| e.to_string())?;
    println!("{}", token.expose_secret());
    Ok(())
}

/// 32 random bytes as hex, from the OS.
fn random_secret() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a dev secret: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn validator(args: &ServeArgs, dev_secret: Option<&str>) -> Result<Validator, String> {
    let mut keys = Vec::new();
    if let Some(secret) = args.jwt_secret.as_deref().or(dev_secret) {
        keys.push(Key::hmac(secret.as_bytes()).map_err(|e| format!("--jwt-secret: {e}"))?);
    }
    if let Some(path) = &args.jwt_public_key {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.push(Key::from_pem(pem).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    if let Some(path) = &args.jwks {
        let json = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.extend(Key::from_jwks(&json).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    if keys.is_empty() {
        return Err(
            "no key to verify tokens with: pass --jwt-secret, --jwt-public-key or \
                    --jwks (or AGENTWIRE_JWT_SECRET, ...), or run with --dev for local use"
                .to_owned(),
        );
    }
    let mut builder = Validator::builder()
        .keys(keys)
        .leeway(Duration::from_secs(args.jwt_leeway_secs));
    if !args.jwt_algorithms.is_empty() {
        let algorithms = args
            .jwt_algorithms
            .iter()
            .map(|name| {
                Algorithm::from_name(name.trim())
                    .ok_or_else(|| format!("--jwt-algorithms: unknown algorithm {name:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder = builder.algorithms(algorithms);
    }
    if let Some(iss) = &args.jwt_issuer {
        builder = builder.issuer(iss);
    }
    if let Some(aud) = &args.jwt_audience {
        builder = builder.audience(aud);
    }
    builder.build().map_err(|e| e.to_string())
}

fn config(args: &ServeArgs) -> Result<Config, String> {
    let mut builder = Config::builder()
        .heartbeat_interval(Duration::from_secs(args.heartbeat_secs))
        .max_message_bytes(args.max_message_bytes)
        .max_connections_per_user(args.max_connections_per_user)
        .rate_limit_per_sec(args.rate_limit_per_sec)
        .allow_query_token(args.allow_query_token)
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout_secs))
        .handshake_timeout(Duration::from_secs(args.handshake_timeout_secs))
        .write_timeout(Duration::from_secs(args.write_timeout_secs))
        .max_pending_handshakes(args.max_pending_handshakes)
        .max_pending_handshakes_per_peer(args.max_pending_handshakes_per_peer)
        .send_buffer_bytes(args.send_buffer_bytes)
        .max_json_depth(args.max_json_depth)
        .in_band_auth(args.in_band_auth)
        .replay_max_events(args.replay_max_events)
        .replay_max_age(Duration::from_secs(args.replay_max_age_secs))
        .replay_max_bytes(args.replay_max_bytes)
        .auth_timeout(Duration::from_secs(args.auth_timeout_secs));
    for origin in &args.allowed_origin {
        builder = builder.allowed_origin(origin);
    }
    for proxy in &args.trusted_proxy {
        builder = builder.trusted_proxy(proxy);
    }
    builder.build().map_err(|e| e.to_string())
}

fn init_logging(format: Option<LogFormat>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Pretty) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.event_format(logging::JsonLines).init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let dev_secret = if args.dev && args.jwt_secret.is_none() {
        Some(random_secret()?)
    } else {
        None
    };
    let validator = validator(&args, dev_secret.as_deref())?;
    let config = config(&args)?;
    let publish = publish_config(&args)?;
    let redis = match &args.redis_url {
        Some(url) => {
            Some(agentwire_redis::RedisConfig::new(url).map_err(|e| format!("--redis-url: {e}"))?)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = listen(args.listen, args.listen_backlog)
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        if args.dev {
            let secret = dev_secret.as_deref().or(args.jwt_secret.as_deref());
            print_dev_banner(local, secret)?;
        }
        let publish_listener = match (&publish, args.publish_addr) {
            (Some(_), Some(addr)) => Some(
                listen(addr, args.listen_backlog)
                    .map_err(|e| format!("cannot listen on {addr} (--publish-addr): {e}"))?,
            ),
            _ => None,
        };
        let mut builder = Server::builder(validator).config(config);
        if let Some(publish) = publish {
            builder = builder.publish(publish);
        }
        if let Some(redis) = redis {
            tracing::info!(target: "agentwire::server", redis = redis.display_url(), "streams are shared through Redis");
            builder = builder.delivery(move |local| agentwire_redis::RedisEngine::new(redis, local));
        }
        let server = match http_agent(&args)? {
            Some(agent) => {
                // The URL without user, password or query: they may hold credentials.
                tracing::info!(
                    target: "agentwire::server",
                    agent_url = agent.service_for(None).map_or("", |s| s.display_url()),
                    named = args.agents.len(),
                    protocol = %args.agent_protocol,
                    "runs are forwarded to the agent service"
                );
                builder.handler(agent).build()
            }
            None => {
                tracing::info!(
                    target: "agentwire::server",
                    "no --agent-url: runs are answered by the built-in demo agent"
                );
                builder
                    .handler(DemoAgent::new(Duration::from_millis(args.demo_step_ms)))
                    .build()
            }
        };
        tracing::info!(target: "agentwire::server", listen = %local, dev = args.dev, "listening");
        // One signal stops both listeners; a listener that fails stops the other too.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop_on_signal.send_replace(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let mut app = server.router();
        if args.dev {
            // The dev console at `/`; its address with the token is in the banner above.
            app = app.merge(agentwire_server::console_router());
            let console = format!("http://{local}/");
            tracing::info!(target: "agentwire::server", %console, "dev console");
        }
        let websocket = async {
            let served = server
                .serve_app(listener, app, until_stopped(stopped.clone()))
                .await;
            stop.send_replace(true);
            served
        };
        let publishing = async {
            let Some(listener) = publish_listener else {
                return Ok(());
            };
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            if let Some(p) = server.publish_config() {
                tracing::info!(
                    target: "agentwire::server",
                    publish_addr = %addr,
                    keys = p.key_count(),
                    max_body_bytes = p.max_body_bytes(),
                    max_batch_events = p.max_batch_events(),
                    "publish API listening: POST /api/v1/users/{{user_id}}/events"
                );
            }
            let served = server
                .serve_publish(listener, until_stopped(stopped.clone()))
                .await;
            stop.send_replace(true);
            served.map_err(|e| e.to_string())
        };
        let (websocket, publishing) = tokio::join!(websocket, publishing);
        websocket.map_err(|e| e.to_string())?;
        publishing
    })
}

/// The publish API's settings: `Some` with `--publish-addr` (a key is then required), `None`
/// without it.
fn publish_config(args: &ServeArgs) -> Result<Option<PublishConfig>, String> {
    let has_key = args.publish_key.is_some() || args.publish_key_file.is_some();
    if args.publish_addr.is_none() {
        if has_key {
            // Not an error (the same environment may serve nodes with and without it).
            tracing::warn!(
                target: "agentwire::server",
                "a publish key is set but --publish-addr is not: the publish API is off"
            );
        }
        return Ok(None);
    }
    let mut builder = PublishConfig::builder()
        .max_body_bytes(args.publish_max_body_bytes)
        .max_batch_events(args.publish_max_batch_events);
    if let Some(key) = &args.publish_key {
        let key = PublishKey::new(key.trim()).map_err(|e| format!("--publish-key: {e}"))?;
        builder = builder.key(key);
    }
    if let Some(path) = &args.publish_key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--publish-key-file {}: {e}", path.display()))?;
        let keys = PublishKey::from_lines(&text)
            .map_err(|e| format!("--publish-key-file {}: {e}", path.display()))?;
        builder = builder.keys(keys);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("--publish-addr: {e}"))
}

/// The HTTP agent of `--agent-url` and `--agent NAME=URL`, or `None` for the demo agent.
fn http_agent(args: &ServeArgs) -> Result<Option<agentwire_http_agent::HttpAgent>, String> {
    use agentwire_http_agent::{HttpAgent, Protocol, Service};
    if args.agent_url.is_none() && args.agents.is_empty() {
        return Ok(None);
    }
    let protocol: Protocol = args
        .agent_protocol
        .parse()
        .map_err(|e| format!("--agent-protocol: {e}"))?;
    let service = |url: &str| Service::new(url, protocol).map_err(|e| format!("{url}: {e}"));
    let mut builder = HttpAgent::builder();
    if let Some(url) = &args.agent_url {
        builder = builder.default_service(service(url)?);
    }
    for agent in &args.agents {
        let (name, target) = agent
            .split_once('=')
            .ok_or_else(|| format!("--agent {agent:?}: expected NAME=URL or NAME=PROTOCOL+URL"))?;
        let target = target.trim();
        let service = match target.split_once('+') {
            // `ag-ui+http://...`: a protocol before the scheme.
            Some((protocol, url)) if !protocol.contains(':') => {
                let protocol: Protocol = protocol
                    .parse()
                    .map_err(|e| format!("--agent {agent:?}: {e}"))?;
                Service::new(url, protocol).map_err(|e| format!("{url}: {e}"))?
            }
            _ => service(target)?,
        };
        builder = builder.agent(name.trim(), service);
    }
    if let Some(secret) = &args.agent_secret {
        builder = builder.service_token_secret(secret);
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// A listening socket with `backlog` (tokio's `TcpListener::bind` fixes it at 1024).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Prints a ready token and how to connect with it (development mode only).
fn print_dev_banner(local: SocketAddr, secret: Option<&str>) -> Result<(), String> {
    let secret = secret.ok_or("no dev secret")?;
    let key = SigningKey::hmac(Algorithm::HS256, secret.as_bytes()).map_err(|e| e.to_string())?;
    let token = Claims::new("dev-user")
        .expires_in(Duration::from_secs(24 * 3600))
        .sign(&key)
        .map_err(|e| e.to_string())?;
    let jwt = token.expose_secret();
    let offer = offer_header(&token);
    // A closed stdout (the reader went away) must not stop the server: ignore write errors.
    let _ = writeln!(
        std::io::stdout().lock(),
        "agentwire dev mode: listening on ws://{local}/ws (DEVELOPMENT ONLY: random secret, \
         token printed)\n\n\
         dev console (open in a browser; the token rides in the fragment, never sent to the server):\n  \
         http://{local}/#token={jwt}\n\n\
         token (user dev-user, valid 24 h):\n{jwt}\n\n\
         connect from a browser console:\n  \
         const ws = new WebSocket(\"ws://{local}/ws\", [\"jwt-auth\", \"jwt.{jwt}\"]);\n  \
         ws.onmessage = (e) => console.log(e.data);\n  \
         ws.onopen = () => ws.send(JSON.stringify({{type: \"start_agent\", payload: {{user_request: \"hello\"}}}}));\n\n\
         or with any WebSocket client, offering the header:\n  \
         Sec-WebSocket-Protocol: {offer}\n\n\
         more tokens: agentwire token --jwt-secret {secret} --sub USER\n"
    );
    let _ = std::io::stdout().flush();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!(target: "agentwire::server", "shutdown signal received: draining");
}
