//! `tandemctl status --json`: the status lines as one JSON document for monitoring scripts.
//! The schema is documented in docs/control-and-health.md; fields are only ever added.

use std::time::Instant;

use serde_json::{json, Map, Value};
use tandem_vrrp::{Auth, Version};

use super::Daemon;

impl Daemon {
    /// The status as JSON (one document, one line).
    pub(super) fn status_json(&self) -> String {
        let now = Instant::now();
        let instances: Vec<Value> = (self.plan.router.instances())
            .map(|(id, instance)| {
                let plan = &self.plan.instances[id];
                let config = instance.config();
                let s = instance.stats();
                let drops: Map<String, Value> = (s.drop_counts())
                    .map(|(name, n)| (name.to_string(), json!(n)))
                    .collect();
                let last = self.recorder.last_transition(&plan.name);
                let ago = |at: Instant| now.saturating_duration_since(at).as_secs_f64();
                json!({
                    "name": plan.name,
                    "state": instance.state().keyword(),
                    "priority": instance.priority(),
                    "base_priority": config.priority,
                    "vrid": config.vrid,
                    "version": match config.version { Version::V2 => 2, Version::V3 => 3 },
                    "interface": self.plan.sockets.get(&plan.socket).map(|sp| sp.ifname.clone()),
                    "master": instance.master().map(|m| m.to_string()),
                    "addresses": plan.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "source": config.source.to_string(),
                    // Empty for multicast: the adverts go to the group instead.
                    "unicast_peers": (config.destinations.iter())
                        .filter(|d| !d.is_multicast())
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>(),
                    "group": self.plan.router.group_of(id).map(|g| self.plan.router.group_name(g).to_string()),
                    "authentication": !matches!(config.auth, Auth::None),
                    "adverts_received": s.adverts_received,
                    "adverts_sent": s.adverts_sent,
                    "priority_zero_received": s.priority_zero_received,
                    "priority_zero_sent": s.priority_zero_sent,
                    "became_master": s.became_master,
                    "released_master": s.released_master,
                    "drops": s.total_drops(),
                    "drops_by_reason": drops,
                    "in_state_seconds": last.map(|t| ago(t.at)),
                    "last_transition": last.map(|t| json!({
                        "from": t.from,
                        "to": t.to,
                        "cause": t.cause,
                        "seconds_ago": ago(t.at),
                    })),
                    "trackers": self.tracker_rows(id),
                })
            })
            .collect();
        let sync = (self.replication.as_ref())
            .and_then(|r| r.handle.health())
            .map(|h| {
                let drops: Map<String, Value> = (h.drops.iter())
                    .map(|(name, n)| (name.to_string(), json!(n)))
                    .collect();
                json!({
                    "peer": h.peer,
                    "silent": h.is_silent(now),
                    "last_heard_seconds": h.last_heard.map(|t| now.saturating_duration_since(t).as_secs_f64()),
                    "unacked": h.lag.unacked,
                    "oldest_unacked_seconds": h.lag.oldest_unacked.map(|t| now.saturating_duration_since(t).as_secs_f64()),
                    "queued_bytes": h.lag.queued_bytes,
                    "retransmissions": h.counters.retransmissions,
                    "drops_by_reason": drops,
                    "internal_entries": h.counters.internal_entries,
                    "external_entries": h.counters.external_entries,
                    "records_sent": h.counters.records_sent,
                    "records_received": h.counters.records_received,
                    "datagrams_sent": h.counters.datagrams_sent,
                    "datagrams_received": h.counters.datagrams_received,
                })
            });
        let failover = self.failover.as_ref().map(|f| {
            json!({
                "waiting_for_commit": f.coordinator.waiting_for_commit(),
                "holding_preemption": f.coordinator.holding_preemption(),
                "steps_pending": f.steps.len(),
                "warnings": f.warnings,
                "last_warning": f.last_warning,
            })
        });
        let mut groups: Vec<usize> = (self.plan.router.instances())
            .filter_map(|(id, _)| self.plan.router.group_of(id))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let groups: Vec<Value> = (groups.into_iter())
            .map(|g| {
                let members: Vec<&str> = (self.plan.router.instances())
                    .filter(|(id, _)| self.plan.router.group_of(*id) == Some(g))
                    .map(|(id, _)| self.plan.instances[id].name.as_str())
                    .collect();
                json!({
                    "name": self.plan.router.group_name(g),
                    "state": self.plan.router.group_state(g).keyword(),
                    "members": members,
                })
            })
            .collect();
        let failing = self.failing(now);
        let document = json!({
            "instances": instances,
            "groups": groups,
            "sync": sync,
            "failover": failover,
            "health": { "ok": failing.is_empty(), "failing": failing },
        });
        document.to_string() + "\n"
    }
}
