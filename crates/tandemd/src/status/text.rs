//! The status as lines of `key=value`: one per instance and per tracker reference, the
//! packets no instance claimed, the failover sequence, the sync peer, and a verdict line
//! (`health=ok` or `health=failing` with the reasons) that makes `tandemctl status` usable
//! as a monitoring check.

use std::fmt::Write as _;

use tandem_vrrp::{DropReason, Effect};

use crate::snapshot::{Snapshot, TrackerSnapshot};

/// The status text of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for i in &snapshot.instances {
        let s = &i.stats;
        let _ = write!(
            out,
            "instance={} state={} priority={} vrid={} master={} adverts_rx={} adverts_tx={} \
             priority_zero_rx={} priority_zero_tx={} became_master={} drops={}",
            i.name,
            i.state,
            i.priority,
            i.vrid,
            i.master.map_or_else(|| "-".to_string(), |m| m.to_string()),
            s.adverts_received,
            s.adverts_sent,
            s.priority_zero_received,
            s.priority_zero_sent,
            s.became_master,
            s.total_drops(),
        );
        for (name, n) in s.drop_counts() {
            let _ = write!(out, " drop_{name}={n}");
        }
        out.push('\n');
        for t in &i.trackers {
            tracker_line(&i.name, t, &mut out);
        }
    }
    let u = &snapshot.unclaimed;
    let _ = write!(
        out,
        "unclaimed drops={} unknown_vrid={}",
        u.total_drops(),
        u.drops(DropReason::UnknownVrid)
    );
    for (name, n) in u.drop_counts() {
        let _ = write!(out, " drop_{name}={n}");
    }
    out.push('\n');
    if let Some(f) = &snapshot.failover {
        let _ = write!(
            out,
            "failover waiting_for_commit={} holding_preemption={} steps_pending={} warnings={}",
            yes_no(f.waiting_for_commit),
            yes_no(f.holding_preemption),
            f.steps_pending,
            f.warnings,
        );
        if let Some(w) = &f.last_warning {
            let _ = write!(out, " last_warning={w}");
        }
        out.push('\n');
    }
    if let Some(health) = &snapshot.sync {
        let _ = writeln!(out, "{}", health.describe(snapshot.taken));
    }
    let failing = snapshot.failing();
    if failing.is_empty() {
        out.push_str("health=ok\n");
    } else {
        let _ = writeln!(out, "health=failing {}", failing.join(" "));
    }
    out
}

/// One tracker reference of `instance`: the tracker's state, the reference's weight and what
/// it contributes now, and a script's run counters.
fn tracker_line(instance: &str, t: &TrackerSnapshot, out: &mut String) {
    let _ = write!(
        out,
        "tracker instance={instance} kind={} name={} state={} weight={} reverse={} from={} effect=",
        t.kind.word(),
        t.name,
        t.state,
        t.weight,
        yes_no(t.reverse),
        t.group.as_deref().unwrap_or("instance"),
    );
    let _ = match t.effect {
        Effect::Fault => write!(out, "fault"),
        Effect::Priority(p) => write!(out, "{p}"),
    };
    if let Some(s) = &t.script_stats {
        let _ = write!(
            out,
            " runs={} failures={} timeouts={}",
            s.runs, s.failures, s.timeouts
        );
        if let Some(last) = s.last {
            let _ = write!(out, " last={}", last.to_string().replace(' ', "_"));
        }
    }
    out.push('\n');
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
