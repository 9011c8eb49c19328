//! The resume decision, apart from where a stream's events are stored.
//!
//! An engine reads what it knows of the user's stream into a [`StreamState`] and calls
//! [`decide`]; the in-process [`UserStream`](crate::UserStream) does it in
//! [`resume`](crate::UserStream::resume), an engine over a shared store (Redis) does the same
//! with what it reads there, and both answer alike.

use core::fmt;

use crate::request::ResumeRequest;

/// What an engine knows of a user's stream when a client asks to resume it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState<'a> {
    /// No stream for this user: there never was one here, or it was dropped once its window
    /// expired. Its history is lost, so any resume is answered `reset` / `epoch_changed`.
    Unknown,
    /// The user's stream.
    Known {
        /// The stream's epoch.
        epoch: &'a str,
        /// The `seq` of its last event, 0 before the first.
        last_seq: u64,
        /// Which of its events are still held for replay.
        held: Held,
    },
}

/// Which events of a stream are held for replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Replay is off: the stream keeps no events.
    Off,
    /// Replay is on but nothing is held (no event yet, or all were evicted).
    Nothing,
    /// Every event from this `seq` through the stream's last is held. A value above the last
    /// `seq` means the same as [`Nothing`](Held::Nothing).
    From(u64),
}

/// The answer to a resume request, as `connection_established.payload.resume` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// `{"status": "resumed", "replayed": K, "from_seq": a, "to_seq": b}`: the server sends
    /// the events `a..=b` as first stamped, then live events from `b + 1` on.
    Resumed(Replay),
    /// `{"status": "reset", "reason": ...}`: the server cannot prove continuity; the client
    /// resynchronizes by other means and then follows live events.
    Reset(ResetReason),
}

impl Decision {
    /// The wire `status`: `resumed` or `reset`.
    pub fn status(&self) -> &'static str {
        match self {
            Decision::Resumed(_) => "resumed",
            Decision::Reset(_) => "reset",
        }
    }
}

/// The events a resumed connection gets before live ones: every `seq` after the client's
/// `since` through the stream's last.
///
/// [`from_seq`](Self::from_seq) is always `since + 1` and [`to_seq`](Self::to_seq) the stream's
/// last `seq` when the decision was made, so `replayed = to_seq - from_seq + 1` holds for an
/// empty replay too: a client that missed nothing gets `replayed: 0` with `from_seq =
/// since + 1` and `to_seq = since`. Either way its next event is `to_seq + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Replay {
    since: u64,
    to_seq: u64,
}

impl Replay {
    /// The first `seq` replayed (`since + 1`; the largest `seq` saturates, a stream of 2^64
    /// events being out of reach).
    pub fn from_seq(&self) -> u64 {
        self.since.saturating_add(1)
    }

    /// The last `seq` replayed: the stream's last when the decision was made.
    pub fn to_seq(&self) -> u64 {
        self.to_seq
    }

    /// The `seq` the client gave: the last it processed.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// How many events are replayed (`replayed` on the wire).
    pub fn len(&self) -> u64 {
        self.to_seq - self.since
    }

    /// Whether nothing is replayed: the client missed nothing.
    pub fn is_empty(&self) -> bool {
        self.to_seq == self.since
    }
}

/// Why a resume was answered `reset` (`reason` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResetReason {
    /// `epoch_changed`: the client's epoch is not the stream's (the stream's history was lost,
    /// e.g. a server restart, or the stream expired and a new one began).
    EpochChanged,
    /// `outside_window`: the events after the client's `since` are no longer all held, or
    /// `since` names a `seq` the stream never reached.
    OutsideWindow,
    /// `unavailable`: the server keeps no history to replay from (replay is off, or the
    /// engine's store cannot be reached).
    Unavailable,
}

impl ResetReason {
    /// The wire name: `epoch_changed`, `outside_window` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::EpochChanged => "epoch_changed",
            ResetReason::OutsideWindow => "outside_window",
            ResetReason::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides a resume request against what is known of the stream.
///
/// In order:
///
/// 1. No stream ([`StreamState::Unknown`]) or another epoch: `reset` / `epoch_changed`.
/// 2. `since` beyond the stream's last `seq`: `reset` / `outside_window`. The client claims an
///    event this epoch never had (a client bug, or state from elsewhere); nothing after it can
///    be proven. This is not an HTTP 400: the query is well formed, the handshake would have to
///    read the stream before the upgrade to tell, and a browser cannot read a failed
///    handshake's status, while a `reset` gives it a working connection and a reason.
/// 3. `since` equal to the last `seq`: `resumed` with nothing to replay, even with replay
///    off or nothing held: the client missed nothing, and equal `seq`s in one epoch prove it.
/// 4. Replay off ([`Held::Off`]): `reset` / `unavailable`: the client missed events and the
///    server keeps none (distinct from `outside_window`, which says the client came back too
///    late).
/// 5. Every event after `since` still held: `resumed` with `since + 1 ..= last`; otherwise (a
///    gap: the first held `seq` is above `since + 1`, or nothing is held) `reset` /
///    `outside_window`. Never a silent gap.
///
/// An engine that cannot read its state at all (its store is unreachable) answers
/// `Decision::Reset(ResetReason::Unavailable)` without calling this.
///
/// ```
/// use agentwire_stream::{decide, Decision, Held, ResetReason, ResumeRequest, StreamState};
///
/// let stream = StreamState::Known { epoch: "ep_a", last_seq: 40, held: Held::From(31) };
/// let resume = |epoch: &str, since| decide(&stream, &ResumeRequest::new(epoch, since).unwrap());
///
/// let Decision::Resumed(replay) = resume("ep_a", 35) else { panic!() };
/// assert_eq!((replay.from_seq(), replay.to_seq(), replay.len()), (36, 40, 5));
/// assert_eq!(resume("ep_a", 29), Decision::Reset(ResetReason::OutsideWindow));
/// assert_eq!(resume("ep_b", 35), Decision::Reset(ResetReason::EpochChanged));
/// ```
pub fn decide(stream: &StreamState<'_>, request: &ResumeRequest) -> Decision {
    let StreamState::Known {
        epoch,
        last_seq,
        held,
    } = *stream
    else {
        return Decision::Reset(ResetReason::EpochChanged);
    };
    if epoch != request.epoch() {
        return Decision::Reset(ResetReason::EpochChanged);
    }
    let since = request.since();
    if since > last_seq {
        return Decision::Reset(ResetReason::OutsideWindow);
    }
    let replay = Decision::Resumed(Replay {
        since,
        to_seq: last_seq,
    });
    if since == last_seq {
        return replay;
    }
    // Here since < last_seq, so since + 1 does not overflow.
    match held {
        Held::Off => Decision::Reset(ResetReason::Unavailable),
        Held::From(first) if first <= since + 1 => replay,
        Held::From(_) | Held::Nothing => Decision::Reset(ResetReason::OutsideWindow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(epoch: &str, since: u64) -> ResumeRequest {
        ResumeRequest::new(epoch, since).unwrap()
    }

    fn known(last_seq: u64, held: Held) -> StreamState<'static> {
        StreamState::Known {
            epoch: "ep_a",
            last_seq,
            held,
        }
    }

    fn resumed(since: u64, to_seq: u64) -> Decision {
        Decision::Resumed(Replay { since, to_seq })
    }

    const EPOCH: Decision = Decision::Reset(ResetReason::EpochChanged);
    const OUTSIDE: Decision = Decision::Reset(ResetReason::OutsideWindow);
    const UNAVAILABLE: Decision = Decision::Reset(ResetReason::Unavailable);

    #[test]
    fn unknown_stream_is_epoch_changed_whatever_the_request() {
        for since in [0, 1, 7, u64::MAX] {
            assert_eq!(
                decide(&StreamState::Unknown, &request("ep_a", since)),
                EPOCH
            );
        }
    }

    #[test]
    fn another_epoch_is_epoch_changed_before_anything_else() {
        for held in [Held::Off, Held::Nothing, Held::From(1), Held::From(5)] {
            for since in [0, 3, 10, 11, u64::MAX] {
                assert_eq!(decide(&known(10, held), &request("ep_b", since)), EPOCH);
                // Epochs compare exactly: case matters.
                assert_eq!(decide(&known(10, held), &request("EP_A", since)), EPOCH);
            }
        }
    }

    #[test]
    fn since_beyond_the_last_seq_is_outside_window() {
        for held in [Held::Off, Held::Nothing, Held::From(1), Held::From(11)] {
            for since in [11, 12, u64::MAX] {
                assert_eq!(decide(&known(10, held), &request("ep_a", since)), OUTSIDE);
            }
        }
        assert_eq!(
            decide(&known(0, Held::Nothing), &request("ep_a", 1)),
            OUTSIDE
        );
    }

    #[test]
    fn since_at_the_last_seq_resumes_with_nothing_to_replay_whatever_is_held() {
        for held in [
            Held::Off,
            Held::Nothing,
            Held::From(1),
            Held::From(10),
            Held::From(99),
        ] {
            let decision = decide(&known(10, held), &request("ep_a", 10));
            assert_eq!(decision, resumed(10, 10));
            let Decision::Resumed(replay) = decision else {
                unreachable!()
            };
            assert_eq!((replay.from_seq(), replay.to_seq()), (11, 10));
            assert_eq!((replay.len(), replay.is_empty()), (0, true));
        }
        // A stream with no event yet, and a client that saw none.
        assert_eq!(
            decide(&known(0, Held::Nothing), &request("ep_a", 0)),
            resumed(0, 0)
        );
        assert_eq!(
            decide(&known(0, Held::Off), &request("ep_a", 0)),
            resumed(0, 0)
        );
        // The largest seq: from_seq saturates, the count stays right.
        let decision = decide(&known(u64::MAX, Held::Nothing), &request("ep_a", u64::MAX));
        let Decision::Resumed(replay) = decision else {
            unreachable!()
        };
        assert_eq!((replay.from_seq(), replay.len()), (u64::MAX, 0));
    }

    #[test]
    fn replay_off_with_missed_events_is_unavailable() {
        for since in [0, 1, 9] {
            assert_eq!(
                decide(&known(10, Held::Off), &request("ep_a", since)),
                UNAVAILABLE
            );
        }
    }

    #[test]
    fn inside_the_window_resumes_with_every_missed_event() {
        // Held 5..=10: any since from 4 to 9 resumes with since+1..=10.
        for since in 4..=9 {
            let decision = decide(&known(10, Held::From(5)), &request("ep_a", since));
            assert_eq!(decision, resumed(since, 10));
            let Decision::Resumed(replay) = decision else {
                unreachable!()
            };
            assert_eq!(replay.from_seq(), since + 1);
            assert_eq!(replay.len(), 10 - since);
            assert_eq!(replay.since(), since);
            assert_eq!(decision.status(), "resumed");
        }
        // Everything held since the first event: a client that saw nothing gets it all.
        assert_eq!(
            decide(&known(10, Held::From(1)), &request("ep_a", 0)),
            resumed(0, 10)
        );
        assert_eq!(
            decide(&known(10, Held::From(0)), &request("ep_a", 0)),
            resumed(0, 10)
        );
    }

    #[test]
    fn a_gap_is_outside_window_never_a_partial_replay() {
        // Held 5..=10: since 3 would need seq 4, evicted.
        for since in [0, 1, 3] {
            assert_eq!(
                decide(&known(10, Held::From(5)), &request("ep_a", since)),
                OUTSIDE
            );
        }
        // Nothing held (all evicted) and the client missed events.
        for since in [0, 5, 9] {
            assert_eq!(
                decide(&known(10, Held::Nothing), &request("ep_a", since)),
                OUTSIDE
            );
        }
        // A first held seq above the last is the same as nothing held.
        assert_eq!(
            decide(&known(10, Held::From(11)), &request("ep_a", 9)),
            OUTSIDE
        );
        assert_eq!(
            decide(&known(10, Held::From(u64::MAX)), &request("ep_a", 0)),
            OUTSIDE
        );
        assert_eq!(OUTSIDE.status(), "reset");
    }

    #[test]
    fn reasons_have_their_wire_names() {
        assert_eq!(ResetReason::EpochChanged.as_str(), "epoch_changed");
        assert_eq!(ResetReason::OutsideWindow.to_string(), "outside_window");
        assert_eq!(ResetReason::Unavailable.as_str(), "unavailable");
    }

    #[test]
    fn every_state_and_request_agrees_with_the_rules() {
        // An exhaustive sweep over small values against the rules written out plainly.
        let helds = |last: u64| {
            let mut helds = vec![Held::Off, Held::Nothing];
            helds.extend((0..=last + 2).map(Held::From));
            helds
        };
        for last in 0..6u64 {
            for held in helds(last) {
                for since in 0..last + 3 {
                    let got = decide(&known(last, held), &request("ep_a", since));
                    let first_held = match held {
                        Held::Off | Held::Nothing => None,
                        Held::From(first) if first > last => None,
                        Held::From(first) => Some(first),
                    };
                    let expected = if since > last {
                        OUTSIDE
                    } else if since == last {
                        resumed(since, last)
                    } else if held == Held::Off {
                        UNAVAILABLE
                    } else if first_held.is_some_and(|first| first <= since + 1) {
                        resumed(since, last)
                    } else {
                        OUTSIDE
                    };
                    assert_eq!(got, expected, "last {last} held {held:?} since {since}");
                    assert_eq!(decide(&known(last, held), &request("ep_z", since)), EPOCH);
                }
            }
        }
    }
}
