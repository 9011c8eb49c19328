//! Process-wide counters, rendered in the Prometheus text format at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use agentwire_state::CloseCode;
use agentwire_types::MessageType;

const TYPES: usize = MessageType::ALL.len();

/// The server's counters. Hot counters are atomics; rarely hit labelled ones share a mutex.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) connections_active: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) handshakes_accepted: AtomicU64,
    pub(crate) runs_started: AtomicU64,
    pub(crate) events_emitted: AtomicU64,
    pub(crate) queue_drops: AtomicU64,
    frames_in: PerType,
    frames_out: PerType,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// WebSocket pings and pongs received from clients.
    pub(crate) control_frames_in: AtomicU64,
    /// Events sent again to resuming connections.
    events_replayed: AtomicU64,
    /// Batches the publish API accepted.
    pub(crate) publish_batches: AtomicU64,
    /// Events of those batches.
    pub(crate) publish_events: AtomicU64,
    /// Of those, events dropped: replay off and the user without a connection here.
    pub(crate) publish_events_dropped: AtomicU64,
    labelled: Mutex<Labelled>,
}

struct PerType([AtomicU64; TYPES]);

impl Default for PerType {
    fn default() -> Self {
        PerType(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

#[derive(Default)]
struct Labelled {
    handshake_rejections: BTreeMap<&'static str, u64>,
    resumes: BTreeMap<(&'static str, &'static str), u64>,
    errors: BTreeMap<&'static str, u64>,
    closes: BTreeMap<u16, u64>,
    publish_refusals: BTreeMap<&'static str, u64>,
}

impl Metrics {
    pub(crate) fn frame_in(&self, message_type: Option<MessageType>, bytes: usize) {
        if let Some(t) = message_type {
            self.frames_in.0[t.index()].fetch_add(1, Relaxed);
        }
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn frame_out(&self, message_type: MessageType, bytes: usize) {
        self.frames_out.0[message_type.index()].fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    fn with_labelled(&self, f: impl FnOnce(&mut Labelled)) {
        // A poisoned lock only means another thread panicked mid-increment; counting on is
        // better than losing every later count.
        let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut labelled);
    }

    /// A handshake refused (HTTP 4xx before upgrade, or an auth failure after it), by reason.
    pub(crate) fn handshake_rejected(&self, reason: &'static str) {
        self.with_labelled(|l| *l.handshake_rejections.entry(reason).or_default() += 1);
    }

    /// An `error` frame sent, by code.
    pub(crate) fn error_sent(&self, code: &'static str) {
        self.errors_sent(code, 1);
    }

    /// `count` `error` frames sent with `code`.
    pub(crate) fn errors_sent(&self, code: &'static str, count: u64) {
        if count > 0 {
            self.with_labelled(|l| *l.errors.entry(code).or_default() += count);
        }
    }

    /// A resume request answered: `resumed` (with how many events replayed) or `reset` with
    /// its reason.
    pub(crate) fn resumed(&self, decision: &agentwire_stream::Decision, replayed: usize) {
        let reason = match decision {
            agentwire_stream::Decision::Reset(reason) => reason.as_str(),
            _ => "",
        };
        self.events_replayed.fetch_add(replayed as u64, Relaxed);
        self.with_labelled(|l| *l.resumes.entry((decision.status(), reason)).or_default() += 1);
    }

    /// A publish request refused, by its code.
    pub(crate) fn publish_refused(&self, code: &'static str) {
        self.with_labelled(|l| *l.publish_refusals.entry(code).or_default() += 1);
    }

    /// A connection closed, by close code.
    pub(crate) fn closed(&self, code: u16) {
        self.with_labelled(|l| *l.closes.entry(code).or_default() += 1);
    }

    /// The Prometheus text exposition of every counter.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "agentwire_connections_active",
            "Open WebSocket connections.",
            self.connections_active.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_connections_total",
            "WebSocket connections accepted since start.",
            self.connections_total.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_handshakes_accepted_total",
            "Handshakes that authenticated and opened a connection.",
            self.handshakes_accepted.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_runs_started_total",
            "Agent runs started.",
            self.runs_started.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_events_emitted_total",
            "Stream events emitted (each counted once, however many connections receive it).",
            self.events_emitted.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_outbound_queue_drops_total",
            "Connections closed 4008 because their outbound queue was full.",
            self.queue_drops.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_bytes_in_total",
            "Bytes of text frames received.",
            self.bytes_in.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_bytes_out_total",
            "Bytes of text frames sent.",
            self.bytes_out.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_events_replayed_total",
            "Events sent again to connections that resumed.",
            self.events_replayed.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_control_frames_in_total",
            "WebSocket pings and pongs received from clients (each ping is answered with a pong).",
            self.control_frames_in.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_publish_batches_total",
            "Batches the publish API accepted.",
            self.publish_batches.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_publish_events_total",
            "Events published through the publish API (each counted once).",
            self.publish_events.load(Relaxed),
        );
        counter(
            &mut out,
            "agentwire_publish_events_dropped_total",
            "Published events dropped: replay off and the user without a connection on this node.",
            self.publish_events_dropped.load(Relaxed),
        );
        for (name, help, per_type) in [
            (
                "agentwire_frames_in_total",
                "Text frames received, by normalized message type.",
                &self.frames_in,
            ),
            (
                "agentwire_frames_out_total",
                "Frames sent, by message type.",
                &self.frames_out,
            ),
        ] {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
            for &t in MessageType::ALL {
                let n = per_type.0[t.index()].load(Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "{name}{{type=\"{t}\"}} {n}");
                }
            }
        }
        self.with_labelled(|l| {
            let _ = write!(
                out,
                "# HELP agentwire_handshakes_rejected_total Handshakes refused, by reason.\n\
                 # TYPE agentwire_handshakes_rejected_total counter\n"
            );
            for (reason, n) in &l.handshake_rejections {
                let _ = writeln!(
                    out,
                    "agentwire_handshakes_rejected_total{{reason=\"{reason}\"}} {n}"
                );
            }
            let _ = write!(
                out,
                "# HELP agentwire_resumes_total Resume requests, by outcome (resumed, or reset with its reason).\n\
                 # TYPE agentwire_resumes_total counter\n"
            );
            for ((status, reason), n) in &l.resumes {
                let _ = writeln!(
                    out,
                    "agentwire_resumes_total{{status=\"{status}\",reason=\"{reason}\"}} {n}"
                );
            }
            let _ = write!(
                out,
                "# HELP agentwire_errors_total Error frames sent, by code.\n\
                 # TYPE agentwire_errors_total counter\n"
            );
            for (code, n) in &l.errors {
                let _ = writeln!(out, "agentwire_errors_total{{code=\"{code}\"}} {n}");
            }
            let _ = write!(
                out,
                "# HELP agentwire_publish_refused_total Publish requests refused, by code.\n\
                 # TYPE agentwire_publish_refused_total counter\n"
            );
            for (code, n) in &l.publish_refusals {
                let _ = writeln!(
                    out,
                    "agentwire_publish_refused_total{{code=\"{code}\"}} {n}"
                );
            }
            let _ = write!(
                out,
                "# HELP agentwire_closes_total Connections closed, by close code.\n\
                 # TYPE agentwire_closes_total counter\n"
            );
            for (&code, n) in &l.closes {
                let name = CloseCode::from_u16(code).name();
                let _ = writeln!(
                    out,
                    "agentwire_closes_total{{code=\"{code}\",name=\"{name}\"}} {n}"
                );
            }
        });
        out
    }
}

/// The replay window's gauges and counters (summed over the hub's shards), appended to `out`.
pub(crate) fn render_window(
    out: &mut String,
    streams: usize,
    stats: agentwire_stream::WindowStats,
) {
    let _ = write!(
        out,
        "# HELP agentwire_streams User streams held (with or without a connection).\n\
         # TYPE agentwire_streams gauge\nagentwire_streams {streams}\n\
         # HELP agentwire_replay_events Events held in the replay window.\n\
         # TYPE agentwire_replay_events gauge\nagentwire_replay_events {}\n\
         # HELP agentwire_replay_bytes Bytes held in the replay window (frames and bookkeeping).\n\
         # TYPE agentwire_replay_bytes gauge\nagentwire_replay_bytes {}\n\
         # HELP agentwire_replay_hole_bytes Bytes of events evicted by count that still take \
         their place in the window until it moves past them or compacts (the budget counts them).\n\
         # TYPE agentwire_replay_hole_bytes gauge\nagentwire_replay_hole_bytes {}\n\
         # HELP agentwire_replay_compactions_total Times the window copied its events into fresh \
         memory to reclaim holes.\n\
         # TYPE agentwire_replay_compactions_total counter\nagentwire_replay_compactions_total {}\n\
         # HELP agentwire_replay_evictions_total Events evicted from the replay window, by cause.\n\
         # TYPE agentwire_replay_evictions_total counter\n\
         agentwire_replay_evictions_total{{cause=\"count\"}} {}\n\
         agentwire_replay_evictions_total{{cause=\"age\"}} {}\n\
         agentwire_replay_evictions_total{{cause=\"budget\"}} {}\n",
        stats.held_events,
        stats.held_bytes,
        stats.dead_bytes,
        stats.compactions,
        stats.evicted_by_count,
        stats.evicted_by_age,
        stats.evicted_by_budget,
    );
}
