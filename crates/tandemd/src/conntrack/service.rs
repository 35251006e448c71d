//! The conntrack replication service: kernel events in, sync datagrams out, peer datagrams in,
//! commits to the kernel on request. One tokio task drives the sans-IO sync core.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tandem_config::{SyncConfig, Transport};
use tandem_ctnetlink::{Event as KernelEvent, EventKind, Flow, FlowKey};
use tandem_ctsync::{Action, CacheKind, Config as CoreConfig, Event, ExternalChange, Input, Node};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::filter::FlowFilter;
use super::health::{Health, PeerHealth, Sources};
use super::kernel::Kernel;
use super::warm::{Chunk, WarmStandby};
use tandem_control::{Committed, Refusal, Reply, Request};

/// Changes a warm backup hands the kernel at a time: a promotion's commit waits behind at
/// most one such chunk (about 15 ms).
const WARM_CHUNK: usize = 2048;

/// Commits at least this big stop this node's NEW and UPDATE events while they run (the
/// kernel then builds no event message per entry, which halves the commit) and resync the
/// internal cache from a dump afterwards for what traffic changed meanwhile.
const PAUSE_EVENTS_FROM: usize = 10_000;

/// Datagrams read per wake-up of the replication loop before it looks at its other inputs.
const DATAGRAMS_PER_WAKEUP: usize = 64;

/// How often the sync health is checked (silence) and published for `status`.
const HEALTH_TICK: Duration = Duration::from_millis(500);

/// What became of a warm-standby chunk.
struct ChunkDone {
    total: usize,
    refused: Vec<FlowKey>,
}

/// The answer to a [`Request`]: what was done, or why not.
pub type Answer = Result<Reply, Refusal>;

/// A request on its way to the service, with where its answer goes.
struct Command {
    request: Request,
    reply: oneshot::Sender<Answer>,
}

/// What the service tells the daemon without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The peer's full state (a bulk or resync) arrived.
    PeerState {
        /// Flows it held.
        entries: usize,
    },
}

/// Handle the daemon keeps to talk to the service.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    health: Arc<Mutex<PeerHealth>>,
}

impl Handle {
    /// The sync peer's health as last published by the service (at most [`HEALTH_TICK`] old).
    pub fn health(&self) -> Option<PeerHealth> {
        self.health.lock().ok().map(|h| h.clone())
    }

    /// Sends a request without waiting (the daemon loop must not block); the answer comes on
    /// the returned channel. Requests sent one after another are carried out, and answered,
    /// in that order. A full queue or a stopped service is answered at once, as a refusal.
    pub fn forward(&self, request: Request) -> oneshot::Receiver<Answer> {
        let (reply, answer) = oneshot::channel();
        match self.commands.try_send(Command { request, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let _ = command.reply.send(Err(Refusal::Busy));
            }
            Err(mpsc::error::TrySendError::Closed(command)) => {
                let _ = command.reply.send(Err(Refusal::Stopped));
            }
        }
        answer
    }
}

/// The running service's state.
struct Service {
    node: Node<Flow>,
    kernel: Kernel,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    /// Source checks, counts and rate-limited log lines about the link to the peer.
    health: Health,
    /// Where the daemon hears about the peer's state.
    notices: mpsc::UnboundedSender<Notice>,
    /// With warm standby: the peer's changes not yet in this backup's kernel table.
    warm: Option<WarmStandby>,
    /// Where the request thread reports applied warm-standby chunks.
    warm_done: mpsc::UnboundedSender<ChunkDone>,
    /// Keys of this node's kernel that now follow the peer, to leave the internal cache.
    forget: Vec<FlowKey>,
    /// Whether this node is the one forwarding (set by commit, cleared by shorten).
    master: bool,
    /// What conntrackd's `-s` sections show that nothing else counts.
    runtime: RuntimeCounters,
}

/// The sync link and the kernel side as conntrackd's `-s runtime` / `-s link` show them.
struct RuntimeCounters {
    started: Instant,
    device: String,
    multicast: bool,
    events: u64,
    overruns: u64,
    kernel_resyncs: u64,
}

/// What a commit did, and whether it paused this node's events (then a dump follows).
struct CommitOutcome {
    result: Result<Committed, String>,
    paused: bool,
}

/// Opens the sync socket and the kernel side, then runs the service on a thread of its own
/// (with its own event loop), so that a million-entry resync or bulk send never delays a VRRP
/// advertisement. The receiver hears when the peer's full state has arrived.
pub fn start(
    config: &SyncConfig,
    own_addresses: Vec<IpAddr>,
) -> Result<(Handle, mpsc::UnboundedReceiver<Notice>)> {
    let (socket, peer) = open_socket(config)?;
    let (kernel, events) = Kernel::start(config.tcp_window_tracking)?;
    let local = match &config.transport {
        Transport::Udp { local, .. } => Some(*local),
        Transport::Multicast { local, .. } => *local,
    };
    let mut core = CoreConfig::new(node_id(local), rand::random());
    core.mtu = config.mtu;
    core.max_internal = config.max_entries;
    core.max_external = config.max_entries;
    core.hmac_key = config.key.clone();
    // Fresh per start: with a key, sessions are bound to it, so old captures never verify.
    core.nonce = rand::random();
    let warm = config.warm_standby && config.builtin_failover;
    core.report_external = warm;
    let filter = FlowFilter::new(&config.filter, own_addresses);
    let (notices, notices_rx) = mpsc::unbounded_channel();
    let (warm_done, warm_done_rx) = mpsc::unbounded_channel();
    let (commands, command_rx) = mpsc::channel(64);
    let (sources, refresh) = match &config.transport {
        Transport::Udp { peer, .. } => (Sources::Peer(*peer), None),
        Transport::Multicast { .. } => {
            let interface = config.interface.clone();
            let nets = super::health::interface_subnets(interface.as_deref());
            (Sources::Subnets(nets), Some(interface))
        }
    };
    let health = Health::new(
        Instant::now(),
        peer.to_string(),
        sources,
        refresh,
        config.peer_silent,
    );
    let shared_health = health.shared();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the replication event loop")?;
    let interface = config.interface.clone();
    let runtime_counters = RuntimeCounters {
        started: Instant::now(),
        device: interface.clone().unwrap_or_else(|| "-".into()),
        multicast: matches!(config.transport, Transport::Multicast { .. }),
        events: 0,
        overruns: 0,
        kernel_resyncs: 0,
    };
    std::thread::Builder::new()
        .name("ct-sync".into())
        .spawn(move || {
            runtime.block_on(async move {
                inject_test_panic();
                let socket = match UdpSocket::from_std(socket) {
                    Ok(socket) => Arc::new(socket),
                    Err(e) => {
                        warn!("registering the sync socket: {e}; replication stopped");
                        return;
                    }
                };
                let mut node = Node::new(core);
                // One filter, the core's: it also deletes at the peer an entry that stops
                // matching (a TCP state change).
                node.set_filter(move |flow: &Flow| filter.accepts(flow));
                let service = Service {
                    node,
                    kernel,
                    socket,
                    peer,
                    health,
                    notices,
                    warm: warm.then(WarmStandby::default),
                    warm_done,
                    forget: Vec::new(),
                    master: false,
                    runtime: runtime_counters,
                };
                service.run(events, command_rx, warm_done_rx).await
            })
        })
        .context("starting the replication thread")?;
    info!(
        "conntrack replication on {} to {peer}",
        interface.as_deref().unwrap_or("any interface")
    );
    Ok((
        Handle {
            commands,
            health: shared_health,
        },
        notices_rx,
    ))
}

/// Test-only fault injection: with `TANDEM_TEST_PANIC_SYNC_AFTER_MS=N` in the environment,
/// the replication thread panics N ms after it starts, so the end-to-end tests can prove that
/// a dying thread takes the whole daemon down without leaving addresses behind.
fn inject_test_panic() {
    let after = std::env::var("TANDEM_TEST_PANIC_SYNC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = after {
        warn!("TANDEM_TEST_PANIC_SYNC_AFTER_MS is set: the replication thread panics in {ms} ms");
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            panic!("injected panic in the replication thread (TANDEM_TEST_PANIC_SYNC_AFTER_MS)");
        });
    }
}

/// A node id that differs between the two ends: the low bits of the local address.
fn node_id(local: Option<IpAddr>) -> u32 {
    match local {
        Some(IpAddr::V4(a)) => u32::from(a),
        Some(IpAddr::V6(a)) => (u128::from(a) & 0xffff_ffff) as u32,
        None => rand::random(),
    }
}

fn open_socket(config: &SyncConfig) -> Result<(std::net::UdpSocket, SocketAddr)> {
    let (bind, peer, group) = match &config.transport {
        Transport::Udp { local, peer, port } => (
            SocketAddr::new(*local, *port),
            SocketAddr::new(*peer, *port),
            None,
        ),
        Transport::Multicast { group, local, port } => {
            let any: IpAddr = if group.is_ipv4() {
                [0, 0, 0, 0].into()
            } else {
                [0u16; 8].into()
            };
            (
                SocketAddr::new(any, *port),
                SocketAddr::new(*group, *port),
                Some((*group, *local)),
            )
        }
    };
    let domain = if bind.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("sync socket")?;
    socket.set_reuse_address(true)?;
    if let Some(dev) = &config.interface {
        socket
            .bind_device(Some(dev.as_bytes()))
            .with_context(|| format!("binding the sync socket to {dev}"))?;
    }
    // Bulk updates arrive in bursts of thousands of datagrams.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket
        .bind(&bind.into())
        .with_context(|| format!("binding the sync socket to {bind}"))?;
    if let Some((group, local)) = group {
        match (group, local) {
            (IpAddr::V4(g), Some(IpAddr::V4(l))) => {
                socket.join_multicast_v4(&g, &l)?;
                socket.set_multicast_if_v4(&l)?;
                socket.set_multicast_loop_v4(false)?;
            }
            (IpAddr::V4(g), _) => socket.join_multicast_v4(&g, &[0, 0, 0, 0].into())?,
            (IpAddr::V6(g), _) => {
                socket.join_multicast_v6(&g, 0)?;
                socket.set_multicast_loop_v6(false)?;
            }
        }
    }
    socket.set_nonblocking(true)?;
    Ok((socket.into(), peer))
}

impl Service {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Vec<KernelEvent>>,
        mut commands: mpsc::Receiver<Command>,
        mut warm_done: mpsc::UnboundedReceiver<ChunkDone>,
    ) {
        let actions = self.node.handle(Instant::now(), Input::Start);
        self.execute(actions).await;
        // The kernel may already have flows: start from a dump, as conntrackd does (a
        // failure is logged there).
        let _ = self.resync_from_kernel().await;
        let mut buf = vec![0u8; 65536];
        let mut health_tick = tokio::time::interval(HEALTH_TICK);
        health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer = crate::deadline::sleep_until(self.node.next_deadline());
            tokio::select! {
                Some(batch) = events.recv() => self.on_kernel_events(batch).await,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        self.on_datagram(&buf[..n], from).await;
                        // Whatever else is queued is read now, without a trip through the
                        // event loop per datagram (a bulk, or a flood, arrives in bursts).
                        for _ in 1..DATAGRAMS_PER_WAKEUP {
                            let Ok((n, from)) = self.socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            self.on_datagram(&buf[..n], from).await;
                        }
                    }
                    Err(e) => warn!("sync socket: {e}"),
                },
                Some(command) = commands.recv() => {
                    let (answer, committed) = self.on_request(command.request).await;
                    let _ = command.reply.send(answer);
                    // The follow-up of a commit runs after its answer went out.
                    if let Some(paused) = committed {
                        self.after_commit(paused).await;
                    }
                }
                Some(done) = warm_done.recv() => self.on_chunk_done(done).await,
                _ = health_tick.tick() => {
                    self.health.tick(Instant::now(), &self.node.stats(), self.node.lag());
                }
                _ = timer => {
                    let actions = self.node.handle(Instant::now(), Input::Timer);
                    self.execute(actions).await;
                }
            }
            if !self.forget.is_empty() {
                let keys = std::mem::take(&mut self.forget);
                let actions = self.node.handle(Instant::now(), Input::Forget(keys));
                self.execute(actions).await;
            }
        }
    }

    /// A datagram from the sync socket: only the peer's reach the core; authentication
    /// failures and hearing from the peer go to the health checks.
    async fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let now = Instant::now();
        if !self.health.accepts(now, from) {
            return;
        }
        let bad_hmac = self.node.drops().bad_hmac;
        let actions = self.node.handle(now, Input::Datagram(bytes));
        let failed = self.node.drops().bad_hmac - bad_hmac;
        if failed > 0 {
            self.health.bad_hmac(now, from, failed);
        }
        self.health.heard(now, self.node.last_heard());
        self.execute(actions).await;
    }

    async fn on_kernel_events(&mut self, batch: Vec<KernelEvent>) {
        self.runtime.events += batch.len() as u64;
        let mut local = Vec::with_capacity(batch.len());
        for event in batch {
            match event {
                KernelEvent::Flow { kind, flow, origin } => {
                    if origin == self.kernel.port_id() {
                        // Our own commit or warm-standby update: the peer's flow, not ours.
                        continue;
                    }
                    if let (EventKind::Destroy, Some(warm)) = (kind, self.warm.as_mut()) {
                        let key = flow.key();
                        if self.node.external().contains(&key) {
                            // The peer's flow expired in this kernel: a promotion must
                            // create it again.
                            warm.lost(key);
                        }
                    }
                    // The core filters (and deletes at the peer what stops matching).
                    local.push(match kind {
                        EventKind::New => Event::New(flow),
                        EventKind::Update => Event::Update(flow),
                        EventKind::Destroy => Event::Destroy(flow),
                    });
                }
                KernelEvent::Overflow => {
                    self.runtime.overruns += 1;
                    warn!("conntrack events were lost (ENOBUFS): resynchronising from a dump");
                    if !local.is_empty() {
                        let actions = self
                            .node
                            .handle(Instant::now(), Input::Local(std::mem::take(&mut local)));
                        self.execute(actions).await;
                    }
                    let _ = self.resync_from_kernel().await;
                }
            }
        }
        if !local.is_empty() {
            let actions = self.node.handle(Instant::now(), Input::Local(local));
            self.execute(actions).await;
        }
    }

    async fn resync_from_kernel(&mut self) -> Answer {
        self.runtime.kernel_resyncs += 1;
        let started = Instant::now();
        match self.kernel.call(|ct| ct.dump(None)).await {
            Ok(flows) => {
                // A warm backup's table also holds the peer's flows: those are not ours.
                let peers = self.warm.is_some() && !self.master;
                let external = self.node.external();
                let flows: Vec<Flow> = flows
                    .into_iter()
                    .filter(|f| !peers || !external.contains(&f.key()))
                    .collect();
                let actions = self
                    .node
                    .handle(Instant::now(), Input::ResyncFromKernel(flows));
                let n = self.node.internal().len();
                self.execute(actions).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                info!("internal cache resynchronised from the kernel: {n} entries in {ms:.1} ms");
                Ok(Reply::Resynced { entries: n, ms })
            }
            Err(e) => {
                warn!("dumping the conntrack table: {e}");
                Err(Refusal::DumpFailed(e.to_string()))
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action<Flow>>) {
        for action in actions {
            match action {
                Action::Transmit(bytes) => match self.socket.send_to(&bytes, self.peer).await {
                    Ok(_) => self.health.send_ok(),
                    Err(e) => {
                        debug!("sending to {}: {e}", self.peer);
                        self.health.send_failed(Instant::now(), &e);
                    }
                },
                Action::Commit(flows) => {
                    // The core commits only when asked, and `commit_request` takes that
                    // action out before the rest comes here.
                    warn!(
                        "{} flows to commit outside a commit request: not committed",
                        flows.len()
                    );
                }
                Action::ExternalChanged(changes) => {
                    if let (false, Some(warm)) = (self.master, self.warm.as_mut()) {
                        // These entries of our kernel now follow the peer: ours no longer
                        // (left from a stint as master), so a bulk never sends them back.
                        if !self.node.internal().is_empty() {
                            self.forget.extend(changes.iter().map(|c| match c {
                                ExternalChange::Set(f) | ExternalChange::Removed(f) => f.key(),
                            }));
                        }
                        warm.record(changes);
                        self.apply_next_chunk();
                    }
                }
                Action::PeerRestarted { node_id } => {
                    self.health.peer_restarted(Instant::now(), node_id)
                }
                Action::SessionEstablished { node_id } => {
                    info!("sync session with peer {node_id:#x} established")
                }
                Action::ExternalWiped { removed } => {
                    warn!("the sync peer's full resync emptied the external cache ({removed} entries removed)")
                }
                Action::ResyncReceived { entries } => {
                    info!("full resync from the peer received: {entries} entries");
                    let _ = self.notices.send(Notice::PeerState { entries });
                }
            }
        }
    }

    /// Puts `chunk` into the kernel: creates its flows in batches (entries the kernel already
    /// has, left from an earlier time as master with stale TCP windows, are updated instead,
    /// so they take the replicated state and the be-liberal window flag) and deletes its
    /// removed ones. The outcome says how many and how long.
    async fn commit(&mut self, chunk: Chunk) -> CommitOutcome {
        let started = Instant::now();
        let total = chunk.set.len();
        let pause = (total >= PAUSE_EVENTS_FROM).then(|| self.kernel.pause_handle());
        let paused = pause.is_some();
        let result = self
            .kernel
            .call(move |ct| {
                if let Some(events) = &pause {
                    events.pause()?;
                }
                let put = apply_chunk(ct, &chunk);
                if let Some(events) = &pause {
                    events.resume()?;
                }
                put
            })
            .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let result = match result {
            Ok(put) => {
                if !put.refused.is_empty() {
                    let refused = put.refused.len() as u64;
                    self.health.commit_refused(Instant::now(), refused);
                }
                let committed = Committed {
                    entries: total,
                    ms,
                    created: put.created,
                    updated: put.updated,
                    refused: put.refused.len(),
                    already_warm: None,
                };
                info!(
                    "{}",
                    Reply::Committed(committed.clone()).to_string().trim_end()
                );
                Ok(committed)
            }
            Err(e) => {
                warn!("commit failed after {ms:.1} ms: {e}");
                Err(e.to_string())
            }
        };
        CommitOutcome { result, paused }
    }

    /// After a commit: the committed entries are this node's own now, and when the commit
    /// paused events, a dump tells what traffic changed meanwhile.
    async fn after_commit(&mut self, paused: bool) {
        let actions = self.node.handle(Instant::now(), Input::AdoptExternal);
        self.execute(actions).await;
        if paused {
            let _ = self.resync_from_kernel().await;
        }
    }

    /// A commit request: the external cache into the kernel, or, on a warm backup, only
    /// what its kernel does not have yet. Also returns whether the commit paused events.
    async fn commit_request(&mut self) -> (Answer, bool) {
        self.master = true;
        let (chunk, already_warm) = match self.warm.as_mut() {
            Some(warm) => {
                let already = self.node.external().len().saturating_sub(warm.pending());
                let (mut chunk, lost) = warm.take_all();
                chunk.set.extend(self.peer_flows(&lost));
                (chunk, Some(already))
            }
            None => {
                let actions = self.node.handle(Instant::now(), Input::Commit);
                let mut set = Vec::new();
                let mut rest = Vec::new();
                for action in actions {
                    match action {
                        Action::Commit(flows) => set.extend(flows),
                        other => rest.push(other),
                    }
                }
                self.execute(rest).await;
                let removed = Vec::new();
                (Chunk { set, removed }, None)
            }
        };
        let outcome = self.commit(chunk).await;
        let answer = match outcome.result {
            Ok(committed) => Ok(Reply::Committed(Committed {
                already_warm,
                ..committed
            })),
            Err(error) => Err(Refusal::CommitFailed {
                error,
                already_warm,
            }),
        };
        (answer, outcome.paused)
    }

    /// The peer's current version of the flows with these keys (those it still has).
    fn peer_flows(&self, keys: &[FlowKey]) -> Vec<Flow> {
        let external = self.node.external();
        let now = Instant::now();
        // Aged: they are created with what is left of the lifetime the peer reported.
        keys.iter()
            .filter_map(|k| external.get_aged(k, now))
            .collect()
    }

    /// Warm standby: hands the kernel the next chunk of the peer's changes, unless one is
    /// still being applied; its result comes back through `warm_done`.
    fn apply_next_chunk(&mut self) {
        let Some(warm) = self.warm.as_mut().filter(|_| !self.master) else {
            return;
        };
        let Some(chunk) = warm.next_chunk(WARM_CHUNK) else {
            return;
        };
        let done = self.warm_done.clone();
        let submitted = self.kernel.submit(move |ct| {
            let total = chunk.set.len() + chunk.removed.len();
            let refused = match apply_chunk(ct, &chunk) {
                Ok(put) => put.refused.iter().map(|&i| chunk.set[i].key()).collect(),
                Err(e) => {
                    debug!("warm standby: {e}");
                    chunk.keys()
                }
            };
            let _ = done.send(ChunkDone { total, refused });
        });
        if let Err(e) = submitted {
            warn!("warm standby: {e}");
        }
    }

    async fn on_chunk_done(&mut self, done: ChunkDone) {
        let Some(warm) = self.warm.as_mut() else {
            return;
        };
        warm.chunk_done(done.total, done.refused);
        if self.master {
            // Promoted while this chunk was in the kernel's hands: what it could not apply
            // is committed now.
            let lost = warm.take_all().1;
            if !lost.is_empty() {
                let set = self.peer_flows(&lost);
                let removed = Vec::new();
                // The outcome is in the log; nobody waits for this one.
                let outcome = self.commit(Chunk { set, removed }).await;
                self.after_commit(outcome.paused).await;
            }
        } else {
            self.apply_next_chunk();
        }
    }

    /// Carries out a request; for a commit, also says whether it paused events (the
    /// follow-up runs after the answer went out).
    async fn on_request(&mut self, request: Request) -> (Answer, Option<bool>) {
        let answer = match request {
            Request::Commit => {
                let (answer, paused) = self.commit_request().await;
                return (answer, Some(paused));
            }
            Request::Flush(caches) => {
                for kind in caches.kinds() {
                    let actions = self.node.handle(Instant::now(), Input::Flush(*kind));
                    self.execute(actions).await;
                }
                Ok(Reply::Flushed)
            }
            Request::Resync => self.resync_from_kernel().await,
            Request::Bulk => {
                let entries = self.node.internal().len();
                let actions = self.node.handle(Instant::now(), Input::BulkSend);
                self.execute(actions).await;
                Ok(Reply::BulkSending { entries })
            }
            Request::RequestResync => {
                let actions = self.node.handle(Instant::now(), Input::RequestResync);
                self.execute(actions).await;
                Ok(Reply::ResyncRequested)
            }
            Request::Shorten => self.shorten().await,
            Request::Stats => Ok(Reply::Stats(self.stats())),
            Request::Section(section) => Ok(Reply::Section(super::sections::render(
                section,
                &self.section_data(),
                Instant::now(),
            ))),
            Request::Dump(CacheKind::Internal) => {
                Ok(Reply::Dump(self.node.internal().records().collect()))
            }
            Request::Dump(CacheKind::External) => {
                Ok(Reply::Dump(self.node.external().records().collect()))
            }
        };
        (answer, None)
    }

    /// conntrackd `-t`: flows this node was forwarding expire soon unless traffic refreshes them.
    async fn shorten(&mut self) -> Answer {
        self.master = false;
        const SHORT: u32 = 60;
        let flows: Vec<Flow> = self.node.internal().records().collect();
        let n = flows.len();
        match self
            .kernel
            .call(move |ct| ct.shorten_timeouts(&flows, SHORT))
            .await
        {
            Ok(report) => Ok(Reply::Shortened {
                shortened: report.ok(),
                of: n,
                seconds: SHORT,
            }),
            Err(e) => Err(Refusal::ShortenFailed(e.to_string())),
        }
    }

    fn section_data(&self) -> super::sections::SectionData {
        let r = &self.runtime;
        super::sections::SectionData {
            stats: self.node.stats(),
            internal: (self.node.internal().counters(), self.node.internal().len()),
            external: (self.node.external().counters(), self.node.external().len()),
            device: r.device.clone(),
            multicast: r.multicast,
            send_errors: self.health.send_errors(),
            unacked: self.node.lag().unacked,
            events: r.events,
            overruns: r.overruns,
            kernel_resyncs: r.kernel_resyncs,
            started: r.started,
        }
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = self.node.stats();
        let d = &s.drops;
        let counters = [
            ("datagrams_sent", s.datagrams_sent),
            ("bytes_sent", s.bytes_sent),
            ("datagrams_received", s.datagrams_received),
            ("bytes_received", s.bytes_received),
            ("retransmissions", s.retransmissions),
            ("nacks_sent", s.nacks_sent),
            ("nacks_received", s.nacks_received),
            ("records_sent", s.records_sent),
            ("records_received", s.records_received),
            ("bulk_sends", s.bulk_sends),
            ("resync_requests_sent", s.resync_requests_sent),
            ("resync_requests_received", s.resync_requests_received),
            ("peer_restarts", s.peer_restarts),
            ("sessions_established", s.sessions_established),
            ("hellos_sent", s.hellos_sent),
            ("hellos_received", s.hellos_received),
            ("external_wipes", s.external_wipes),
            ("gaps_abandoned", s.gaps_abandoned),
            ("filtered", s.filtered),
            ("internal_full", s.internal_full),
            ("external_full", s.external_full),
            ("drop_bad_hmac", d.bad_hmac),
            ("drop_truncated", d.truncated),
            ("drop_bad_magic", d.bad_magic),
            ("drop_bad_version", d.bad_version),
            ("drop_unknown_type", d.unknown_type),
            ("drop_malformed", d.malformed),
            ("drop_stale_epoch", d.stale_epoch),
            ("drop_stale_session", d.stale_session),
            ("drop_duplicate", d.duplicate),
            ("drop_wrong_source", self.health.wrong_source()),
            ("send_errors", self.health.send_errors()),
            ("internal_entries", s.internal_entries as u64),
            ("external_entries", s.external_entries as u64),
        ];
        let warm = self.warm.as_ref().map(WarmStandby::counters);
        counters
            .into_iter()
            .chain(warm.into_iter().flatten())
            .collect()
    }
}

/// What [`put_flows`] did: how many created and updated, and which (by index) the kernel
/// refused.
#[derive(Default)]
struct Put {
    created: usize,
    updated: usize,
    refused: Vec<usize>,
}

/// Applies a chunk: its flows created or updated ([`put_flows`]), its removed ones deleted.
fn apply_chunk(
    ct: &mut tandem_ctnetlink::Conntrack,
    chunk: &Chunk,
) -> Result<Put, tandem_ctnetlink::Error> {
    let put = put_flows(ct, &chunk.set)?;
    if !chunk.removed.is_empty() {
        ct.delete_batch(&chunk.removed)?;
    }
    Ok(put)
}

/// Creates `flows`; those the kernel already has are updated instead.
fn put_flows(
    ct: &mut tandem_ctnetlink::Conntrack,
    flows: &[Flow],
) -> Result<Put, tandem_ctnetlink::Error> {
    let created = ct.create_batch(flows)?;
    let (existing, mut refused): (Vec<_>, Vec<_>) = created
        .failed
        .iter()
        .map(|&(i, errno)| (i, errno == libc::EEXIST))
        .partition(|&(_, exists)| exists);
    let mut updated = 0;
    if !existing.is_empty() {
        let update: Vec<Flow> = existing.iter().map(|&(i, _)| flows[i].clone()).collect();
        let report = ct.update_batch(&update)?;
        updated = existing.len() - report.failed.len();
        refused.extend(report.failed.iter().map(|&(j, _)| (existing[j].0, false)));
    }
    Ok(Put {
        created: flows.len() - created.failed.len(),
        updated,
        refused: refused.into_iter().map(|(i, _)| i).collect(),
    })
}
