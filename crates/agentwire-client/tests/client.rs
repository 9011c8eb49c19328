//! The client against the real server over loopback: parallel runs kept apart, cancel, typed
//! errors (4401 with its reason, 4409, 1009), resume after a cut or a silent connection with
//! every `seq` exactly once, a reset after a server restart, token refresh past `exp`, and raw
//! mode.

#[path = "../../agentwire-server/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_auth::Algorithm;
use agentwire_auth::testing::{Claims, SigningKey};
use agentwire_client::{
    Client, CloseCode, CloseInfo, ConnectionEvent, Credentials, Error, Events, Frame, MessageType,
    RawConnection, RawMessage, Reconnect, ResumeOutcome, RunOutcome, RunRequest,
};
use agentwire_server::{Config, DemoAgent, Server};
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

#[test]
fn handles_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send::<agentwire_client::RunHandle>();
    send::<Events>();
    send::<RawConnection>();
    send_sync::<Error>();
}

fn credentials(sub: &str) -> Credentials {
    Credentials::subprotocol(token(sub).into_secret())
}

async fn demo_server(step: Duration) -> TestServer {
    start_with(
        Server::builder(validator())
            .config(
                Config::builder()
                    .rate_limit_per_sec(0)
                    .build()
                    .expect("config"),
            )
            .handler(DemoAgent::new(step)),
    )
    .await
}

/// The next event of a subscription that `pick` accepts, within the patience bound.
async fn next_matching<T>(
    events: &mut Events,
    mut pick: impl FnMut(ConnectionEvent) -> Option<T>,
) -> T {
    timeout(PATIENCE, async {
        loop {
            let event = events.next().await.expect("the subscription is open");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event in time")
}

fn seqs(events: &[Frame]) -> Vec<u64> {
    events.iter().map(|e| e.seq().expect("a seq")).collect()
}

/// Each seq once, consecutive (one user, one run at a time on its stream).
fn assert_consecutive(seqs: &[u64]) {
    let first = seqs[0];
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every seq exactly once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_parallel_on_one_connection_keep_their_events_apart() {
    let server = demo_server(Duration::from_millis(100)).await;
    let client = Client::connect(&server.url("/ws"), credentials("parallel"))
        .await
        .expect("connect");
    let established = client.established();
    assert_eq!(established.user_id, "parallel");
    assert_eq!(established.protocol_version, 1);

    // Eight runs at once from eight tasks, half of them chat turns, all on one connection.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("request number {i}");
            let run = if i % 2 == 0 {
                client.start_agent(text.as_str()).await
            } else {
                client.user_message(text.as_str()).await
            }
            .expect("started");
            let (events, result) = timeout(PATIENCE, run.collect())
                .await
                .expect("in time")
                .expect("the run ends");
            (text, events, result)
        }));
    }
    let mut run_ids = BTreeSet::new();
    let mut ranges = Vec::new();
    for task in tasks {
        let (text, events, result) = task.await.expect("task");
        // One run's events only: one run id, the validator's rules, its own request echoed.
        agentwire_events::validate_run(&events).expect("a well-formed run");
        assert!(
            events
                .iter()
                .all(|e| e.run_id() == Some(result.run_id.as_str()))
        );
        let agentwire_client::Payload::AgentStarted(started) = events[0].payload() else {
            panic!("agent_started first");
        };
        assert_eq!(started.user_request, text);
        let done = result.clone().completed().expect("completed");
        assert_eq!(done.result["response"], format!("You said: {text}"));
        assert!(run_ids.insert(result.run_id.clone()), "distinct runs");
        let seqs = seqs(&events);
        ranges.push((seqs[0], *seqs.last().expect("events")));
    }
    assert_eq!(run_ids.len(), 8);
    // The runs were in flight together: their seq ranges interleave on the user's stream.
    ranges.sort();
    assert!(
        ranges.windows(2).any(|w| w[1].0 < w[0].1),
        "runs overlapped: {ranges:?}"
    );
    // The position follows the stream: 8 runs of 5 events.
    assert_eq!(client.position().seq, established.stream.seq + 40);

    // A run another connection of the same user starts reaches this one as connection
    // events, not through any handle; so does a notification.
    let mut events = client.events();
    let other = Client::connect(&server.url("/ws"), credentials("parallel"))
        .await
        .expect("second connection");
    let theirs = other
        .run_checked("from the other connection")
        .await
        .expect("a run");
    let mut seen = Vec::new();
    while seen.len() < theirs.events.len() {
        seen.push(
            next_matching(&mut events, |e| match e {
                ConnectionEvent::Event(frame) => Some(frame),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(seen, theirs.events);
    server.server.emitter().emit(
        "parallel",
        agentwire_server::Event::system_message("maintenance at noon"),
    );
    let notification = next_matching(&mut events, |e| match e {
        ConnectionEvent::Event(frame) => Some(frame),
        _ => None,
    })
    .await;
    assert_eq!(notification.message_type(), MessageType::SystemMessage);
    other.close().await;

    // The harness helper: a checked run, and a ping.
    let checked = client
        .run_checked(RunRequest::new("checked").with_agent_name("auditor"))
        .await
        .expect("a well-formed run");
    assert_eq!(checked.summary.events, 5);
    assert_eq!(checked.summary.terminal, MessageType::AgentCompleted);
    assert_eq!(checked.events.len(), 5);
    client.ping().await.expect("pong");
    client.close().await;
    assert!(matches!(client.closed(), Some(Error::ClientClosed)));
    assert!(matches!(
        client.start_agent("after close").await,
        Err(Error::ClientClosed)
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_only_that_run_with_cancelled() {
    let server = demo_server(Duration::from_millis(200)).await;
    let client = Client::connect(&server.url("/ws"), credentials("canceller"))
        .await
        .expect("connect");
    let keep = client.start_agent("keep going").await.expect("started");

    // Cancelled before its run id is known: the cancel goes out once agent_started names it.
    let early = client
        .start_agent("cancel me early")
        .await
        .expect("started");
    early.cancel().expect("cancel");

    // Cancelled after its first event.
    let mut late = client.start_agent("cancel me late").await.expect("started");
    let first = timeout(PATIENCE, late.next())
        .await
        .expect("in time")
        .expect("agent_started");
    assert_eq!(first.message_type(), MessageType::AgentStarted);
    assert_eq!(late.run_id().as_deref(), first.run_id());
    late.cancel().expect("cancel");

    for run in [early, late] {
        let result = timeout(PATIENCE, run.result())
            .await
            .expect("in time")
            .expect("ends");
        match &result.outcome {
            RunOutcome::Failed(error) => assert_eq!(error.code, "cancelled"),
            other => panic!("expected agent_error cancelled, got {other:?}"),
        }
        let error = result.completed().expect_err("not completed");
        assert_eq!(error.code(), "cancelled");
    }
    let kept = timeout(PATIENCE, keep.result())
        .await
        .expect("in time")
        .expect("ends");
    assert!(matches!(kept.outcome, RunOutcome::Completed(_)));
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_with_the_servers_codes() {
    let server = start_with(
        Server::builder(validator())
            .config(
                Config::builder()
                    .max_connections_per_user(1)
                    .max_message_bytes(4096)
                    .build()
                    .expect("config"),
            )
            .handler(DemoAgent::new(Duration::ZERO)),
    )
    .await;
    let url = server.url("/ws");

    // A token signed with another key: 4401 with the reason, and the error frame before it.
    let foreign = SigningKey::hmac(
        Algorithm::HS256,
        "another secret of at least thirty-two bytes",
    )
    .expect("key");
    let forged = Claims::new("mallory").sign(&foreign).expect("sign");
    for credentials in [
        Credentials::subprotocol(forged.expose_secret()),
        Credentials::bearer(forged.expose_secret()),
    ] {
        let error = Client::connect(&url, credentials)
            .await
            .expect_err("refused");
        assert_eq!(
            error.close_code(),
            Some(CloseCode::from_u16(4401)),
            "{error}"
        );
        assert_eq!(error.code(), "invalid_signature");
        assert!(error.is_auth_failure());
        let Error::Closed {
            close,
            error: reply,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(close.reason(), "invalid_signature");
        assert_eq!(
            reply.as_ref().map(|r| r.code.as_ref()),
            Some("invalid_signature")
        );
        assert!(!error.to_string().contains(forged.expose_secret()));
    }
    let expired = Claims::new("late")
        .expired_for(Duration::from_secs(3600))
        .sign(&hmac_key())
        .expect("sign");
    let error = Client::connect(&url, Credentials::subprotocol(expired.into_secret()))
        .await
        .expect_err("refused");
    assert_eq!(
        (error.code(), error.close_code().map(|c| c.as_u16())),
        ("token_expired", Some(4401))
    );

    // The user's second connection: 4409 too_many_connections.
    let first = Client::connect(&url, credentials("solo"))
        .await
        .expect("connect");
    let error = Client::connect(&url, credentials("solo"))
        .await
        .expect_err("over the limit");
    assert_eq!(
        error.close_code().map(|c| c.as_u16()),
        Some(4409),
        "{error}"
    );
    assert_eq!(error.code(), "too_many_connections");
    assert!(error.is_retryable());

    // A request over max_message_bytes: the server closes 1009 and the run says so.
    let mut events = first.events();
    let run = first.start_agent("x".repeat(8192)).await.expect("written");
    let error = timeout(PATIENCE, run.result())
        .await
        .expect("in time")
        .expect_err("closed");
    assert_eq!(
        error.close_code().map(|c| c.as_u16()),
        Some(1009),
        "{error}"
    );
    assert_eq!(error.code(), "message_too_big");
    let closed = next_matching(&mut events, |e| match e {
        ConnectionEvent::Closed { error } => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(
        closed.and_then(|e| e.close_code()).map(|c| c.as_u16()),
        Some(1009)
    );
    assert!(first.closed().is_some());

    // HTTP refusals before the upgrade carry the server's code.
    let error = Client::connect(&format!("{url}?epoch=x&since=-1"), credentials("q"))
        .await
        .expect_err("400");
    assert_eq!(error.code(), "invalid_resume_query", "{error}");
    let error = Client::connect("http://127.0.0.1:1/ws", credentials("q"))
        .await
        .expect_err("not ws");
    assert_eq!(error.code(), "invalid_url");
    server.stop().await;
}

/// A TCP proxy the test can cut: `cut` drops every connection it carries, `stall` makes them
/// stop forwarding (sockets stay open, like a dead peer behind a NAT), `down` refuses new
/// ones (accepts and drops them).
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<u64>,
    stall: watch::Sender<u64>,
    down: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (cut, _) = watch::channel(0u64);
        let (stall, _) = watch::channel(0u64);
        let (down, _) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let proxy = Proxy {
            addr,
            cut,
            stall,
            down,
            accepted: Arc::clone(&accepted),
        };
        let (cut_rx, stall_rx, down_rx) = (
            proxy.cut.subscribe(),
            proxy.stall.subscribe(),
            proxy.down.subscribe(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *down_rx.borrow() {
                    drop(client);
                    continue;
                }
                let generation = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cut, stall) = (cut_rx.clone(), stall_rx.clone());
                tokio::spawn(carry(client, server, generation, cut, stall));
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Drops every connection accepted so far.
    fn cut(&self) {
        let now = self.accepted.load(Ordering::SeqCst);
        self.cut.send_replace(now);
    }

    /// Freezes every connection accepted so far.
    fn stall(&self) {
        let now = self.accepted.load(Ordering::SeqCst);
        self.stall.send_replace(now);
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

async fn carry(
    client: TcpStream,
    server: TcpStream,
    generation: u64,
    mut cut: watch::Receiver<u64>,
    stall: watch::Receiver<u64>,
) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let pumps = async {
        tokio::join!(
            pump(client_read, server_write, generation, stall.clone()),
            pump(server_read, client_write, generation, stall),
        )
    };
    let killed = async {
        while *cut.borrow_and_update() < generation {
            if cut.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    // Either side ending or the cut drops all four halves: both peers see the connection end.
    tokio::select! {
        _ = pumps => {}
        () = killed => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    generation: u64,
    stall: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *stall.borrow() >= generation {
            // Silent but open: hold the sockets until the cut.
            std::future::pending::<()>().await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *stall.borrow() >= generation {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resumed_and_the_run_completes_with_every_seq_once() {
    let server = demo_server(Duration::from_millis(150)).await;
    let proxy = Proxy::start(server.addr).await;
    let client = Client::builder(proxy.url(), credentials("cut"))
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(50)))
        .connect()
        .await
        .expect("connect");
    let mut events = client.events();
    let mut run = client
        .start_agent("survive the cut")
        .await
        .expect("started");
    let mut received = vec![
        timeout(PATIENCE, run.next())
            .await
            .expect("in time")
            .expect("agent_started"),
    ];

    // Cut, and keep the proxy down long enough for the run to emit while the user is away.
    proxy.set_down(true);
    proxy.cut();
    let error = next_matching(&mut events, |e| match e {
        ConnectionEvent::Disconnected { error } => Some(error),
        _ => None,
    })
    .await;
    assert!(error.is_retryable(), "{error}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.set_down(false);
    let resume = next_matching(&mut events, |e| match e {
        ConnectionEvent::Reconnected { resume, .. } => Some(resume),
        _ => None,
    })
    .await;
    let ResumeOutcome::Resumed {
        replayed, from_seq, ..
    } = resume
    else {
        panic!("expected resumed, got {resume:?}");
    };
    assert!(replayed >= 1, "events emitted while away are replayed");
    assert_eq!(from_seq, received[0].seq().expect("seq") + 1);

    while let Some(event) = timeout(PATIENCE, run.next()).await.expect("in time") {
        received.push(event);
    }
    let result = run.result().await.expect("the run completes");
    assert!(matches!(result.outcome, RunOutcome::Completed(_)));
    agentwire_events::validate_run(&received).expect("one well-formed run");
    assert_eq!(received.len(), 5);
    assert_consecutive(&seqs(&received));
    assert_eq!(client.position().seq, result.frame.seq().expect("seq"));
    // The new connection works for new runs too.
    client.run_checked("after the cut").await.expect("a run");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_found_dead_and_resumed() {
    let server = demo_server(Duration::from_millis(150)).await;
    let proxy = Proxy::start(server.addr).await;
    let client = Client::builder(proxy.url(), credentials("silent"))
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(50)))
        .liveness_timeout(Some(Duration::from_millis(600)))
        .connect()
        .await
        .expect("connect");
    let mut events = client.events();
    let mut run = client
        .start_agent("survive the silence")
        .await
        .expect("started");
    let mut received = vec![
        timeout(PATIENCE, run.next())
            .await
            .expect("in time")
            .expect("agent_started"),
    ];
    // No FIN, no RST: only the silence tells.
    proxy.stall();
    let error = next_matching(&mut events, |e| match e {
        ConnectionEvent::Disconnected { error } => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(error.code(), "connection_lost", "{error}");
    let resume = next_matching(&mut events, |e| match e {
        ConnectionEvent::Reconnected { resume, .. } => Some(resume),
        _ => None,
    })
    .await;
    assert!(
        matches!(resume, ResumeOutcome::Resumed { .. }),
        "{resume:?}"
    );
    while let Some(event) = timeout(PATIENCE, run.next()).await.expect("in time") {
        received.push(event);
    }
    run.result().await.expect("completes");
    agentwire_events::validate_run(&received).expect("one well-formed run");
    assert_consecutive(&seqs(&received));
    proxy.cut();
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_a_reset_and_the_runs_in_flight_are_told() {
    let first = demo_server(Duration::from_millis(300)).await;
    let addr = first.addr;
    let client = Client::builder(first.url("/ws"), credentials("restart"))
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(50)))
        .connect()
        .await
        .expect("connect");
    let epoch = client.established().stream.epoch;
    let mut events = client.events();
    let mut run = client
        .start_agent("interrupted by a restart")
        .await
        .expect("started");
    timeout(PATIENCE, run.next())
        .await
        .expect("in time")
        .expect("agent_started");

    // The server goes away (1001) and a new process takes the same port: a new epoch.
    first.stop().await;
    let second = serve_on(addr).await;
    let resume = next_matching(&mut events, |e| match e {
        ConnectionEvent::Reconnected { resume, .. } => Some(resume),
        _ => None,
    })
    .await;
    assert_eq!(
        resume,
        ResumeOutcome::Reset {
            reason: "epoch_changed".to_owned()
        }
    );
    let error = timeout(PATIENCE, run.result())
        .await
        .expect("in time")
        .expect_err("the run cannot be followed");
    assert_eq!(error.code(), "stream_reset");
    assert_ne!(client.position().epoch, epoch);
    client
        .run_checked("on the new server")
        .await
        .expect("a run");
    client.close().await;
    second.stop().await;
}

/// A demo server on `addr` (a port a stopped server used).
async fn serve_on(addr: SocketAddr) -> TestServer {
    let server = Server::builder(validator())
        .config(
            Config::builder()
                .rate_limit_per_sec(0)
                .build()
                .expect("config"),
        )
        .handler(DemoAgent::new(Duration::ZERO))
        .build();
    let mut listener = None;
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(bound) => {
                listener = Some(bound);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let listener = listener.expect("the port is free again");
    TestServer::from_listener(server, listener)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_a_connection_alive_past_the_first_tokens_exp() {
    let server = demo_server(Duration::ZERO).await;
    let url = server.url("/ws");
    let short = |sub: &str| {
        Claims::new(sub)
            .expires_at(unix_now() + 4)
            .sign(&hmac_key())
            .expect("sign")
            .into_secret()
    };
    let first_exp = unix_now() + 4;

    // Without a refresh the server closes 4401 token_expired, and the client says so.
    let unrefreshed = Client::connect(&url, Credentials::subprotocol(short("mortal")))
        .await
        .expect("connect");
    let mut gone = unrefreshed.events();

    // With one, every token is replaced before its exp.
    let minted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&minted);
    let client = Client::builder(&url, Credentials::subprotocol(short("renewed")))
        .refresh_with(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let token = short("renewed");
            async move { Ok::<_, std::convert::Infallible>(token) }
        })
        .connect()
        .await
        .expect("connect");
    let mut events = client.events();

    let closed = next_matching(&mut gone, |e| match e {
        ConnectionEvent::Closed { error } => Some(error),
        _ => None,
    })
    .await
    .expect("an error");
    assert_eq!(
        (closed.code(), closed.close_code().map(|c| c.as_u16())),
        ("token_expired", Some(4401))
    );

    let expires_at = next_matching(&mut events, |e| match e {
        ConnectionEvent::TokenRefreshed { expires_at } => Some(expires_at),
        ConnectionEvent::RefreshFailed { error } => panic!("refresh failed: {error}"),
        _ => None,
    })
    .await;
    assert!(expires_at.unix_millis() / 1000 >= first_exp as i64);
    // Well past the first token's exp, the connection still serves runs.
    while unix_now() <= first_exp + 2 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(client.closed().is_none(), "{:?}", client.closed());
    client.run_checked("still here").await.expect("a run");
    // A token for another user is refused, and the connection keeps its own.
    let error = client
        .refresh_token(short("someone-else"))
        .await
        .expect_err("refused");
    assert_eq!(error.code(), "subject_mismatch");
    let expires_at = client
        .refresh_token(short("renewed"))
        .await
        .expect("accepted");
    assert!(expires_at.unix_millis() > 0);
    client.ping().await.expect("still open");
    assert!(minted.load(Ordering::SeqCst) >= 1);
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_sends_any_frame_and_reads_what_comes_back() {
    let server = start_with(
        Server::builder(validator())
            .config(
                Config::builder()
                    .max_message_bytes(1024)
                    .build()
                    .expect("config"),
            )
            .handler(DemoAgent::new(Duration::ZERO)),
    )
    .await;
    let url = server.url("/ws");
    let open = |sub: &'static str| {
        let url = url.clone();
        async move {
            let (mut raw, response) = RawConnection::connect(&url, &credentials(sub))
                .await
                .expect("connect");
            assert_eq!(response.status, 101);
            assert_eq!(response.header("Sec-WebSocket-Protocol"), Some("jwt-auth"));
            let (_, established) = raw.read_established().await.expect("established");
            assert_eq!(established.user_id, sub);
            raw
        }
    };

    // Invalid JSON: an error frame with the position, and the connection stays open.
    let mut raw = open("raw-json").await;
    raw.send_text(r#"{"type": "ping",, "message_id": "m1"}"#)
        .await
        .expect("send");
    let reply = raw.recv_frame().await.expect("a valid frame");
    let agentwire_client::Payload::ErrorReply(error) = reply.payload() else {
        panic!("{reply:?}");
    };
    assert_eq!((error.code.as_ref(), error.line), ("invalid_json", Some(1)));
    raw.send_text(json!({"type": "ping", "message_id": "m2"}).to_string())
        .await
        .expect("send");
    assert_eq!(raw.recv_frame().await.expect("pong").reply_to(), Some("m2"));
    raw.send_ping(b"raw".to_vec()).await.expect("ping");
    assert!(matches!(raw.recv().await, Ok(Some(RawMessage::Pong(p))) if p == b"raw"));
    // A binary frame: 1003.
    raw.send_binary(vec![1, 2, 3]).await.expect("send");
    let error = raw.recv_text().await.expect_err("closed");
    assert_eq!(error.close_code().map(|c| c.as_u16()), Some(1003));

    // A text frame that is not UTF-8: 1007.
    let mut raw = open("raw-utf8").await;
    raw.send_text_bytes(vec![b'"', 0xff, 0xfe, b'"'])
        .await
        .expect("send");
    let error = raw.recv_text().await.expect_err("closed");
    assert_eq!(error.close_code().map(|c| c.as_u16()), Some(1007));

    // Over max_message_bytes: 1009.
    let mut raw = open("raw-big").await;
    raw.send_text("x".repeat(2048)).await.expect("send");
    let error = raw.recv_text().await.expect_err("closed");
    assert_eq!(error.code(), "message_too_big");

    // A clean close: the server answers 1000.
    let mut raw = open("raw-close").await;
    let answer = raw
        .close(CloseInfo::code_only(CloseCode::NormalClosure))
        .await
        .expect("answered");
    assert_eq!(answer.map(|c| c.code().as_u16()), Some(1000));

    // A token protocol without the marker: HTTP 400 with the server's code.
    let error = RawConnection::connect(
        &url,
        &Credentials::none().with_header(
            "Sec-WebSocket-Protocol",
            format!("jwt.{}", token("raw").expose_secret()),
        ),
    )
    .await
    .expect_err("400");
    let agentwire_client::Error::Upgrade(agentwire_client::UpgradeError::Refused(response)) =
        &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(response.status, 400);
    assert!(response.error_code().is_some(), "{}", response.body_text());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_position_resumes_in_a_new_client() {
    let server = demo_server(Duration::ZERO).await;
    let url = server.url("/ws");
    let client = Client::connect(&url, credentials("saver"))
        .await
        .expect("connect");
    client.run_checked("before leaving").await.expect("a run");
    let saved = client.position();
    client.close().await;
    await_active(server.addr, 0).await;

    // While nobody is connected, three notifications go to the user's stream.
    let emitter = server.server.emitter();
    for n in 0..3 {
        emitter.emit(
            "saver",
            agentwire_server::Event::system_message(format!("while away {n}")),
        );
    }
    let client = Client::builder(&url, credentials("saver"))
        .resume_from(saved.clone())
        .connect()
        .await
        .expect("connect");
    assert_eq!(
        client.established().resume,
        Some(ResumeOutcome::Resumed {
            replayed: 3,
            from_seq: saved.seq + 1,
            to_seq: saved.seq + 3
        })
    );
    // The first subscription has them, though they arrived before it was made.
    let mut events = client.events();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(
            next_matching(&mut events, |e| match e {
                ConnectionEvent::Event(frame) => Some(frame),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(seqs(&got), [saved.seq + 1, saved.seq + 2, saved.seq + 3]);
    assert_eq!(client.position().seq, saved.seq + 3);
    client.close().await;
    server.stop().await;
}
