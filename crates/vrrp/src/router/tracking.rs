//! The router's side of health tracking: trackers, the references instances and sync groups
//! hold to them, and what a tracker's change does (see [`crate::tracker`] for the rules).

use std::time::Instant;

use super::{push, Action, GroupId, InstanceId, Router, TrackerSlot};
use crate::instance::Cause;
use crate::tracker::{Effect, TrackerId, TrackerKind, TrackerState, Tracking};

/// One tracker reference of an instance, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingStatus {
    /// The reference.
    pub tracking: Tracking,
    /// The sync group it came from (None: the instance's own).
    pub group: Option<GroupId>,
    /// What it does now.
    pub effect: Effect,
}

impl Router {
    /// Adds a tracker named `name` (unique per kind) in `state`; instances and groups then
    /// refer to it with [`Router::track`] and [`Router::track_group`].
    pub fn add_tracker(&mut self, name: &str, kind: TrackerKind, state: TrackerState) -> TrackerId {
        self.trackers.push(TrackerSlot {
            name: name.to_string(),
            kind,
            state,
        });
        self.trackers.len() - 1
    }

    /// Makes instance `id` follow a tracker (keepalived's `track_script`, `track_file` in a
    /// `vrrp_instance`). Call before [`crate::Input::Start`]; the priority follows at once,
    /// FAULT at start.
    pub fn track(&mut self, id: InstanceId, tracking: Tracking) {
        self.add_tracking(id, tracking, None);
    }

    /// Makes every member of sync group `group` follow a tracker with this weight (keepalived's
    /// tracking in a `vrrp_sync_group`).
    pub fn track_group(&mut self, group: GroupId, tracking: Tracking) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        for m in g.members.clone() {
            self.add_tracking(m, tracking, Some(group));
        }
    }

    fn add_tracking(&mut self, id: InstanceId, tracking: Tracking, group: Option<GroupId>) {
        if id >= self.slots.len() || tracking.tracker >= self.trackers.len() {
            return;
        }
        self.slots[id].trackings.push((tracking, group));
        self.reweigh(id);
        let fault = self.tracker_fault_of(id);
        let pending = self.fault_pending(id);
        let instance = &mut self.slots[id].instance;
        if instance.state() == crate::State::Init {
            // Not started: only remembered, `start` enters FAULT (or waits in INIT).
            instance.set_tracker_fault(fault, pending);
        }
    }

    /// Sets a tracker's state before the instances start (or right after a reload built this
    /// router, before [`crate::Input::Retrack`]): priorities follow, FAULT is only remembered.
    pub fn set_tracker_state(&mut self, tracker: TrackerId, state: TrackerState) {
        let Some(slot) = self.trackers.get_mut(tracker) else {
            return;
        };
        slot.state = state;
        for id in 0..self.slots.len() {
            if (self.slots[id].trackings.iter()).any(|(t, _)| t.tracker == tracker) {
                self.reweigh(id);
                let fault = self.tracker_fault_of(id);
                let pending = self.fault_pending(id);
                let instance = &mut self.slots[id].instance;
                if instance.state() == crate::State::Init && !instance.held_in_init() {
                    instance.set_tracker_fault(fault, pending);
                }
            }
        }
    }

    /// The trackers, by id: name, kind and state.
    pub fn trackers(&self) -> impl Iterator<Item = (TrackerId, &str, TrackerKind, TrackerState)> {
        (self.trackers.iter())
            .enumerate()
            .map(|(id, t)| (id, t.name.as_str(), t.kind, t.state))
    }

    /// The tracker with this name and kind, if the router has one.
    pub fn tracker_by_name(&self, kind: TrackerKind, name: &str) -> Option<TrackerId> {
        (self.trackers.iter()).position(|t| t.kind == kind && t.name == name)
    }

    /// Instance `id`'s tracker references and what each does now.
    pub fn tracking_of(&self, id: InstanceId) -> Vec<TrackingStatus> {
        (self.slots[id].trackings.iter())
            .map(|&(tracking, group)| TrackingStatus {
                tracking,
                group,
                effect: tracking.effect(self.trackers[tracking.tracker].state),
            })
            .collect()
    }

    /// A transition's cause in words, naming the tracker for [`Cause::Tracker`].
    pub fn explain(&self, cause: Cause) -> String {
        let Cause::Tracker(id) = cause else {
            return cause.to_string();
        };
        match self.trackers.get(id) {
            Some(t) => match (t.kind, t.state) {
                (TrackerKind::Script, TrackerState::Pending) => {
                    format!("waiting for the first result of script `{}`", t.name)
                }
                (TrackerKind::Script, state) => format!("script `{}` is {state}", t.name),
                (TrackerKind::File, state) => {
                    format!("tracked file `{}` holds {state}", t.name)
                }
                (TrackerKind::Process, TrackerState::Up) => {
                    format!("tracked process `{}` has its quorum", t.name)
                }
                (TrackerKind::Process, TrackerState::Pending) => {
                    format!(
                        "waiting for the first count of tracked process `{}`",
                        t.name
                    )
                }
                (TrackerKind::Process, _) => {
                    format!("tracked process `{}` lost its quorum", t.name)
                }
            },
            None => "its trackers changed".to_string(),
        }
    }

    /// The first tracker that holds instance `id` in FAULT, if any.
    fn tracker_fault_of(&self, id: InstanceId) -> Option<TrackerId> {
        (self.slots[id].trackings.iter())
            .find(|(t, _)| t.effect(self.trackers[t.tracker].state) == Effect::Fault)
            .map(|(t, _)| t.tracker)
    }

    /// Whether every tracker holding instance `id` in FAULT is a script with no result yet
    /// (keepalived then keeps the instance in INIT rather than FAULT).
    fn fault_pending(&self, id: InstanceId) -> bool {
        (self.slots[id].trackings.iter())
            .filter(|(t, _)| t.effect(self.trackers[t.tracker].state) == Effect::Fault)
            .all(|(t, _)| self.trackers[t.tracker].state == TrackerState::Pending)
    }

    /// A tracker changed: every instance following it gets its priority and FAULT again.
    pub(super) fn apply_tracker_state(
        &mut self,
        now: Instant,
        tracker: TrackerId,
        state: TrackerState,
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.trackers.get_mut(tracker) else {
            return;
        };
        if slot.state == state {
            return;
        }
        slot.state = state;
        for id in 0..self.slots.len() {
            let follows = (self.slots[id].trackings.iter()).any(|(t, _)| t.tracker == tracker);
            if follows {
                self.retrack(now, id, Some(tracker), out);
            }
        }
    }

    /// Sets instance `id`'s priority and tracker FAULT from the trackers' states; `changed`
    /// is the tracker whose change prompted this (it names the cause).
    pub(super) fn retrack(
        &mut self,
        now: Instant,
        id: InstanceId,
        changed: Option<TrackerId>,
        out: &mut Vec<Action>,
    ) {
        let previous = self.slots[id].instance.tracker_fault();
        let cause = Cause::Tracker(changed.or(previous).unwrap_or(usize::MAX));
        self.reweigh_reporting(id, cause, out);
        let fault = self.tracker_fault_of(id);
        let pending = self.fault_pending(id);
        let instance = &self.slots[id].instance;
        if fault.is_some() != previous.is_some() || fault.is_some() || instance.held_in_init() {
            let actions = self.slots[id]
                .instance
                .handle_tracker_fault(now, fault, pending, cause);
            push(out, id, actions);
        }
    }
}
