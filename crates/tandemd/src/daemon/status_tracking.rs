//! Each instance's trackers in `tandemctl status` (text and JSON): the tracker's state, the
//! reference's weight and what it contributes now, and a script's run counters.

use std::fmt::Write as _;

use serde_json::{json, Value};
use tandem_vrrp::{Effect, InstanceId, TrackerKind};

use super::Daemon;

impl Daemon {
    /// Status lines, one per tracker reference of instance `id`.
    pub(super) fn tracker_lines(&self, id: InstanceId, out: &mut String) {
        for row in self.tracker_rows(id) {
            let _ = write!(
                out,
                "tracker instance={} kind={} name={} state={} weight={} reverse={} from={} effect={}",
                self.plan.instances[id].name,
                row["kind"].as_str().unwrap_or("-"),
                row["name"].as_str().unwrap_or("-"),
                row["state"].as_str().unwrap_or("-"),
                row["weight"],
                if row["reverse"].as_bool() == Some(true) { "yes" } else { "no" },
                row["group"].as_str().unwrap_or("instance"),
                match &row["effect"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            );
            for key in ["runs", "failures", "timeouts"] {
                if let Some(n) = row.get(key).and_then(Value::as_u64) {
                    let _ = write!(out, " {key}={n}");
                }
            }
            if let Some(last) = row.get("last").and_then(Value::as_str) {
                let _ = write!(out, " last={}", last.replace(' ', "_"));
            }
            out.push('\n');
        }
    }

    /// Instance `id`'s tracker references as JSON objects.
    pub(super) fn tracker_rows(&self, id: InstanceId) -> Vec<Value> {
        let router = &self.plan.router;
        let trackers: Vec<_> = router.trackers().collect();
        (router.tracking_of(id).into_iter())
            .filter_map(|t| {
                let &(_, name, kind, state) = trackers.get(t.tracking.tracker)?;
                let mut row = json!({
                    "kind": kind.word(),
                    "name": name,
                    "state": state.to_string(),
                    "weight": t.tracking.weight,
                    "reverse": t.tracking.reverse,
                    "group": t.group.map(|g| router.group_name(g).to_string()),
                    "effect": match t.effect {
                        Effect::Fault => json!("fault"),
                        Effect::Priority(p) => json!(p),
                    },
                });
                if kind == TrackerKind::Script {
                    if let Some(s) = self.trackers.script_stats(name) {
                        row["runs"] = json!(s.runs);
                        row["failures"] = json!(s.failures);
                        row["timeouts"] = json!(s.timeouts);
                        row["last"] = json!(s.last.map(|o| o.to_string()));
                    }
                    if let Some(spec) = self.trackers.script_spec(name) {
                        row["user"] = json!(spec.user.name);
                        row["refused"] = json!(spec.refused);
                    }
                }
                Some(row)
            })
            .collect()
    }
}
