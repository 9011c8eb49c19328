//! Unique ids: one generator for event ids, stream epochs and the server's connection and run
//! ids.

use core::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Hex digits of the random part of every id.
const PREFIX_DIGITS: usize = 12;

/// The longest id: a kind, `_`, the random part, `_`, a 64-bit counter in hex.
const MAX_ID_BYTES: usize = IdGenerator::MAX_KIND_BYTES + 1 + PREFIX_DIGITS + 1 + 16;

/// The kind of event ids.
pub(crate) const EVENT: &str = "evt";

/// The kind of stream epochs.
pub(crate) const EPOCH: &str = "ep";

/// Makes ids that are unique within the process and, with overwhelming probability, across
/// processes: `{kind}_{random}_{counter}`, where `kind` says what the id names (`evt`, `conn`,
/// `run`, `ep`), `random` is 12 lower-case hex digits (48 bits) drawn once per generator, and
/// `counter` is the generator's counter in lower-case hex without leading zeros, e.g.
/// `evt_3f9a2c1b7d4e_1a` or `run_3f9a2c1b7d4e_19`.
///
/// One counter serves every kind, so no two ids of one generator are equal, whatever their
/// kind. An id is only ASCII letters, digits and `_`: it needs no escaping in JSON, a URL or a
/// log line. Clients should treat ids as opaque and compare them for equality only.
///
/// [`IdGenerator::global`] is the process's generator: event ids ([`next_event_id`],
/// [`Stamp::control`](crate::Stamp::control), [`StreamStamper`](crate::StreamStamper)) and
/// stream epochs come from it, and a server takes its connection and run ids from it too, so
/// all the ids of one process share one random part.
///
/// ```
/// use agentwire_events::IdGenerator;
///
/// let ids = IdGenerator::global();
/// let run = ids.next("run");
/// assert!(run.starts_with("run_"));
/// assert_eq!(run[4..16], *ids.prefix());
///
/// // The same, appended to a buffer without allocating anything else.
/// let mut text = String::from("id=");
/// ids.write_next("conn", &mut text);
/// assert!(text.starts_with("id=conn_"));
/// assert_ne!(text[8..], run[4..]);
/// ```
pub struct IdGenerator {
    /// `_`, the random part, `_`: what comes between the kind and the counter.
    middle: Box<str>,
    counter: AtomicU64,
}

impl IdGenerator {
    /// The most bytes of a kind that an id keeps (see [`next`](Self::next)).
    pub const MAX_KIND_BYTES: usize = 16;

    /// A generator with a fresh random part and its counter at 0.
    ///
    /// Most code wants [`global`](Self::global) instead: ids from two generators are unique
    /// only as far as their random parts differ.
    pub fn new() -> IdGenerator {
        // `RandomState` keys come from the operating system's random source (and differ for
        // every `RandomState` made); the time and process id are mixed in so that two
        // processes never start from the same random part by accident.
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        let random = hasher.finish();
        let mut middle = String::with_capacity(PREFIX_DIGITS + 2);
        middle.push('_');
        for i in (0..PREFIX_DIGITS).rev() {
            middle.push(char::from(HEX[((random >> (i * 4)) & 0xf) as usize]));
        }
        middle.push('_');
        IdGenerator {
            middle: middle.into_boxed_str(),
            counter: AtomicU64::new(0),
        }
    }

    /// The process's generator, made on first use.
    pub fn global() -> &'static IdGenerator {
        static GLOBAL: LazyLock<IdGenerator> = LazyLock::new(IdGenerator::new);
        &GLOBAL
    }

    /// The random part of this generator's ids: 12 lower-case hex digits.
    pub fn prefix(&self) -> &str {
        self.middle.get(1..1 + PREFIX_DIGITS).unwrap_or_default()
    }

    /// A fresh id of `kind`, e.g. `next("run")` gives `run_3f9a2c1b7d4e_1b`: one atomic
    /// increment and one allocation.
    ///
    /// The id keeps the longest start of `kind` that is at most
    /// [`MAX_KIND_BYTES`](Self::MAX_KIND_BYTES) ASCII letters and digits, so it never needs
    /// escaping (`next("conn")` and `next("conn-1")` both give `conn_...`, `next("é")` gives
    /// `_...`).
    pub fn next(&self, kind: &str) -> Arc<str> {
        let kind = clean_kind(kind);
        let n = self.bump();
        let mut buf = [0u8; MAX_ID_BYTES];
        let mut len = 0;
        for part in [kind.as_bytes(), self.middle.as_bytes()] {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        let digits = hex_digits(n);
        for (i, slot) in buf[len..len + digits].iter_mut().rev().enumerate() {
            *slot = HEX[((n >> (i * 4)) & 0xf) as usize];
        }
        len += digits;
        // ASCII letters, digits and `_` only, so this cannot fail; fall back to the kind.
        Arc::from(core::str::from_utf8(&buf[..len]).unwrap_or(kind))
    }

    /// Appends a fresh id of `kind` (as [`next`](Self::next) makes it) to `out`: one atomic
    /// increment and nothing allocated beyond `out`'s growth.
    pub fn write_next(&self, kind: &str, out: &mut String) {
        self.write_fresh(clean_kind(kind), out);
    }

    /// [`write_next`](Self::write_next) for a kind known to be clean (the crate's own).
    #[inline]
    pub(crate) fn write_fresh(&self, kind: &str, out: &mut String) {
        let n = self.bump();
        out.reserve(kind.len() + self.middle.len() + 16);
        out.push_str(kind);
        out.push_str(&self.middle);
        // Digit by digit, without a UTF-8 check of a digit buffer (an out-of-line call that
        // costs more than these few pushes).
        for i in (0..hex_digits(n)).rev() {
            out.push(char::from(HEX[((n >> (i * 4)) & 0xf) as usize]));
        }
    }

    /// A fresh id of a clean kind as a `String`.
    pub(crate) fn fresh_string(&self, kind: &str) -> String {
        let mut out = String::with_capacity(MAX_ID_BYTES);
        self.write_fresh(kind, &mut out);
        out
    }

    #[inline]
    fn bump(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdGenerator")
            .field("prefix", &self.prefix())
            .field("counter", &self.counter.load(Ordering::Relaxed))
            .finish()
    }
}

/// The longest start of `kind` of at most `MAX_KIND_BYTES` ASCII letters and digits.
fn clean_kind(kind: &str) -> &str {
    let end = kind
        .bytes()
        .take(IdGenerator::MAX_KIND_BYTES)
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(kind.len().min(IdGenerator::MAX_KIND_BYTES));
    // Everything before `end` is ASCII, so `end` is a character boundary.
    kind.get(..end).unwrap_or_default()
}

/// How many hex digits `value` has (at least one).
#[inline]
fn hex_digits(value: u64) -> usize {
    (64 - value.leading_zeros() as usize).div_ceil(4).max(1)
}

/// A fresh event id from [`IdGenerator::global`], unique within the process and (with
/// overwhelming probability) across processes: `evt_` + the process's 12 random hex digits +
/// `_` + a hex counter, e.g. `evt_3f9a2c1b7d4e_1a`. Costs one atomic increment and one small
/// allocation.
pub fn next_event_id() -> String {
    IdGenerator::global().fresh_string(EVENT)
}
