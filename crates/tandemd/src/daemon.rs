//! The daemon loop: feeds packets, link events, timers and signals to the VRRP core and
//! carries out the actions it returns, in order.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_sys::{Addresses, ArpSender, BurstBuffer, LinkEvent, NaSender, Received, VrrpSocket};
use tandem_vrrp::{Action, DropReason, Input, InstanceAction, InstanceId, State};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::control::Request;
use crate::notify::{self, Subject};
use crate::plan::{Plan, SocketKey, SocketPlan};
use crate::signals::Signalled;

mod reload;

/// Most packets handed from a socket's reader to the daemon loop at once.
const RECEIVE_BATCH: usize = 256;
/// Packets read per system call; each slot is one packet buffer kept by the reader.
const RECEIVE_SLOTS: usize = 32;

/// What the daemon was started with that a reload needs again.
pub struct Running {
    /// The configuration files, in command-line order.
    pub files: Vec<std::path::PathBuf>,
    /// The replication settings in force (changes need a restart).
    pub sync: Option<tandem_config::SyncConfig>,
    /// Where the signal-triggered dumps go.
    pub dumps: DumpPaths,
}

/// Paths of keepalived's dumps.
pub struct DumpPaths {
    /// SIGUSR1.
    pub data: std::path::PathBuf,
    /// SIGUSR2.
    pub stats: std::path::PathBuf,
    /// SIGRTMIN+2.
    pub json: std::path::PathBuf,
}

/// A batch of packets one socket's reader hands to the loop.
type PacketBatch = (u32, Vec<Received>);

/// The running node: core, plan and kernel handles.
pub struct Daemon {
    plan: Plan,
    running: Running,
    handle: rtnetlink::Handle,
    addresses: Addresses,
    sockets: HashMap<SocketKey, Arc<VrrpSocket>>,
    /// Each socket's reader task.
    readers: HashMap<SocketKey, tokio::task::JoinHandle<()>>,
    packets_tx: mpsc::Sender<PacketBatch>,
    packets_rx: Option<mpsc::Receiver<PacketBatch>>,
    arp: HashMap<u32, ArpSender>,
    na: HashMap<u32, NaSender>,
    /// Dropped-packet log lines, one per instance and reason per period.
    drop_log: HashMap<(Option<InstanceId>, DropReason), crate::log_limit::LogLimiter>,
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
        handle: rtnetlink::Handle,
        replication: Option<Replication>,
        running: Running,
    ) -> Result<Daemon> {
        let mut sockets = HashMap::new();
        for (key, sp) in &plan.sockets {
            sockets.insert(*key, Arc::new(open_socket(*key, sp, &plan)?));
        }
        // Packets travel in batches: everything queued on a socket when it wakes up, so a
        // burst of adverts from many instances costs one hand-over, not one per packet.
        let (packets_tx, packets_rx) = mpsc::channel::<PacketBatch>(64);
        Ok(Daemon {
            plan,
            running,
            addresses: Addresses::new(handle.clone()),
            handle,
            sockets,
            readers: HashMap::new(),
            packets_tx,
            packets_rx: Some(packets_rx),
            arp: HashMap::new(),
            na: HashMap::new(),
            drop_log: HashMap::new(),
            replication,
            held: None,
        })
    }

    /// Runs until a stopping signal, then stops gracefully.
    pub async fn run(
        mut self,
        mut links: mpsc::Receiver<LinkEvent>,
        mut control: mpsc::Receiver<Request>,
        mut signals: mpsc::Receiver<Signalled>,
    ) -> Result<()> {
        let mut packets = self.packets_rx.take().context("the daemon runs once")?;
        let keys: Vec<SocketKey> = self.sockets.keys().copied().collect();
        for key in keys {
            self.spawn_reader(key);
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
                Some(request) = control.recv() => {
                    if request.command.split_whitespace().next() == Some("reload") {
                        let answer = self.reload().await;
                        let _ = request.reply.send(answer);
                    } else {
                        self.on_control(request);
                    }
                }
                Some(signalled) = signals.recv() => match signalled {
                    Signalled::Stop(name) => {
                        info!("Received {name}");
                        break;
                    }
                    Signalled::Reload => {
                        self.reload().await;
                    }
                    dump => self.write_dump(dump),
                },
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

    /// Starts the task that reads socket `key` and hands its packets to the loop.
    fn spawn_reader(&mut self, key: SocketKey) {
        let Some(socket) = self.sockets.get(&key).map(Arc::clone) else {
            return;
        };
        let tx = self.packets_tx.clone();
        let ifindex = key.ifindex;
        let reader = tokio::spawn(async move {
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
        self.readers.insert(key, reader);
    }

    /// Writes one of keepalived's dumps where the operator expects it.
    fn write_dump(&mut self, which: Signalled) {
        let paths = &self.running.dumps;
        let (path, text) = match which {
            Signalled::DumpData => (&paths.data, crate::dump::data(&self.plan, Instant::now())),
            Signalled::DumpJson => (&paths.json, crate::dump::json(&self.plan)),
            Signalled::DumpStats | Signalled::DumpStatsAndClear => {
                (&paths.stats, crate::dump::stats(&self.plan))
            }
            Signalled::Stop(_) | Signalled::Reload => return,
        };
        match crate::dump::write(path, &text) {
            Ok(()) => info!("Wrote {}", path.display()),
            Err(e) => warn!("writing {}: {e}", path.display()),
        }
        if which == Signalled::DumpStatsAndClear {
            self.plan.router.clear_stats();
        }
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
        let mut adverts: Vec<(InstanceId, IpAddr, Vec<u8>)> = Vec::new();
        for action in actions {
            match action {
                Action::Instance {
                    id,
                    action: InstanceAction::Send { to, bytes },
                } => adverts.push((id, to, bytes)),
                // A log line about a packet: nothing to hold back.
                dropped @ Action::Dropped { .. } => self.execute_effect(dropped).await,
                effect => match &mut self.held {
                    Some(held) => held.effects.push(effect),
                    None => {
                        self.send_adverts(&mut adverts).await;
                        self.execute_effect(effect).await;
                    }
                },
            }
        }
        self.send_adverts(&mut adverts).await;
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
        for effect in held.effects {
            self.execute_effect(effect).await;
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
            InstanceAction::AddAddresses => {
                for spec in &plan.addresses {
                    if let Err(e) = self.addresses.add(spec).await {
                        error!("({}) {e}", plan.name);
                    }
                }
            }
            InstanceAction::RemoveAddresses => {
                for spec in &plan.addresses {
                    if let Err(e) = self.addresses.remove(spec).await {
                        error!("({}) {e}", plan.name);
                    }
                }
            }
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

    /// Gratuitous ARPs and unsolicited NAs for every address of the instance.
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
        let ifname = self
            .plan
            .interfaces
            .values()
            .find(|i| i.index == interface)
            .map_or("?", |i| i.name.as_str());
        let more = if count > 1 {
            format!(" ({count} such packets since the last line)")
        } else {
            String::new()
        };
        warn!("({name}) dropped packet from {src} on {ifname}: {error}{more}");
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
        self.health_lines(&mut out);
        out
    }

    /// The sync peer's line and a verdict line (`health=ok`, or `health=failing` with the
    /// reasons: an instance in FAULT, a silent sync peer), which makes `tandemctl status`
    /// usable as a monitoring check.
    fn health_lines(&self, out: &mut String) {
        let now = Instant::now();
        let mut failing: Vec<String> = (self.plan.router.instances())
            .filter(|(_, instance)| instance.state() == State::Fault)
            .map(|(id, _)| format!("fault={}", self.plan.instances[id].name))
            .collect();
        if let Some(health) = self.replication.as_ref().and_then(|r| r.handle.health()) {
            let _ = writeln!(out, "{}", health.describe(now));
            if health.is_silent(now) {
                failing.push("sync=silent".into());
            }
        }
        if failing.is_empty() {
            out.push_str("health=ok\n");
        } else {
            let _ = writeln!(out, "health=failing {}", failing.join(" "));
        }
    }
}

/// Half of systemd's `WatchdogSec`, when the unit sets one: the loop proves it is alive.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// Opens the socket an instance group speaks on; multicast adverts leave as finished frames on
/// links with a MAC address (one system call for all due adverts, no IP output path per packet).
fn open_socket(key: SocketKey, sp: &SocketPlan, plan: &Plan) -> Result<VrrpSocket> {
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
    Ok(socket)
}
