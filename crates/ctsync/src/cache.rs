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
use std::time::{Duration, Instant};

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
    /// When the entry was stored, in seconds after the cache's `base` plus one (0: unknown);
    /// sits in what would be padding.
    stored_at: u32,
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
    /// The time `stored_at` counts from (the first timed store).
    base: Option<Instant>,
    counters: CacheCounters,
    _records: PhantomData<fn() -> R>,
}

/// What happened to a cache's entries since it was made, as conntrackd's `-s` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// New keys stored.
    pub created: u64,
    /// New keys refused because the cache was full.
    pub create_failed: u64,
    /// Entries replaced by a newer version.
    pub updated: u64,
    /// Entries removed (deletes, flushes and resync sweeps).
    pub destroyed: u64,
    /// Deletes of keys the cache did not have.
    pub destroy_not_found: u64,
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
            base: None,
            counters: CacheCounters::default(),
            _records: PhantomData,
        }
    }

    /// What happened to the entries so far.
    pub fn counters(&self) -> CacheCounters {
        self.counters
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
        self.store(record, 0)
    }

    /// [`Self::upsert`], remembering that the entry arrived at `now`, so that
    /// [`Self::records_aged`] can hand it out with the time since taken off its lifetime.
    pub fn upsert_at(&mut self, record: R, now: Instant) -> Result<Option<R>, Full> {
        let base = *self.base.get_or_insert(now);
        let seconds = now.saturating_duration_since(base).as_secs();
        let stored_at = u32::try_from(seconds).unwrap_or(u32::MAX - 1) + 1;
        self.store(record, stored_at)
    }

    fn store(&mut self, record: R, stored_at: u32) -> Result<Option<R>, Full> {
        let key = record.key();
        let hash = self.state.hash_one(&key);
        let mut bytes = Vec::with_capacity(64);
        record.encode(&mut bytes);
        let packed = Packed {
            hash,
            generation: self.generation,
            stored_at,
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
                self.counters.updated += 1;
                Ok(Some(decode(&old.bytes)))
            }
            Slot::Vacant(_) if full => {
                self.counters.create_failed += 1;
                Err(Full)
            }
            Slot::Vacant(slot) => {
                slot.insert(packed);
                self.counters.created += 1;
                Ok(None)
            }
        }
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        let hash = self.state.hash_one(key);
        let Ok(slot) = self.table.find_entry(hash, |p| {
            p.hash == hash && decode::<R>(&p.bytes).key() == *key
        }) else {
            self.counters.destroy_not_found += 1;
            return None;
        };
        self.counters.destroyed += 1;
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
            base: self.base,
            counters: CacheCounters::default(),
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
        self.counters.destroyed += stale.len() as u64;
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
        self.counters.destroyed += self.table.len() as u64;
        self.table.clear();
    }

    /// The entries, decoded, in no particular order (for `tandemctl -i/-e` and commit).
    pub fn records(&self) -> impl Iterator<Item = R> + '_ {
        self.table.iter().map(|p| decode(&p.bytes))
    }

    /// The entries as of `now`: each [`Record::aged`] by the time since it arrived (entries
    /// stored without a time come as they are). What a commit puts into the kernel.
    pub fn records_aged(&self, now: Instant) -> impl Iterator<Item = R> + '_ {
        self.table
            .iter()
            .map(move |p| decode::<R>(&p.bytes).aged(self.age(p, now)))
    }

    /// The entry for `key` as of `now` (see [`Self::records_aged`]).
    pub fn get_aged(&self, key: &R::Key, now: Instant) -> Option<R> {
        self.find(key)
            .map(|p| decode::<R>(&p.bytes).aged(self.age(p, now)))
    }

    fn age(&self, p: &Packed, now: Instant) -> Duration {
        match (self.base, p.stored_at) {
            (Some(base), at) if at > 0 => {
                let stored = base + Duration::from_secs(u64::from(at - 1));
                now.saturating_duration_since(stored)
            }
            _ => Duration::ZERO,
        }
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
        /// `value` plays a remaining timeout.
        fn aged(mut self, elapsed: Duration) -> Self {
            self.value = self.value.saturating_sub(elapsed.as_secs() as u32);
            self
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

    #[test]
    fn entries_stored_with_a_time_come_out_aged_by_the_time_since() {
        let t0 = Instant::now();
        let mut cache: Cache<Entry> = Cache::new(10);
        cache.upsert_at(Entry { key: 1, value: 100 }, t0).unwrap();
        cache
            .upsert_at(Entry { key: 2, value: 100 }, t0 + Duration::from_secs(30))
            .unwrap();
        cache.upsert(Entry { key: 3, value: 100 }).unwrap();
        let at = t0 + Duration::from_secs(40);
        let mut aged: Vec<(u32, u32)> = cache.records_aged(at).map(|e| (e.key, e.value)).collect();
        aged.sort_unstable();
        assert_eq!(aged, [(1, 60), (2, 90), (3, 100)]);
        assert_eq!(cache.get_aged(&1, at).map(|e| e.value), Some(60));
        // Plain reads (dumps) show what the peer reported.
        assert_eq!(cache.get(&1).map(|e| e.value), Some(100));
        // A newer report restarts the clock.
        cache.upsert_at(Entry { key: 1, value: 100 }, at).unwrap();
        assert_eq!(cache.get_aged(&1, at).map(|e| e.value), Some(100));
    }
}
