//! What the server does with one client text frame, decided without I/O.
//!
//! The connection task runs this for every text frame, then carries out the [`Action`]; the
//! fuzz target runs the same function on arbitrary input (see [`crate::fuzzing`]).

use std::borrow::Cow;
use std::sync::Arc;

use agentwire_auth::Token;
use agentwire_events::{ErrorReply, Event, OtherRequest, Request, RunRequest, Timestamp};
use agentwire_types::MessageType;

/// One frame, decided.
pub(crate) struct Decision<'a> {
    /// The normalized type, when the frame parsed.
    pub(crate) message_type: Option<MessageType>,
    /// The client's `message_id`, echoed as `reply_to` (shared by every frame that answers).
    pub(crate) message_id: Option<Arc<str>>,
    /// The thread the request names (envelope or payload).
    pub(crate) thread_id: Option<Arc<str>>,
    pub(crate) action: Action<'a>,
}

pub(crate) enum Action<'a> {
    /// Answer on this connection: `pong`, `heartbeat_ack` or `error` (`reply_to` is set).
    Reply(Event),
    /// Start a run.
    Run {
        kind: MessageType,
        request: RunRequest<'a>,
    },
    /// Replace the connection's token.
    Refresh(Token),
    /// Cancel one run, or every run of the connection.
    Cancel(Option<Cow<'a, str>>),
    /// Hand to the service's handler.
    Other(OtherRequest<'a>),
}

/// Parses `text` and decides what to do with it. `handles` says which other client types the
/// service's handler takes; the rest are answered `unsupported_message_type`.
pub(crate) fn decide(text: &str, handles: impl Fn(MessageType) -> bool) -> Decision<'_> {
    let inbound = match agentwire_events::parse_inbound(text) {
        Ok(inbound) => inbound,
        Err(error) => {
            return Decision {
                message_type: None,
                message_id: error.message_id().map(Arc::from),
                thread_id: None,
                action: Action::Reply(error.to_event()),
            };
        }
    };
    let message_type = Some(inbound.message_type());
    let message_id: Option<Arc<str>> = inbound.message_id().map(Arc::from);
    let thread_id = inbound.resolved_thread_id().map(Arc::from);
    let reply = |event: Event| {
        Action::Reply(match &message_id {
            Some(id) => event.with_reply_to(Arc::clone(id)),
            None => event,
        })
    };
    let action = match inbound.into_request() {
        Request::Ping => reply(Event::pong(Timestamp::now())),
        Request::Heartbeat => reply(Event::heartbeat_ack()),
        Request::StartAgent(request) => Action::Run {
            kind: MessageType::StartAgent,
            request,
        },
        Request::UserMessage(request) => Action::Run {
            kind: MessageType::UserMessage,
            request,
        },
        Request::AuthRefresh(refresh) => Action::Refresh(Token::new(refresh.token.expose())),
        Request::CancelAgent(cancel) => Action::Cancel(cancel.run_id),
        Request::Other(other) if handles(other.message_type()) => Action::Other(other),
        Request::Other(other) => {
            let t = other.message_type();
            reply(Event::new(
                ErrorReply::new(
                    "unsupported_message_type",
                    format!("this server does not handle {t} messages"),
                )
                .with_received_type(t.as_str()),
            ))
        }
        // `Request` is non-exhaustive: a request type this server does not know yet.
        _ => reply(Event::error(
            "unsupported_message_type",
            "this server does not handle this message type",
        )),
    };
    Decision {
        message_type,
        message_id,
        thread_id,
        action,
    }
}
