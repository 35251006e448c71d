//! Re-reading the configuration without disturbing what did not change.
//!
//! The daemon builds a fresh [`Router`] from the new configuration, then carries the running
//! state of the old one into it: an instance whose name and settings are unchanged keeps its
//! state, timers, learned master and counters, so a master stays master and its adverts keep
//! their rhythm (the peer sees no gap). An instance whose settings changed but that is still
//! the same virtual router (same VRID, version, interface, source address and tracked links)
//! keeps its state too and runs on with the new settings (priority, addresses, interval,
//! preemption...): the daemon moves the addresses that changed. Instances the new
//! configuration no longer has, or that became another virtual router, are stopped on the old
//! router; the ones it adds are started on the new one.

use std::collections::HashMap;
use std::time::Instant;

use super::{push, Action, InstanceId, Router};
use crate::instance::State;

/// What [`Router::carry_over`] did with each instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Instances that keep running: (id in the old router, id in the new one).
    pub kept: Vec<(InstanceId, InstanceId)>,
    /// Those of `kept` whose settings changed (they run on with the new ones).
    pub changed: Vec<(InstanceId, InstanceId)>,
    /// Old ids of instances that are gone or became another virtual router: stop them on the
    /// old router.
    pub stopped: Vec<InstanceId>,
    /// New ids of instances that are new (or became another virtual router): start them on
    /// the new router.
    pub started: Vec<InstanceId>,
}

impl Router {
    /// Takes over the running state of `old` for every instance whose name, settings,
    /// interface and tracked links are the same here. Call once, right after building this
    /// router (instances and groups added, nothing started).
    pub fn carry_over(&mut self, old: &Router) -> Carried {
        let by_name: HashMap<&str, InstanceId> = old
            .slots
            .iter()
            .enumerate()
            .map(|(id, s)| (s.instance.config().name.as_str(), id))
            .collect();
        let mut carried = Carried::default();
        for new_id in 0..self.slots.len() {
            let name = self.slots[new_id].instance.config().name.clone();
            let same = by_name.get(name.as_str()).copied().filter(|&old_id| {
                let (o, n) = (&old.slots[old_id], &self.slots[new_id]);
                let (oc, nc) = (o.instance.config(), n.instance.config());
                oc.vrid == nc.vrid
                    && oc.version == nc.version
                    && oc.source == nc.source
                    && o.interface == n.interface
                    && o.tracked == n.tracked
                    && o.instance.state() != State::Init
            });
            match same {
                Some(old_id) => {
                    let previous = &old.slots[old_id].instance;
                    if previous.config() != self.slots[new_id].instance.config() {
                        carried.changed.push((old_id, new_id));
                    }
                    self.slots[new_id].instance.carry_state_from(previous);
                    carried.kept.push((old_id, new_id));
                }
                None => carried.started.push(new_id),
            }
        }
        let kept_old: Vec<InstanceId> = carried.kept.iter().map(|&(o, _)| o).collect();
        carried.stopped = (0..old.slots.len())
            .filter(|id| !kept_old.contains(id))
            .collect();
        // A group whose members all carried over keeps its state: no group notify for it.
        for group in &mut self.groups {
            let same = old.groups.iter().find(|g| g.name == group.name);
            if let Some(previous) = same {
                let all_kept = group.members.iter().all(|m| {
                    carried
                        .kept
                        .iter()
                        .any(|&(o, n)| n == *m && previous.members.contains(&o))
                }) && previous.members.len() == group.members.len();
                if all_kept {
                    group.state = previous.state;
                }
            }
        }
        self.links_down = old.links_down.clone();
        self.unclaimed = old.unclaimed.clone();
        // Weighted links count with the link states carried over.
        for id in 0..self.slots.len() {
            self.reweigh(id);
        }
        for &(_, id) in &carried.kept {
            self.refresh(id);
        }
        self.tidy_timers();
        carried
    }

    /// Starts instances a reload added, on the advert grid the running ones use and under
    /// their preemption hold; those with a tracked link down go to FAULT at once.
    pub fn start_instances(&mut self, now: Instant, ids: &[InstanceId]) -> Vec<Action> {
        let epoch = self.slots.iter().find_map(|s| s.instance.advert_epoch());
        // A preemption hold in force (waiting for the peer's replicated state) covers the new
        // instances too.
        let hold = (self.slots.iter())
            .filter_map(|s| s.instance.preemption_hold())
            .max();
        let mut out = Vec::new();
        let count = self.slots.len();
        for &id in ids.iter().filter(|&&id| id < count) {
            let slot = &mut self.slots[id];
            if let Some(epoch) = epoch {
                slot.instance.set_advert_epoch(epoch);
            }
            slot.instance.hold_preemption(hold);
            let actions = slot.instance.start(now);
            push(&mut out, id, actions);
            let down = slot.tracked.iter().any(|l| self.links_down.contains(l));
            if down {
                let actions = self.slots[id].instance.handle_interface_down(now);
                push(&mut out, id, actions);
            }
        }
        self.settle_groups(now, &mut out);
        self.report_group_states(&mut out);
        for id in 0..self.slots.len() {
            self.refresh(id);
        }
        self.tidy_timers();
        out
    }

    /// Stops instances gracefully (priority 0 from a master, addresses removed), as a shutdown
    /// does, but only these: a reload removed or changed them.
    pub fn stop_instances(&mut self, now: Instant, ids: &[InstanceId]) -> Vec<Action> {
        let mut out = Vec::new();
        let count = self.slots.len();
        for &id in ids.iter().filter(|&&id| id < count) {
            let actions = self.slots[id].instance.shutdown(now);
            push(&mut out, id, actions);
        }
        out
    }

    /// Zeroes every counter (keepalived's `STATS_CLEAR` signal, after the dump was written).
    pub fn clear_stats(&mut self) {
        for slot in &mut self.slots {
            slot.instance.clear_stats();
        }
        self.unclaimed = Default::default();
    }
}
