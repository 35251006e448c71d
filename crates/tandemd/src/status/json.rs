//! `tandemctl status --json`: the status as one JSON document for monitoring scripts.
//! The schema is documented in docs/control-and-health.md; fields are only ever added.

use serde_json::{json, Map, Value};

use crate::snapshot::{InstanceSnapshot, Snapshot, TrackerSnapshot};
use tandem_vrrp::{Effect, TrackerKind};

/// The status of `snapshot` as JSON (one document, one line).
pub fn render(snapshot: &Snapshot) -> String {
    let instances: Vec<Value> = (snapshot.instances.iter())
        .map(|i| instance(snapshot, i))
        .collect();
    let sync = snapshot.sync.as_ref().map(|h| {
        let drops: Map<String, Value> = (h.drops.iter())
            .map(|(name, n)| (name.to_string(), json!(n)))
            .collect();
        json!({
            "peer": h.peer,
            "silent": h.is_silent(snapshot.taken),
            "last_heard_seconds": h.last_heard.map(|t| snapshot.seconds_since(t)),
            "unacked": h.lag.unacked,
            "oldest_unacked_seconds": h.lag.oldest_unacked.map(|t| snapshot.seconds_since(t)),
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
    let failover = snapshot.failover.as_ref().map(|f| {
        json!({
            "waiting_for_commit": f.waiting_for_commit,
            "holding_preemption": f.holding_preemption,
            "steps_pending": f.steps_pending,
            "warnings": f.warnings,
            "last_warning": f.last_warning,
        })
    });
    // Groups with at least one instance.
    let groups: Vec<Value> = (snapshot.groups.iter())
        .filter(|g| !g.members.is_empty())
        .map(|g| {
            json!({
                "name": g.name,
                "state": g.state.keyword(),
                "members": g.members,
            })
        })
        .collect();
    let failing = snapshot.failing();
    let document = json!({
        "instances": instances,
        "groups": groups,
        "sync": sync,
        "failover": failover,
        "health": { "ok": failing.is_empty(), "failing": failing },
    });
    document.to_string() + "\n"
}

/// One instance's object.
fn instance(snapshot: &Snapshot, i: &InstanceSnapshot) -> Value {
    let s = &i.stats;
    let drops: Map<String, Value> = (s.drop_counts())
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect();
    let last = i.last_transition.as_ref();
    json!({
        "name": i.name,
        "state": i.state.keyword(),
        "priority": i.priority,
        "base_priority": i.base_priority,
        "vrid": i.vrid,
        "version": i.version,
        "interface": i.interface,
        "master": i.master.map(|m| m.to_string()),
        "addresses": i.vips.iter().map(|v| v.address.as_str()).collect::<Vec<_>>(),
        "source": i.source.to_string(),
        // Empty for multicast: the adverts go to the group instead.
        "unicast_peers": (i.destinations.iter())
            .filter(|d| !d.is_multicast())
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        "group": i.group,
        "authentication": i.authentication,
        "adverts_received": s.adverts_received,
        "adverts_sent": s.adverts_sent,
        "priority_zero_received": s.priority_zero_received,
        "priority_zero_sent": s.priority_zero_sent,
        "became_master": s.became_master,
        "released_master": s.released_master,
        "drops": s.total_drops(),
        "drops_by_reason": drops,
        "in_state_seconds": last.map(|t| snapshot.seconds_since(t.at)),
        "last_transition": last.map(|t| json!({
            "from": t.from,
            "to": t.to,
            "cause": t.cause,
            "seconds_ago": snapshot.seconds_since(t.at),
        })),
        "trackers": i.trackers.iter().map(tracker).collect::<Vec<_>>(),
    })
}

/// One tracker reference's object; a script's adds its counters and user.
fn tracker(t: &TrackerSnapshot) -> Value {
    let mut row = json!({
        "kind": t.kind.word(),
        "name": t.name,
        "state": t.state.to_string(),
        "weight": t.weight,
        "reverse": t.reverse,
        "group": t.group,
        "effect": match t.effect {
            Effect::Fault => json!("fault"),
            Effect::Priority(p) => json!(p),
        },
    });
    if t.kind == TrackerKind::Script {
        if let Some(s) = &t.script_stats {
            row["runs"] = json!(s.runs);
            row["failures"] = json!(s.failures);
            row["timeouts"] = json!(s.timeouts);
            row["last"] = json!(s.last.map(|o| o.to_string()));
        }
        if let Some(r) = &t.run_as {
            row["user"] = json!(r.user);
            row["refused"] = json!(r.refused);
        }
    }
    row
}
