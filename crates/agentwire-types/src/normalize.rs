//! Allocation-free, ASCII case-insensitive name lookup.
//!
//! The canonical names ([`MessageType::ALL`]) and the aliases ([`ALIASES`]) go into one
//! open-addressing hash table, built once on first use. A lookup lower-cases the input into a
//! stack buffer, hashes it, then compares against at most a few candidates.

use std::sync::LazyLock;

use crate::alias::{ALIASES, AliasTarget};
use crate::error::UnknownMessageType;
use crate::message_type::MessageType;

/// Longest name the table can hold; longer input is unknown without being looked at.
const MAX_NAME: usize = 48;
/// Slots in the table (a power of two, well over twice the number of names).
const SLOTS: usize = 512;

/// What a known name resolves to.
#[derive(Clone, Copy)]
enum Resolution {
    Type(MessageType),
    Rejected(&'static str),
}

struct Entry {
    name: &'static [u8],
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
        let canonical = MessageType::ALL.iter().map(|&t| Entry {
            name: t.as_str().as_bytes(),
            resolution: Resolution::Type(t),
        });
        let aliases = ALIASES.iter().map(|a| Entry {
            name: a.name.as_bytes(),
            resolution: match a.target {
                AliasTarget::Type(t) => Resolution::Type(t),
                AliasTarget::Rejected(why) => Resolution::Rejected(why),
            },
        });
        let mut table = Table {
            entries: canonical.chain(aliases).collect(),
            slots: [0; SLOTS],
        };
        for (index, entry) in table.entries.iter().enumerate() {
            // The table's own tests check these; a violation is a bug in the static data.
            debug_assert!(entry.name.len() <= MAX_NAME, "name too long");
            debug_assert!(
                entry.name.iter().all(|b| !b.is_ascii_uppercase()),
                "names are stored in lower case"
            );
            let mut slot = hash(entry.name) as usize & (SLOTS - 1);
            while table.slots[slot] != 0 {
                slot = (slot + 1) & (SLOTS - 1);
            }
            // At most a few hundred entries: the index always fits.
            table.slots[slot] = (index + 1) as u16;
        }
        table
    }

    fn find(&self, lowered: &[u8], hash: u32) -> Option<&Entry> {
        let mut slot = hash as usize & (SLOTS - 1);
        loop {
            let index = self.slots[slot];
            if index == 0 {
                return None;
            }
            let entry = &self.entries[usize::from(index - 1)];
            if entry.name == lowered {
                return Some(entry);
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }
}

/// FNV-1a over bytes that are already lower case.
fn hash(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
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
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME {
        return Err(UnknownMessageType::unknown(name));
    }
    let mut buf = [0u8; MAX_NAME];
    let lowered = &mut buf[..bytes.len()];
    lowered.copy_from_slice(bytes);
    lowered.make_ascii_lowercase();
    match TABLE.find(lowered, hash(lowered)) {
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
    fn every_name_fits_the_table() {
        let longest = TABLE.entries.iter().map(|e| e.name.len()).max();
        assert!(longest.is_some_and(|l| l <= MAX_NAME));
        assert!(TABLE.entries.len() * 2 <= SLOTS);
    }
}
