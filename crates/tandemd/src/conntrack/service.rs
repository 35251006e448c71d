//! The conntrack replication service: kernel events in, sync datagrams out, peer datagrams in,
//! commits to the kernel on request. One tokio task drives the sans-IO sync core.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tandem_config::{SyncConfig, Transport};
use tandem_ctnetlink::{Event as KernelEvent, EventKind, Flow, FlowKey};
use tandem_ctsync::{Action, CacheKind, Config as CoreConfig, Event, Input, Node};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::filter::FlowFilter;
use super::kernel::Kernel;
use super::warm::{Chunk, WarmStandby};

/// Changes a warm backup hands the kernel at a time: a promotion's commit waits behind at
/// most one such chunk (about 15 ms).
const WARM_CHUNK: usize = 2048;

/// Commits at least this big stop this node's NEW and UPDATE events while they run (the
/// kernel then builds no event message per entry, which halves the commit) and resync the
/// internal cache from a dump afterwards for what traffic changed meanwhile.
const PAUSE_EVENTS_FROM: usize = 10_000;

/// What became of a warm-standby chunk.
struct ChunkDone {
    total: usize,
    refused: Vec<FlowKey>,
}

/// A request to the service, answered with text for the control socket.
pub struct Command {
    /// The command words (`commit external`, `flush all`, `resync`, `bulk`, ...).
    pub words: String,
    /// Where the answer goes.
    pub reply: oneshot::Sender<String>,
}

/// Handle the daemon keeps to talk to the service.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

impl Handle {
    /// Forwards a control-socket request without waiting (the daemon loop must not block).
    /// Requests forwarded one after another reach the service in that order.
    pub fn forward(&self, words: String, reply: oneshot::Sender<String>) {
        match self.commands.try_send(Command { words, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let _ = command
                    .reply
                    .send("error: conntrack replication is busy, try again\n".into());
            }
            Err(mpsc::error::TrySendError::Closed(command)) => {
                let _ = command
                    .reply
                    .send("error: conntrack replication has stopped\n".into());
            }
        }
    }
}

/// The running service's state.
struct Service {
    node: Node<Flow>,
    filter: FlowFilter,
    kernel: Kernel,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    last_commit: Option<String>,
    resync_received: Option<oneshot::Sender<usize>>,
    /// With warm standby: the peer's changes not yet in this backup's kernel table.
    warm: Option<WarmStandby>,
    /// Where the request thread reports applied warm-standby chunks.
    warm_done: mpsc::UnboundedSender<ChunkDone>,
    /// Whether this node is the one forwarding (set by commit, cleared by shorten).
    master: bool,
    /// A commit completed (and whether it paused events): the follow-up work, done after
    /// the commit's answer went out.
    committed: Option<bool>,
}

/// Opens the sync socket and the kernel side, then runs the service on a thread of its own
/// (with its own event loop), so that a million-entry resync or bulk send never delays a VRRP
/// advertisement. The receiver fires when the first full resync from the peer has arrived.
pub fn start(
    config: &SyncConfig,
    own_addresses: Vec<IpAddr>,
) -> Result<(Handle, oneshot::Receiver<usize>)> {
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
    let (first_resync, first_resync_rx) = oneshot::channel();
    let (warm_done, warm_done_rx) = mpsc::unbounded_channel();
    let (commands, command_rx) = mpsc::channel(64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the replication event loop")?;
    let interface = config.interface.clone();
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
                let service = Service {
                    node: Node::new(core),
                    filter,
                    kernel,
                    socket,
                    peer,
                    last_commit: None,
                    resync_received: Some(first_resync),
                    warm: warm.then(WarmStandby::default),
                    warm_done,
                    master: false,
                    committed: None,
                };
                service.run(events, command_rx, warm_done_rx).await
            })
        })
        .context("starting the replication thread")?;
    info!(
        "conntrack replication on {} to {peer}",
        interface.as_deref().unwrap_or("any interface")
    );
    Ok((Handle { commands }, first_resync_rx))
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
        // The kernel may already have flows: start from a dump, as conntrackd does.
        self.resync_from_kernel().await;
        let mut buf = vec![0u8; 65536];
        loop {
            let timer = crate::deadline::sleep_until(self.node.next_deadline());
            tokio::select! {
                Some(batch) = events.recv() => self.on_kernel_events(batch).await,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, _from)) => {
                        let actions = self.node.handle(Instant::now(), Input::Datagram(&buf[..n]));
                        self.execute(actions).await;
                    }
                    Err(e) => warn!("sync socket: {e}"),
                },
                Some(command) = commands.recv() => {
                    let answer = self.on_command(&command.words).await;
                    let _ = command.reply.send(answer);
                }
                Some(done) = warm_done.recv() => self.on_chunk_done(done).await,
                _ = timer => {
                    let actions = self.node.handle(Instant::now(), Input::Timer);
                    self.execute(actions).await;
                }
            }
            if let Some(paused) = self.committed.take() {
                self.after_commit(paused).await;
            }
        }
    }

    async fn on_kernel_events(&mut self, batch: Vec<KernelEvent>) {
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
                    if !self.filter.accepts(&flow) {
                        continue;
                    }
                    local.push(match kind {
                        EventKind::New => Event::New(flow),
                        EventKind::Update => Event::Update(flow),
                        EventKind::Destroy => Event::Destroy(flow),
                    });
                }
                KernelEvent::Overflow => {
                    warn!("conntrack events were lost (ENOBUFS): resynchronising from a dump");
                    if !local.is_empty() {
                        let actions = self
                            .node
                            .handle(Instant::now(), Input::Local(std::mem::take(&mut local)));
                        self.execute(actions).await;
                    }
                    self.resync_from_kernel().await;
                }
            }
        }
        if !local.is_empty() {
            let actions = self.node.handle(Instant::now(), Input::Local(local));
            self.execute(actions).await;
        }
    }

    async fn resync_from_kernel(&mut self) -> String {
        let started = Instant::now();
        match self.kernel.call(|ct| ct.dump(None)).await {
            Ok(flows) => {
                // A warm backup's table also holds the peer's flows: those are not ours.
                let peers = self.warm.is_some() && !self.master;
                let external = self.node.external();
                let flows: Vec<Flow> = flows
                    .into_iter()
                    .filter(|f| self.filter.accepts(f))
                    .filter(|f| !peers || !external.contains(&f.key()))
                    .collect();
                let n = flows.len();
                let actions = self
                    .node
                    .handle(Instant::now(), Input::ResyncFromKernel(flows));
                self.execute(actions).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                info!("internal cache resynchronised from the kernel: {n} entries in {ms:.1} ms");
                format!("resync: {n} entries in {ms:.1} ms\n")
            }
            Err(e) => {
                warn!("dumping the conntrack table: {e}");
                format!("error: dumping the conntrack table: {e}\n")
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action<Flow>>) {
        for action in actions {
            match action {
                Action::Transmit(bytes) => {
                    if let Err(e) = self.socket.send_to(&bytes, self.peer).await {
                        debug!("sending to {}: {e}", self.peer);
                    }
                }
                Action::Commit(flows) => {
                    self.master = true;
                    self.last_commit = Some(
                        self.commit(Chunk {
                            set: flows,
                            removed: Vec::new(),
                        })
                        .await,
                    );
                }
                Action::ExternalChanged(changes) => {
                    if let (false, Some(warm)) = (self.master, self.warm.as_mut()) {
                        warm.record(changes);
                        self.apply_next_chunk();
                    }
                }
                Action::PeerRestarted { node_id } => {
                    info!("sync peer {node_id:#x} restarted: sending it our state")
                }
                Action::SessionEstablished { node_id } => {
                    info!("sync session with peer {node_id:#x} established")
                }
                Action::ExternalWiped { removed } => {
                    warn!("the sync peer's full resync emptied the external cache ({removed} entries removed)")
                }
                Action::ResyncReceived { entries } => {
                    info!("full resync from the peer received: {entries} entries");
                    if let Some(tx) = self.resync_received.take() {
                        let _ = tx.send(entries);
                    }
                }
            }
        }
    }

    /// Puts `chunk` into the kernel: creates its flows in batches (entries the kernel already
    /// has, left from an earlier time as master with stale TCP windows, are updated instead,
    /// so they take the replicated state and the be-liberal window flag) and deletes its
    /// removed ones. The summary says how many and how long.
    async fn commit(&mut self, chunk: Chunk) -> String {
        let started = Instant::now();
        let total = chunk.set.len();
        let pause = (total >= PAUSE_EVENTS_FROM).then(|| self.kernel.pause_handle());
        self.committed = Some(pause.is_some());
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
        match result {
            Ok(put) => {
                let summary = format!(
                    "commit: {total} entries in {ms:.1} ms, {} created, {} updated, {} refused",
                    put.created,
                    put.updated,
                    put.refused.len(),
                );
                info!("{summary}");
                summary + "\n"
            }
            Err(e) => {
                warn!("commit failed after {ms:.1} ms: {e}");
                format!("error: commit failed: {e}\n")
            }
        }
    }

    /// After a commit: the committed entries are this node's own now, and when the commit
    /// paused events, a dump tells what traffic changed meanwhile.
    async fn after_commit(&mut self, paused: bool) {
        let actions = self.node.handle(Instant::now(), Input::AdoptExternal);
        self.execute(actions).await;
        if paused {
            self.resync_from_kernel().await;
        }
    }

    /// Promotion of a warm backup: commits only what its kernel does not have yet.
    async fn commit_warm(&mut self) -> String {
        self.master = true;
        let Some(warm) = self.warm.as_mut() else {
            return String::new();
        };
        let already = self.node.external().len().saturating_sub(warm.pending());
        let (mut chunk, lost) = warm.take_all();
        chunk.set.extend(self.peer_flows(&lost));
        let summary = self.commit(chunk).await;
        format!("{} ({already} already warm)\n", summary.trim_end())
    }

    /// The peer's current version of the flows with these keys (those it still has).
    fn peer_flows(&self, keys: &[FlowKey]) -> Vec<Flow> {
        let external = self.node.external();
        keys.iter().filter_map(|k| external.get(k)).collect()
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
                self.commit(Chunk {
                    set,
                    removed: Vec::new(),
                })
                .await;
            }
        } else {
            self.apply_next_chunk();
        }
    }

    async fn on_command(&mut self, words: &str) -> String {
        let mut parts = words.split_whitespace();
        let verb = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("");
        match (verb, arg) {
            ("commit", "" | "external") if self.warm.is_some() => self.commit_warm().await,
            ("commit", "" | "external") => {
                self.last_commit = None;
                let actions = self.node.handle(Instant::now(), Input::Commit);
                self.execute(actions).await;
                self.last_commit
                    .take()
                    .unwrap_or_else(|| "commit: 0 entries\n".into())
            }
            ("commit", "internal") => {
                "error: committing the internal cache is not supported (it came from this kernel)\n"
                    .into()
            }
            ("flush", which) => {
                let kinds: &[CacheKind] = match which {
                    "internal" => &[CacheKind::Internal],
                    "external" => &[CacheKind::External],
                    _ => &[CacheKind::Internal, CacheKind::External],
                };
                for kind in kinds {
                    let actions = self.node.handle(Instant::now(), Input::Flush(*kind));
                    self.execute(actions).await;
                }
                "flush: done\n".into()
            }
            ("resync", _) => self.resync_from_kernel().await,
            ("bulk", _) => {
                let n = self.node.internal().len();
                let actions = self.node.handle(Instant::now(), Input::BulkSend);
                self.execute(actions).await;
                format!("bulk: sending {n} entries\n")
            }
            ("request-resync", _) => {
                let actions = self.node.handle(Instant::now(), Input::RequestResync);
                self.execute(actions).await;
                "request-resync: sent\n".into()
            }
            ("shorten", _) => self.shorten().await,
            ("stats", _) | ("sync-stats", _) => self.stats(),
            ("dump", "internal") => dump(self.node.internal().records()),
            ("dump", "external") => dump(self.node.external().records()),
            _ => format!("error: unknown conntrack command `{words}`\n"),
        }
    }

    /// conntrackd `-t`: flows this node was forwarding expire soon unless traffic refreshes them.
    async fn shorten(&mut self) -> String {
        self.master = false;
        const SHORT: u32 = 60;
        let flows: Vec<Flow> = self.node.internal().records().collect();
        let n = flows.len();
        match self
            .kernel
            .call(move |ct| ct.shorten_timeouts(&flows, SHORT))
            .await
        {
            Ok(report) => format!("shorten: {} of {n} entries to {SHORT} s\n", report.ok()),
            Err(e) => format!("error: shortening timers: {e}\n"),
        }
    }

    fn stats(&self) -> String {
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
            ("drop_duplicate", d.duplicate),
            ("internal_entries", s.internal_entries as u64),
            ("external_entries", s.external_entries as u64),
        ];
        let warm = self.warm.as_ref().map(WarmStandby::counters);
        let mut out = String::new();
        for (name, value) in counters.into_iter().chain(warm.into_iter().flatten()) {
            let _ = writeln!(out, "{name}={value}");
        }
        out
    }
}

fn dump(flows: impl Iterator<Item = Flow>) -> String {
    let mut out = String::new();
    for f in flows {
        let _ = writeln!(out, "{}", describe(&f));
    }
    out
}

/// One line per flow, in the words `conntrack -L` uses.
pub fn describe(f: &Flow) -> String {
    fn tuple(t: &tandem_ctnetlink::Tuple) -> String {
        let l4 = match t.l4 {
            tandem_ctnetlink::L4::Ports { src, dst } => format!(" sport={src} dport={dst}"),
            tandem_ctnetlink::L4::Icmp { id, kind, code } => {
                format!(" type={kind} code={code} id={id}")
            }
            tandem_ctnetlink::L4::None => String::new(),
        };
        format!("src={} dst={}{l4}", t.src, t.dst)
    }
    let state = f
        .tcp
        .map(|t| format!(" state={}", t.state))
        .unwrap_or_default();
    format!(
        "proto={} timeout={}{state} {} {} mark={} zone={}",
        f.orig.proto,
        f.timeout,
        tuple(&f.orig),
        tuple(&f.reply),
        f.mark,
        f.zone
    )
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
