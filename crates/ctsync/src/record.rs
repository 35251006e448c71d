//! What the sync core replicates, kept abstract so this crate does not depend on the kernel side.

use crate::wire::WireError;

/// A replicated entry (a conntrack flow, or anything with a stable key).
pub trait Record: Clone + std::fmt::Debug {
    /// Identifies the entry across updates (for a flow: the original tuple and zone).
    type Key: Clone + Eq + std::hash::Hash + std::fmt::Debug;

    /// The entry's key.
    fn key(&self) -> Self::Key;

    /// Appends the record's attributes (see [`crate::wire::put_attr`]) to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes from the record's attributes, skipping unknown types (see [`crate::wire::Attrs`]).
    fn decode(attrs: &[u8]) -> Result<Self, WireError>;

    /// Whether `self`, a newer version of the same entry, is news compared with `earlier`.
    /// Values that move on their own (a flow's remaining timeout) are not: a copy needs no
    /// rewrite for them, so a bulk resync that repeats what the peer has costs it nothing.
    fn differs_from(&self, earlier: &Self) -> bool {
        let _ = earlier;
        true
    }

    /// This entry as it stands `elapsed` after it was reported: values that run down on their
    /// own (a flow's remaining timeout) run down. The default changes nothing.
    fn aged(self, elapsed: std::time::Duration) -> Self {
        let _ = elapsed;
        self
    }

    /// Rough heap plus inline size in bytes, reported for the memory bound.
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
