//! The internal cache (what this node's kernel has) and the external cache (what the peer
//! reported), each bounded by a maximum entry count: when full, new entries are refused and
//! counted, never a crash or an unbounded allocation.
//!
//! Entries are kept packed, as their wire encoding (about 45-65 bytes for a flow) in a hash
//! table of (hash, bytes) slots, not as decoded records keyed by a copy of their key: a
//! million flows then take about 100 MB instead of 230, and a bulk send copies the stored
//! bytes out as they are. Reading an entry decodes it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::marker::PhantomData;

use hashbrown::hash_table::{Entry as Slot, HashTable};

use crate::record::Record;

/// Returned when a new entry does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One stored entry.
#[derive(Debug, Clone)]
struct Packed {
    hash: u64,
    /// Resync generation (external cache only).
    generation: u32,
    bytes: Box<[u8]>,
}

/// Records stored as their encoding, found by key.
#[derive(Debug, Clone)]
struct PackedTable<R: Record> {
    table: HashTable<Packed>,
    state: RandomState,
    max: usize,
    _records: PhantomData<fn() -> R>,
}

fn decode<R: Record>(bytes: &[u8]) -> R {
    // Only records this crate encoded itself are stored, so decoding cannot fail.
    R::decode(bytes).expect("a stored record decodes")
}

impl<R: Record> PackedTable<R> {
    fn new(max: usize) -> Self {
        PackedTable {
            table: HashTable::new(),
            state: RandomState::new(),
            max,
            _records: PhantomData,
        }
    }

    fn find(&self, key: &R::Key) -> Option<&Packed> {
        let hash = self.state.hash_one(key);
        self.table.find(hash, |p| {
            p.hash == hash && decode::<R>(&p.bytes).key() == *key
        })
    }

    /// Inserts or replaces; returns the replaced encoding.
    fn insert(&mut self, record: &R, generation: u32) -> Result<Option<Box<[u8]>>, Full> {
        let key = record.key();
        let hash = self.state.hash_one(&key);
        let mut bytes = Vec::with_capacity(64);
        record.encode(&mut bytes);
        let packed = Packed {
            hash,
            generation,
            bytes: bytes.into_boxed_slice(),
        };
        let full = self.table.len() >= self.max;
        match self.table.entry(
            hash,
            |p| p.hash == hash && decode::<R>(&p.bytes).key() == key,
            |p| p.hash,
        ) {
            Slot::Occupied(mut slot) => Ok(Some(std::mem::replace(slot.get_mut(), packed).bytes)),
            Slot::Vacant(_) if full => Err(Full),
            Slot::Vacant(slot) => {
                slot.insert(packed);
                Ok(None)
            }
        }
    }

    fn remove(&mut self, key: &R::Key) -> Option<R> {
        let hash = self.state.hash_one(key);
        let slot = self
            .table
            .find_entry(hash, |p| {
                p.hash == hash && decode::<R>(&p.bytes).key() == *key
            })
            .ok()?;
        Some(decode(&slot.remove().0.bytes))
    }

    fn take(&mut self) -> Self {
        PackedTable {
            table: std::mem::take(&mut self.table),
            state: self.state.clone(),
            max: self.max,
            _records: PhantomData,
        }
    }

    /// Table slots plus the encodings on the heap (with the allocator's 16-byte rounding
    /// and its 8-byte chunk header).
    fn memory(&self) -> usize {
        let buckets = if self.table.capacity() == 0 {
            0
        } else {
            (self.table.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<Packed>() + 1)
            + self
                .table
                .iter()
                .map(|p| (p.bytes.len() + 8).div_ceil(16) * 16)
                .sum::<usize>()
    }
}

/// What this node's kernel has, as last reported by events or a dump.
#[derive(Debug, Clone)]
pub struct InternalCache<R: Record> {
    packed: PackedTable<R>,
}

impl<R: Record> InternalCache<R> {
    /// An empty cache holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        InternalCache {
            packed: PackedTable::new(max),
        }
    }

    /// Inserts or replaces, returning the replaced version; refuses a new key when full.
    pub fn upsert(&mut self, record: R) -> Result<Option<R>, Full> {
        Ok(self.packed.insert(&record, 0)?.map(|bytes| decode(&bytes)))
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        self.packed.remove(key)
    }

    /// The entry for `key`.
    pub fn get(&self, key: &R::Key) -> Option<R> {
        self.packed.find(key).map(|p| decode(&p.bytes))
    }

    /// The encoding of the entry for `key`, as it goes on the wire.
    pub fn get_encoded(&self, key: &R::Key) -> Option<&[u8]> {
        self.packed.find(key).map(|p| &*p.bytes)
    }

    /// Takes every entry out, leaving an empty cache with the same bound.
    pub fn take(&mut self) -> InternalCache<R> {
        InternalCache {
            packed: self.packed.take(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.packed.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.packed.table.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.packed.table.clear();
    }

    /// The entries, decoded, in no particular order (for `tandemctl -i`).
    pub fn records(&self) -> impl Iterator<Item = R> + '_ {
        self.packed.table.iter().map(|p| decode(&p.bytes))
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = R::Key> + '_ {
        self.records().map(|r| r.key())
    }

    /// Approximate memory in bytes: table slots plus the encodings.
    pub fn memory(&self) -> usize {
        self.packed.memory()
    }
}

/// What the peer reported; committed into the kernel on promotion.
#[derive(Debug, Clone)]
pub struct ExternalCache<R: Record> {
    packed: PackedTable<R>,
    generation: u32,
}

impl<R: Record> ExternalCache<R> {
    /// An empty cache holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        ExternalCache {
            packed: PackedTable::new(max),
            generation: 0,
        }
    }

    /// Inserts or replaces, marking the entry as seen in the current resync generation;
    /// returns the replaced version.
    pub fn upsert(&mut self, record: R) -> Result<Option<R>, Full> {
        Ok(self
            .packed
            .insert(&record, self.generation)?
            .map(|bytes| decode(&bytes)))
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        self.packed.remove(key)
    }

    /// Starts a mark-and-sweep resync: entries not upserted before [`Self::end_resync`] go.
    pub fn begin_resync(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a resync, dropping entries the peer did not re-send; returns them.
    pub fn end_resync(&mut self) -> Vec<R> {
        let generation = self.generation;
        let mut stale = Vec::new();
        self.packed.table.retain(|p| {
            let keep = p.generation == generation;
            if !keep {
                stale.push(decode(&p.bytes));
            }
            keep
        });
        stale
    }

    /// The entry for `key`.
    pub fn get(&self, key: &R::Key) -> Option<R> {
        self.packed.find(key).map(|p| decode(&p.bytes))
    }

    /// Whether there is an entry for `key`.
    pub fn contains(&self, key: &R::Key) -> bool {
        self.packed.find(key).is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.packed.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.packed.table.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.packed.table.clear();
    }

    /// The entries, decoded, in no particular order (for `tandemctl -e` and commit).
    pub fn records(&self) -> impl Iterator<Item = R> + '_ {
        self.packed.table.iter().map(|p| decode(&p.bytes))
    }

    /// Approximate memory in bytes: table slots plus the encodings.
    pub fn memory(&self) -> usize {
        self.packed.memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Attrs, WireError};

    #[derive(Debug, Clone, PartialEq)]
    struct Entry {
        key: u32,
        value: u32,
    }

    impl Record for Entry {
        type Key = u32;
        fn key(&self) -> u32 {
            self.key
        }
        fn encode(&self, out: &mut Vec<u8>) {
            wire::put_u32(out, 1, self.key);
            wire::put_u32(out, 2, self.value);
        }
        fn decode(attrs: &[u8]) -> Result<Self, WireError> {
            let (mut key, mut value) = (0, 0);
            for a in Attrs::new(attrs) {
                match a? {
                    (1, v) => key = wire::get_u32("key", 1, v)?,
                    (2, v) => value = wire::get_u32("value", 2, v)?,
                    _ => {}
                }
            }
            Ok(Entry { key, value })
        }
    }

    #[test]
    fn upsert_get_remove_and_the_bound() {
        let mut cache: InternalCache<Entry> = InternalCache::new(2);
        assert_eq!(cache.upsert(Entry { key: 1, value: 10 }), Ok(None));
        assert_eq!(
            cache.upsert(Entry { key: 1, value: 11 }),
            Ok(Some(Entry { key: 1, value: 10 }))
        );
        assert_eq!(cache.upsert(Entry { key: 2, value: 20 }), Ok(None));
        assert_eq!(cache.upsert(Entry { key: 3, value: 30 }), Err(Full));
        assert_eq!(cache.get(&1), Some(Entry { key: 1, value: 11 }));
        assert_eq!(cache.remove(&2), Some(Entry { key: 2, value: 20 }));
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_resync_sweeps_what_was_not_sent_again() {
        let mut cache: ExternalCache<Entry> = ExternalCache::new(10);
        for key in 0..4 {
            cache.upsert(Entry { key, value: 0 }).unwrap();
        }
        cache.begin_resync();
        cache.upsert(Entry { key: 1, value: 1 }).unwrap();
        cache.upsert(Entry { key: 3, value: 1 }).unwrap();
        let mut stale: Vec<u32> = cache.end_resync().iter().map(|e| e.key).collect();
        stale.sort();
        assert_eq!(stale, [0, 2]);
        assert!(cache.contains(&1) && cache.contains(&3) && cache.len() == 2);
    }
}
