//! The internal cache (what this node's kernel has) and the external cache (what the peer
//! reported), each bounded by a maximum entry count: when full, new entries are refused and
//! counted, never a crash or an unbounded allocation.

use std::collections::HashMap;

use crate::record::Record;

/// Returned when a new entry does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// What this node's kernel has, as last reported by events or a dump.
#[derive(Debug, Clone)]
pub struct InternalCache<R: Record> {
    map: HashMap<R::Key, R>,
    max: usize,
}

impl<R: Record> InternalCache<R> {
    /// An empty cache holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        InternalCache {
            map: HashMap::new(),
            max,
        }
    }

    /// Inserts or replaces, returning the replaced version; refuses a new key when full.
    pub fn upsert(&mut self, record: R) -> Result<Option<R>, Full> {
        let key = record.key();
        if let Some(slot) = self.map.get_mut(&key) {
            return Ok(Some(std::mem::replace(slot, record)));
        }
        if self.map.len() >= self.max {
            return Err(Full);
        }
        self.map.insert(key, record);
        Ok(None)
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        self.map.remove(key)
    }

    /// Takes every entry out, leaving an empty cache with the same bound.
    pub fn take(&mut self) -> InternalCache<R> {
        InternalCache {
            map: std::mem::take(&mut self.map),
            max: self.max,
        }
    }

    /// The entry for `key`.
    pub fn get(&self, key: &R::Key) -> Option<&R> {
        self.map.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The entries, in no particular order (for `tandemctl -i`).
    pub fn records(&self) -> impl Iterator<Item = &R> {
        self.map.values()
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &R::Key> {
        self.map.keys()
    }

    /// Approximate memory in bytes: table slots plus the records' own heap.
    pub fn memory(&self) -> usize {
        table_bytes::<R::Key, R>(self.map.capacity())
            + self
                .map
                .values()
                .map(|r| r.size().saturating_sub(std::mem::size_of::<R>()))
                .sum::<usize>()
    }
}

#[derive(Debug, Clone)]
struct Slot<R> {
    record: R,
    generation: u32,
}

/// What the peer reported; committed into the kernel on promotion.
#[derive(Debug, Clone)]
pub struct ExternalCache<R: Record> {
    map: HashMap<R::Key, Slot<R>>,
    max: usize,
    generation: u32,
}

impl<R: Record> ExternalCache<R> {
    /// An empty cache holding at most `max` entries.
    pub fn new(max: usize) -> Self {
        ExternalCache {
            map: HashMap::new(),
            max,
            generation: 0,
        }
    }

    /// Inserts or replaces, marking the entry as seen in the current resync generation;
    /// returns the replaced version.
    pub fn upsert(&mut self, record: R) -> Result<Option<R>, Full> {
        let key = record.key();
        let generation = self.generation;
        if let Some(slot) = self.map.get_mut(&key) {
            let old = std::mem::replace(slot, Slot { record, generation });
            return Ok(Some(old.record));
        }
        if self.map.len() >= self.max {
            return Err(Full);
        }
        self.map.insert(key, Slot { record, generation });
        Ok(None)
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        self.map.remove(key).map(|s| s.record)
    }

    /// Starts a mark-and-sweep resync: entries not upserted before [`Self::end_resync`] go.
    pub fn begin_resync(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a resync, dropping entries the peer did not re-send; returns them.
    pub fn end_resync(&mut self) -> Vec<R> {
        let generation = self.generation;
        let stale: Vec<R::Key> = self
            .map
            .iter()
            .filter(|(_, s)| s.generation != generation)
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .iter()
            .filter_map(|k| self.map.remove(k).map(|s| s.record))
            .collect()
    }

    /// The entry for `key`.
    pub fn get(&self, key: &R::Key) -> Option<&R> {
        self.map.get(key).map(|s| &s.record)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The entries, in no particular order (for `tandemctl -e` and commit).
    pub fn records(&self) -> impl Iterator<Item = &R> {
        self.map.values().map(|s| &s.record)
    }

    /// Approximate memory in bytes: table slots plus the records' own heap.
    pub fn memory(&self) -> usize {
        table_bytes::<R::Key, Slot<R>>(self.map.capacity())
            + self
                .map
                .values()
                .map(|s| s.record.size().saturating_sub(std::mem::size_of::<R>()))
                .sum::<usize>()
    }
}

/// Bytes a hashbrown table of `capacity` (K, V) slots occupies: the slots plus one control byte
/// each (buckets are capacity * 8 / 7 rounded up to a power of two).
fn table_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<(K, V)>() + 1)
}
