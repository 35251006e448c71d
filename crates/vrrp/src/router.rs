//! All the instances of one node and their sync groups: the value the daemon drives.
//!
//! A sync group (keepalived's `vrrp_sync_group`) moves its members together: one member to
//! MASTER takes all of them, one to FAULT takes all of them, one yielding to a higher priority
//! takes all of them back to BACKUP. A member whose master-down timer expires waits until every
//! other member's has too, so a group never goes master while one of its links still hears the
//! current master.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use crate::instance::{Cause, Instance, InstanceAction, InstanceConfig, State};
use crate::packet::{self, DropReason, Version};
use crate::stats::Stats;
use crate::tracker::{TrackerId, TrackerKind, TrackerState, Tracking};

mod reload;
mod tracking;
pub use reload::Carried;
pub use tracking::TrackingStatus;

/// Index of an instance in the router, in the order added.
pub type InstanceId = usize;
/// Index of a sync group in the router, in the order added.
pub type GroupId = usize;

/// Something that happened, for the router to react to.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Start every instance.
    Start,
    /// A packet arrived on `interface` (the daemon's interface id, e.g. ifindex).
    Packet {
        /// Interface it arrived on.
        interface: u32,
        /// IP source.
        src: IpAddr,
        /// IP destination.
        dst: IpAddr,
        /// IPv4 TTL or IPv6 hop limit.
        ttl: u8,
        /// The VRRP bytes (IP header removed).
        bytes: &'a [u8],
    },
    /// The time given is at or after [`Router::next_deadline`].
    Timer,
    /// An interface lost its link.
    LinkDown(u32),
    /// An interface regained its link.
    LinkUp(u32),
    /// Tracking changed an instance's effective priority.
    SetPriority {
        /// Which instance.
        instance: InstanceId,
        /// New effective priority.
        priority: u8,
    },
    /// A tracker's state changed (a script's rise/fall outcome, a file's new value).
    Tracker {
        /// Which tracker.
        tracker: TrackerId,
        /// Its new state.
        state: TrackerState,
    },
    /// Work out every instance's tracking again (after a reload replaced the trackers).
    Retrack,
    /// Hold preemption on every instance until the given time (`None` releases the hold):
    /// a returning node waits for the current master's replicated state first.
    HoldPreemption(Option<Instant>),
    /// Stop every instance gracefully.
    Shutdown,
}

/// What the router asks the daemon to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An instance's action.
    Instance {
        /// Which instance.
        id: InstanceId,
        /// What to do.
        action: InstanceAction,
    },
    /// A sync group changed state (for the group's notify hooks).
    GroupTransition {
        /// Which group.
        group: GroupId,
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// Tracking changed an instance's effective priority (keepalived logs "Changing effective
    /// priority").
    PriorityChanged {
        /// Which instance.
        id: InstanceId,
        /// Old effective priority.
        from: u8,
        /// New effective priority.
        to: u8,
        /// What changed: a link ([`Cause::LinkDown`] / [`Cause::LinkUp`]) or a tracker.
        cause: Cause,
    },
    /// A packet was dropped: log it with the peer address.
    Dropped {
        /// Instance it was for, when one could be found.
        instance: Option<InstanceId>,
        /// Interface it arrived on.
        interface: u32,
        /// Sender.
        src: IpAddr,
        /// Why.
        error: packet::DecodeError,
    },
}

#[derive(Debug, Clone)]
struct TrackerSlot {
    name: String,
    kind: TrackerKind,
    state: TrackerState,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    members: Vec<InstanceId>,
    state: State,
}

#[derive(Debug, Clone)]
struct Slot {
    instance: Instance,
    /// Interface it receives on.
    interface: u32,
    tracked: Vec<u32>,
    /// Links whose state moves the priority: keepalived's `track_interface` with a weight
    /// (the tracker id of each [`Tracking`] is the link).
    weighted: Vec<Tracking>,
    /// References to trackers, each with the sync group it came from (None: the instance's own).
    trackings: Vec<(Tracking, Option<GroupId>)>,
    group: Option<GroupId>,
}

/// Which instance a packet is for: receive interface, VRID, IPv4 (true) or IPv6.
type PacketKey = (u32, u8, bool);

/// The instances and sync groups of one node.
///
/// Packets find their instance through an index and timers through a heap of deadlines, so the
/// cost of one input does not grow with the number of instances.
#[derive(Debug, Clone, Default)]
pub struct Router {
    slots: Vec<Slot>,
    groups: Vec<Group>,
    trackers: Vec<TrackerSlot>,
    links_down: HashSet<u32>,
    unclaimed: Stats,
    /// First instance added for each key (the one a linear search would find).
    by_key: HashMap<PacketKey, InstanceId>,
    /// Each instance's live heap entry: never later than the instance's deadline (an advert
    /// that pushes a backup's master-down deadline on leaves the entry where it is, and the
    /// entry is moved only when it comes due), so a busy backup does one heap operation per
    /// master-down interval per instance instead of one per advert.
    deadlines: Vec<Option<Instant>>,
    /// Entries, earliest on top; entries no longer in `deadlines` are skipped and dropped.
    timers: BinaryHeap<Reverse<(Instant, InstanceId)>>,
    /// The last instance whose master-down timer expired in the input being handled: in a
    /// sync group it is the one that completes the group's readiness, and keepalived moves
    /// it to MASTER before the members that were ready already.
    last_ready: Option<InstanceId>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds an instance that receives on `interface` and goes to FAULT while any of `tracked`
    /// is down (normally `tracked` includes `interface`; keepalived's `dont_track_primary`
    /// leaves it out).
    pub fn add_instance(
        &mut self,
        config: InstanceConfig,
        interface: u32,
        tracked: &[u32],
    ) -> InstanceId {
        let id = self.slots.len();
        let key = (interface, config.vrid, config.source.is_ipv4());
        self.by_key.entry(key).or_insert(id);
        self.slots.push(Slot {
            instance: Instance::new(config),
            interface,
            tracked: tracked.to_vec(),
            weighted: Vec::new(),
            trackings: Vec::new(),
            group: None,
        });
        self.deadlines.push(None);
        self.refresh(id);
        id
    }

    /// Makes `link`'s state move instance `id`'s priority by `weight` (keepalived's
    /// `track_interface ... weight N`): a positive weight is added while the link is up, a
    /// negative one while it is down; the result stays within 1..=254 (an owner keeps 255).
    pub fn track_weighted(&mut self, id: InstanceId, link: u32, weight: i32) {
        self.track_link(id, link, weight, false);
    }

    /// [`Router::track_weighted`] with keepalived's `reverse` (what is added changes sign).
    pub fn track_link(&mut self, id: InstanceId, link: u32, weight: i32, reverse: bool) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.weighted.push(Tracking {
                tracker: link as TrackerId,
                weight,
                reverse,
            });
            self.reweigh(id);
        }
    }

    /// Sets instance `id`'s priority from its configured one, its weighted links and its
    /// trackers; returns (old, new) when it changed.
    fn reweigh(&mut self, id: InstanceId) -> Option<(u8, u8)> {
        let slot = &self.slots[id];
        let links: i32 = (slot.weighted.iter())
            .map(|t| {
                let up = !self.links_down.contains(&(t.tracker as u32));
                let state = if up {
                    TrackerState::Up
                } else {
                    TrackerState::Down
                };
                t.effect(state).added()
            })
            .sum();
        let trackers: i32 = (slot.trackings.iter())
            .map(|(t, _)| t.effect(self.trackers[t.tracker].state).added())
            .sum();
        let base = i32::from(slot.instance.config().priority);
        let priority = (base + links + trackers).clamp(1, 254) as u8;
        let instance = &mut self.slots[id].instance;
        let before = instance.priority();
        instance.set_priority(priority);
        let after = instance.priority();
        (before != after).then_some((before, after))
    }

    /// [`Router::reweigh`], reporting a change of priority with its `cause`.
    fn reweigh_reporting(&mut self, id: InstanceId, cause: Cause, out: &mut Vec<Action>) {
        if let Some((from, to)) = self.reweigh(id) {
            out.push(Action::PriorityChanged {
                id,
                from,
                to,
                cause,
            });
        }
    }

    /// Adds a sync group. Members already in another group are moved to this one.
    pub fn add_group(&mut self, name: &str, members: &[InstanceId]) -> GroupId {
        let id = self.groups.len();
        let members: Vec<InstanceId> = members
            .iter()
            .copied()
            .filter(|&m| m < self.slots.len())
            .collect();
        for &m in &members {
            self.slots[m].group = Some(id);
            self.slots[m].instance.set_in_group(members.len() > 1);
        }
        self.groups.push(Group {
            name: name.to_string(),
            members,
            state: State::Init,
        });
        id
    }

    /// The instance with this id. Panics on an id this router never returned.
    pub fn instance(&self, id: InstanceId) -> &Instance {
        &self.slots[id].instance
    }

    /// All instances, by id.
    pub fn instances(&self) -> impl Iterator<Item = (InstanceId, &Instance)> {
        self.slots.iter().map(|s| &s.instance).enumerate()
    }

    /// Name of a sync group.
    pub fn group_name(&self, id: GroupId) -> &str {
        &self.groups[id].name
    }

    /// State of a sync group, as its members make it (FAULT over MASTER over BACKUP...).
    pub fn group_state(&self, id: GroupId) -> State {
        self.groups[id].state
    }

    /// Group of an instance, if any.
    pub fn group_of(&self, id: InstanceId) -> Option<GroupId> {
        self.slots[id].group
    }

    /// Packets that reached no instance (unknown VRID, unreadable header).
    pub fn unclaimed_stats(&self) -> &Stats {
        &self.unclaimed
    }

    /// When the router next needs [`Input::Timer`]: never after any instance's deadline,
    /// sometimes before it (a timer input that finds nothing due does nothing).
    pub fn next_deadline(&self) -> Option<Instant> {
        // `handle` leaves a live entry on top.
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Records instance `id`'s deadline after it may have changed: a new entry only when the
    /// deadline came earlier than the live one (or there is none).
    fn refresh(&mut self, id: InstanceId) {
        let Some(deadline) = self.slots[id].instance.next_deadline() else {
            // A live entry may stay: when it comes due, nothing is.
            return;
        };
        if self.deadlines[id].is_none_or(|entry| deadline < entry) {
            self.deadlines[id] = Some(deadline);
            self.timers.push(Reverse((deadline, id)));
        }
    }

    /// Drops stale entries from the top of the heap, and rebuilds it when stale ones pile up.
    fn tidy_timers(&mut self) {
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if self.deadlines[id] == Some(t) {
                break;
            }
            self.timers.pop();
        }
        if self.timers.len() > 4 * self.slots.len() + 64 {
            self.timers = self
                .deadlines
                .iter()
                .enumerate()
                .filter_map(|(id, d)| d.map(|t| Reverse((t, id))))
                .collect();
        }
    }

    /// Instances whose deadline is at or before `now`, in id order, taken off the heap;
    /// entries that came due early go back at their instance's real deadline.
    fn expired(&mut self, now: Instant) -> Vec<InstanceId> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.deadlines[id] != Some(t) {
                continue;
            }
            // Taken off the heap: the next refresh puts it back whatever its deadline.
            self.deadlines[id] = None;
            match self.slots[id].instance.next_deadline() {
                Some(real) if real > now => self.refresh(id),
                Some(_) => due.push(id),
                None => {}
            }
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        // Instances this input may have changed: their deadlines are refreshed at the end.
        let mut touched: Vec<InstanceId> = Vec::new();
        let mut touched_all = false;
        let mut single: Option<InstanceId> = None;
        self.last_ready = None;
        match input {
            Input::Start => {
                touched_all = true;
                self.hold_waiting_groups(now);
                for id in 0..self.slots.len() {
                    let actions = self.slots[id].instance.start(now);
                    push(&mut out, id, actions);
                }
            }
            Input::Packet {
                interface,
                src,
                dst,
                ttl,
                bytes,
            } => {
                // The common input: one instance touched, kept out of the list (no allocation).
                single = self.process_packet(now, interface, src, dst, ttl, bytes, &mut out);
            }
            Input::Timer => {
                for id in self.expired(now) {
                    let was_ready = self.slots[id].instance.wants_master();
                    let actions = self.slots[id].instance.handle_timers(now);
                    if !was_ready && self.slots[id].instance.wants_master() {
                        self.last_ready = Some(id);
                    }
                    push(&mut out, id, actions);
                    touched.push(id);
                }
            }
            Input::LinkDown(link) => {
                touched_all = true;
                self.links_down.insert(link);
                self.apply_link_state(now, link, &mut out);
            }
            Input::LinkUp(link) => {
                touched_all = true;
                self.links_down.remove(&link);
                self.apply_link_state(now, link, &mut out);
            }
            Input::SetPriority { instance, priority } => {
                if let Some(slot) = self.slots.get_mut(instance) {
                    slot.instance.set_priority(priority);
                    touched.push(instance);
                }
            }
            Input::Tracker { tracker, state } => {
                touched_all = true;
                self.apply_tracker_state(now, tracker, state, &mut out);
            }
            Input::Retrack => {
                touched_all = true;
                for id in 0..self.slots.len() {
                    self.retrack(now, id, None, &mut out);
                }
            }
            Input::HoldPreemption(until) => {
                for slot in &mut self.slots {
                    slot.instance.hold_preemption(until);
                }
            }
            Input::Shutdown => {
                touched_all = true;
                for id in 0..self.slots.len() {
                    let actions = self.slots[id].instance.shutdown(now);
                    push(&mut out, id, actions);
                }
            }
        }
        if !matches!(input, Input::Shutdown) {
            self.settle_groups(now, &mut out);
        }
        self.report_group_states(&mut out);
        if touched_all {
            touched = (0..self.slots.len()).collect();
        } else {
            // Sync groups may move any of their members.
            for g in &self.groups {
                if g.members.len() > 1 {
                    touched.extend(&g.members);
                }
            }
        }
        for id in touched.into_iter().chain(single) {
            self.refresh(id);
        }
        self.tidy_timers();
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn process_packet(
        &mut self,
        now: Instant,
        interface: u32,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        bytes: &[u8],
        out: &mut Vec<Action>,
    ) -> Option<InstanceId> {
        let peek = match packet::peek(bytes) {
            Ok(p) => p,
            Err(error) => {
                self.unclaimed.count_drop(error.reason());
                out.push(Action::Dropped {
                    instance: None,
                    interface,
                    src,
                    error,
                });
                return None;
            }
        };
        let Some(&id) = self.by_key.get(&(interface, peek.vrid, src.is_ipv4())) else {
            self.unclaimed.count_drop(DropReason::UnknownVrid);
            return None;
        };
        let instance = &mut self.slots[id].instance;
        match instance.accept_packet(src, dst, ttl, bytes) {
            Ok(advert) => {
                let actions = instance.process_advert(now, src, &advert);
                push(out, id, actions);
            }
            Err(error) => out.push(Action::Dropped {
                instance: Some(id),
                interface,
                src,
                error,
            }),
        }
        Some(id)
    }

    fn apply_link_state(&mut self, now: Instant, link: u32, out: &mut Vec<Action>) {
        let cause = if self.links_down.contains(&link) {
            Cause::LinkDown
        } else {
            Cause::LinkUp
        };
        for id in 0..self.slots.len() {
            if (self.slots[id].weighted.iter()).any(|t| t.tracker == link as TrackerId) {
                self.reweigh_reporting(id, cause, out);
            }
            let slot = &mut self.slots[id];
            if !slot.tracked.contains(&link) {
                continue;
            }
            let any_down = slot.tracked.iter().any(|l| self.links_down.contains(l));
            let actions = if any_down {
                slot.instance.handle_interface_down(now)
            } else {
                slot.instance.handle_interface_up(now)
            };
            push(out, id, actions);
        }
    }

    /// Moves group members together until nothing changes (a few rounds at most).
    fn settle_groups(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut examined = 0;
        for _round in 0..4 {
            let fresh = out.len() - examined;
            let before = out.len();
            for g in 0..self.groups.len() {
                let transitions: Vec<(InstanceId, State, State, Cause)> = out[out.len() - fresh..]
                    .iter()
                    .filter_map(|a| match a {
                        Action::Instance {
                            id,
                            action: InstanceAction::Transition { from, to, cause },
                        } if self.slots[*id].group == Some(g) => Some((*id, *from, *to, *cause)),
                        _ => None,
                    })
                    .collect();
                self.settle_group(now, g, &transitions, out);
            }
            examined = before;
            if out.len() == before {
                break;
            }
        }
    }

    fn settle_group(
        &mut self,
        now: Instant,
        g: GroupId,
        transitions: &[(InstanceId, State, State, Cause)],
        out: &mut Vec<Action>,
    ) {
        let members = self.groups[g].members.clone();
        if members.len() < 2 {
            return;
        }
        // FAULT: any member whose own link is down takes the others with it.
        for &m in &members {
            let others_down = members
                .iter()
                .any(|&o| o != m && self.slots[o].instance.faults_group());
            let actions = self.slots[m].instance.set_group_fault(now, others_down);
            push(out, m, actions);
        }
        // INIT: members waiting for another's first script result leave it together.
        for &m in &members {
            let hold = self.others_waiting(g, m);
            let actions = self.slots[m].instance.set_group_hold(now, hold);
            push(out, m, actions);
        }
        let own = |c: Cause| c != Cause::SyncGroup;
        // A member yielded to a higher priority: all go back to BACKUP.
        if transitions
            .iter()
            .any(|&(_, from, to, cause)| from == State::Master && to == State::Backup && own(cause))
        {
            for &m in &members {
                let actions = self.slots[m].instance.force_backup(now);
                push(out, m, actions);
            }
            return;
        }
        // A member became MASTER by itself (owner at start, or leaving FAULT): all follow.
        let leader = transitions
            .iter()
            .any(|&(_, _, to, cause)| to == State::Master && own(cause));
        // Or every member's master-down timer has expired.
        let all_ready = members.iter().all(|&m| {
            let i = &self.slots[m].instance;
            i.state() == State::Master || (i.state() == State::Backup && i.wants_master())
        }) && members
            .iter()
            .any(|&m| self.slots[m].instance.wants_master());
        if leader || all_ready {
            // The member that completed the group's readiness first, then the others.
            let first = self.last_ready.filter(|r| members.contains(r));
            if let Some(m) = first {
                let actions = self.slots[m].instance.lead_to_master(now);
                push(out, m, actions);
            }
            for &m in &members {
                let actions = self.slots[m].instance.force_master(now);
                push(out, m, actions);
            }
        }
    }

    /// Whether a member of group `g` other than `m` waits in INIT for a first script result.
    fn others_waiting(&self, g: GroupId, m: InstanceId) -> bool {
        (self.groups[g].members.iter()).any(|&o| o != m && self.slots[o].instance.fault_pending())
    }

    /// Before the start: members of a group where one waits for a first script result wait
    /// with it (keepalived's sync group in INIT).
    fn hold_waiting_groups(&mut self, now: Instant) {
        for g in 0..self.groups.len() {
            let members = self.groups[g].members.clone();
            if members.len() < 2 {
                continue;
            }
            for &m in &members {
                let hold = self.others_waiting(g, m);
                // Not started yet: nothing to leave, nothing to report.
                let _ = self.slots[m].instance.set_group_hold(now, hold);
            }
        }
    }

    fn report_group_states(&mut self, out: &mut Vec<Action>) {
        for (g, group) in self.groups.iter_mut().enumerate() {
            let states: Vec<State> = group
                .members
                .iter()
                .map(|&m| self.slots[m].instance.state())
                .collect();
            let state = if states.contains(&State::Fault) {
                State::Fault
            } else if states.contains(&State::Master) {
                State::Master
            } else if states.contains(&State::Backup) {
                State::Backup
            } else if states.contains(&State::Stop) {
                State::Stop
            } else {
                State::Init
            };
            if state != group.state {
                out.push(Action::GroupTransition {
                    group: g,
                    from: group.state,
                    to: state,
                });
                group.state = state;
            }
        }
    }

    /// The version an instance speaks (used by the daemon to pick sockets).
    pub fn version(&self, id: InstanceId) -> Version {
        self.slots[id].instance.config().version
    }
}

fn push(out: &mut Vec<Action>, id: InstanceId, actions: Vec<InstanceAction>) {
    out.extend(
        actions
            .into_iter()
            .map(|action| Action::Instance { id, action }),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::packet::{Auth, Version};

    /// `lans` interfaces x `per_lan` VRIDs, one instance each, VRIDs reused on every interface.
    fn router(host: u8, priority: u8, lans: u32, per_lan: u8) -> Router {
        let mut r = Router::new();
        for lan in 0..lans {
            for vrid in 1..=per_lan {
                let config = InstanceConfig {
                    name: format!("VI_{lan}_{vrid}"),
                    vrid,
                    version: Version::V3,
                    priority,
                    advert_interval: Duration::from_millis(100 + u64::from(vrid % 7) * 10),
                    preempt: true,
                    preempt_delay: Duration::ZERO,
                    start_as_master: false,
                    addresses: vec![IpAddr::from([10, 100 + lan as u8, 0, vrid])],
                    auth: Auth::None,
                    source: IpAddr::from([10, 0, lan as u8, host]),
                    destinations: vec!["224.0.0.18".parse().unwrap()],
                    check_source: false,
                    garp_repeat_after: Some(Duration::from_secs(1)),
                    garp_refresh: None,
                    lower_priority: Default::default(),
                    higher_prio_send_advert: false,
                };
                r.add_instance(config, lan, &[lan]);
            }
        }
        r
    }

    fn brute_force_deadline(r: &Router) -> Option<Instant> {
        r.instances().filter_map(|(_, i)| i.next_deadline()).min()
    }

    /// Adverts in `actions` as packets for the other router, with their interface.
    fn packets(r: &Router, actions: &[Action]) -> Vec<(u32, IpAddr, Vec<u8>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Instance {
                    id,
                    action: InstanceAction::Send { bytes, .. },
                } => {
                    let source = r.instance(*id).config().source;
                    let IpAddr::V4(v4) = source else { return None };
                    Some((u32::from(v4.octets()[2]), source, bytes.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The indexed router agrees with a linear scan of every instance at every step, and the
    /// election comes out right: the higher priority holds every VRID, then the other takes
    /// over when it stops.
    #[test]
    fn deadline_heap_and_packet_index_match_a_linear_scan() {
        let (lans, per_lan) = (3, 40);
        let mut nodes = [router(1, 150, lans, per_lan), router(2, 100, lans, per_lan)];
        let mut alive = [true, true];
        let start = Instant::now();
        let mut now = start;
        for r in &mut nodes {
            r.handle(now, Input::Start);
        }
        let group: IpAddr = "224.0.0.18".parse().unwrap();
        let mut steps = 0;
        while now < start + Duration::from_secs(6) {
            if now > start + Duration::from_secs(3) && alive[0] {
                alive[0] = false;
                let actions = nodes[0].handle(now, Input::Shutdown);
                for (lan, src, bytes) in packets(&nodes[0], &actions) {
                    let input = Input::Packet {
                        interface: lan,
                        src,
                        dst: group,
                        ttl: 255,
                        bytes: &bytes,
                    };
                    nodes[1].handle(now, input);
                }
            }
            let (n, t) = (0..2)
                .filter(|&n| alive[n])
                .filter_map(|n| Some((n, nodes[n].next_deadline()?)))
                .min_by_key(|&(_, t)| t)
                .expect("some timer is always running");
            now = t;
            let actions = nodes[n].handle(now, Input::Timer);
            let other = 1 - n;
            if alive[other] {
                for (lan, src, bytes) in packets(&nodes[n], &actions) {
                    let input = Input::Packet {
                        interface: lan,
                        src,
                        dst: group,
                        ttl: 255,
                        bytes: &bytes,
                    };
                    nodes[other].handle(now, input);
                }
            }
            for r in &nodes {
                // Never late; early only by entries an advert has since pushed on.
                let real = brute_force_deadline(r);
                if let Some(real) = real {
                    let next = r.next_deadline();
                    assert!(next.is_some_and(|t| t <= real), "{next:?} > {real:?}");
                }
                let mut woken = r.clone();
                let early = |t: &Instant| real.is_none_or(|real| *t < real);
                if let Some(t) = woken.next_deadline().filter(early) {
                    assert!(woken.handle(t, Input::Timer).is_empty());
                    assert!(woken.next_deadline().is_none_or(|next| next > t));
                }
            }
            if now > start + Duration::from_secs(2) && alive[0] {
                assert!(nodes[0]
                    .instances()
                    .all(|(_, i)| i.state() == State::Master));
                assert!(nodes[1]
                    .instances()
                    .all(|(_, i)| i.state() == State::Backup));
                assert!(nodes[1]
                    .instances()
                    .all(|(_, i)| i.stats().adverts_received > 0));
            }
            steps += 1;
        }
        assert!(nodes[1]
            .instances()
            .all(|(_, i)| i.state() == State::Master));
        assert_eq!(nodes[1].unclaimed_stats().total_drops(), 0);
        assert!(steps > 100, "only {steps} steps");
        assert!(nodes[0].timers.len() <= 4 * nodes[0].slots.len() + 64);
    }
}
