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
    /// Resync generation (used by the external cache).
    generation: u32,
    bytes: Box<[u8]>,
}

/// Entries stored as their encoding, found by key, at most `max` of them. The internal and
/// the external cache are this one type; only the external cache uses the resync generation.
#[derive(Debug, Clone)]
pub struct Cache<R: Record> {
    table: HashTable<Packed>,
    state: RandomState,
    max: usize,
    generation: u32,
    _records: PhantomData<fn() -> R>,
}

/// What this node's kernel has, as last reported by events or a dump.
pub type InternalCache<R> = Cache<R>;

/// What the peer reported; committed into the kernel on promotion.
pub type ExternalCache<R> = Cache<R>;

fn decode<R: Record>(bytes: &[u8]) -> R {
    // Only records this crate encoded itself are stored, so decoding cannot fail.
    R::decode(bytes).expect("a stored record decodes")
}

impl<R: Record> Cache<R> {
    /// An empty cache holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        Cache {
            table: HashTable::new(),
            state: RandomState::new(),
            max,
            generation: 0,
            _records: PhantomData,
        }
    }

    fn find(&self, key: &R::Key) -> Option<&Packed> {
        let hash = self.state.hash_one(key);
        self.table.find(hash, |p| {
            p.hash == hash && decode::<R>(&p.bytes).key() == *key
        })
    }

    /// Inserts or replaces, marking the entry as seen in the current resync generation;
    /// returns the replaced version. Refuses a new key when full.
    pub fn upsert(&mut self, record: R) -> Result<Option<R>, Full> {
        let key = record.key();
        let hash = self.state.hash_one(&key);
        let mut bytes = Vec::with_capacity(64);
        record.encode(&mut bytes);
        let packed = Packed {
            hash,
            generation: self.generation,
            bytes: bytes.into_boxed_slice(),
        };
        let full = self.table.len() >= self.max;
        match self.table.entry(
            hash,
            |p| p.hash == hash && decode::<R>(&p.bytes).key() == key,
            |p| p.hash,
        ) {
            Slot::Occupied(mut slot) => {
                let old = std::mem::replace(slot.get_mut(), packed);
                Ok(Some(decode(&old.bytes)))
            }
            Slot::Vacant(_) if full => Err(Full),
            Slot::Vacant(slot) => {
                slot.insert(packed);
                Ok(None)
            }
        }
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        let hash = self.state.hash_one(key);
        let slot = self
            .table
            .find_entry(hash, |p| {
                p.hash == hash && decode::<R>(&p.bytes).key() == *key
            })
            .ok()?;
        Some(decode(&slot.remove().0.bytes))
    }

    /// The entry for `key`.
    pub fn get(&self, key: &R::Key) -> Option<R> {
        self.find(key).map(|p| decode(&p.bytes))
    }

    /// The encoding of the entry for `key`, as it goes on the wire.
    pub fn get_encoded(&self, key: &R::Key) -> Option<&[u8]> {
        self.find(key).map(|p| &*p.bytes)
    }

    /// Whether there is an entry for `key`.
    pub fn contains(&self, key: &R::Key) -> bool {
        self.find(key).is_some()
    }

    /// Takes every entry out, leaving an empty cache with the same bound.
    pub fn take(&mut self) -> Cache<R> {
        Cache {
            table: std::mem::take(&mut self.table),
            state: self.state.clone(),
            max: self.max,
            generation: self.generation,
            _records: PhantomData,
        }
    }

    /// Starts a mark-and-sweep resync: entries not upserted before [`Self::end_resync`] go.
    pub fn begin_resync(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a resync, dropping entries the peer did not re-send; returns them.
    pub fn end_resync(&mut self) -> Vec<R> {
        let generation = self.generation;
        let mut stale = Vec::new();
        self.table.retain(|p| {
            let keep = p.generation == generation;
            if !keep {
                stale.push(decode(&p.bytes));
            }
            keep
        });
        stale
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The entries, decoded, in no particular order (for `tandemctl -i/-e` and commit).
    pub fn records(&self) -> impl Iterator<Item = R> + '_ {
        self.table.iter().map(|p| decode(&p.bytes))
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = R::Key> + '_ {
        self.records().map(|r| r.key())
    }

    /// Approximate memory in bytes: table slots plus the encodings on the heap (with the
    /// allocator's 16-byte rounding and its 8-byte chunk header).
    pub fn memory(&self) -> usize {
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
