//! The connections to agent services: hyper's HTTP/1.1 client connections
//! (`hyper::client::conn::http1`: keep-alive, chunked decoding and the rest are hyper's), each
//! driven by the run that uses it, and a bounded pool of idle ones per service address.
//!
//! A run takes an idle connection (or opens one), sends its request and reads the response on
//! its own task: it polls hyper's connection future (which writes the request and reads the
//! socket) each time it polls for the next body frame, so no other task is woken and no chunk
//! crosses between tasks. A connection goes back to the pool only when its response was read
//! to its end and hyper is ready for the next request on it (keep-alive, no `Connection:
//! close`); any other connection is dropped, which closes it.
//!
//! Nobody polls an idle connection. Before reusing one, the pool polls hyper's connection
//! future once (with a no-op waker): a service that closed it (its own keep-alive timeout, a
//! restart) has sent FIN, hyper reads the end of stream and the future ends, and the
//! connection is discarded. The check sees what the runtime's I/O driver has seen, so a close
//! still in flight when the request goes out is not seen: then, if hyper gives the request back
//! unwritten, it is sent on another connection (it never reached the service, so this cannot
//! start a run twice); if it was written and the connection ends before any response byte,
//! the run fails with `agent_connection_failed` (recoverable) and is not sent again, since the
//! service may have started it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::AgentFailure;

/// The request body type.
pub(crate) type RequestBody = Full<Bytes>;

/// One HTTP/1.1 connection to a service, driven by whoever holds it.
pub(crate) struct Conn {
    sender: SendRequest<RequestBody>,
    /// hyper's connection state machine (reads and writes the socket); `None` once it ended.
    connection: Option<Connection<TokioIo<TcpStream>, RequestBody>>,
    /// Whether the connection served a response before this one (it came from the pool).
    reused: bool,
}

/// Why [`Conn::send`] got no response head.
pub(crate) enum SendError {
    /// hyper gave the request back: it was never written (the connection closed first).
    NotSent(Box<Request<RequestBody>>),
    /// The request may have been written; the connection failed before the response head.
    Failed(hyper::Error),
}

impl Conn {
    /// Whether the connection served a response before.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// Drives hyper's connection: writes and reads what the socket takes and holds now,
    /// registering `cx` for the socket's readiness. Once it ends, it is dropped (closing the
    /// socket, and failing a body still open).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(connection) = &mut self.connection
            && let Poll::Ready(result) = Pin::new(connection).poll(cx)
        {
            if let Err(error) = result {
                tracing::debug!(%error, "agent service connection ended with an error");
            }
            self.connection = None;
        }
    }

    /// Sends `request` and waits for the response head, driving the connection meanwhile.
    pub(crate) async fn send(
        &mut self,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut response = std::pin::pin!(self.sender.try_send_request(request));
        std::future::poll_fn(|cx| {
            self.drive(cx);
            match response.as_mut().poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(response)),
                Poll::Ready(Err(mut error)) => Poll::Ready(Err(match error.take_message() {
                    Some(request) => SendError::NotSent(Box::new(request)),
                    None => SendError::Failed(error.into_error()),
                })),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// The next frame of `body` (this connection's response), driving the connection first.
    pub(crate) fn poll_frame(
        &mut self,
        body: &mut Incoming,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.drive(cx);
        Pin::new(body).poll_frame(cx)
    }

    /// [`poll_frame`](Self::poll_frame) as a future.
    pub(crate) fn frame<'a>(
        &'a mut self,
        body: &'a mut Incoming,
    ) -> impl Future<Output = Option<Result<Frame<Bytes>, hyper::Error>>> + 'a {
        std::future::poll_fn(move |cx| self.poll_frame(body, cx))
    }

    /// Polls the connection once without a waker: whether it is still open and hyper is ready
    /// for a request on it.
    fn check(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop()));
        self.connection.is_some() && self.sender.is_ready()
    }
}

/// Counters of the pools, for the metrics.
#[derive(Default)]
pub(crate) struct PoolStats {
    /// Connections opened.
    pub(crate) opened: AtomicU64,
    /// Requests sent on a connection from the pool.
    pub(crate) reused: AtomicU64,
    /// Idle connections found closed (by the service) when taken or swept.
    pub(crate) closed_idle: AtomicU64,
    /// Requests hyper gave back unwritten from a pooled connection, sent again on another.
    pub(crate) resent: AtomicU64,
}

/// The idle connections to one service address (`host:port`).
pub(crate) struct Pool {
    host: String,
    port: u16,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    stats: Arc<PoolStats>,
    state: Mutex<State>,
    /// Itself, for the sweeping task.
    this: Weak<Pool>,
}

#[derive(Default)]
struct State {
    /// Oldest first: taken from the back (the most recently used, least likely closed).
    idle: VecDeque<Idle>,
    /// Whether a task sweeps expired and closed connections out.
    sweeping: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The settings every pool shares.
#[derive(Clone)]
pub(crate) struct PoolConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) stats: Arc<PoolStats>,
}

impl Pool {
    /// The pool of `host:port` (`host` as in a URI: an IPv6 address in brackets).
    pub(crate) fn new(host: &str, port: u16, config: &PoolConfig) -> Arc<Pool> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Arc::new_cyclic(|this| Pool {
            host: host.to_owned(),
            port,
            connect_timeout: config.connect_timeout,
            max_idle: config.max_idle,
            idle_timeout: config.idle_timeout,
            stats: Arc::clone(&config.stats),
            state: Mutex::default(),
            this: this.clone(),
        })
    }

    /// The pools for `addresses` (`(host, port)`), one per distinct address.
    pub(crate) fn for_addresses<'a>(
        addresses: impl IntoIterator<Item = (&'a str, u16)>,
        config: &PoolConfig,
    ) -> HashMap<(String, u16), Arc<Pool>> {
        let mut pools = HashMap::new();
        for (host, port) in addresses {
            pools
                .entry((host.to_owned(), port))
                .or_insert_with(|| Pool::new(host, port, config));
        }
        pools
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection that is still open, if any (the expired and the closed are
    /// dropped on the way).
    pub(crate) fn take(&self) -> Option<Conn> {
        loop {
            let idle = {
                let mut state = self.lock();
                let idle = state.idle.pop_back()?;
                if idle.since.elapsed() >= self.idle_timeout {
                    // The rest are older still.
                    let expired = std::mem::take(&mut state.idle);
                    drop(state);
                    drop(expired);
                    return None;
                }
                idle
            };
            let mut conn = idle.conn;
            if conn.check() {
                conn.reused = true;
                self.stats.reused.fetch_add(1, Relaxed);
                return Some(conn);
            }
            self.stats.closed_idle.fetch_add(1, Relaxed);
        }
    }

    /// A new connection, or `Unreachable` when it cannot be made within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<Conn, AgentFailure> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "agent service connect failed");
                return Err(AgentFailure::Unreachable);
            }
            Err(_) => return Err(AgentFailure::Unreachable),
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| AgentFailure::Connection)?;
        self.stats.opened.fetch_add(1, Relaxed);
        Ok(Conn {
            sender,
            connection: Some(connection),
            reused: false,
        })
    }

    /// Keeps `conn` for the next request if its response was read to the end and hyper is
    /// ready for another on it; else drops (closes) it. Past the idle limit, the oldest idle
    /// connection is closed.
    pub(crate) fn put(&self, mut conn: Conn) {
        if !conn.check() {
            return;
        }
        let oldest = {
            let mut state = self.lock();
            state.idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
            let oldest = if state.idle.len() > self.max_idle {
                state.idle.pop_front()
            } else {
                None
            };
            if !state.sweeping {
                state.sweeping = true;
                tokio::spawn(sweep(self.this.clone(), self.idle_timeout));
            }
            oldest
        };
        drop(oldest);
    }

    /// Idle connections now.
    pub(crate) fn idle(&self) -> usize {
        self.lock().idle.len()
    }
}

/// Closes a pool's idle connections as they expire or as their service closes them, every
/// `period`, while the pool has any.
async fn sweep(pool: Weak<Pool>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut state = pool.lock();
        let before = state.idle.len();
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(before);
        for mut idle in std::mem::take(&mut state.idle) {
            if idle.since.elapsed() >= pool.idle_timeout {
                dropped.push(idle);
            } else if idle.conn.check() {
                kept.push_back(idle);
            } else {
                pool.stats.closed_idle.fetch_add(1, Relaxed);
                dropped.push(idle);
            }
        }
        state.idle = kept;
        let empty = state.idle.is_empty();
        if empty {
            state.sweeping = false;
        }
        drop(state);
        drop(dropped);
        if empty {
            return;
        }
    }
}
