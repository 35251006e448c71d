//! All the instances of one node and their sync groups: the value the daemon drives.
//!
//! A sync group (keepalived's `vrrp_sync_group`) moves its members together: one member to
//! MASTER takes all of them, one to FAULT takes all of them, one yielding to a higher priority
//! takes all of them back to BACKUP. A member whose master-down timer expires waits until every
//! other member's has too, so a group never goes master while one of its links still hears the
//! current master.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use crate::instance::{Cause, Instance, InstanceAction, InstanceConfig, State};
use crate::packet::{self, DropReason, Version};
use crate::stats::Stats;

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
struct Group {
    name: String,
    members: Vec<InstanceId>,
    state: State,
}

#[derive(Debug, Clone)]
struct Slot {
    instance: Instance,
    interface: u32,
    tracked: Vec<u32>,
    group: Option<GroupId>,
}

/// The instances and sync groups of one node.
#[derive(Debug, Clone, Default)]
pub struct Router {
    slots: Vec<Slot>,
    groups: Vec<Group>,
    links_down: HashSet<u32>,
    unclaimed: Stats,
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
        self.slots.push(Slot {
            instance: Instance::new(config),
            interface,
            tracked: tracked.to_vec(),
            group: None,
        });
        self.slots.len() - 1
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

    /// Group of an instance, if any.
    pub fn group_of(&self, id: InstanceId) -> Option<GroupId> {
        self.slots[id].group
    }

    /// Packets that reached no instance (unknown VRID, unreadable header).
    pub fn unclaimed_stats(&self) -> &Stats {
        &self.unclaimed
    }

    /// When the router next needs [`Input::Timer`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.instance.next_deadline())
            .min()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
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
            } => self.process_packet(now, interface, src, dst, ttl, bytes, &mut out),
            Input::Timer => {
                for id in 0..self.slots.len() {
                    if self.slots[id]
                        .instance
                        .next_deadline()
                        .is_some_and(|t| t <= now)
                    {
                        let actions = self.slots[id].instance.handle_timers(now);
                        push(&mut out, id, actions);
                    }
                }
            }
            Input::LinkDown(link) => {
                self.links_down.insert(link);
                self.apply_link_state(now, link, &mut out);
            }
            Input::LinkUp(link) => {
                self.links_down.remove(&link);
                self.apply_link_state(now, link, &mut out);
            }
            Input::SetPriority { instance, priority } => {
                if let Some(slot) = self.slots.get_mut(instance) {
                    slot.instance.set_priority(priority);
                }
            }
            Input::Shutdown => {
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
    ) {
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
                return;
            }
        };
        let family_v4 = src.is_ipv4();
        let found = self.slots.iter().position(|s| {
            s.interface == interface
                && s.instance.config().vrid == peek.vrid
                && s.instance.config().source.is_ipv4() == family_v4
        });
        let Some(id) = found else {
            self.unclaimed.count_drop(DropReason::UnknownVrid);
            return;
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
    }

    fn apply_link_state(&mut self, now: Instant, link: u32, out: &mut Vec<Action>) {
        for id in 0..self.slots.len() {
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
                .any(|&o| o != m && self.slots[o].instance.link_fault());
            let actions = self.slots[m].instance.set_group_fault(now, others_down);
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
            for &m in &members {
                let actions = self.slots[m].instance.force_master(now);
                push(out, m, actions);
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
