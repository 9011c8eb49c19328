//! A user's event stream as data: `seq` and epoch assignment, the replay window, and the
//! decision a server answers a reconnecting client with.
//!
//! Every agent event a user receives has a `seq` on that user's stream, one more than the
//! previous, within the stream's epoch. A client that reconnects asks for what it missed with
//! `GET /ws?epoch=<epoch>&since=<seq>` (`since`: the last `seq` it processed), and
//! `connection_established.payload.resume` answers `resumed` (followed by exactly the missed
//! frames, byte for byte as first sent, then live events) or `reset` with a reason. This crate
//! is that logic without I/O, clocks or an async runtime (the quinn-proto idea): the server
//! drives it under its own locks and timers, a test or a fuzzer drives it directly.
//!
//! - **The request**: [`ResumeRequest::from_query`] reads `epoch` and `since` from the
//!   handshake's query, or gives a [`ResumeQueryError`] naming the parameter for an HTTP 400
//!   before the upgrade.
//! - **The decision**, apart from storage: [`decide`] takes what an engine knows of the
//!   stream, a [`StreamState`] (epoch, last `seq`, first `seq` held), and answers a
//!   [`Decision`]: [`Resumed`](Decision::Resumed) with the [`Replay`] range, or
//!   [`Reset`](Decision::Reset) with a [`ResetReason`]. The in-process engine and an engine
//!   over a shared store (Redis) answer alike.
//! - **Storage for the in-process engine**: a [`UserStream`] per user stamps and encodes each
//!   event once and keeps it in its shard's [`WindowStore`], which holds the frames of the
//!   streams of one lock domain within a share of the server-wide byte budget
//!   ([`WindowConfig`]: events and age per user, bytes server-wide; oldest evicted first). The
//!   store keeps a copy of each frame's text in large chunks, and rebuilds the frames of a
//!   replay from it byte for byte ([`Frame`]).
//!
//! Streams outlive connections: a stream is kept while its window holds events and for
//! `max_age` after its last event or disconnect, then dropped when [`UserStream::is_expired`]
//! says so, which gives its memory back.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use agentwire_events::Event;
//! use agentwire_stream::{
//!     Decision, ResetReason, ResumeRequest, UserStream, WindowConfig, WindowStore,
//! };
//!
//! // One lock domain: a store and the user streams in it (a server has one per shard).
//! let mut config = WindowConfig::default(); // 1,000 events and 5 minutes per user, 64 MiB
//! config.max_events = 3;
//! let mut store: WindowStore = WindowStore::new(&config, 1).unwrap();
//! let start = Instant::now();
//! let mut stream = UserStream::new(start);
//!
//! // The client is connected and processes the first two events.
//! let mut sent = Vec::new();
//! for text in ["checking", "still checking"] {
//!     sent.push(stream.append(&Event::agent_thinking("run_1", text), start, &mut store).frame);
//! }
//! let (epoch, since) = (stream.epoch().to_owned(), stream.last_seq());
//! assert_eq!(since, 2);
//!
//! // It disconnects; the run goes on and its events are kept.
//! stream.touch(start);
//! for text in ["found it", "writing"] {
//!     sent.push(stream.append(&Event::agent_thinking("run_1", text), start, &mut store).frame);
//! }
//!
//! // It reconnects with `?epoch=...&since=2` and gets exactly seq 3 and 4, byte for byte.
//! let query = format!("epoch={epoch}&since={since}");
//! let request = ResumeRequest::from_query(Some(&query)).unwrap().unwrap();
//! let resume = stream.resume(&store, &request);
//! let Decision::Resumed(replay) = resume.decision else { panic!("{:?}", resume.decision) };
//! assert_eq!((replay.len(), replay.from_seq(), replay.to_seq()), (2, 3, 4));
//! assert_eq!(resume.frames, sent[2..]);
//!
//! // A client that processed nothing needs seq 1, which the 3-event window no longer holds:
//! // it is told so, never handed a stream with a hole in it.
//! let stale = ResumeRequest::new(epoch.as_str(), 0).unwrap();
//! assert_eq!(stream.resume(&store, &stale).decision, Decision::Reset(ResetReason::OutsideWindow));
//!
//! // Five minutes later the window has expired: nothing to replay, the stream can go.
//! let later = start + Duration::from_secs(300);
//! store.expire(later);
//! assert!(stream.is_expired(&store, later));
//! assert_eq!(stream.resume(&store, &request).decision, Decision::Reset(ResetReason::OutsideWindow));
//! assert_eq!(store.stats().held_bytes, 0);
//! ```

mod config;
mod decide;
mod error;
mod request;
mod store;
mod stream;

pub use config::{
    DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, MAX_AGE_LIMIT, WindowConfig,
};
pub use decide::{Decision, Held, Replay, ResetReason, StreamState, decide};
pub use error::{ConfigError, ResumeParameter, ResumeQueryError};
pub use request::{MAX_EPOCH_BYTES, MAX_SINCE_DIGITS, ResumeRequest};
pub use store::{EVENT_OVERHEAD_BYTES, Frame, WindowStats, WindowStore};
pub use stream::{Appended, Frames, Resume, UserStream};
