//! The daemon loop: feeds packets, link events, timers and signals to the VRRP core and
//! carries out the actions it returns, in order.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_sys::{Addresses, ArpSender, BurstBuffer, LinkEvent, NaSender, Received, VrrpSocket};
use tandem_vrrp::{DropReason, Input, InstanceId};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::conntrack::Notice;
use crate::control::Request;
use crate::plan::{Plan, SocketKey, SocketPlan};
use crate::signals::Signalled;

mod control;
mod effects;
mod failover_steps;
mod processes;
mod reload;
pub use reload::fingerprint;
mod restore;

use failover_steps::Failover;

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
            .map(Failover::new);
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

    /// Hands over the running IPVS sync daemon, stopped at shutdown.
    pub fn set_sync_daemon(&mut self, syncd: Option<crate::lvs_syncd::SyncDaemonDriver>) {
        self.syncd = syncd;
    }

    /// The settings the daemon was started with.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Hands over the running load balancer, stopped (and its table removed) at shutdown.
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
