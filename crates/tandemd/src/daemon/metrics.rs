//! The daemon's side of the metrics: one [`Sample`] of the VRRP core's and the replication
//! service's counters, rendered with what the daemon recorded (see [`crate::metrics`]).

use std::time::Instant;

use tandem_vrrp::State;

use super::Daemon;
use crate::metrics::{self, InstanceSample, Sample, SyncSample};

impl Daemon {
    /// The Prometheus exposition of this moment.
    pub(super) fn metrics_text(&self) -> String {
        metrics::render(&self.metrics_sample(Instant::now()), &self.recorder)
    }

    fn metrics_sample(&self, now: Instant) -> Sample {
        let instances = (self.plan.router.instances())
            .map(|(id, instance)| {
                let s = instance.stats();
                InstanceSample {
                    name: self.plan.instances[id].name.clone(),
                    state: state_number(instance.state()),
                    priority: i64::from(instance.priority()),
                    base_priority: i64::from(instance.config().priority),
                    adverts_received: s.adverts_received,
                    adverts_sent: s.adverts_sent,
                    priority_zero_received: s.priority_zero_received,
                    priority_zero_sent: s.priority_zero_sent,
                    drops: s.drop_counts().collect(),
                }
            })
            .collect();
        let sync = (self.replication.as_ref())
            .and_then(|r| r.handle.health())
            .map(|h| {
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
            });
        Sample {
            instances,
            unclaimed_drops: self.plan.router.unclaimed_stats().drop_counts().collect(),
            sync,
            failover_warnings: self.failover.as_ref().map(|f| f.warnings),
        }
    }
}

/// keepalived's numbering of states, which its exporters publish.
fn state_number(state: State) -> i64 {
    match state {
        State::Init | State::Stop => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}
