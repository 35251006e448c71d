//! The replication side of the exposition: the sync channel's counters and gauges, named
//! and explained, read from what the replication service last published.

use std::time::Instant;

use crate::conntrack::PeerHealth;

/// The replication side as the exposition shows it.
#[derive(Debug, Default)]
pub(super) struct SyncSample {
    /// Counters of the sync channel and caches: name, help, value.
    pub counters: Vec<(&'static str, &'static str, u64)>,
    /// Gauges: name, help, value.
    pub gauges: Vec<(&'static str, &'static str, f64)>,
    /// Drops by reason.
    pub drops: Vec<(&'static str, u64)>,
}

/// The series of `h` at `now`.
pub(super) fn sample(h: &PeerHealth, now: Instant) -> SyncSample {
    let c = &h.counters;
    let mut gauges = vec![
        (
            "sync_peer_silent",
            "1 when nothing authenticated came from the sync peer for peer_silent",
            f64::from(u8::from(h.is_silent(now))),
        ),
        (
            "sync_internal_entries",
            "Flows of this node's kernel in the internal cache",
            c.internal_entries as f64,
        ),
        (
            "sync_external_entries",
            "The peer's flows in the external cache",
            c.external_entries as f64,
        ),
        (
            "sync_unacked",
            "DATA datagrams sent and not acknowledged yet",
            h.lag.unacked as f64,
        ),
        (
            "sync_queued_bytes",
            "Changes waiting for room in the window",
            h.lag.queued_bytes as f64,
        ),
    ];
    if let Some(heard) = h.last_heard {
        gauges.push((
            "sync_peer_last_heard_seconds",
            "Seconds since the sync peer's last authenticated datagram",
            now.saturating_duration_since(heard).as_secs_f64(),
        ));
    }
    SyncSample {
        counters: vec![
            (
                "sync_datagrams_sent",
                "Sync datagrams sent, retransmissions included",
                c.datagrams_sent,
            ),
            (
                "sync_datagrams_received",
                "Sync datagrams received, dropped ones included",
                c.datagrams_received,
            ),
            ("sync_bytes_sent", "Sync payload bytes sent", c.bytes_sent),
            (
                "sync_bytes_received",
                "Sync payload bytes received",
                c.bytes_received,
            ),
            (
                "sync_retransmissions",
                "DATA datagrams sent again",
                c.retransmissions,
            ),
            (
                "sync_records_sent",
                "Flow records sent (bulk included)",
                c.records_sent,
            ),
            (
                "sync_records_received",
                "Flow records received and applied",
                c.records_received,
            ),
            (
                "sync_bulk_sends",
                "Full resyncs sent to the peer",
                c.bulk_sends,
            ),
            (
                "sync_resync_requests_sent",
                "Full resyncs asked of the peer",
                c.resync_requests_sent,
            ),
            (
                "sync_peer_restarts",
                "Times the peer restarted (a new session)",
                c.peer_restarts,
            ),
        ],
        gauges,
        drops: h.drops.clone(),
    }
}
