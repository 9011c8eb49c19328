//! What happens on the connection outside the runs: notifications, reconnects, resets.

use agentwire_events::{ErrorReply, Frame, ResumeOutcome, Timestamp};
use tokio::sync::broadcast;

use crate::error::Error;

/// Something that happened on the connection, outside this client's runs.
///
/// Read them with [`Client::events`](crate::Client::events). A run's own events go to its
/// [`RunHandle`](crate::RunHandle) only.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A stream event that belongs to no run of this client: a notification
    /// (`system_message`, `thread_update`, ...), or a run another connection of the same user
    /// started.
    Event(Frame),
    /// An `error` frame that answers no pending request of this client (for instance
    /// `unknown_run` for a cancel that came after its run ended).
    Error(ErrorReply),
    /// A text frame the strict parser refused: the server broke the contract.
    InvalidFrame {
        /// The frame as received.
        text: String,
        /// Why it was refused.
        error: Error,
    },
    /// `seq` jumped: events `expected..received` never arrived and the server did not say
    /// why (the protocol promises this does not happen on one connection).
    Gap {
        /// The `seq` that should have come.
        expected: u64,
        /// The `seq` that came.
        received: u64,
    },
    /// The connection was lost; the client is reconnecting.
    Disconnected {
        /// Why it was lost.
        error: Error,
    },
    /// Connected again. `resume` is the server's answer to the resume request:
    /// `Resumed` (the missed events follow, each once) or `Reset` (continuity is lost: runs in
    /// flight end with [`Error::StreamReset`], resynchronize by other means).
    Reconnected {
        /// The new connection's id.
        connection_id: String,
        /// The server's answer to `?epoch=&since=`.
        resume: ResumeOutcome,
    },
    /// The server accepted a new token (`auth_refreshed`).
    TokenRefreshed {
        /// The new token's expiry.
        expires_at: Timestamp,
    },
    /// Refreshing the token failed (the callback failed, or the server refused the token);
    /// the connection keeps its current token until it expires.
    RefreshFailed {
        /// Why.
        error: Error,
    },
    /// This subscription fell behind and `missed` events were dropped for it (its buffer
    /// holds the newest ones; see
    /// [`ClientBuilder::event_capacity`](crate::ClientBuilder::event_capacity)).
    Lagged {
        /// How many.
        missed: u64,
    },
    /// The connection is closed for good: closed by the client, or lost and not reconnected.
    Closed {
        /// Why, unless the client closed it.
        error: Option<Error>,
    },
}

/// A subscription to a client's [`ConnectionEvent`]s.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: broadcast::Receiver<ConnectionEvent>,
    pub(crate) done: bool,
}

impl Events {
    /// The next event; `None` after [`ConnectionEvent::Closed`].
    pub async fn next(&mut self) -> Option<ConnectionEvent> {
        if self.done {
            return None;
        }
        let event = match self.rx.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => ConnectionEvent::Lagged { missed },
            Err(broadcast::error::RecvError::Closed) => {
                self.done = true;
                return None;
            }
        };
        if matches!(event, ConnectionEvent::Closed { .. }) {
            self.done = true;
        }
        Some(event)
    }
}
