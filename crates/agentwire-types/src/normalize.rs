//! Allocation-free, ASCII case-insensitive name lookup.
//!
//! The canonical names ([`MessageType::ALL`]) and the aliases ([`ALIASES`]) go into one
//! open-addressing hash table, built once on first use. A lookup lower-cases the input into a
//! fixed-size stack key eight bytes at a time, hashes it, then compares it against at most a few
//! candidates.

use std::sync::LazyLock;

use crate::alias::{ALIASES, AliasTarget};
use crate::error::UnknownMessageType;
use crate::message_type::MessageType;

/// Longest name the table can hold; longer input is unknown without being looked at.
/// (The longest name, `isolated_connection_established`, has 31 bytes; a test keeps every name
/// within this.)
const MAX_NAME: usize = 32;
/// Slots in the table (a power of two, well over twice the number of names).
const SLOTS: usize = 512;

/// What a known name resolves to.
#[derive(Clone, Copy)]
enum Resolution {
    Type(MessageType),
    Rejected(&'static str),
}

/// A name as a lookup key: its bytes in ASCII lower case, zero-padded to `MAX_NAME` and read
/// as little-endian words, so hashing and comparing are fixed-size word operations.
#[derive(Clone, Copy)]
struct Key {
    words: [u64; WORDS],
    /// Compared too, so that a name ending in NUL bytes never equals a shorter one.
    len: u8,
}

const WORDS: usize = MAX_NAME / 8;

impl Key {
    /// The key of `name`, or `None` if it is longer than any known name can be.
    fn new(name: &[u8]) -> Option<Key> {
        if name.len() > MAX_NAME {
            return None;
        }
        let mut words = [0u64; WORDS];
        // Words past the name stay zero, which is also their lower case.
        let mut chunks = name.chunks_exact(8);
        for (word, chunk) in words.iter_mut().zip(&mut chunks) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = ascii_lowercase_word(u64::from_le_bytes(bytes));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            // Built in a register: a byte-wise copy into memory read back as one word would
            // stall the load on store forwarding.
            let word = match name.len().checked_sub(8) {
                // Re-read the last eight bytes and shift out the ones already taken.
                Some(start) => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&name[start..]);
                    u64::from_le_bytes(bytes) >> (8 * (8 - tail.len()))
                }
                None => tail
                    .iter()
                    .rev()
                    .fold(0u64, |word, &b| (word << 8) | u64::from(b)),
            };
            words[name.len() / 8] = ascii_lowercase_word(word);
        }
        Some(Key {
            words,
            // At most MAX_NAME (48), checked above.
            len: name.len() as u8,
        })
    }

    /// Word-wise equality, without a call to `memcmp`.
    fn same(&self, other: &Key) -> bool {
        let diff = self
            .words
            .iter()
            .zip(&other.words)
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        diff == 0 && self.len == other.len
    }

    /// Mixes the words independently (no dependency chain between them), so a hash costs a few
    /// cycles; collisions only cost a probe, since every candidate is compared in full.
    fn hash(&self) -> usize {
        const K: [u64; WORDS] = [
            0x9E37_79B9_7F4A_7C15,
            0xC2B2_AE3D_27D4_EB4F,
            0x1656_67B1_9E37_79F9,
            0x85EB_CA77_C2B2_AE63,
        ];
        let h = self
            .words
            .iter()
            .zip(K)
            .fold(0u64, |h, (w, k)| h ^ w.wrapping_mul(k));
        ((h ^ (h >> 29)) >> 32) as usize
    }
}

/// Lower-cases the ASCII letters of eight bytes at once; other bytes are left as they are.
fn ascii_lowercase_word(w: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    // Per byte, bit 7 is set when the low seven bits are >= b'A' (0x41) or > b'Z' (0x5A);
    // no byte carries into the next because every sum stays below 0x100.
    let at_least_a = low + 0x3F3F_3F3F_3F3F_3F3F;
    let above_z = low + 0x2525_2525_2525_2525;
    let upper = at_least_a & !above_z & !w & HIGH;
    w | (upper >> 2)
}

struct Entry {
    key: Key,
    resolution: Resolution,
}

struct Table {
    entries: Vec<Entry>,
    /// Index into `entries` plus one; zero marks an empty slot.
    slots: [u16; SLOTS],
}

static TABLE: LazyLock<Table> = LazyLock::new(Table::build);

impl Table {
    fn build() -> Table {
        let canonical = MessageType::ALL
            .iter()
            .map(|&t| (t.as_str(), Resolution::Type(t)));
        let aliases = ALIASES.iter().map(|a| {
            let resolution = match a.target {
                AliasTarget::Type(t) => Resolution::Type(t),
                AliasTarget::Rejected(why) => Resolution::Rejected(why),
            };
            (a.name, resolution)
        });
        let mut table = Table {
            entries: Vec::new(),
            slots: [0; SLOTS],
        };
        for (name, resolution) in canonical.chain(aliases) {
            // The crate's tests check that every name fits; one that did not would be a bug in
            // the static tables, and is left out rather than panicking.
            let Some(key) = Key::new(name.as_bytes()) else {
                debug_assert!(false, "name {name} is longer than {MAX_NAME} bytes");
                continue;
            };
            let mut slot = key.hash() & (SLOTS - 1);
            while table.slots[slot] != 0 {
                slot = (slot + 1) & (SLOTS - 1);
            }
            table.entries.push(Entry { key, resolution });
            // A few hundred entries at most: the index always fits.
            table.slots[slot] = table.entries.len() as u16;
        }
        table
    }

    fn find(&self, key: &Key) -> Option<&Entry> {
        let mut slot = key.hash() & (SLOTS - 1);
        loop {
            let index = self.slots[slot];
            let entry = self.entries.get(usize::from(index).checked_sub(1)?)?;
            if entry.key.same(key) {
                return Some(entry);
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }
}

/// Resolves a wire name to its canonical [`MessageType`].
///
/// Accepts every canonical name and every alias in [`ALIASES`](crate::ALIASES), in any ASCII
/// case. Never allocates and never panics; a name of any length or content is fine.
///
/// # Errors
///
/// [`UnknownMessageType`] when the name is not known, or is known and rejected on purpose
/// (its [`code`](UnknownMessageType::code) tells which).
///
/// # Examples
///
/// ```
/// use agentwire_types::{normalize, MessageType};
///
/// assert_eq!(normalize("EXECUTE_AGENT"), Ok(MessageType::StartAgent));
/// assert_eq!(normalize("chat_message"), Ok(MessageType::UserMessage));
///
/// let err = normalize("broadcast_test").unwrap_err();
/// assert_eq!(err.code(), "unsupported_message_type");
/// assert_eq!(normalize("no_such_type").unwrap_err().code(), "unknown_message_type");
/// ```
pub fn normalize(name: &str) -> Result<MessageType, UnknownMessageType> {
    let Some(key) = Key::new(name.as_bytes()) else {
        return Err(UnknownMessageType::unknown(name));
    };
    match TABLE.find(&key) {
        Some(Entry {
            resolution: Resolution::Type(t),
            ..
        }) => Ok(*t),
        Some(Entry {
            resolution: Resolution::Rejected(why),
            ..
        }) => Err(UnknownMessageType::rejected(name, why)),
        None => Err(UnknownMessageType::unknown(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lowercase_matches_byte_lowercase() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b, b'Q', 0xC3, b'z', b'@', b'[', 0, 0x80]);
            let expected = u64::from_le_bytes(
                [b, b'Q', 0xC3, b'z', b'@', b'[', 0, 0x80].map(|x| x.to_ascii_lowercase()),
            );
            assert_eq!(ascii_lowercase_word(w), expected, "byte {b:#x}");
        }
    }

    #[test]
    fn every_name_fits_the_table() {
        let names = MessageType::ALL.len() + ALIASES.len();
        assert_eq!(TABLE.entries.len(), names, "no name was left out");
        assert!(names * 2 <= SLOTS);
    }
}
