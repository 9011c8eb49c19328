//! `agentwire probe URL --token T`: checks one endpoint step by step and names the step that
//! fails, with its likely cause. With `--monitor`, probes again and again and sums up
//! availability, timings and failures (see [`monitor`]).
//!
//! Steps, in order: `tcp_connect`, `tls` (wss only), `http_upgrade`, `subprotocol`,
//! `connection_established`, `agent_run`, `ping`, `hold` (with `--hold-secs`), `close`. A step
//! that leaves nothing to build on (no TCP, no upgrade, no session) skips the rest; a wrong
//! subprotocol answer fails the probe but the later steps still run, since a non-browser
//! client could go on.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{ms, round};
use agentwire_auth::Algorithm;
use agentwire_auth::mint::{Claims, SigningKey};
use agentwire_client::transport::{self, Stream, Target};
use agentwire_client::{
    CloseCode, CloseInfo, Credentials, RawConnection, RawMessage, UpgradeError,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::timeout;

mod monitor;

/// Arguments of `agentwire probe`.
#[derive(clap::Args)]
pub(crate) struct ProbeArgs {
    /// The WebSocket URL, e.g. ws://127.0.0.1:8080/ws or wss://chat.example.com/ws.
    url: String,
    /// The token (JWT) to connect with.
    #[arg(
        long,
        env = "AGENTWIRE_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_secret"
    )]
    token: Option<String>,
    /// Instead of --token: an HS256 secret to mint a 10-minute token with (for test servers).
    #[arg(long, conflicts_with = "token")]
    token_secret: Option<String>,
    /// The `sub` of a token minted with --token-secret.
    #[arg(long, default_value = "agentwire-probe")]
    sub: String,
    /// Send the token as `Authorization: Bearer` instead of the subprotocol offer
    /// (`jwt-auth, jwt.<token>`, what browsers must use).
    #[arg(long)]
    bearer: bool,
    /// Then keep the connection idle this many seconds and check that it survives.
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// How long each step may take, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// The request text of the test run.
    #[arg(long, default_value = "agentwire probe: hello")]
    request_text: String,
    /// Print the report as JSON (with --monitor: one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Probe again and again: one line per probe as it ends, then a summary (availability,
    /// handshake and run time percentiles, failures by step and cause).
    #[arg(long)]
    monitor: bool,
    /// With --monitor: seconds from the start of one probe to the start of the next.
    #[arg(long, default_value_t = 10.0, requires = "monitor")]
    interval_secs: f64,
    /// With --monitor: how long to keep probing, in seconds.
    #[arg(long, default_value_t = 600.0, requires = "monitor")]
    duration_secs: f64,
    /// With --monitor: stop after this many probes, even before --duration-secs is over.
    #[arg(long, requires = "monitor")]
    count: Option<u64>,
    /// With --monitor: exit 1 when fewer probes than this passed, in percent.
    #[arg(long, default_value_t = 100.0, requires = "monitor")]
    min_availability: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Serialize)]
struct Step {
    name: &'static str,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    data: Value,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    ok: bool,
    failed_step: Option<&'static str>,
    cause: Option<String>,
    steps: Vec<Step>,
}

/// What one probe found, with the times a monitor sums up.
struct Outcome {
    report: Report,
    /// From the start of the TCP connect to `connection_established` (DNS, TCP, TLS, upgrade,
    /// authentication): what a client waits before it can send.
    handshake: Option<Duration>,
    /// From sending `start_agent` to the run's terminal event, for a well-formed run.
    run: Option<Duration>,
}

/// Probes `target` once, every step.
async fn probe_once(args: &ProbeArgs, target: &Target, token: &str) -> Outcome {
    let mut probe = Probe {
        args,
        target,
        token,
        steps: Vec::new(),
        step_timeout: Duration::from_secs(args.timeout_secs.max(1)),
        handshake: None,
        run_time: None,
    };
    probe.run().await;
    let failed = probe.steps.iter().find(|s| s.status == Status::Fail);
    let report = Report {
        url: target.url().to_owned(),
        ok: failed.is_none(),
        failed_step: failed.map(|s| s.name),
        cause: failed.map(|s| s.cause.clone().unwrap_or_else(|| s.detail.clone())),
        steps: std::mem::take(&mut probe.steps),
    };
    Outcome {
        report,
        handshake: probe.handshake,
        run: probe.run_time,
    }
}

/// Runs the probe (or, with `--monitor`, the monitor) and prints its report; exit 0 when every
/// step passed (warnings allowed), 1 when one failed (with `--monitor`: when availability is
/// below `--min-availability`).
pub(crate) fn run(args: ProbeArgs) -> Result<ExitCode, String> {
    let target = Target::parse(&args.url).map_err(|e| e.to_string())?;
    let token = match (&args.token, &args.token_secret) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(secret)) => {
            let key = SigningKey::hmac(Algorithm::HS256, secret.as_bytes())
                .map_err(|e| format!("--token-secret: {e}"))?;
            Claims::new(&args.sub)
                .expires_in(Duration::from_secs(600))
                .sign(&key)
                .map_err(|e| e.to_string())?
                .expose_secret()
                .to_owned()
        }
        (None, None) => return Err("give --token (or --token-secret)".to_owned()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if args.monitor {
        let plan = monitor::Plan::from_args(&args)?;
        return runtime.block_on(monitor::run(&args, &plan, &target, &token));
    }
    let report = runtime.block_on(probe_once(&args, &target, &token)).report;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", human(&report));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human(report: &Report) -> String {
    let mut out = format!("agentwire probe {}\n", report.url);
    for step in &report.steps {
        let tag = match step.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        let elapsed = step
            .elapsed_ms
            .map(|t| format!(" ({t} ms)"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {tag}  {:<24}{}{elapsed}", step.name, step.detail);
        if let Some(cause) = &step.cause {
            let _ = writeln!(out, "        {:<24}likely cause: {cause}", "");
        }
    }
    match report.failed_step {
        None => out.push_str("PASS\n"),
        Some(step) => {
            let _ = writeln!(
                out,
                "FAIL at {step}: {}",
                report.cause.as_deref().unwrap_or("")
            );
        }
    }
    out
}

struct Probe<'a> {
    args: &'a ProbeArgs,
    target: &'a Target,
    token: &'a str,
    steps: Vec<Step>,
    step_timeout: Duration,
    handshake: Option<Duration>,
    run_time: Option<Duration>,
}

/// What the session learned from `connection_established`.
struct Session {
    heartbeat_ms: Option<u64>,
}

const ALL_STEPS: [&str; 9] = [
    "tcp_connect",
    "tls",
    "http_upgrade",
    "subprotocol",
    "connection_established",
    "agent_run",
    "ping",
    "hold",
    "close",
];

impl Probe<'_> {
    fn push(&mut self, name: &'static str, status: Status, detail: impl Into<String>) -> &mut Step {
        self.steps.push(Step {
            name,
            status,
            detail: detail.into(),
            cause: None,
            elapsed_ms: None,
            data: Value::Null,
        });
        self.steps.last_mut().expect("just pushed")
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>, cause: impl Into<String>) {
        self.push(name, Status::Fail, detail).cause = Some(cause.into());
    }

    /// Marks every step after `after` as skipped.
    fn skip_rest(&mut self, after: &str, why: &str) {
        let start = ALL_STEPS
            .iter()
            .position(|s| *s == after)
            .map_or(0, |i| i + 1);
        for name in &ALL_STEPS[start..] {
            if *name == "tls" && !self.target.is_tls() {
                continue;
            }
            if *name == "hold" && self.args.hold_secs == 0 {
                continue;
            }
            self.push(name, Status::Skipped, why);
        }
    }

    async fn run(&mut self) {
        let started = Instant::now();
        let Some(stream) = self.connect().await else {
            return;
        };
        let Some(mut ws) = self.upgrade(stream).await else {
            return;
        };
        let Some(session) = self.established(&mut ws).await else {
            return;
        };
        self.handshake = Some(started.elapsed());
        if !self.agent_run(&mut ws).await {
            self.skip_rest("agent_run", "the connection is gone");
            return;
        }
        if !self.ping(&mut ws).await {
            self.skip_rest("ping", "the connection is gone");
            return;
        }
        if self.args.hold_secs > 0 && !self.hold(&mut ws, &session).await {
            self.skip_rest("hold", "the connection is gone");
            return;
        }
        self.close(&mut ws).await;
    }

    /// `tcp_connect` and `tls`.
    async fn connect(&mut self) -> Option<Stream> {
        let started = Instant::now();
        let target = self.target;
        let addrs = match timeout(self.step_timeout, target.resolve_all()).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => {
                self.fail(
                    "tcp_connect",
                    e.to_string(),
                    "the host name is wrong, or DNS does not know it from here",
                );
                self.skip_rest("tcp_connect", "no connection");
                return None;
            }
            Err(_) => {
                self.fail(
                    "tcp_connect",
                    format!(
                        "resolving {} took over {:?}",
                        target.host(),
                        self.step_timeout
                    ),
                    "DNS does not answer",
                );
                self.skip_rest("tcp_connect", "no connection");
                return None;
            }
        };
        // Like a browser, try each address the name resolves to (localhost: ::1, 127.0.0.1).
        let (last, earlier) = addrs.split_last().expect("at least one address");
        let mut addr = *last;
        let mut connected = None;
        for candidate in earlier {
            if let Ok(Ok(tcp)) =
                timeout(self.step_timeout, transport::tcp_connect(*candidate, None)).await
            {
                addr = *candidate;
                connected = Some(tcp);
                break;
            }
        }
        let attempt = match connected {
            Some(tcp) => Ok(Ok(tcp)),
            None => timeout(self.step_timeout, transport::tcp_connect(addr, None)).await,
        };
        let tcp = match attempt {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                let cause = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => format!(
                        "nothing listens on {addr}: is the server running, on this port and \
                         this interface (agentwire serve --listen)?"
                    ),
                    _ => "the network refuses the connection".to_owned(),
                };
                self.fail("tcp_connect", format!("connect to {addr}: {e}"), cause);
                self.skip_rest("tcp_connect", "no connection");
                return None;
            }
            Err(_) => {
                self.fail(
                    "tcp_connect",
                    format!("no answer from {addr} within {:?}", self.step_timeout),
                    "a firewall drops the packets, or the host or port is wrong",
                );
                self.skip_rest("tcp_connect", "no connection");
                return None;
            }
        };
        let step = self.push("tcp_connect", Status::Ok, format!("connected to {addr}"));
        step.elapsed_ms = Some(round(ms(started.elapsed()), 2));
        step.data = json!({ "address": addr.to_string() });
        if !target.is_tls() {
            return Some(Stream::plain(tcp));
        }
        let started = Instant::now();
        let config = match transport::default_tls_config() {
            Ok(config) => config,
            Err(e) => {
                self.fail("tls", e.to_string(), "the TLS library could not be set up");
                self.skip_rest("tls", "no TLS session");
                return None;
            }
        };
        match timeout(self.step_timeout, Stream::tls(tcp, target.host(), config)).await {
            Ok(Ok(stream)) => {
                let step = self.push("tls", Status::Ok, "TLS handshake done, certificate valid");
                step.elapsed_ms = Some(round(ms(started.elapsed()), 2));
                Some(stream)
            }
            Ok(Err(e)) => {
                let text = e.to_string();
                let cause = if text.contains("UnknownIssuer") {
                    "the certificate is not signed by a public CA (self-signed or a private CA)"
                } else if text.contains("NotValidForName") {
                    "the certificate does not cover this host name"
                } else if text.contains("Expired") {
                    "the certificate has expired"
                } else if text.contains("corrupt message")
                    || text.contains("InvalidContentType")
                    || text.contains("invalid content type")
                {
                    "the server does not speak TLS on this port: try ws:// instead of wss://"
                } else {
                    "the TLS handshake failed"
                };
                self.fail("tls", format!("TLS handshake: {text}"), cause);
                self.skip_rest("tls", "no TLS session");
                None
            }
            Err(_) => {
                self.fail(
                    "tls",
                    format!("no TLS answer within {:?}", self.step_timeout),
                    "the server does not speak TLS on this port, or is stuck",
                );
                self.skip_rest("tls", "no TLS session");
                None
            }
        }
    }

    /// `http_upgrade` and `subprotocol`.
    async fn upgrade(&mut self, stream: Stream) -> Option<RawConnection> {
        let started = Instant::now();
        let credentials = if self.args.bearer {
            Credentials::bearer(self.token)
        } else {
            Credentials::subprotocol(self.token)
        };
        let result = timeout(
            self.step_timeout,
            transport::upgrade(stream, self.target, &credentials),
        )
        .await;
        let elapsed = Some(round(ms(started.elapsed()), 2));
        let (ws, response) = match result {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                let (detail, cause, data) = self.explain_upgrade(&error);
                self.fail("http_upgrade", detail, cause);
                let step = self.steps.last_mut().expect("pushed");
                step.elapsed_ms = elapsed;
                step.data = data;
                self.skip_rest("http_upgrade", "no WebSocket");
                return None;
            }
            Err(_) => {
                self.fail(
                    "http_upgrade",
                    format!("no HTTP answer within {:?}", self.step_timeout),
                    if self.target.is_tls() {
                        "the server is stuck, or a proxy holds the request"
                    } else {
                        "the server is stuck, or it expects TLS on this port (try wss://)"
                    },
                );
                self.skip_rest("http_upgrade", "no WebSocket");
                return None;
            }
        };
        let step = self.push("http_upgrade", Status::Ok, "101 Switching Protocols");
        step.elapsed_ms = elapsed;
        step.data = json!({
            "status": 101,
            "server": response.header("server"),
        });
        self.check_subprotocol(response.header("sec-websocket-protocol"));
        Some(ws)
    }

    fn explain_upgrade(&self, error: &UpgradeError) -> (String, String, Value) {
        let path = self.target.path();
        match error {
            UpgradeError::Refused(response) => {
                let body = response.body_text();
                let data = json!({
                    "status": response.status,
                    "body": truncate(&body, 2000),
                    "location": response.header("location"),
                });
                let explanation = json_explanation(&body);
                let detail = format!("HTTP {} {}", response.status, response.reason);
                let cause = match response.status {
                    404 => {
                        format!("wrong path: try /ws or /websocket (this request went to {path})")
                    }
                    400 => match explanation {
                        Some(text) => format!("the server refused the handshake: {text}"),
                        None => {
                            format!("the server refused the handshake: {}", truncate(&body, 300))
                        }
                    },
                    401 => format!(
                        "something in front of the WebSocket endpoint wants credentials before the \
                         upgrade (agentwire itself completes the handshake and closes 4401): {}",
                        explanation.unwrap_or_else(|| truncate(&body, 300))
                    ),
                    403 => format!(
                        "forbidden: the Origin is not on the server's allow-list, or a proxy refuses \
                         ({})",
                        explanation.unwrap_or_else(|| truncate(&body, 300))
                    ),
                    405 => "this path exists but does not take GET: not the WebSocket endpoint"
                        .to_owned(),
                    426 => "the server wants a different WebSocket version".to_owned(),
                    429 => "rate limited before the upgrade".to_owned(),
                    431 => "the request headers are too large (a huge token?)".to_owned(),
                    503 => format!(
                        "the server is draining (shutting down) or overloaded: {}",
                        explanation.unwrap_or_else(|| truncate(&body, 300))
                    ),
                    502 | 504 => "a proxy could not reach the server, or does not pass WebSocket \
                                  upgrades (forward Upgrade and Connection headers over HTTP/1.1)"
                        .to_owned(),
                    200 => "a plain HTTP handler answered: a proxy dropped the Upgrade and \
                            Connection headers, or this path is not the WebSocket endpoint"
                        .to_owned(),
                    300..=399 => format!(
                        "redirected to {}: use that URL (wss:// if it is https://)",
                        response.header("location").unwrap_or("(no Location)")
                    ),
                    _ => explanation.unwrap_or_else(|| truncate(&body, 300)),
                };
                (detail, cause, data)
            }
            UpgradeError::BadAccept(response) => (
                "101 with a wrong Sec-WebSocket-Accept".to_owned(),
                "a proxy or server mangles the handshake; browsers refuse it".to_owned(),
                json!({ "status": 101, "sec_websocket_accept": response.header("sec-websocket-accept") }),
            ),
            UpgradeError::Closed { received } => (
                format!(
                    "the server closed the connection after {received} bytes, with no HTTP answer"
                ),
                if self.target.is_tls() {
                    "the server refuses this client or limits connections".to_owned()
                } else {
                    "the port expects TLS (try wss://), or the server refuses or limits connections"
                        .to_owned()
                },
                Value::Null,
            ),
            UpgradeError::NotHttp { start } => (
                format!("not an HTTP answer: {start:?}"),
                if self.target.is_tls() {
                    "this port runs another protocol".to_owned()
                } else {
                    "this port runs another protocol, or TLS (try wss://)".to_owned()
                },
                Value::Null,
            ),
            UpgradeError::HeadTooLarge { .. } => (
                error.to_string(),
                "this is not a WebSocket endpoint".to_owned(),
                Value::Null,
            ),
            UpgradeError::Io { message, .. } => (
                format!("the upgrade failed: {message}"),
                "the connection broke during the handshake".to_owned(),
                Value::Null,
            ),
            other => (
                other.to_string(),
                "the handshake failed".to_owned(),
                Value::Null,
            ),
        }
    }

    fn check_subprotocol(&mut self, answer: Option<&str>) {
        let token = self.token;
        match (self.args.bearer, answer) {
            (false, Some("jwt-auth")) => {
                self.push(
                    "subprotocol",
                    Status::Ok,
                    "answered jwt-auth (the marker, not the token)",
                );
            }
            (false, None) => self.fail(
                "subprotocol",
                "server answered no subprotocol: browsers will refuse this handshake",
                "the client offered `jwt-auth, jwt.<token>`: the server must answer \
                 `Sec-WebSocket-Protocol: jwt-auth` (or a proxy strips the header)",
            ),
            (false, Some(answer))
                if answer.starts_with("jwt.")
                    || answer.starts_with("bearer.")
                    || answer.contains(token) =>
            {
                self.fail(
                    "subprotocol",
                    "!!! the server ECHOED THE TOKEN PROTOCOL in its answer: the token now sits in a \
                     response header, seen by every proxy and log on the way !!!",
                    "the server picks the token-carrying protocol; it must answer the marker \
                     `jwt-auth` and never the protocol that carries the token",
                );
                if let Some(step) = self.steps.last_mut() {
                    step.data = json!({ "answer_carries_token": true });
                }
            }
            (false, Some(other)) => self.fail(
                "subprotocol",
                format!("server answered {other:?}, which the client did not offer"),
                "browsers refuse an answer they did not offer: answer `jwt-auth`",
            ),
            (true, None) => {
                self.push(
                    "subprotocol",
                    Status::Ok,
                    "none offered (--bearer), none answered",
                );
            }
            (true, Some(other)) => self.fail(
                "subprotocol",
                format!("server answered {other:?} although the client offered none"),
                "browsers refuse a subprotocol answer they did not ask for",
            ),
        }
    }

    /// The next text frame, answering pings on the way; `Err` describes why there is none.
    async fn next_text(&self, ws: &mut RawConnection, wait: Duration) -> Result<String, Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, ws.recv()).await {
                Err(_) => return Err(Ended::Timeout),
                Ok(Ok(None)) => return Err(Ended::Closed(None)),
                Ok(Err(e)) => return Err(Ended::Error(e.to_string())),
                Ok(Ok(Some(RawMessage::Text(text)))) => return Ok(text.to_string()),
                Ok(Ok(Some(RawMessage::Close(close)))) => return Err(Ended::Closed(close)),
                Ok(Ok(Some(RawMessage::Binary(_)))) => {
                    return Err(Ended::Error("a binary frame".to_owned()));
                }
                Ok(Ok(Some(_))) => {}
            }
        }
    }

    async fn established(&mut self, ws: &mut RawConnection) -> Option<Session> {
        let started = Instant::now();
        const NAME: &str = "connection_established";
        let text = match self.next_text(ws, self.step_timeout).await {
            Ok(text) => text,
            Err(ended) => {
                let (detail, cause) = ended.explain("connection_established");
                self.fail(NAME, detail, cause);
                self.skip_rest(NAME, "no session");
                return None;
            }
        };
        let elapsed = Some(round(ms(started.elapsed()), 2));
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Err(e) = agentwire_events::parse_outbound(&text) {
            self.fail(
                NAME,
                format!(
                    "the first frame is not a valid agentwire frame: {}",
                    e.message()
                ),
                "the server does not speak agentwire protocol version 1",
            );
            self.steps.last_mut().expect("pushed").data = json!({ "frame": truncate(&text, 500) });
            self.skip_rest(NAME, "no session");
            return None;
        }
        let payload = &value["payload"];
        match value["type"].as_str() {
            Some("connection_established") => {}
            Some("error") => {
                let code = payload["code"].as_str().unwrap_or("?").to_owned();
                let message = payload["message"].as_str().unwrap_or("").to_owned();
                let close = match self.next_text(ws, Duration::from_secs(2)).await {
                    Err(Ended::Closed(Some(close))) => Some(close.code().as_u16()),
                    _ => None,
                };
                let cause = match code.as_str() {
                    "token_expired" => "the token has expired: mint a fresh one".to_owned(),
                    "token_not_yet_valid" | "immature_signature" => {
                        "the token is not valid yet: check the clocks (nbf, iat)".to_owned()
                    }
                    "invalid_signature" => "the token is signed with a key the server does not \
                                            have (check --jwt-secret / --jwt-public-key)"
                        .to_owned(),
                    _ => format!("the server refused the token: {message}"),
                };
                self.fail(
                    NAME,
                    format!(
                        "the server answered error {code}: {message}{}",
                        close
                            .map(|c| format!(", then closed {}", close_meaning(c)))
                            .unwrap_or_default()
                    ),
                    cause,
                );
                self.steps.last_mut().expect("pushed").data =
                    json!({ "error_code": code, "close_code": close });
                self.skip_rest(NAME, "no session");
                return None;
            }
            other => {
                self.fail(
                    NAME,
                    format!(
                        "the first frame is {:?}, not connection_established",
                        other.unwrap_or("?")
                    ),
                    "the server does not speak agentwire protocol version 1",
                );
                self.skip_rest(NAME, "no session");
                return None;
            }
        }
        let heartbeat_ms = payload["heartbeat_interval_ms"].as_u64();
        let version = payload["protocol_version"].as_u64();
        let data = json!({
            "connection_id": payload["connection_id"],
            "user_id": payload["user_id"],
            "protocol_version": payload["protocol_version"],
            "heartbeat_interval_ms": payload["heartbeat_interval_ms"],
            "max_message_bytes": payload["max_message_bytes"],
            "stream": payload["stream"],
        });
        let detail = format!(
            "user {}, connection {}, heartbeat every {} ms",
            payload["user_id"].as_str().unwrap_or("?"),
            payload["connection_id"].as_str().unwrap_or("?"),
            heartbeat_ms.map_or("?".to_owned(), |h| h.to_string()),
        );
        let step = if version != Some(1) {
            let step = self.push(NAME, Status::Fail, detail);
            step.cause = Some(format!(
                "protocol_version is {}, this probe speaks 1",
                payload["protocol_version"]
            ));
            step
        } else if heartbeat_ms.is_some_and(|h| h >= 30_000) {
            let step = self.push(NAME, Status::Warn, detail);
            step.cause = Some(
                "the heartbeat is 30 s or more: load balancers with a 30 s idle timeout will \
                 drop idle connections"
                    .to_owned(),
            );
            step
        } else {
            self.push(NAME, Status::Ok, detail)
        };
        step.elapsed_ms = elapsed;
        step.data = data;
        Some(Session { heartbeat_ms })
    }

    /// One full run, checked by the run validator. `false` when the connection is gone.
    async fn agent_run(&mut self, ws: &mut RawConnection) -> bool {
        const NAME: &str = "agent_run";
        let message_id = "probe-run-1";
        let request = json!({
            "type": "start_agent",
            "message_id": message_id,
            "payload": { "user_request": self.args.request_text },
        });
        let started = Instant::now();
        if let Err(e) = ws.send_text(request.to_string()).await {
            self.fail(
                NAME,
                format!("sending start_agent: {e}"),
                "the connection broke",
            );
            return false;
        }
        let deadline = started + self.step_timeout;
        let mut texts: Vec<String> = Vec::new();
        let mut types: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = match self.next_text(ws, left).await {
                Ok(text) => text,
                Err(Ended::Timeout) => {
                    self.fail(
                        NAME,
                        format!(
                            "no terminal event within {:?}; got {} events: {}",
                            self.step_timeout,
                            texts.len(),
                            types.join(", ")
                        ),
                        "the agent is stuck or slow, or its events go to another connection",
                    );
                    return true;
                }
                Err(ended) => {
                    let (detail, cause) = ended.explain("the run's events");
                    self.fail(NAME, detail, cause);
                    return false;
                }
            };
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let kind = value["type"].as_str().unwrap_or("?").to_owned();
            if kind == "error" && value["reply_to"] == message_id {
                let code = value["payload"]["code"].as_str().unwrap_or("?");
                let message = value["payload"]["message"].as_str().unwrap_or("");
                let cause = match code {
                    "unsupported_message_type" | "unknown_message_type" => {
                        "the server has no agent handler for start_agent"
                    }
                    "rate_limited" => "the connection is rate limited",
                    _ => "the server refused the request",
                };
                self.fail(
                    NAME,
                    format!("start_agent answered error {code}: {message}"),
                    cause,
                );
                return true;
            }
            if value.get("run_id").is_none() {
                // Not part of the run (pong, heartbeat_ack, ...).
                continue;
            }
            let terminal = kind == "agent_completed" || kind == "agent_error";
            types.push(kind);
            texts.push(text);
            if terminal {
                break;
            }
        }
        let took = started.elapsed();
        let elapsed = Some(round(ms(took), 2));
        let data = json!({ "events": types });
        match agentwire_events::validate_run_json(texts.iter().map(String::as_str)) {
            Ok(summary) => {
                self.run_time = Some(took);
                let detail = format!(
                    "{} events, {} -> {}, run {}",
                    summary.events,
                    types.first().map_or("?", String::as_str),
                    summary.terminal,
                    summary.run_id
                );
                let step = if summary.terminal.as_str() == "agent_error" {
                    let step = self.push(NAME, Status::Warn, detail);
                    step.cause =
                        Some("the run is well-formed, but the agent reported an error".to_owned());
                    step
                } else {
                    self.push(NAME, Status::Ok, detail)
                };
                step.elapsed_ms = elapsed;
                step.data = data;
            }
            Err(violation) => {
                self.fail(
                    NAME,
                    format!(
                        "not a well-formed run: event {}: {}",
                        violation.index(),
                        violation.message()
                    ),
                    format!("the server broke run rule {}", violation.code()),
                );
                let step = self.steps.last_mut().expect("pushed");
                step.elapsed_ms = elapsed;
                step.data = data;
            }
        }
        true
    }

    /// A WebSocket ping and a `ping` message, each timed. `false` when the connection is gone.
    async fn ping(&mut self, ws: &mut RawConnection) -> bool {
        const NAME: &str = "ping";
        let payload: &[u8] = b"agentwire-probe";
        let started = Instant::now();
        if ws.send_ping(payload.to_vec()).await.is_err() {
            self.fail(NAME, "sending a ping failed", "the connection broke");
            return false;
        }
        let ws_rtt = loop {
            match timeout(self.step_timeout, ws.recv()).await {
                Ok(Ok(Some(RawMessage::Pong(data)))) if data == payload => {
                    break Some(started.elapsed());
                }
                Ok(Ok(Some(RawMessage::Close(_)) | None) | Err(_)) => {
                    self.fail(
                        NAME,
                        "the connection closed while waiting for a pong",
                        "the server closed",
                    );
                    return false;
                }
                Ok(Ok(Some(_))) => {}
                Err(_) => break None,
            }
        };
        let started = Instant::now();
        let request = json!({ "type": "ping", "message_id": "probe-ping-1" });
        if ws.send_text(request.to_string()).await.is_err() {
            self.fail(
                NAME,
                "sending a ping message failed",
                "the connection broke",
            );
            return false;
        }
        let app_rtt = loop {
            match self.next_text(ws, self.step_timeout).await {
                Ok(text) => {
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if value["type"] == "pong" {
                        break Some(started.elapsed());
                    }
                    if value["type"] == "error" && value["reply_to"] == "probe-ping-1" {
                        break None;
                    }
                }
                Err(Ended::Timeout) => break None,
                Err(ended) => {
                    let (detail, cause) = ended.explain("the pong");
                    self.fail(NAME, detail, cause);
                    return false;
                }
            }
        };
        let data = json!({
            "websocket_ping_ms": ws_rtt.map(|d| round(ms(d), 3)),
            "ping_message_ms": app_rtt.map(|d| round(ms(d), 3)),
        });
        let show =
            |d: Option<Duration>| d.map_or("none".to_owned(), |d| format!("{:.2} ms", ms(d)));
        let detail = format!(
            "WebSocket ping {}, ping message {}",
            show(ws_rtt),
            show(app_rtt)
        );
        let step = match (ws_rtt, app_rtt) {
            (Some(_), Some(_)) => self.push(NAME, Status::Ok, detail),
            (None, _) => {
                let step = self.push(NAME, Status::Fail, detail);
                step.cause = Some("the server does not answer WebSocket pings".to_owned());
                step
            }
            (Some(_), None) => {
                let step = self.push(NAME, Status::Fail, detail);
                step.cause =
                    Some("the server does not answer the ping message with pong".to_owned());
                step
            }
        };
        step.data = data;
        true
    }

    /// Stays idle `--hold-secs`, answering the server's pings. `false` when the connection
    /// closed.
    async fn hold(&mut self, ws: &mut RawConnection, session: &Session) -> bool {
        const NAME: &str = "hold";
        let hold = Duration::from_secs(self.args.hold_secs);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + hold;
        let mut pings = 0u64;
        let mut frames = 0u64;
        let ended = loop {
            match tokio::time::timeout_at(deadline, ws.recv()).await {
                Err(_) => break None,
                Ok(Ok(Some(RawMessage::Ping(_)))) => pings += 1,
                Ok(Ok(Some(RawMessage::Text(_)))) => frames += 1,
                Ok(Ok(Some(RawMessage::Close(close)))) => {
                    break Some(close.map(|c| c.code().as_u16()));
                }
                Ok(Ok(Some(_))) => {}
                Ok(Err(_) | Ok(None)) => break Some(None),
            }
        };
        let held = started.elapsed();
        let data = json!({
            "held_s": round(held.as_secs_f64(), 1),
            "server_pings": pings,
            "text_frames": frames,
        });
        match ended {
            None => {
                let heartbeat = session.heartbeat_ms.map(Duration::from_millis);
                let detail = format!("idle {} s, {pings} server pings answered", hold.as_secs());
                let step = if pings == 0
                    && heartbeat.is_some_and(|h| hold > h + Duration::from_secs(2))
                {
                    let step = self.push(NAME, Status::Warn, detail);
                    step.cause =
                        Some("no server ping although the heartbeat interval passed".to_owned());
                    step
                } else {
                    self.push(NAME, Status::Ok, detail)
                };
                step.data = data;
                true
            }
            Some(code) => {
                let code = code.unwrap_or(1006);
                let secs = held.as_secs_f64();
                let near = |t: f64| (secs - t).abs() <= 3.0;
                let cause = match code {
                    1006 if near(30.0) || near(60.0) || near(100.0) || near(120.0) => format!(
                        "a load balancer idle timeout (common defaults: 30 s, 60 s): the \
                         connection dropped after {secs:.0} s without a close frame; keep the \
                         server heartbeat below it (now {} ms) or raise the timeout",
                        session
                            .heartbeat_ms
                            .map_or("?".to_owned(), |h| h.to_string())
                    ),
                    1006 => "the network dropped the connection without a close frame (a proxy, \
                             NAT, or the server died)"
                        .to_owned(),
                    1001 => "the server is shutting down or redeploying".to_owned(),
                    4401 => {
                        "the token expired during the hold: send auth_refresh before exp".to_owned()
                    }
                    _ => close_meaning(code),
                };
                self.fail(
                    NAME,
                    format!("closed after {secs:.1} s: {}", close_meaning(code)),
                    cause,
                );
                let step = self.steps.last_mut().expect("pushed");
                step.data = data;
                step.data["close_code"] = json!(code);
                false
            }
        }
    }

    async fn close(&mut self, ws: &mut RawConnection) {
        const NAME: &str = "close";
        let started = Instant::now();
        let close = CloseInfo::new(CloseCode::NormalClosure, "agentwire probe done");
        if ws.send_close(Some(close)).await.is_err() {
            self.push(NAME, Status::Warn, "the connection was already closed");
            return;
        }
        let answer = loop {
            match timeout(self.step_timeout, ws.recv()).await {
                Ok(Ok(Some(RawMessage::Close(close)))) => {
                    break Ok(close.map(|c| c.code().as_u16()));
                }
                Ok(Ok(Some(_))) => {}
                Ok(Err(_) | Ok(None)) => break Err("the connection ended without a close frame"),
                Err(_) => break Err("no close frame in time"),
            }
        };
        let step = match answer {
            Ok(code) => self.push(
                NAME,
                Status::Ok,
                format!(
                    "closed 1000, server answered {}",
                    code.map_or("no code".to_owned(), |c| c.to_string())
                ),
            ),
            Err(why) => {
                let step = self.push(NAME, Status::Warn, why);
                step.cause = Some("the server does not complete the closing handshake".to_owned());
                step
            }
        };
        step.elapsed_ms = Some(round(ms(started.elapsed()), 2));
    }
}

/// Why no frame came.
enum Ended {
    Timeout,
    Closed(Option<CloseInfo>),
    Error(String),
}

impl Ended {
    fn explain(&self, waiting_for: &str) -> (String, String) {
        match self {
            Ended::Timeout => (
                format!("no {waiting_for} frame in time"),
                "the server accepted the WebSocket but sends nothing: not an agentwire server?"
                    .to_owned(),
            ),
            Ended::Closed(Some(close)) => {
                let code = close.code().as_u16();
                (
                    format!(
                        "closed {} (reason {:?}) while waiting for {waiting_for}",
                        close_meaning(code),
                        close.reason()
                    ),
                    match code {
                        4401 => "authentication failed".to_owned(),
                        4409 => {
                            "this user already has the maximum number of connections".to_owned()
                        }
                        1001 => "the server is shutting down".to_owned(),
                        _ => close_meaning(code),
                    },
                )
            }
            Ended::Closed(None) => (
                format!(
                    "the connection ended without a close frame while waiting for {waiting_for}"
                ),
                "the server or a proxy dropped the connection".to_owned(),
            ),
            Ended::Error(e) => (
                format!("reading {waiting_for}: {e}"),
                "the connection broke, or the server broke the WebSocket protocol".to_owned(),
            ),
        }
    }
}

/// What a close code means, for reports: `1006 abnormal_closure: ...`.
fn close_meaning(code: u16) -> String {
    let code = CloseCode::from_u16(code);
    format!("{} {}: {}", code.as_u16(), code.name(), code.description())
}

/// A JSON error body's explanation: `code: message` from `{error: {code, message}}`,
/// `{code, message}`, `{detail}` or `{message}`.
fn json_explanation(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let inner = value
        .get("error")
        .filter(|e| e.is_object())
        .unwrap_or(&value);
    let message = inner
        .get("message")
        .or_else(|| inner.get("detail"))
        .or_else(|| value.get("error").filter(|e| e.is_string()))?
        .as_str()?;
    Some(match inner.get("code").and_then(Value::as_str) {
        Some(code) => format!("{code}: {message}"),
        None => message.to_owned(),
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations() {
        assert_eq!(
            json_explanation(
                r#"{"error":{"code":"marker_missing","message":"offer jwt-auth too"}}"#
            )
            .as_deref(),
            Some("marker_missing: offer jwt-auth too")
        );
        assert_eq!(
            json_explanation(r#"{"detail":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(json_explanation("not json"), None);
        assert_eq!(truncate("héllo", 2), "h...");
    }
}
