//! Entry points for the fuzz targets (cargo feature `fuzzing`; not a stable API).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentwire_auth::testing::{Claims, SigningKey, fixture_validator};
use agentwire_auth::{Algorithm, Principal, Validator};
use agentwire_events::{StreamPosition, Timestamp, parse_outbound};
use agentwire_types::MessageType;

use crate::{Action, Close, Host, Session, SessionConfig, Timeout};

/// A model of the driver: runs are counters, the handler takes every other message type.
struct Model {
    validator: Validator,
    runs: usize,
}

impl Host for Model {
    fn validator(&self) -> &Validator {
        &self.validator
    }

    fn handles(&self, message_type: MessageType) -> bool {
        message_type.index().is_multiple_of(2)
    }

    fn runs_in_flight(&self) -> usize {
        self.runs
    }

    fn cancel(&mut self, run_id: Option<&str>) -> bool {
        match run_id {
            Some(id) if self.runs > 0 && id.len() % 2 == 0 => {
                self.runs -= 1;
                true
            }
            Some(_) => false,
            None => std::mem::take(&mut self.runs) > 0,
        }
    }
}

fn principal() -> &'static (Validator, Principal) {
    static PRINCIPAL: OnceLock<(Validator, Principal)> = OnceLock::new();
    PRINCIPAL.get_or_init(|| {
        let validator = fixture_validator();
        let token = Claims::new("fuzz-user")
            .sign(&SigningKey::fixture(Algorithm::HS256))
            .expect("the fixture key signs");
        let principal = validator.validate(&token).expect("a fresh token validates");
        (validator, principal)
    })
}

/// Checks that a frame the session asks to send is one a strict client reads back.
fn check_frame(event: agentwire_events::Event) {
    let frame = event.stamp_control().encode();
    assert!(
        parse_outbound(frame.as_str()).is_ok(),
        "the session's own frame must parse: {frame}"
    );
}

fn check_close(close: Close) {
    if let Some(reply) = close.reply {
        check_frame(reply);
    }
    assert!(
        close.info.code().is_sendable() && !close.info.code().is_server_bug(),
        "close code {} must be sendable and never 1011",
        close.info.code()
    );
}

/// Drives a whole session with a script read from `data`: the first byte chooses a session
/// awaiting in-band authentication (a multiple of 4) or an authenticated one; then each step is
/// one byte choosing the event (a text frame, a control frame, a binary frame, time passing, a run ending), then its
/// argument. Checks that every frame the session sends parses, that it never closes with 1011
/// or an unsendable code, that its timer never goes backwards without an event, and that
/// nothing panics.
pub fn session(data: &[u8]) {
    let (validator, principal) = principal();
    let mut model = Model {
        validator: validator.clone(),
        runs: 0,
    };
    let start = Instant::now();
    let mut now = start;
    let config = Arc::new(SessionConfig {
        rate_limit_per_sec: 5,
        rate_limit_burst: 3,
        rate_limit_strikes: 4,
        max_runs_per_connection: 3,
        ..SessionConfig::default()
    });
    let (mut session, mut rest) = match data.split_first() {
        Some((mode, rest)) if mode % 4 == 0 => (Session::awaiting_auth(config, now), rest),
        Some((_, rest)) => (Session::new(config, principal.clone(), now), rest),
        None => return,
    };
    if let Some(event) = session.established(
        "conn_1",
        StreamPosition::new("ep_fuzz", 0),
        None,
        Timestamp::now(),
    ) {
        check_frame(event);
    }
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            // A text frame of the next `len` bytes (lossy UTF-8: the transport checks UTF-8),
            // `len` in one byte (0) or two, little-endian (1).
            0 | 1 => {
                let (len, tail) = match (op % 6, rest) {
                    (0, [len, tail @ ..]) => (usize::from(*len), tail),
                    (_, [lo, hi, tail @ ..]) => (usize::from(u16::from_le_bytes([*lo, *hi])), tail),
                    _ => (0, &[][..]),
                };
                let len = len.min(tail.len());
                let (text, tail) = tail.split_at(len);
                rest = tail;
                let text = String::from_utf8_lossy(text);
                let handled = session.handle_text(now, &text, &mut model);
                match handled.action {
                    Action::Reply(event) => check_frame(event),
                    Action::Run(_) => model.runs += 1,
                    Action::Close(close) => return check_close(close),
                    Action::Authenticated => {
                        let established = session
                            .established(
                                "conn_1",
                                StreamPosition::new("ep_fuzz", 0),
                                None,
                                Timestamp::now(),
                            )
                            .expect("authenticated");
                        check_frame(established);
                    }
                    _ => {}
                }
            }
            2 => {
                if let Some(close) = session.handle_control(now) {
                    return check_close(close);
                }
            }
            3 => {
                // Time passes by up to 25.5 s, then the timer fires if it is due.
                let (&step, tail) = rest.split_first().unwrap_or((&0, &[]));
                rest = tail;
                now += Duration::from_millis(u64::from(step) * 100);
                let due = session.poll_timeout();
                if now >= due {
                    match session.handle_timeout(now) {
                        Some(Timeout::Close(close)) => return check_close(close),
                        Some(Timeout::Ping) => {
                            assert!(session.poll_timeout() > now, "a ping re-arms the timer");
                        }
                        _ => {}
                    }
                }
            }
            4 => model.runs = model.runs.saturating_sub(1),
            _ => return check_close(session.handle_binary()),
        }
    }
}
