//! The daemon loop: feeds packets, link events, timers and signals to the VRRP core and
//! carries out the actions it returns, in order.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_failover::{Command, Coordinator, Step};
use tandem_sys::{
    AddressSpec, Addresses, ArpSender, BurstBuffer, LinkEvent, NaSender, Received, VrrpSocket,
};
use tandem_vrrp::{Action, DropReason, Input, InstanceAction, InstanceId, State};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::announce;
use crate::conntrack::{self, Answer, ControlCommand, Notice, Refusal};
use crate::control::Request;
use crate::notify::{self, Subject};
use crate::plan::{Plan, SocketKey, SocketPlan};
use crate::signals::Signalled;

mod metrics;
mod processes;
mod reload;
pub use reload::fingerprint;
mod restore;
mod status_json;
mod status_tracking;

/// Most packets handed from a socket's reader to the daemon loop at once.
const RECEIVE_BATCH: usize = 256;
/// Packets read per system call; each slot is one packet buffer kept by the reader.
const RECEIVE_SLOTS: usize = 32;

/// What the daemon was started with that a reload needs again.
pub struct Running {
    /// The configuration files, in command-line order.
    pub files: Vec<std::path::PathBuf>,
    /// `-i/--config-id`, when given.
    pub config_id: Option<String>,
    /// The replication settings in force (changes need a restart).
    pub sync: Option<tandem_config::SyncConfig>,
    /// The metrics listener in force (changes need a restart).
    pub metrics: Option<tandem_config::MetricsConfig>,
    /// `lvs_sync_daemon` in force (changes need a restart).
    pub lvs_sync_daemon: Option<tandem_config::LvsSyncDaemon>,
    /// `[lb] backend` in force (changes need a restart).
    pub lb_backend: tandem_config::LbBackend,
    /// Where the signal-triggered dumps go.
    pub dumps: DumpPaths,
    /// [`fingerprint`] of the configuration in force.
    pub fingerprint: u64,
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
    arp: HashMap<u32, Arc<ArpSender>>,
    na: HashMap<u32, Arc<NaSender>>,
    /// Dropped-packet log lines, one per instance and reason per period.
    drop_log: HashMap<(Option<InstanceId>, DropReason), crate::log_limit::LogLimiter>,
    replication: Option<Replication>,
    /// The built-in failover sequence (replication with `builtin_failover`).
    failover: Option<Failover>,
    /// `vrrp_track_process` counting.
    processes: processes::Processes,
    /// Transitions and step durations, for the metrics.
    recorder: crate::metrics::Recorder,
    /// vrrp_script runners and track_file watchers.
    trackers: crate::tracking::Trackers,
    /// Notify FIFOs and mail alerts (opened when the loop starts).
    alerts: crate::alerts::Alerts,
    /// The LVS director half: checkers and the nftables services (none configured: `None`).
    lb: Option<crate::lb::LoadBalancer>,
    /// IPVS's connection sync daemon, following one instance (`lvs_sync_daemon`).
    syncd: Option<crate::lvs_syncd::SyncDaemonDriver>,
}

/// The failover sequence as the daemon runs it: the coordinator, and the steps it sent to
/// the replication service whose answers are still to come.
struct Failover {
    coordinator: Coordinator<Action>,
    /// Oldest first; the service answers in this order.
    steps: VecDeque<(Step, Instant, oneshot::Receiver<Answer>)>,
    /// Warnings of the sequence so far, and the last one (for status).
    warnings: u64,
    last_warning: Option<String>,
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
    /// What the service tells unasked (the peer's full state arrived).
    pub notices: Option<mpsc::UnboundedReceiver<Notice>>,
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
        let failover = (replication.as_ref())
            .filter(|r| r.builtin)
            .map(|r| Failover {
                coordinator: Coordinator::new(tandem_failover::Config {
                    commit_wait: r.commit_wait,
                    preempt_wait: r.preempt_wait,
                }),
                steps: VecDeque::new(),
                warnings: 0,
                last_warning: None,
            });
        let (arp, na) = open_announcers(&plan);
        Ok(Daemon {
            plan,
            running,
            addresses: Addresses::new(handle.clone()),
            handle,
            sockets,
            readers: HashMap::new(),
            packets_tx,
            packets_rx: Some(packets_rx),
            arp,
            na,
            drop_log: HashMap::new(),
            replication,
            failover,
            processes: processes::Processes::new(),
            recorder: crate::metrics::Recorder::default(),
            trackers: Default::default(),
            alerts: Default::default(),
            lb: None,
            syncd: None,
        })
    }

    /// Hands over the running load balancer, stopped (and its table removed) at shutdown.
    /// Hands over the running IPVS sync daemon, stopped at shutdown.
    pub fn set_sync_daemon(&mut self, syncd: Option<crate::lvs_syncd::SyncDaemonDriver>) {
        self.syncd = syncd;
    }

    /// The settings the daemon was started with.
    pub fn running(&self) -> &Running {
        &self.running
    }

    pub fn set_load_balancer(&mut self, lb: Option<crate::lb::LoadBalancer>) {
        self.lb = lb;
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

        let mut removals = tandem_sys::watch_address_removals()
            .context("watching address removals (rtnetlink)")?;
        self.clean_leftovers().await;
        self.alerts = crate::alerts::Alerts::start(self.plan.alerts.clone());
        let mut tracker_events = self
            .trackers
            .take_events()
            .context("the daemon runs once")?;
        self.trackers
            .apply(&self.plan.tracking, &mut self.plan.router, true);
        let now = Instant::now();
        let down: Vec<u32> = (self.plan.interfaces.values())
            .filter(|info| !info.up)
            .map(|info| info.index)
            .collect();
        for index in down {
            let actions = self.plan.router.handle(now, Input::LinkDown(index));
            self.execute(actions).await;
        }
        // Only the built-in sequence listens to the service's notices.
        let mut notices = (self.replication.as_mut())
            .and_then(|r| r.notices.take())
            .filter(|_| self.failover.is_some());
        if let Some(f) = self.failover.as_mut() {
            // Preemption waits for the peer's state (see tandem_failover).
            let commands = (f.coordinator).handle(Instant::now(), tandem_failover::Input::Start);
            self.run_commands(commands).await;
        }
        // Tracked processes are counted before the instances start, as keepalived does.
        let mut process_updates = self.processes.updates().context("the daemon runs once")?;
        let (watch, generation) = self.processes.watch(&mut self.plan).await?;
        self.use_process_watch(watch, generation);
        let actions = self.plan.router.handle(Instant::now(), Input::Start);
        self.execute(actions).await;
        // systemd Type=notify: ready once the instances run; without systemd this is a no-op.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut watchdog = watchdog_interval().map(tokio::time::interval);

        loop {
            let timer = crate::deadline::sleep_until(self.plan.router.next_deadline());
            let failover_timer = crate::deadline::sleep_until(
                (self.failover.as_ref()).and_then(|f| f.coordinator.next_deadline()),
            );
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
                            let known = self.plan.interfaces.get(name).map(|i| i.index);
                            if let Some(old) = known.filter(|old| old != index) {
                                self.on_interface_recreated(name, old, *index).await;
                                continue;
                            }
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
                Some(removed) = removals.recv() => {
                    self.on_addresses_removed(removed, &mut removals).await;
                }
                Some(update) = process_updates.recv() => self.on_process_update(update).await,
                Some(request) = control.recv() => self.on_control(request).await,
                Some(event) = tracker_events.recv() => {
                    if let Some((kind, name, state)) = self.trackers.on_event(event) {
                        if let Some(tracker) = self.plan.router.tracker_by_name(kind, &name) {
                            let input = Input::Tracker { tracker, state };
                            let actions = self.plan.router.handle(Instant::now(), input);
                            self.execute(actions).await;
                        }
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
                    // This loop is alive (it got here); the replication loop proves it by
                    // publishing its health. A stuck one stops the feeding: systemd restarts us.
                    if self.replication_alive() {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    }
                }
                _ = timer => {
                    let actions = self.plan.router.handle(Instant::now(), Input::Timer);
                    self.execute(actions).await;
                }
                notice = async { notices.as_mut()?.recv().await }, if notices.is_some() => {
                    match notice {
                        Some(notice) => self.on_notice(notice).await,
                        // The service ended; its refusals tell the rest.
                        None => notices = None,
                    }
                }
                answer = async {
                    match self.failover.as_mut().and_then(|f| f.steps.front_mut()) {
                        Some((_, _, answer)) => answer.await,
                        None => std::future::pending().await,
                    }
                } => self.on_step_answered(answer).await,
                _ = failover_timer => {
                    if let Some(f) = self.failover.as_mut() {
                        let commands = f.coordinator.handle(Instant::now(), tandem_failover::Input::Timer);
                        self.run_commands(commands).await;
                    }
                }
            }
        }
        info!("Stopping");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        // What a promotion held back happens first, so the shutdown's effects undo it.
        if let Some(f) = self.failover.as_mut() {
            let commands = f
                .coordinator
                .handle(Instant::now(), tandem_failover::Input::Shutdown);
            self.run_commands(commands).await;
        }
        self.trackers.stop();
        // keepalived's order: the sync daemon stops in the state it runs in before the
        // instances release their addresses (leaving MASTER must not restart it as backup).
        if let Some(mut syncd) = self.syncd.take() {
            syncd.stop();
        }
        let actions = self.plan.router.handle(Instant::now(), Input::Shutdown);
        self.execute(actions).await;
        self.alerts.shutdown().await;
        if let Some(lb) = self.lb.take() {
            lb.stop().await;
        }
        Ok(())
    }

    /// Whether the replication loop (if any) published its health within the watchdog's
    /// whole period (a million-entry commit stalls it for about 4 s).
    fn replication_alive(&self) -> bool {
        let Some(health) = self.replication.as_ref().and_then(|r| r.handle.health()) else {
            return true;
        };
        let period = watchdog_interval().map_or(Duration::from_secs(10), |half| half * 2);
        let stalled = health.published.elapsed();
        if stalled > period {
            error!(
                "the replication loop has not run for {:.1} s: no longer feeding the watchdog",
                stalled.as_secs_f64()
            );
            return false;
        }
        true
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
            // Routes and rules: removing one that is not there is success.
            let (routes, rules) = (&instance.routes, &instance.rules);
            if routes.is_empty() && rules.is_empty() {
                continue;
            }
            for result in self.addresses.apply(false, &[], routes, rules).await {
                if let Err(e) = result {
                    warn!("({}) {e}", instance.name);
                }
            }
        }
    }

    /// Carries out a batch of the core's actions; with the built-in failover sequence the
    /// coordinator puts them in order (a promotion's effects wait for its commit).
    async fn execute(&mut self, actions: Vec<Action>) {
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

    /// Carries out the coordinator's commands in order. Runs of effects go through
    /// [`Daemon::execute_effects`], which batches adverts and address changes without
    /// changing what a neighbour sees first.
    async fn run_commands(&mut self, commands: Vec<Command<Action>>) {
        let mut effects: Vec<Action> = Vec::new();
        for command in commands {
            match command {
                Command::Effect(effect) => effects.push(effect),
                other => {
                    self.execute_effects(std::mem::take(&mut effects)).await;
                    match other {
                        Command::Effect(_) => unreachable!("matched above"),
                        // The slow parts run in the service's own thread, in the order sent.
                        Command::Run(step) => self.run_step(step),
                        Command::HoldPreemption(until) => {
                            self.plan
                                .router
                                .handle(Instant::now(), Input::HoldPreemption(until));
                        }
                        Command::Warn(warning) => {
                            warn!("{warning}");
                            if let Some(f) = self.failover.as_mut() {
                                f.warnings += 1;
                                f.last_warning = Some(warning.to_string());
                            }
                        }
                    }
                }
            }
        }
        self.execute_effects(effects).await;
    }

    /// Sends a step of the failover sequence to the replication service; its answer (or
    /// refusal) comes back to the coordinator through `on_step_answered`.
    fn run_step(&mut self, step: Step) {
        let (Some(f), Some(r)) = (self.failover.as_mut(), self.replication.as_ref()) else {
            return;
        };
        let answer = r.handle.forward(conntrack::Request::for_step(step));
        f.steps.push_back((step, Instant::now(), answer));
    }

    /// The oldest step sent has been answered: tell the coordinator.
    async fn on_step_answered(&mut self, answer: Result<Answer, oneshot::error::RecvError>) {
        let Some(f) = self.failover.as_mut() else {
            return;
        };
        let Some((step, sent, _)) = f.steps.pop_front() else {
            return;
        };
        let took = sent.elapsed();
        self.recorder.step(&step.to_string(), took);
        let ms = took.as_secs_f64() * 1000.0;
        let answer = answer.unwrap_or(Err(Refusal::Stopped));
        match &answer {
            Ok(reply) if step == Step::Commit && f.coordinator.waiting_for_commit() => {
                info!(
                    "failover step commit ({ms:.1} ms), before announcing: {}",
                    reply.to_string().trim_end()
                );
            }
            Ok(reply) if step == Step::Commit => {
                info!(
                    "failover step commit ({ms:.1} ms), after announcing: {}",
                    reply.to_string().trim_end()
                );
            }
            Ok(reply) => info!(
                "failover step {step} ({ms:.1} ms): {}",
                reply.to_string().trim_end()
            ),
            // The coordinator turns it into a warning.
            Err(_) => {}
        }
        let result = answer.map(drop).map_err(|refusal| refusal.to_string());
        let input = tandem_failover::Input::Answered { step, result };
        let commands = f.coordinator.handle(Instant::now(), input);
        self.run_commands(commands).await;
    }

    /// The replication service's unasked news.
    async fn on_notice(&mut self, notice: Notice) {
        let Some(f) = self.failover.as_mut() else {
            return;
        };
        match notice {
            Notice::PeerState { entries } => {
                if f.coordinator.holding_preemption() {
                    info!("peer state received ({entries} flows): preemption allowed");
                }
                let input = tandem_failover::Input::PeerStateReceived { entries };
                let commands = f.coordinator.handle(Instant::now(), input);
                self.run_commands(commands).await;
            }
        }
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
    async fn execute_effects(&mut self, effects: Vec<Action>) {
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
    async fn change_addresses(&self, add: bool, instances: &[InstanceId]) {
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
    fn announce(&mut self, id: InstanceId, repeat: u32, loud: bool) {
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
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match ArpSender::new(a.ifindex, a.mac) {
                                Ok(s) => v.insert(Arc::new(s)),
                                Err(e) => {
                                    warn!("({}) {e}", plan.name);
                                    continue;
                                }
                            }
                        }
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
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match NaSender::new(&a.ifname, a.ifindex, a.mac) {
                                Ok(s) => v.insert(Arc::new(s)),
                                Err(e) => {
                                    warn!("({}) {e}", plan.name);
                                    continue;
                                }
                            }
                        }
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
    /// may take seconds (a commit), without holding up this loop; `reload` runs here, as
    /// SIGHUP does.
    async fn on_control(&mut self, request: Request) {
        let command = match conntrack::parse(&request.command) {
            Ok(command) => command,
            Err(e) => {
                let _ = request.reply.send(format!("error: {e}\n"));
                return;
            }
        };
        let reply = match (command, &self.replication) {
            (ControlCommand::Replication(r), Some(replication)) => {
                let answer = replication.handle.forward(r);
                tokio::spawn(async move {
                    let answer = answer.await.unwrap_or(Err(Refusal::Stopped));
                    let _ = request.reply.send(conntrack::render(&answer));
                });
                return;
            }
            (ControlCommand::Reload, _) => self.reload().await,
            (ControlCommand::StatusJson, _) => self.status_json(),
            (ControlCommand::Metrics, _) => self.metrics_text(),
            (ControlCommand::KeepalivedDump(which), _) => match which {
                tandem_control::KeepalivedDump::Data => crate::dump::data(&self.plan, Instant::now()),
                tandem_control::KeepalivedDump::Stats => crate::dump::stats(&self.plan),
                tandem_control::KeepalivedDump::Json => crate::dump::json(&self.plan) + "\n",
            },
            (ControlCommand::Status, _)
            | (ControlCommand::Replication(conntrack::Request::Stats), None) => self.status(),
            (ControlCommand::Replication(_), None) => {
                "error: conntrack replication is not configured (add conntrackd.conf or a [sync] section)\n"
                    .into()
            }
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
            self.tracker_lines(id, &mut out);
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
        if let Some(f) = &self.failover {
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            let _ = write!(
                out,
                "failover waiting_for_commit={} holding_preemption={} steps_pending={} warnings={}",
                yes_no(f.coordinator.waiting_for_commit()),
                yes_no(f.coordinator.holding_preemption()),
                f.steps.len(),
                f.warnings,
            );
            if let Some(w) = &f.last_warning {
                let _ = write!(out, " last_warning={w}");
            }
            out.push('\n');
        }
        self.health_lines(&mut out);
        out
    }

    /// What needs attention: `fault=NAME` per instance in FAULT, `sync=silent`.
    fn failing(&self, now: Instant) -> Vec<String> {
        let mut failing: Vec<String> = (self.plan.router.instances())
            .filter(|(_, instance)| instance.state() == State::Fault)
            .map(|(id, _)| format!("fault={}", self.plan.instances[id].name))
            .collect();
        let health = self.replication.as_ref().and_then(|r| r.handle.health());
        if health.is_some_and(|h| h.is_silent(now)) {
            failing.push("sync=silent".into());
        }
        failing
    }

    /// The sync peer's line and a verdict line (`health=ok`, or `health=failing` with the
    /// reasons: an instance in FAULT, a silent sync peer), which makes `tandemctl status`
    /// usable as a monitoring check.
    fn health_lines(&self, out: &mut String) {
        let now = Instant::now();
        if let Some(health) = self.replication.as_ref().and_then(|r| r.handle.health()) {
            let _ = writeln!(out, "{}", health.describe(now));
        }
        let failing = self.failing(now);
        if failing.is_empty() {
            out.push_str("health=ok\n");
        } else {
            let _ = writeln!(out, "health=failing {}", failing.join(" "));
        }
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

/// Opens the gratuitous ARP and neighbour advertisement senders of every address the plan
/// may announce, so a takeover does not open sockets on its way. A sender that cannot be
/// opened is a warning naming the address's place in the configuration (the announcement
/// tries again at the takeover).
fn open_announcers(plan: &Plan) -> (HashMap<u32, Arc<ArpSender>>, HashMap<u32, Arc<NaSender>>) {
    let mut arp = HashMap::new();
    let mut na = HashMap::new();
    for instance in &plan.instances {
        for a in &instance.announce {
            match a.address {
                IpAddr::V4(_) if !arp.contains_key(&a.ifindex) => {
                    match ArpSender::new(a.ifindex, a.mac) {
                        Ok(s) => {
                            arp.insert(a.ifindex, Arc::new(s));
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
                            na.insert(a.ifindex, Arc::new(s));
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
