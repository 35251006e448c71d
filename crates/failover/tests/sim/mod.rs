//! A simulated gateway pair: per node a VRRP router (a sync group of two instances), a failover
//! coordinator and a small model of the replication service (caches as counts, a FIFO of
//! steps with durations, bulks sent in chunks over a sync link). A virtual clock, no sockets.
//!
//! Every node keeps a trace of what it did, as words: the coordinator's steps (`commit`,
//! `flush external`, ...), the VRRP effects (`add VI_1`, `garp VI_1`, `VI_1 MASTER`,
//! `G MASTER`, `advert VI_1`), the preemption hold, warnings, and what the service model
//! reports (`committed 1000`, `peer state 1000`).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tandem_failover::{replicated_transition, Command, Config, Coordinator, Input, Step};
use tandem_vrrp::{
    Action, Auth, Input as VrrpInput, InstanceAction, InstanceConfig, Router, Version,
};

/// Latency of every packet, VRRP and sync.
pub const LATENCY: Duration = Duration::from_millis(1);
/// Entries per bulk datagram burst, and the pause between bursts.
pub const BULK_CHUNK: usize = 10_000;
/// Pause between bulk bursts.
pub const BULK_PAUSE: Duration = Duration::from_millis(100);
/// A warm backup applies this many of the peer's changes per [`WARM_PAUSE`].
pub const WARM_CHUNK: usize = 2048;
/// Pause between warm-standby chunks.
pub const WARM_PAUSE: Duration = Duration::from_millis(10);

/// How one node is set up.
#[derive(Clone, Debug)]
pub struct NodeParams {
    /// VRRP priority of both instances.
    pub priority: u8,
    /// Flows this node forwards when it is master (its internal cache).
    pub flows: usize,
    /// Warm standby: the peer's changes go into the kernel while backup.
    pub warm: bool,
    /// Time a commit takes, fixed part.
    pub commit_base: Duration,
    /// Time a commit takes per entry.
    pub commit_per_entry: Duration,
    /// Commits are refused with this reason.
    pub refuse_commit: Option<String>,
    /// Warm standby: pause between chunks applied to the kernel.
    pub warm_pause: Duration,
    /// Coordinator waits.
    pub config: Config,
}

impl NodeParams {
    /// Defaults: 1 ms + 1 µs per entry commits, commit_wait 5 s, preempt_wait 10 s.
    pub fn new(priority: u8) -> NodeParams {
        NodeParams {
            priority,
            flows: 0,
            warm: false,
            commit_base: Duration::from_millis(1),
            commit_per_entry: Duration::from_micros(1),
            refuse_commit: None,
            warm_pause: WARM_PAUSE,
            config: Config {
                commit_wait: Duration::from_secs(5),
                preempt_wait: Duration::from_secs(10),
            },
        }
    }
}

/// A message on the sync link.
#[derive(Clone, Debug)]
enum Sync {
    /// A service (re)started: the peer sends its state.
    Hello,
    /// Part of a bulk: `index` of a bulk of `total` entries, identified by `id`.
    Chunk {
        id: u64,
        index: usize,
        entries: usize,
        total: usize,
        last: bool,
    },
    /// New flows on the master.
    New(usize),
    /// The peer asks for everything.
    ResyncRequest,
}

#[derive(Clone, Debug)]
enum Payload {
    Advert {
        lan: u32,
        src: IpAddr,
        bytes: Vec<u8>,
    },
    Sync(Sync),
}

#[derive(Debug)]
struct Packet {
    at: Instant,
    to: usize,
    payload: Payload,
}

/// A bulk on its way to the peer.
#[derive(Debug)]
struct BulkOut {
    id: u64,
    total: usize,
    sent: usize,
    index: usize,
    next: Instant,
}

/// The replication service, reduced to counts and timing.
#[derive(Debug, Default)]
struct Service {
    /// Flows this node forwards.
    internal: usize,
    /// The peer's flows as reported.
    external: usize,
    /// Warm standby: the peer's flows not in this kernel yet.
    pending: usize,
    warm_next: Option<Instant>,
    /// Steps waiting, the one running and when it ends.
    queue: VecDeque<Step>,
    running: Option<(Step, Instant)>,
    bulk: Option<BulkOut>,
    /// The bulk being received: its id and entries so far (only bulks seen from the start).
    receiving: Option<(u64, usize)>,
    master: bool,
    /// Sync messages that arrived while a commit held the service's loop.
    deferred: Vec<Sync>,
}

/// One simulated gateway.
pub struct Node {
    /// `A` or `B`.
    pub name: &'static str,
    /// Setup.
    pub params: NodeParams,
    /// Running (not crashed or stopped).
    pub up: bool,
    /// Booted before: a reboot starts with an empty table.
    booted: bool,
    router: Router,
    coordinator: Coordinator<Action>,
    service: Service,
    /// (time since the simulation started, word)
    pub trace: Vec<(Duration, String)>,
}

/// The pair and its links.
pub struct Sim {
    /// Node 0 is `A`, node 1 is `B`.
    pub nodes: Vec<Node>,
    /// Time zero.
    pub start: Instant,
    /// Current time.
    pub now: Instant,
    wire: Vec<Packet>,
    /// The sync link carries datagrams.
    pub sync_link: bool,
    next_bulk_id: u64,
}

fn instance(name: &str, vrid: u8, lan: u32, node: usize, priority: u8) -> InstanceConfig {
    InstanceConfig {
        name: name.into(),
        vrid,
        version: Version::V3,
        priority,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        start_as_master: false,
        addresses: vec![format!("10.{lan}.0.254").parse().unwrap()],
        auth: Auth::None,
        source: source(lan, node),
        destinations: vec!["224.0.0.18".parse().unwrap()],
        check_source: false,
        garp_repeat_after: None,
        garp_refresh: None,
        lower_priority: Default::default(),
        higher_prio_send_advert: false,
    }
}

fn source(lan: u32, node: usize) -> IpAddr {
    format!("10.{lan}.0.{}", node + 1).parse().unwrap()
}

fn router(node: usize, priority: u8) -> Router {
    let mut r = Router::new();
    let a = r.add_instance(instance("VI_1", 51, 1, node, priority), 1, &[1]);
    let b = r.add_instance(instance("VI_2", 52, 2, node, priority), 2, &[2]);
    r.add_group("G", &[a, b]);
    r
}

impl Sim {
    /// A pair, neither node started.
    pub fn new(a: NodeParams, b: NodeParams) -> Sim {
        let start = Instant::now();
        let nodes = [("A", a), ("B", b)]
            .into_iter()
            .enumerate()
            .map(|(i, (name, params))| Node {
                name,
                router: router(i, params.priority),
                coordinator: Coordinator::new(params.config),
                service: Service::default(),
                params,
                up: false,
                booted: false,
                trace: Vec::new(),
            })
            .collect();
        Sim {
            nodes,
            start,
            now: start,
            wire: Vec::new(),
            sync_link: true,
            next_bulk_id: 1,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Boots node `i` with fresh state: coordinator start, VRRP start, service hello.
    pub fn boot(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.up = true;
        n.router = router(i, n.params.priority);
        n.coordinator = Coordinator::new(n.params.config);
        n.service = Service {
            internal: if n.booted { 0 } else { n.params.flows },
            ..Service::default()
        };
        n.booted = true;
        let commands = self.nodes[i].coordinator.handle(self.now, Input::Start);
        self.run_commands(i, commands);
        let actions = self.nodes[i].router.handle(self.now, VrrpInput::Start);
        self.execute(i, actions);
        self.send_sync(i, Sync::Hello);
    }

    /// SIGKILL: gone without a word; queued packets to it are lost.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.nodes[i].service = Service::default();
        self.wire.retain(|p| p.to != i);
        self.note(i, "crash");
    }

    /// SIGTERM: the coordinator lets go of what waits, then the VRRP shutdown.
    pub fn stop(&mut self, i: usize) {
        let commands = self.nodes[i].coordinator.handle(self.now, Input::Shutdown);
        self.run_commands(i, commands);
        let actions = self.nodes[i].router.handle(self.now, VrrpInput::Shutdown);
        self.execute(i, actions);
        self.nodes[i].up = false;
    }

    /// New flows on node `i` (replicated to the peer right away).
    pub fn new_flows(&mut self, i: usize, n: usize) {
        self.nodes[i].service.internal += n;
        self.send_sync(i, Sync::New(n));
    }

    /// Runs the simulation until `t` after the start.
    pub fn run_until(&mut self, t: Duration) {
        let end = self.start + t;
        while let Some(at) = self.next_event().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.step();
        }
        self.now = end;
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.elapsed() + d);
    }

    /// Node `i`'s trace without adverts, from `since` on.
    pub fn trace(&self, i: usize, since: Duration) -> Vec<String> {
        self.nodes[i]
            .trace
            .iter()
            .filter(|(t, w)| *t >= since && !w.starts_with("advert"))
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// Node `i`'s whole trace, adverts included, from `since` on.
    pub fn full_trace(&self, i: usize, since: Duration) -> Vec<String> {
        self.nodes[i]
            .trace
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// When node `i` first logged `word` at or after `since`.
    pub fn when(&self, i: usize, word: &str, since: Duration) -> Option<Duration> {
        self.nodes[i]
            .trace
            .iter()
            .find(|(t, w)| *t >= since && w == word)
            .map(|(t, _)| *t)
    }

    /// Times node `i` sent an advert for `instance` at or after `since`.
    pub fn adverts(&self, i: usize, instance: &str, since: Duration) -> Vec<Duration> {
        let word = format!("advert {instance}");
        self.nodes[i]
            .trace
            .iter()
            .filter(|(t, w)| *t >= since && *w == word)
            .map(|(t, _)| *t)
            .collect()
    }

    /// The group state of node `i` as VRRP sees it.
    pub fn is_master(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.up && n
            .router
            .instances()
            .all(|(_, inst)| inst.state() == tandem_vrrp::State::Master)
    }

    /// The peer's flows node `i` holds in its external cache.
    pub fn external(&self, i: usize) -> usize {
        self.nodes[i].service.external
    }

    fn note(&mut self, i: usize, word: impl Into<String>) {
        let t = self.elapsed();
        self.nodes[i].trace.push((t, word.into()));
    }

    fn next_event(&self) -> Option<Instant> {
        let wire = self.wire.iter().map(|p| p.at);
        let nodes = self.nodes.iter().filter(|n| n.up).flat_map(|n| {
            [
                n.router.next_deadline(),
                n.coordinator.next_deadline(),
                n.service.running.as_ref().map(|r| r.1),
                n.service.bulk.as_ref().map(|b| b.next),
                n.service.warm_next,
            ]
            .into_iter()
            .flatten()
        });
        wire.chain(nodes).min()
    }

    /// Everything due at `now`, in a fixed order: packets, then per node service, router,
    /// coordinator.
    fn step(&mut self) {
        let now = self.now;
        let (due, rest): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|p| p.at <= now);
        self.wire = rest;
        for p in due {
            if self.nodes[p.to].up {
                self.deliver(p.to, p.payload);
            }
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            self.service_tick(i);
            if self.nodes[i]
                .router
                .next_deadline()
                .is_some_and(|d| d <= now)
            {
                let actions = self.nodes[i].router.handle(now, VrrpInput::Timer);
                self.execute(i, actions);
            }
            if self.nodes[i]
                .coordinator
                .next_deadline()
                .is_some_and(|d| d <= now)
            {
                let commands = self.nodes[i].coordinator.handle(now, Input::Timer);
                self.run_commands(i, commands);
            }
        }
    }

    fn deliver(&mut self, i: usize, payload: Payload) {
        match payload {
            Payload::Advert { lan, src, bytes } => {
                let input = VrrpInput::Packet {
                    interface: lan,
                    src,
                    dst: "224.0.0.18".parse().unwrap(),
                    ttl: 255,
                    bytes: &bytes,
                };
                let actions = self.nodes[i].router.handle(self.now, input);
                self.execute(i, actions);
            }
            Payload::Sync(sync) => {
                // The real service's loop awaits the kernel during a commit: datagrams wait.
                let s = &mut self.nodes[i].service;
                if matches!(s.running, Some((Step::Commit, _))) {
                    s.deferred.push(sync);
                } else {
                    self.on_sync(i, sync);
                }
            }
        }
    }

    fn on_sync(&mut self, i: usize, sync: Sync) {
        match sync {
            Sync::Hello => {
                let total = self.nodes[i].service.internal;
                self.note(i, format!("send state {total} (peer restarted)"));
                self.start_bulk(i);
            }
            Sync::ResyncRequest => {
                let total = self.nodes[i].service.internal;
                self.note(i, format!("send state {total} (resync requested)"));
                self.start_bulk(i);
            }
            Sync::New(n) => {
                let s = &mut self.nodes[i].service;
                s.external += n;
                self.warm_record(i, n);
            }
            Sync::Chunk {
                id,
                index,
                entries,
                total,
                last,
            } => {
                let s = &mut self.nodes[i].service;
                if index == 0 {
                    // A bulk replaces what the peer said before.
                    s.receiving = Some((id, 0));
                    s.external = 0;
                    s.pending = 0;
                }
                let Some((rid, got)) = s.receiving.as_mut().filter(|(rid, _)| *rid == id) else {
                    return; // the tail of a bulk this incarnation did not see begin
                };
                let _ = rid;
                *got += entries;
                s.external += entries;
                self.warm_record(i, entries);
                if last {
                    self.nodes[i].service.receiving = None;
                    self.note(i, format!("peer state {total}"));
                    let commands = self.nodes[i]
                        .coordinator
                        .handle(self.now, Input::PeerStateReceived { entries: total });
                    self.run_commands(i, commands);
                }
            }
        }
    }

    fn warm_record(&mut self, i: usize, entries: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let s = &mut n.service;
        if n.params.warm && !s.master {
            s.pending += entries;
            s.warm_next.get_or_insert(now + n.params.warm_pause);
        }
    }

    fn start_bulk(&mut self, i: usize) {
        let id = self.next_bulk_id;
        self.next_bulk_id += 1;
        let total = self.nodes[i].service.internal;
        self.nodes[i].service.bulk = Some(BulkOut {
            id,
            total,
            sent: 0,
            index: 0,
            next: self.now,
        });
        self.bulk_tick(i);
    }

    fn bulk_tick(&mut self, i: usize) {
        let now = self.now;
        let Some(b) = self.nodes[i]
            .service
            .bulk
            .as_mut()
            .filter(|b| b.next <= now)
        else {
            return;
        };
        let entries = BULK_CHUNK.min(b.total - b.sent);
        b.sent += entries;
        let chunk = Sync::Chunk {
            id: b.id,
            index: b.index,
            entries,
            total: b.total,
            last: b.sent == b.total,
        };
        b.index += 1;
        b.next = now + BULK_PAUSE;
        if b.sent == b.total {
            self.nodes[i].service.bulk = None;
        }
        self.send_sync(i, chunk);
    }

    fn service_tick(&mut self, i: usize) {
        let now = self.now;
        self.bulk_tick(i);
        let pause = self.nodes[i].params.warm_pause;
        let s = &mut self.nodes[i].service;
        if s.warm_next.is_some_and(|t| t <= now) {
            s.pending = s.pending.saturating_sub(WARM_CHUNK);
            s.warm_next = (s.pending > 0 && !s.master).then_some(now + pause);
        }
        if let Some((step, _)) = s.running.filter(|(_, done)| *done <= now) {
            s.running = None;
            let result = self.finish_step(i, step);
            let commands = self.nodes[i]
                .coordinator
                .handle(now, Input::Answered { step, result });
            self.run_commands(i, commands);
            for sync in std::mem::take(&mut self.nodes[i].service.deferred) {
                self.on_sync(i, sync);
            }
            self.start_next_step(i);
        }
    }

    /// The step's effect on the model, when it completes; its answer.
    fn finish_step(&mut self, i: usize, step: Step) -> Result<(), String> {
        let n = &mut self.nodes[i];
        let s = &mut n.service;
        match step {
            Step::Commit => {
                if let Some(reason) = n.params.refuse_commit.clone() {
                    self.note(i, "commit refused");
                    return Err(reason);
                }
                s.master = true;
                let word = if n.params.warm {
                    let already = s.external - s.pending;
                    let word = format!("committed {} ({already} already warm)", s.pending);
                    s.pending = 0;
                    s.warm_next = None;
                    word
                } else {
                    format!("committed {}", s.external)
                };
                // The committed entries are this node's own now.
                s.internal += s.external;
                self.note(i, word);
            }
            Step::FlushExternal => s.external = 0,
            Step::Bulk => self.start_bulk(i),
            Step::Shorten => s.master = false,
            Step::RequestResync => self.send_sync(i, Sync::ResyncRequest),
        }
        Ok(())
    }

    fn start_next_step(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if n.service.running.is_some() {
            return;
        }
        let Some(step) = n.service.queue.pop_front() else {
            return;
        };
        let took = match step {
            Step::Commit => {
                let entries = if n.params.warm {
                    n.service.pending
                } else {
                    n.service.external
                };
                n.params.commit_base + n.params.commit_per_entry * entries as u32
            }
            _ => Duration::ZERO,
        };
        n.service.running = Some((step, now + took));
    }

    fn send_sync(&mut self, from: usize, sync: Sync) {
        if self.sync_link {
            self.wire.push(Packet {
                at: self.now + LATENCY,
                to: 1 - from,
                payload: Payload::Sync(sync),
            });
        }
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        let transition = replicated_transition(&actions, true);
        let commands = self.nodes[i].coordinator.handle(
            self.now,
            Input::Actions {
                transition,
                actions,
            },
        );
        self.run_commands(i, commands);
    }

    fn run_commands(&mut self, i: usize, commands: Vec<Command<Action>>) {
        for command in commands {
            match command {
                Command::Run(step) => {
                    self.note(i, step.word());
                    self.nodes[i].service.queue.push_back(step);
                    self.start_next_step(i);
                }
                Command::HoldPreemption(until) => {
                    self.note(
                        i,
                        if until.is_some() {
                            "hold preemption"
                        } else {
                            "allow preemption"
                        },
                    );
                    let actions = self.nodes[i]
                        .router
                        .handle(self.now, VrrpInput::HoldPreemption(until));
                    assert!(actions.is_empty(), "{actions:?}");
                }
                Command::Warn(w) => self.note(i, format!("warn: {w}")),
                Command::Effect(action) => self.effect(i, action),
            }
        }
    }

    fn effect(&mut self, i: usize, action: Action) {
        let word = match &action {
            Action::Instance { id, action } => {
                let name = if *id == 0 { "VI_1" } else { "VI_2" };
                match action {
                    InstanceAction::Send { bytes, .. } => {
                        let lan = *id as u32 + 1;
                        self.wire.push(Packet {
                            at: self.now + LATENCY,
                            to: 1 - i,
                            payload: Payload::Advert {
                                lan,
                                src: source(lan, i),
                                bytes: bytes.clone(),
                            },
                        });
                        format!("advert {name}")
                    }
                    InstanceAction::Transition { to, .. } => format!("{name} {}", to.keyword()),
                    InstanceAction::AddAddresses => format!("add {name}"),
                    InstanceAction::RemoveAddresses => format!("remove {name}"),
                    InstanceAction::SendGratuitous => format!("garp {name}"),
                    InstanceAction::SendGratuitousLowerPriority => {
                        format!("garp-lower-priority {name}")
                    }
                    InstanceAction::RefreshGratuitous => format!("garp-refresh {name}"),
                }
            }
            Action::GroupTransition { to, .. } => format!("G {}", to.keyword()),
            Action::Dropped { error, .. } => format!("dropped: {error}"),
            Action::PriorityChanged { from, to, .. } => format!("priority {from}->{to}"),
        };
        self.note(i, word);
    }
}
