//! Per-instance counters: what an operator asks for when a pair misbehaves.

use crate::packet::DropReason;

/// Counters of one instance (or of packets no instance claimed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts accepted.
    pub adverts_received: u64,
    /// Adverts sent (one per destination).
    pub adverts_sent: u64,
    /// Accepted adverts with priority 0.
    pub priority_zero_received: u64,
    /// Priority-0 adverts sent.
    pub priority_zero_sent: u64,
    /// Accepted adverts whose address list differs from ours (logged, not dropped: RFC 5798 7.1).
    pub address_list_mismatch: u64,
    /// Transitions into MASTER.
    pub became_master: u64,
    /// Transitions out of MASTER.
    pub released_master: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Stats {
    /// Adds one dropped packet under `reason`.
    pub fn count_drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason) {
            self.drops[i] += 1;
        }
    }

    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.drops[i])
    }

    /// All packets dropped, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Non-zero drop counters, by name.
    pub fn drop_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.drops)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name(), n))
    }
}
