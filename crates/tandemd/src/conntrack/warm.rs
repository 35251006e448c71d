//! Warm standby bookkeeping: which of the peer's changes this backup has not yet applied to
//! its own kernel table. The service applies them in bounded chunks beside its own work,
//! newest change first, so that a promotion finds nearly everything in place, commits only
//! the rest, and puts the flows that changed last (the likeliest to carry traffic) in first.

use std::collections::{HashMap, HashSet};

use tandem_ctnetlink::{Flow, FlowKey};
use tandem_ctsync::ExternalChange;

/// Changes to apply to the kernel in one request to it.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Flows to create, or update where the kernel has them; newest change first.
    pub set: Vec<Flow>,
    /// Flows the peer no longer has.
    pub removed: Vec<Flow>,
}

impl Chunk {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Keys of every flow in the chunk.
    pub fn keys(&self) -> Vec<FlowKey> {
        self.set
            .iter()
            .chain(&self.removed)
            .map(Flow::key)
            .collect()
    }
}

/// The peer's changes not yet in this node's kernel table.
#[derive(Default)]
pub struct WarmStandby {
    /// Latest change per flow, with the sequence number of its arrival.
    pending: HashMap<FlowKey, (u64, ExternalChange<Flow>)>,
    /// Arrival order (newest last); entries whose sequence number no longer matches
    /// `pending` were superseded and are skipped.
    order: Vec<(u64, FlowKey)>,
    next_seq: u64,
    /// A chunk is in the kernel's hands; the next waits for its result.
    in_flight: bool,
    /// Flows the peer has that this kernel lost (expired here, or refused): a promotion
    /// creates them from the external cache.
    stale: HashSet<FlowKey>,
    applied: u64,
    refused: u64,
}

impl WarmStandby {
    /// Notes the peer's changes, in arrival order.
    pub fn record(&mut self, changes: impl IntoIterator<Item = ExternalChange<Flow>>) {
        for change in changes {
            let key = match &change {
                ExternalChange::Set(f) | ExternalChange::Removed(f) => f.key(),
            };
            self.next_seq += 1;
            self.stale.remove(&key);
            self.pending.insert(key, (self.next_seq, change));
            self.order.push((self.next_seq, key));
        }
        if self.order.len() > 2 * self.pending.len() + 4096 {
            let pending = &self.pending;
            self.order
                .retain(|(seq, key)| pending.get(key).is_some_and(|(s, _)| s == seq));
        }
    }

    /// The next chunk of at most `max` changes, unless the previous one is still being
    /// applied or nothing is pending.
    pub fn next_chunk(&mut self, max: usize) -> Option<Chunk> {
        if self.in_flight {
            return None;
        }
        let chunk = self.take(max);
        self.in_flight = !chunk.is_empty();
        self.in_flight.then_some(chunk)
    }

    /// The kernel applied the chunk handed out last, except the flows in `refused`.
    pub fn chunk_done(&mut self, total: usize, refused: Vec<FlowKey>) {
        self.in_flight = false;
        self.applied += (total - refused.len()) as u64;
        self.refused += refused.len() as u64;
        self.stale.extend(refused);
    }

    /// This kernel lost a flow the peer still has (it expired here, or someone deleted it).
    pub fn lost(&mut self, key: FlowKey) {
        if !self.pending.contains_key(&key) {
            self.stale.insert(key);
        }
    }

    /// Everything a promotion must still apply: the pending changes (newest first) and the
    /// keys to take from the external cache. Nothing is pending afterwards.
    pub fn take_all(&mut self) -> (Chunk, Vec<FlowKey>) {
        let chunk = self.take(usize::MAX);
        self.order.clear();
        (chunk, self.stale.drain().collect())
    }

    /// Changes not yet handed to the kernel.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Counters for the statistics: applied, refused, pending.
    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("warm_applied", self.applied),
            ("warm_refused", self.refused),
            ("warm_pending", self.pending.len() as u64),
        ]
    }

    fn take(&mut self, max: usize) -> Chunk {
        let mut chunk = Chunk::default();
        let mut taken = 0;
        while taken < max {
            let Some((seq, key)) = self.order.pop() else {
                break;
            };
            if self.pending.get(&key).is_none_or(|(s, _)| *s != seq) {
                continue;
            }
            let Some((_, change)) = self.pending.remove(&key) else {
                continue;
            };
            match change {
                ExternalChange::Set(f) => chunk.set.push(f),
                ExternalChange::Removed(f) => chunk.removed.push(f),
            }
            taken += 1;
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_ctnetlink::{Tuple, L4};

    fn flow(port: u16, mark: u32) -> Flow {
        let orig = Tuple {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            proto: 17,
            l4: L4::Ports { src: port, dst: 53 },
        };
        let mut f = Flow::new(orig, 30);
        f.mark = mark;
        f
    }

    fn ports(flows: &[Flow]) -> Vec<u16> {
        flows
            .iter()
            .map(|f| match f.orig.l4 {
                L4::Ports { src, .. } => src,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn chunks_are_bounded_newest_first_and_one_at_a_time() {
        let mut warm = WarmStandby::default();
        warm.record((1..=5).map(|p| ExternalChange::Set(flow(p, 0))));
        let first = warm.next_chunk(2).unwrap();
        assert_eq!(ports(&first.set), [5, 4]);
        assert!(
            warm.next_chunk(2).is_none(),
            "one chunk in flight at a time"
        );
        warm.chunk_done(2, vec![]);
        assert_eq!(ports(&warm.next_chunk(10).unwrap().set), [3, 2, 1]);
        warm.chunk_done(3, vec![]);
        assert!(warm.next_chunk(10).is_none());
        assert_eq!(warm.counters()[0].1, 5);
    }

    #[test]
    fn the_latest_change_per_flow_wins_and_moves_to_the_front() {
        let mut warm = WarmStandby::default();
        warm.record([
            ExternalChange::Set(flow(1, 1)),
            ExternalChange::Set(flow(2, 1)),
            ExternalChange::Set(flow(1, 2)),
            ExternalChange::Removed(flow(2, 1)),
            ExternalChange::Set(flow(3, 1)),
        ]);
        assert_eq!(warm.pending(), 3);
        let chunk = warm.next_chunk(10).unwrap();
        assert_eq!(ports(&chunk.set), [3, 1]);
        assert_eq!(chunk.set[1].mark, 2);
        assert_eq!(ports(&chunk.removed), [2]);
    }

    #[test]
    fn a_promotion_takes_what_is_pending_and_what_the_kernel_lost() {
        let mut warm = WarmStandby::default();
        warm.record((1..=4).map(|p| ExternalChange::Set(flow(p, 0))));
        let chunk = warm.next_chunk(2).unwrap();
        warm.chunk_done(2, vec![chunk.set[0].key()]);
        warm.lost(flow(9, 0).key());
        warm.lost(flow(1, 0).key()); // still pending: the pending change covers it
        let (rest, stale) = warm.take_all();
        assert_eq!(ports(&rest.set), [2, 1]);
        let mut stale: Vec<u16> = stale
            .iter()
            .map(|k| match k.orig.l4 {
                L4::Ports { src, .. } => src,
                _ => 0,
            })
            .collect();
        stale.sort();
        assert_eq!(stale, [4, 9]);
        assert_eq!(warm.pending(), 0);
        assert!(warm.take_all().0.is_empty());
    }

    #[test]
    fn superseded_arrivals_do_not_pile_up() {
        let mut warm = WarmStandby::default();
        for mark in 0..10_000 {
            warm.record([ExternalChange::Set(flow(1, mark))]);
        }
        assert!(warm.order.len() <= 2 * warm.pending() + 4096);
        assert_eq!(warm.next_chunk(10).unwrap().set[0].mark, 9_999);
    }
}
