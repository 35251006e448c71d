//! The daemon loop: feeds packets, link events, timers and signals to the VRRP core and
//! carries out the actions it returns, in order.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_sys::{
    AddressSpec, Addresses, ArpSender, BurstBuffer, LinkEvent, NaSender, Received, VrrpSocket,
};
use tandem_vrrp::{Action, DropReason, Input, InstanceAction, InstanceId, State};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::control::Request;
use crate::notify::{self, Subject};
use crate::plan::{Plan, SocketKey};

/// Most packets handed from a socket's reader to the daemon loop at once.
const RECEIVE_BATCH: usize = 256;
/// Packets read per system call; each slot is one packet buffer kept by the reader.
const RECEIVE_SLOTS: usize = 32;

/// The running node: core, plan and kernel handles.
pub struct Daemon {
    plan: Plan,
    addresses: Addresses,
    sockets: HashMap<SocketKey, Arc<VrrpSocket>>,
    arp: HashMap<u32, ArpSender>,
    na: HashMap<u32, NaSender>,
    last_drop_log: HashMap<Option<InstanceId>, Instant>,
    replication: Option<Replication>,
    /// The promotion commit being waited for, with what waits behind it.
    held: Option<HeldForCommit>,
}

/// Effects of a promotion held back until the peer's flows are in the kernel.
struct HeldForCommit {
    answer: tokio::sync::oneshot::Receiver<String>,
    deadline: tokio::time::Instant,
    started: Instant,
    /// In the core's order.
    effects: Vec<Action>,
}

/// The replication service as the VRRP side drives it.
pub struct Replication {
    /// The service.
    pub handle: crate::conntrack::Handle,
    /// Run commit / resync / shorten on transitions (off: notify scripts do it).
    pub builtin: bool,
    /// Longest wait for the commit before the addresses are announced.
    pub commit_wait: Duration,
    /// Longest wait for the peer's full state before this node may preempt.
    pub preempt_wait: Duration,
    /// Fires when the peer's full state has arrived.
    pub first_resync: Option<tokio::sync::oneshot::Receiver<usize>>,
}

impl Daemon {
    /// Opens the sockets the plan needs.
    pub fn new(
        plan: Plan,
        addresses: Addresses,
        replication: Option<Replication>,
    ) -> Result<Daemon> {
        let mut sockets = HashMap::new();
        for (key, sp) in &plan.sockets {
            let mut socket = match (sp.source, sp.group) {
                (IpAddr::V4(src), group) => VrrpSocket::open_v4(
                    &sp.ifname,
                    key.ifindex,
                    src,
                    group.and_then(|g| match g {
                        IpAddr::V4(g) => Some(g),
                        IpAddr::V6(_) => None,
                    }),
                ),
                (IpAddr::V6(src), group) => VrrpSocket::open_v6(
                    &sp.ifname,
                    key.ifindex,
                    src,
                    group.and_then(|g| match g {
                        IpAddr::V6(g) => Some(g),
                        IpAddr::V4(_) => None,
                    }),
                ),
            }
            .with_context(|| format!("opening VRRP socket on {}", sp.ifname))?;
            // Multicast adverts leave as finished frames on links with a MAC address (one
            // system call for all due adverts, no IP output path per packet).
            let mac = (plan.interfaces.get(&sp.ifname))
                .map(|info| info.mac)
                .filter(|mac| *mac != [0; 6]);
            if let Some(mac) = mac {
                if let Err(e) = socket.send_multicast_as_frames(mac) {
                    warn!(
                        "{e}: multicast adverts on {} go through the IP stack",
                        sp.ifname
                    );
                }
            }
            sockets.insert(*key, Arc::new(socket));
        }
        let (arp, na) = open_announcers(&plan);
        Ok(Daemon {
            plan,
            addresses,
            sockets,
            arp,
            na,
            last_drop_log: HashMap::new(),
            replication,
            held: None,
        })
    }

    /// Runs until SIGTERM or SIGINT, then stops gracefully.
    pub async fn run(
        mut self,
        mut links: mpsc::Receiver<LinkEvent>,
        mut control: mpsc::Receiver<Request>,
    ) -> Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        // Packets travel in batches: everything queued on a socket when it wakes up, so a
        // burst of adverts from many instances costs one hand-over, not one per packet.
        let (packets_tx, mut packets) = mpsc::channel::<(u32, Vec<Received>)>(64);
        for (key, socket) in &self.sockets {
            let socket = Arc::clone(socket);
            let tx = packets_tx.clone();
            let ifindex = key.ifindex;
            tokio::spawn(async move {
                let mut buffer = BurstBuffer::new(RECEIVE_SLOTS);
                loop {
                    match socket.recv_burst(&mut buffer, RECEIVE_BATCH).await {
                        Ok(burst) => {
                            // One unreadable packet: the socket is fine, keep going.
                            for e in burst.malformed {
                                debug!("{e}");
                            }
                            if !burst.packets.is_empty()
                                && tx.send((ifindex, burst.packets)).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            // A broken socket: say so, and do not spin on it.
                            warn!("{e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }

        self.clean_leftovers().await;
        let now = Instant::now();
        let down: Vec<u32> = (self.plan.interfaces.values())
            .filter(|info| !info.up)
            .map(|info| info.index)
            .collect();
        for index in down {
            let actions = self.plan.router.handle(now, Input::LinkDown(index));
            self.execute(actions).await;
        }
        let mut first_resync = None;
        if let Some(r) = self.replication.as_mut().filter(|r| r.builtin) {
            // Do not take over from a working master before we have its flows (CARP waits
            // for pfsync's bulk update the same way); a dead master is still replaced.
            first_resync = r.first_resync.take();
            let until = Instant::now() + r.preempt_wait;
            self.plan
                .router
                .handle(Instant::now(), Input::HoldPreemption(Some(until)));
        }
        let actions = self.plan.router.handle(Instant::now(), Input::Start);
        self.execute(actions).await;
        // systemd Type=notify: ready once the instances run; without systemd this is a no-op.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut watchdog = watchdog_interval().map(tokio::time::interval);

        loop {
            let timer = crate::deadline::sleep_until(self.plan.router.next_deadline());
            tokio::select! {
                Some((ifindex, batch)) = packets.recv() => {
                    // The batch arrived together: one reading of the clock serves it.
                    let now = Instant::now();
                    for packet in &batch {
                        let input = Input::Packet {
                            interface: ifindex,
                            src: packet.src,
                            dst: packet.dst,
                            ttl: packet.ttl,
                            bytes: &packet.payload,
                        };
                        let actions = self.plan.router.handle(now, input);
                        self.execute(actions).await;
                    }
                }
                Some(event) = links.recv() => {
                    let input = match &event {
                        LinkEvent::Up { index, name } => {
                            info!("Netlink reports {name} up");
                            Input::LinkUp(*index)
                        }
                        LinkEvent::Down { index, name } => {
                            info!("Netlink reports {name} down");
                            Input::LinkDown(*index)
                        }
                    };
                    let actions = self.plan.router.handle(Instant::now(), input);
                    self.execute(actions).await;
                }
                Some(request) = control.recv() => self.on_control(request),
                _ = async { watchdog.as_mut().unwrap().tick().await }, if watchdog.is_some() => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
                _ = timer => {
                    let actions = self.plan.router.handle(Instant::now(), Input::Timer);
                    self.execute(actions).await;
                }
                received = async { first_resync.as_mut().unwrap().await }, if first_resync.is_some() => {
                    first_resync = None;
                    if let Ok(entries) = received {
                        info!("peer state received ({entries} flows): preemption allowed");
                        self.plan.router.handle(Instant::now(), Input::HoldPreemption(None));
                    }
                }
                answer = async {
                    let held = self.held.as_mut().expect("guarded by is_some");
                    tokio::time::timeout_at(held.deadline, &mut held.answer).await
                }, if self.held.is_some() => {
                    self.release_held(answer.ok().and_then(Result::ok)).await;
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        info!("Stopping");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        // What a promotion held back happens first, so the shutdown's effects undo it.
        self.release_held(None).await;
        let actions = self.plan.router.handle(Instant::now(), Input::Shutdown);
        self.execute(actions).await;
        Ok(())
    }

    /// Addresses a killed run left on the interfaces would answer for a node that is not master.
    async fn clean_leftovers(&self) {
        for instance in &self.plan.instances {
            for spec in &instance.addresses {
                match self.addresses.present(spec).await {
                    Ok(true) => {
                        info!("({}) removing leftover address {spec}", instance.name);
                        if let Err(e) = self.addresses.remove(spec).await {
                            warn!("({}) {e}", instance.name);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => warn!("({}) {e}", instance.name),
                }
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        let replicated = self.replicated_transition(&actions);
        if replicated == Some(State::Master) && self.held.is_none() {
            self.start_commit();
        }
        // Adverts due together leave in one system call per socket; anything else waits
        // for the adverts before it, so the order of effects stays the core's. Adverts
        // never wait for a promotion commit (masters keep advertising, the new one claims
        // its VRIDs at once); the other effects queue behind it, in order.
        let mut ready: Vec<Action> = Vec::new();
        for action in actions {
            match action {
                advert @ Action::Instance {
                    action: InstanceAction::Send { .. },
                    ..
                } => ready.push(advert),
                // A log line about a packet: nothing to hold back.
                dropped @ Action::Dropped { .. } => ready.push(dropped),
                effect => match &mut self.held {
                    Some(held) => held.effects.push(effect),
                    None => ready.push(effect),
                },
            }
        }
        self.execute_effects(ready).await;
        if let (Some(to), Some(r)) = (replicated, &self.replication) {
            // The slow parts run in the service's own task, after the addresses moved.
            // Commands queue in order behind the commit, which also made the committed
            // entries this node's own (the internal cache) and, after a big commit, resynced
            // the internal cache from the kernel: the peer's state leaves the external cache
            // (it would go stale), and the peer gets the whole table in one bulk.
            let steps: &[&str] = match to {
                State::Master => &["flush external", "bulk"],
                State::Backup | State::Fault => &["shorten", "request-resync"],
                State::Init | State::Stop => &[],
            };
            for step in steps {
                let (tx, _) = tokio::sync::oneshot::channel();
                r.handle.forward((*step).into(), tx);
            }
        }
    }

    /// The transition that drives replication in this batch of actions, if any: the sync
    /// group's when there are groups, otherwise any instance's; only into or out of MASTER.
    fn replicated_transition(&self, actions: &[Action]) -> Option<State> {
        let r = self.replication.as_ref()?;
        if !r.builtin {
            return None;
        }
        let grouped = !self.plan.groups.is_empty();
        actions.iter().find_map(|a| match a {
            Action::GroupTransition { from, to, .. } if grouped => {
                (*to == State::Master || *from == State::Master).then_some(*to)
            }
            Action::Instance {
                action: InstanceAction::Transition { from, to, .. },
                ..
            } if !grouped => (*to == State::Master || *from == State::Master).then_some(*to),
            _ => None,
        })
    }

    /// An address, announcement, script or log line of a transition.
    async fn execute_effect(&mut self, effect: Action) {
        match effect {
            Action::Instance { id, action } => self.execute_instance(id, action).await,
            Action::GroupTransition { group, to, .. } => {
                let plan = &self.plan.groups[group];
                info!("VRRP_Group({}) Syncing instances to {to} state", plan.name);
                notify::run(&plan.notify, Subject::Group, &plan.name, to, 0);
            }
            Action::Dropped {
                instance,
                interface,
                src,
                error,
            } => self.log_drop(instance, interface, src, &error),
        }
    }

    /// Asks for the peer's flows to go into the kernel before the addresses and gratuitous
    /// ARPs bring traffic here; until the answer (or `commit_wait`), effects are held.
    fn start_commit(&mut self) {
        let Some(r) = &self.replication else { return };
        let (reply, answer) = tokio::sync::oneshot::channel();
        r.handle.forward("commit".into(), reply);
        self.held = Some(HeldForCommit {
            answer,
            deadline: tokio::time::Instant::now() + r.commit_wait,
            started: Instant::now(),
            effects: Vec::new(),
        });
    }

    /// The commit answered or ran out of time: carry out what waited for it.
    async fn release_held(&mut self, answer: Option<String>) {
        let Some(held) = self.held.take() else { return };
        match answer {
            Some(summary) => info!("before announcing: {}", summary.trim()),
            None => warn!(
                "commit still running after {} ms: announcing the addresses anyway",
                held.started.elapsed().as_millis()
            ),
        }
        self.execute_effects(held.effects).await;
    }

    /// Carries out effects in the core's order, gathered where that saves time without
    /// changing what a neighbour sees first: adverts due together leave in one system call
    /// per socket (before the next other effect), and the address changes of several
    /// instances (a sync group moving) go to the kernel in one batch at the first of them,
    /// so every address of the group is in place before the first gratuitous ARP.
    async fn execute_effects(&mut self, effects: Vec<Action>) {
        let mut adverts: Vec<(InstanceId, IpAddr, Vec<u8>)> = Vec::new();
        for step in gather_address_changes(effects) {
            match step {
                Step::Effect(Action::Instance {
                    id,
                    action: InstanceAction::Send { to, bytes },
                }) => adverts.push((id, to, bytes)),
                Step::Effect(dropped @ Action::Dropped { .. }) => {
                    self.execute_effect(dropped).await;
                }
                Step::Effect(effect) => {
                    self.send_adverts(&mut adverts).await;
                    self.execute_effect(effect).await;
                }
                Step::Addresses { add, instances } => {
                    self.send_adverts(&mut adverts).await;
                    self.change_addresses(add, &instances).await;
                }
            }
        }
        self.send_adverts(&mut adverts).await;
    }

    /// Adds (or removes) the addresses of all these instances in one netlink batch; each
    /// failure is logged under its instance's name.
    async fn change_addresses(&self, add: bool, instances: &[InstanceId]) {
        let owners: Vec<&str> = (instances.iter())
            .flat_map(|&id| {
                let plan = &self.plan.instances[id];
                plan.addresses.iter().map(|_| plan.name.as_str())
            })
            .collect();
        let specs: Vec<AddressSpec> = (instances.iter())
            .flat_map(|&id| self.plan.instances[id].addresses.iter().cloned())
            .collect();
        let results = if add {
            self.addresses.add_all(&specs).await
        } else {
            self.addresses.remove_all(&specs).await
        };
        for (owner, result) in owners.into_iter().zip(results) {
            if let Err(e) = result {
                error!("({owner}) {e}");
            }
        }
    }

    /// Sends the queued adverts, one `sendmmsg` per socket, in queue order per socket.
    async fn send_adverts(&self, adverts: &mut Vec<(InstanceId, IpAddr, Vec<u8>)>) {
        while let Some(&(first, _, _)) = adverts.first() {
            let key = self.plan.instances[first].socket;
            let (these, rest): (Vec<_>, Vec<_>) = adverts
                .drain(..)
                .partition(|(id, _, _)| self.plan.instances[*id].socket == key);
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

    async fn execute_instance(&mut self, id: InstanceId, action: InstanceAction) {
        let plan = &self.plan.instances[id];
        match action {
            InstanceAction::Send { .. } => unreachable!("adverts go through send_adverts"),
            InstanceAction::AddAddresses => self.change_addresses(true, &[id]).await,
            InstanceAction::RemoveAddresses => self.change_addresses(false, &[id]).await,
            InstanceAction::SendGratuitous => self.announce(id),
            InstanceAction::Transition { from, to, cause } => {
                let priority = self.plan.router.instance(id).priority();
                info!(
                    "({}) Entering {to} STATE ({cause:?}, was {from})",
                    plan.name
                );
                notify::run(&plan.notify, Subject::Instance, &plan.name, to, priority);
            }
        }
    }

    /// Gratuitous ARPs and unsolicited NAs for every address of the instance. The senders
    /// were opened at start; one that failed there is tried again here.
    fn announce(&mut self, id: InstanceId) {
        let plan = &self.plan.instances[id];
        let repeat = self.plan.garp_repeat;
        for a in &plan.announce {
            let result = match a.address {
                IpAddr::V4(ip) => {
                    let sender = match self.arp.entry(a.ifindex) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match ArpSender::new(a.ifindex, a.mac) {
                                Ok(s) => v.insert(s),
                                Err(e) => {
                                    warn!("({}) {e}", plan.name);
                                    continue;
                                }
                            }
                        }
                    };
                    (0..repeat).try_for_each(|_| sender.send(ip))
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
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match NaSender::new(&a.ifname, a.ifindex, a.mac) {
                                Ok(s) => v.insert(s),
                                Err(e) => {
                                    warn!("({}) {e}", plan.name);
                                    continue;
                                }
                            }
                        }
                    };
                    (0..repeat).try_for_each(|_| sender.send(source, ip))
                }
            };
            if let Err(e) = result {
                warn!("({}) {e}", plan.name);
            }
        }
    }

    /// Logs a dropped packet; at most once a second per instance, the counters keep the rest.
    fn log_drop(
        &mut self,
        instance: Option<InstanceId>,
        interface: u32,
        src: IpAddr,
        error: &tandem_vrrp::DecodeError,
    ) {
        let now = Instant::now();
        let last = self.last_drop_log.get(&instance).copied();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_drop_log.insert(instance, now);
        let name = instance.map_or("-", |id| self.plan.instances[id].name.as_str());
        let ifname = self
            .plan
            .interfaces
            .values()
            .find(|i| i.index == interface)
            .map_or("?", |i| i.name.as_str());
        warn!("({name}) dropped packet from {src} on {ifname}: {error}");
    }

    /// Answers a control-socket request; replication verbs go to that service, whose answer
    /// may take seconds (a commit), without holding up this loop.
    fn on_control(&self, request: Request) {
        let verb = request.command.split_whitespace().next().unwrap_or("");
        let verb = if verb == "stats" && request.command.trim() != "stats vrrp" {
            "sync-stats"
        } else {
            verb
        };
        if crate::conntrack::VERBS.contains(&verb) {
            match self.replication.as_ref().map(|r| &r.handle) {
                Some(handle) => {
                    let rest = request.command.split_once(' ').map_or("", |(_, r)| r);
                    handle.forward(format!("{verb} {rest}"), request.reply);
                }
                None if verb == "sync-stats" => {
                    let _ = request.reply.send(self.status());
                }
                None => {
                    let _ = request.reply.send(
                        "error: conntrack replication is not configured (add conntrackd.conf or a [sync] section)\n"
                            .into(),
                    );
                }
            }
            return;
        }
        let reply = match verb {
            "status" | "stats" | "" => self.status(),
            other => format!("error: unknown command `{other}` (try `status`)\n"),
        };
        let _ = request.reply.send(reply);
    }

    fn status(&self) -> String {
        let mut out = String::new();
        for (id, instance) in self.plan.router.instances() {
            let s = instance.stats();
            let _ = write!(
                out,
                "instance={} state={} priority={} vrid={} master={} adverts_rx={} adverts_tx={} \
                 priority_zero_rx={} priority_zero_tx={} became_master={} drops={}",
                self.plan.instances[id].name,
                instance.state(),
                instance.priority(),
                instance.config().vrid,
                instance
                    .master()
                    .map_or_else(|| "-".to_string(), |m| m.to_string()),
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
        }
        let u = self.plan.router.unclaimed_stats();
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
        out
    }
}

/// One step of a batch of effects: an effect as the core returned it, or the address changes
/// of several instances gathered into one netlink batch.
#[derive(Debug)]
enum Step {
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
fn gather_address_changes(effects: Vec<Action>) -> Vec<Step> {
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
                steps.push(Step::Effect(effect));
                continue;
            }
        };
        let Action::Instance { id, .. } = effect else {
            continue;
        };
        match open {
            Some((kind, at)) if kind == add => {
                if let Some(Step::Addresses { instances, .. }) = steps.get_mut(at) {
                    instances.push(id);
                }
            }
            _ => {
                open = Some((add, steps.len()));
                steps.push(Step::Addresses {
                    add,
                    instances: vec![id],
                });
            }
        }
    }
    steps
}

/// Opens the gratuitous ARP and neighbour advertisement senders of every address the plan
/// may announce, so a takeover does not open sockets on its way. A sender that cannot be
/// opened is a warning naming the address's place in the configuration (the announcement
/// tries again at the takeover).
fn open_announcers(plan: &Plan) -> (HashMap<u32, ArpSender>, HashMap<u32, NaSender>) {
    let mut arp = HashMap::new();
    let mut na = HashMap::new();
    for instance in &plan.instances {
        for a in &instance.announce {
            match a.address {
                IpAddr::V4(_) if !arp.contains_key(&a.ifindex) => {
                    match ArpSender::new(a.ifindex, a.mac) {
                        Ok(s) => {
                            arp.insert(a.ifindex, s);
                        }
                        Err(e) => warn!(
                            "{}: ({}) {} on {}: {e}",
                            a.location, instance.name, a.address, a.ifname
                        ),
                    }
                }
                IpAddr::V6(_) => {
                    if a.link_local.is_none() {
                        warn!(
                            "{}: ({}) no link-local address on {} to announce {} from",
                            a.location, instance.name, a.ifname, a.address
                        );
                    }
                    if na.contains_key(&a.ifindex) {
                        continue;
                    }
                    match NaSender::new(&a.ifname, a.ifindex, a.mac) {
                        Ok(s) => {
                            na.insert(a.ifindex, s);
                        }
                        Err(e) => warn!(
                            "{}: ({}) {} on {}: {e}",
                            a.location, instance.name, a.address, a.ifname
                        ),
                    }
                }
                IpAddr::V4(_) => {}
            }
        }
    }
    (arp, na)
}

/// Half of systemd's `WatchdogSec`, when the unit sets one: the loop proves it is alive.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tandem_vrrp::{
        Action, Auth, Input, InstanceAction, InstanceConfig, InstanceId, Router, State, Version,
    };

    use super::{gather_address_changes, Step};

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
        }
    }

    fn instance(id: InstanceId, action: InstanceAction) -> Action {
        Action::Instance { id, action }
    }

    /// A compact picture of the steps: `+[0, 1]` one batch adding instances 0 and 1,
    /// `g0` instance 0's gratuitous ARPs, `a0` its advert, `t0` its transition.
    fn picture(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Addresses { add, instances } => {
                    format!("{}{instances:?}", if *add { '+' } else { '-' })
                }
                Step::Effect(Action::Instance { id, action }) => match action {
                    InstanceAction::Send { .. } => format!("a{id}"),
                    InstanceAction::SendGratuitous => format!("g{id}"),
                    InstanceAction::Transition { .. } => format!("t{id}"),
                    other => format!("{other:?}{id}"),
                },
                Step::Effect(Action::GroupTransition { group, .. }) => format!("G{group}"),
                Step::Effect(other) => format!("{other:?}"),
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
        let steps = picture(&gather_address_changes(takeover));
        assert_eq!(
            steps,
            ["t0", "+[0, 1]", "a0", "g0", "t1", "a1", "g1", "G0"],
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
