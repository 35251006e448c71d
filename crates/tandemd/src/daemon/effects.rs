//! Carrying out the VRRP core's effects in its order: virtual addresses (gathered into one
//! netlink batch where a sync group moves), adverts (one `sendmmsg` per socket), gratuitous
//! ARPs and neighbour adverts, notify scripts, alerts and log lines.

use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tandem_failover::Command;
use tandem_sys::{AddressSpec, ArpSender, NaSender};
use tandem_vrrp::{Action, InstanceAction, InstanceId};
use tracing::{debug, error, info, warn};

use super::Daemon;
use crate::announce;
use crate::notify::{self, Subject};

impl Daemon {
    /// Carries out a batch of the core's actions; with the built-in failover sequence the
    /// coordinator puts them in order (a promotion's effects wait for its commit).
    pub(super) async fn execute(&mut self, actions: Vec<Action>) {
        let commands = match self.failover.as_mut() {
            Some(f) => {
                let grouped = !self.plan.groups.is_empty();
                let transition = tandem_failover::replicated_transition(&actions, grouped);
                let input = tandem_failover::Input::Actions {
                    transition,
                    actions,
                };
                f.coordinator.handle(Instant::now(), input)
            }
            None => actions.into_iter().map(Command::Effect).collect(),
        };
        self.run_commands(commands).await;
    }

    /// An address, announcement, script or log line of a transition.
    async fn execute_effect(&mut self, effect: Action) {
        match effect {
            Action::Instance { id, action } => self.execute_instance(id, action).await,
            Action::GroupTransition { group, to, .. } => {
                let plan = &self.plan.groups[group];
                info!("VRRP_Group({}) Syncing instances to {to} state", plan.name);
                let user = self.plan.notify_user.as_ref();
                notify::run(&plan.notify, user, Subject::Group, &plan.name, to, 0);
                self.alerts.transition(Subject::Group, &plan.name, to, 0);
            }
            Action::PriorityChanged {
                id,
                from,
                to,
                cause,
            } => {
                let name = &self.plan.instances[id].name;
                let why = self.plan.router.explain(cause);
                info!("({name}) Changing effective priority from {from} to {to} ({why})");
            }
            Action::Dropped {
                instance,
                interface,
                src,
                error,
            } => self.log_drop(instance, interface, src, &error),
        }
    }

    /// Carries out effects in the core's order, gathered where that saves time without
    /// changing what a neighbour sees first: adverts due together leave in one system call
    /// per socket (before the next other effect), and the address changes of several
    /// instances (a sync group moving) go to the kernel in one batch at the first of them,
    /// so every address of the group is in place before the first gratuitous ARP.
    pub(super) async fn execute_effects(&mut self, effects: Vec<Action>) {
        let mut adverts: Vec<(InstanceId, IpAddr, Vec<u8>)> = Vec::new();
        for step in gather_address_changes(effects) {
            match step {
                Gathered::Effect(Action::Instance {
                    id,
                    action: InstanceAction::Send { to, bytes },
                }) => adverts.push((id, to, bytes)),
                Gathered::Effect(dropped @ Action::Dropped { .. }) => {
                    self.execute_effect(dropped).await;
                }
                Gathered::Effect(effect) => {
                    self.send_adverts(&mut adverts).await;
                    self.execute_effect(effect).await;
                }
                Gathered::Addresses { add, instances } => {
                    self.send_adverts(&mut adverts).await;
                    self.change_addresses(add, &instances).await;
                }
            }
        }
        self.send_adverts(&mut adverts).await;
    }

    /// Adds (or removes) the addresses of all these instances in one netlink batch; each
    /// failure is logged under its instance's name.
    pub(super) async fn change_addresses(&self, add: bool, instances: &[InstanceId]) {
        let plans = || instances.iter().map(|&id| &self.plan.instances[id]);
        // Results come back addresses first, then routes, then rules.
        let owners: Vec<&str> = (plans().flat_map(|p| p.addresses.iter().map(|_| p.name.as_str())))
            .chain(plans().flat_map(|p| p.routes.iter().map(|_| p.name.as_str())))
            .chain(plans().flat_map(|p| p.rules.iter().map(|_| p.name.as_str())))
            .collect();
        let specs: Vec<AddressSpec> = plans().flat_map(|p| p.addresses.iter().cloned()).collect();
        let routes: Vec<tandem_sys::RouteSpec> =
            plans().flat_map(|p| p.routes.iter().cloned()).collect();
        let rules: Vec<tandem_sys::RuleSpec> =
            plans().flat_map(|p| p.rules.iter().cloned()).collect();
        let verb = if add { "setting" } else { "removing" };
        for p in plans().filter(|p| !p.addresses.is_empty()) {
            info!("({}) {verb} VIPs.", p.name);
        }
        let results = self.addresses.apply(add, &specs, &routes, &rules).await;
        for (owner, result) in owners.into_iter().zip(results) {
            if let Err(e) = result {
                error!("({owner}) {e}");
            }
        }
    }

    /// Sends the queued adverts, one `sendmmsg` per socket, in queue order per socket.
    async fn send_adverts(&self, adverts: &mut Vec<(InstanceId, IpAddr, Vec<u8>)>) {
        while let Some(&(first, _, _)) = adverts.first() {
            let key = self.plan.instances[first].send_socket;
            let (these, rest): (Vec<_>, Vec<_>) = adverts
                .drain(..)
                .partition(|(id, _, _)| self.plan.instances[*id].send_socket == key);
            *adverts = rest;
            let Some(socket) = self.sockets.get(&key) else {
                continue;
            };
            let packets: Vec<(IpAddr, &[u8])> =
                these.iter().map(|(_, to, b)| (*to, b.as_slice())).collect();
            for (i, e) in socket.send_burst(&packets).await {
                debug!("({}) {e}", self.plan.instances[these[i].0].name);
            }
        }
    }

    /// One instance's effect: its addresses, announcements and log lines, and on a
    /// transition the metrics, notify scripts, alerts and IPVS sync daemon.
    async fn execute_instance(&mut self, id: InstanceId, action: InstanceAction) {
        let plan = &self.plan.instances[id];
        match action {
            InstanceAction::Send { .. } => unreachable!("adverts go through send_adverts"),
            InstanceAction::AddAddresses => self.change_addresses(true, &[id]).await,
            InstanceAction::RemoveAddresses => self.change_addresses(false, &[id]).await,
            InstanceAction::SendGratuitous => self.announce(id, plan.garp_repeat, true),
            InstanceAction::SendGratuitousLowerPriority => {
                self.announce(id, plan.garp_lower_prio_repeat, true)
            }
            // Every garp_master_refresh seconds: the log says so only at debug.
            InstanceAction::RefreshGratuitous => self.announce(id, plan.garp_refresh_repeat, false),
            InstanceAction::HeardLowerPriority {
                from,
                priority,
                advert,
            } => {
                let ours = self.plan.router.instance(id).priority();
                let election = if advert { ", forcing new election" } else { "" };
                info!(
                    "({}) Received advert from {from} with lower priority {priority}, ours {ours}{election}",
                    plan.name
                );
            }
            InstanceAction::Transition { from, to, cause } => {
                let priority = self.plan.router.instance(id).priority();
                let why = self.plan.router.explain(cause);
                info!("({}) Entering {to} STATE ({why}, was {from})", plan.name);
                (self.recorder).transition(&plan.name, &from.to_string(), &to.to_string(), &why);
                let user = self.plan.notify_user.as_ref();
                notify::run(
                    &plan.notify,
                    user,
                    Subject::Instance,
                    &plan.name,
                    to,
                    priority,
                );
                (self.alerts).transition(Subject::Instance, &plan.name, to, priority);
                if let Some(syncd) = self.syncd.as_mut() {
                    syncd.on_transition(&plan.name, to);
                }
            }
        }
    }

    /// Gratuitous ARPs and unsolicited NAs for every address of the instance, `repeat`
    /// rounds, paced per interface (see [`crate::announce`]). The senders were opened at
    /// start; one that failed there is tried again here.
    pub(super) fn announce(&mut self, id: InstanceId, repeat: u32, loud: bool) {
        let plan = &self.plan.instances[id];
        for a in &plan.announce {
            let what = match a.address {
                IpAddr::V4(_) => "gratuitous ARPs",
                IpAddr::V6(_) => "Unsolicited Neighbour Adverts",
            };
            if loud {
                info!(
                    "({}) Sending/queueing {what} on {} for {}",
                    plan.name, a.ifname, a.address
                );
            } else {
                debug!(
                    "({}) Sending/queueing {what} on {} for {}",
                    plan.name, a.ifname, a.address
                );
            }
        }
        let (garp, gna) = (self.plan.garp_interval, self.plan.gna_interval);
        let mut messages = Vec::new();
        for a in &plan.announce {
            let message = match a.address {
                IpAddr::V4(ip) => {
                    let sender = match self.arp.entry(a.ifindex) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(v) => match ArpSender::new(a.ifindex, a.mac) {
                            Ok(s) => v.insert(Arc::new(s)),
                            Err(e) => {
                                warn!("({}) {e}", plan.name);
                                continue;
                            }
                        },
                    };
                    announce::Message::Arp(sender.clone(), ip)
                }
                IpAddr::V6(ip) => {
                    let Some(source) = a.link_local else {
                        warn!(
                            "({}) no link-local address on {} for NA",
                            plan.name, a.ifname
                        );
                        continue;
                    };
                    let sender = match self.na.entry(a.ifindex) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(v) => match NaSender::new(&a.ifname, a.ifindex, a.mac) {
                            Ok(s) => v.insert(Arc::new(s)),
                            Err(e) => {
                                warn!("({}) {e}", plan.name);
                                continue;
                            }
                        },
                    };
                    announce::Message::Na(sender.clone(), source, ip)
                }
            };
            let (key, gap) = announce::key(a.ifindex, a.address, garp, gna);
            messages.push((message, key, gap));
        }
        announce::send(&plan.name, messages, repeat);
    }

    /// Logs a dropped packet: a remote sender can cause these at any rate, so at most one line
    /// per instance and reason every 10 s, with the count since the last line.
    fn log_drop(
        &mut self,
        instance: Option<InstanceId>,
        interface: u32,
        src: IpAddr,
        error: &tandem_vrrp::DecodeError,
    ) {
        let limiter = self.drop_log.entry((instance, error.reason())).or_default();
        let Some(count) = limiter.hit(Instant::now(), 1) else {
            return;
        };
        let name = instance.map_or("-", |id| self.plan.instances[id].name.as_str());
        let ifname = self.plan.interface_name(interface).unwrap_or("?");
        let more = if count > 1 {
            format!(" ({count} such packets since the last line)")
        } else {
            String::new()
        };
        warn!("({name}) dropped packet from {src} on {ifname}: {error}{more}");
    }
}

/// One step of a batch of effects: an effect as the core returned it, or the address changes
/// of several instances gathered into one netlink batch.
#[derive(Debug)]
enum Gathered {
    Effect(Action),
    Addresses {
        add: bool,
        instances: Vec<InstanceId>,
    },
}

/// Gathers the address changes of a batch of effects: each address add joins the first add
/// of its run, a run ending where an address removal comes (and the other way round), so
/// an instance's addresses are never added before an earlier removal or removed before an
/// earlier add. Everything else keeps its place.
fn gather_address_changes(effects: Vec<Action>) -> Vec<Gathered> {
    let mut steps = Vec::with_capacity(effects.len());
    // Where the open run of adds / removes sits in `steps`.
    let mut open: Option<(bool, usize)> = None;
    for effect in effects {
        let add = match &effect {
            Action::Instance {
                action: InstanceAction::AddAddresses,
                ..
            } => true,
            Action::Instance {
                action: InstanceAction::RemoveAddresses,
                ..
            } => false,
            _ => {
                steps.push(Gathered::Effect(effect));
                continue;
            }
        };
        let Action::Instance { id, .. } = effect else {
            continue;
        };
        match open {
            Some((kind, at)) if kind == add => {
                if let Some(Gathered::Addresses { instances, .. }) = steps.get_mut(at) {
                    instances.push(id);
                }
            }
            _ => {
                open = Some((add, steps.len()));
                steps.push(Gathered::Addresses {
                    add,
                    instances: vec![id],
                });
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tandem_vrrp::{
        Action, Auth, Input, InstanceAction, InstanceConfig, InstanceId, Router, State, Version,
    };

    use super::{gather_address_changes, Gathered};

    fn config(name: &str, vrid: u8, source: &str) -> InstanceConfig {
        InstanceConfig {
            name: name.into(),
            vrid,
            version: Version::V3,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            start_as_master: false,
            addresses: vec![format!("10.0.{vrid}.254").parse().unwrap()],
            auth: Auth::None,
            source: source.parse().unwrap(),
            destinations: vec!["224.0.0.18".parse().unwrap()],
            check_source: false,
            garp_repeat_after: None,
            garp_refresh: None,
            lower_priority: Default::default(),
            higher_prio_send_advert: false,
        }
    }

    fn instance(id: InstanceId, action: InstanceAction) -> Action {
        Action::Instance { id, action }
    }

    /// A compact picture of the steps: `+[0, 1]` one batch adding instances 0 and 1,
    /// `g0` instance 0's gratuitous ARPs, `a0` its advert, `t0` its transition.
    fn picture(steps: &[Gathered]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Gathered::Addresses { add, instances } => {
                    format!("{}{instances:?}", if *add { '+' } else { '-' })
                }
                Gathered::Effect(Action::Instance { id, action }) => match action {
                    InstanceAction::Send { .. } => format!("a{id}"),
                    InstanceAction::SendGratuitous => format!("g{id}"),
                    InstanceAction::Transition { .. } => format!("t{id}"),
                    other => format!("{other:?}{id}"),
                },
                Gathered::Effect(Action::GroupTransition { group, .. }) => format!("G{group}"),
                Gathered::Effect(other) => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_sync_group_takeover_adds_every_address_in_one_batch_before_any_announcement() {
        let mut router = Router::new();
        let a = router.add_instance(config("VI_0", 10, "10.0.10.1"), 2, &[2]);
        let b = router.add_instance(config("VI_1", 11, "10.0.11.1"), 3, &[3]);
        router.add_group("G1", &[a, b]);
        let start = Instant::now();
        router.handle(start, Input::Start);
        // No master heard: both master-down timers run out and the group moves as one.
        let mut now = start;
        let mut takeover = Vec::new();
        while let Some(at) = router.next_deadline() {
            now = at.max(now);
            let actions = router.handle(now, Input::Timer);
            if actions.iter().any(|x| {
                matches!(
                    x,
                    Action::GroupTransition {
                        to: State::Master,
                        ..
                    }
                )
            }) {
                takeover = actions;
                break;
            }
            assert!(now < start + Duration::from_secs(10), "no takeover");
        }
        // The member completing the group's readiness (1) leads, as in keepalived; every
        // address still goes in the one batch before the first announcement.
        let steps = picture(&gather_address_changes(takeover));
        assert_eq!(
            steps,
            ["t1", "+[1, 0]", "a1", "g1", "t0", "a0", "g0", "G0"],
            "{steps:?}"
        );
    }

    #[test]
    fn an_address_change_never_crosses_an_opposite_one() {
        use InstanceAction::{AddAddresses as Add, RemoveAddresses as Remove, SendGratuitous};
        let effects = vec![
            instance(0, Remove),
            instance(1, Remove),
            instance(0, Add),
            instance(0, SendGratuitous),
            instance(1, Add),
            instance(2, Add),
            instance(1, Remove),
            instance(2, SendGratuitous),
            instance(3, Add),
        ];
        assert_eq!(
            picture(&gather_address_changes(effects)),
            ["-[0, 1]", "+[0, 1, 2]", "g0", "-[1]", "g2", "+[3]"]
        );
        assert!(gather_address_changes(Vec::new()).is_empty());
    }
}
