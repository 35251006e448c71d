//! A realistic test record (an IPv4 flow of about 60 bytes on the wire) and a simulated pair:
//! a virtual clock, per-datagram loss, duplication and reordering delays, node restarts.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_ctsync::wire::{self, Attrs};
use tandem_ctsync::{Action, Config, Event, ExternalChange, Input, Node, Record, WireError};

/// An IPv4 flow: both tuples, status, timeout, mark, TCP state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub reply_src: Ipv4Addr,
    pub reply_dst: Ipv4Addr,
    pub reply_sport: u16,
    pub reply_dport: u16,
    pub status: u32,
    pub timeout: u32,
    pub mark: u32,
    pub tcp_state: u8,
}

pub type FlowKey = (Ipv4Addr, Ipv4Addr, u16, u16, u8);

const ORIG: u16 = 1;
const REPLY: u16 = 2;
const STATUS: u16 = 3;
const TIMEOUT: u16 = 4;
const MARK: u16 = 5;
const TCP_STATE: u16 = 6;

impl Record for Flow {
    type Key = FlowKey;

    fn key(&self) -> FlowKey {
        (self.src, self.dst, self.sport, self.dport, self.proto)
    }

    fn differs_from(&self, earlier: &Flow) -> bool {
        self != earlier
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut orig = [0u8; 13];
        orig[..4].copy_from_slice(&self.src.octets());
        orig[4..8].copy_from_slice(&self.dst.octets());
        orig[8..10].copy_from_slice(&self.sport.to_be_bytes());
        orig[10..12].copy_from_slice(&self.dport.to_be_bytes());
        orig[12] = self.proto;
        wire::put_attr(out, ORIG, &orig);
        let mut reply = [0u8; 12];
        reply[..4].copy_from_slice(&self.reply_src.octets());
        reply[4..8].copy_from_slice(&self.reply_dst.octets());
        reply[8..10].copy_from_slice(&self.reply_sport.to_be_bytes());
        reply[10..12].copy_from_slice(&self.reply_dport.to_be_bytes());
        wire::put_attr(out, REPLY, &reply);
        wire::put_u32(out, STATUS, self.status);
        wire::put_u32(out, TIMEOUT, self.timeout);
        wire::put_u32(out, MARK, self.mark);
        if self.proto == 6 {
            wire::put_attr(out, TCP_STATE, &[self.tcp_state]);
        }
    }

    fn decode(attrs: &[u8]) -> Result<Flow, WireError> {
        let mut orig = None;
        let mut reply = None;
        let (mut status, mut timeout, mut mark, mut tcp_state) = (0, 0, 0, 0);
        for a in Attrs::new(attrs) {
            let (ty, v) = a?;
            match ty {
                ORIG => orig = Some(wire::fixed::<13>("orig tuple", ty, v)?),
                REPLY => reply = Some(wire::fixed::<12>("reply tuple", ty, v)?),
                STATUS => status = wire::get_u32("status", ty, v)?,
                TIMEOUT => timeout = wire::get_u32("timeout", ty, v)?,
                MARK => mark = wire::get_u32("mark", ty, v)?,
                TCP_STATE => tcp_state = wire::get_u8("tcp state", ty, v)?,
                _ => {}
            }
        }
        let o = orig.ok_or(WireError::Missing {
            field: "orig tuple",
        })?;
        let r = reply.ok_or(WireError::Missing {
            field: "reply tuple",
        })?;
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        Ok(Flow {
            src: ip(&o[0..4]),
            dst: ip(&o[4..8]),
            sport: port(&o[8..10]),
            dport: port(&o[10..12]),
            proto: o[12],
            reply_src: ip(&r[0..4]),
            reply_dst: ip(&r[4..8]),
            reply_sport: port(&r[8..10]),
            reply_dport: port(&r[10..12]),
            status,
            timeout,
            mark,
            tcp_state,
        })
    }
}

/// A TCP flow numbered `i` (distinct keys for distinct `i`).
pub fn flow(i: u32) -> Flow {
    let [a, b, c, d] = i.to_be_bytes();
    Flow {
        src: Ipv4Addr::new(10, a, b, c),
        dst: Ipv4Addr::new(192, 0, 2, d),
        sport: 1024 + (i % 60000) as u16,
        dport: 443,
        proto: 6,
        reply_src: Ipv4Addr::new(192, 0, 2, d),
        reply_dst: Ipv4Addr::new(203, 0, 113, 1),
        reply_sport: 443,
        reply_dport: 1024 + (i % 60000) as u16,
        status: 0x18e,
        timeout: 432000,
        mark: 0,
        tcp_state: 3,
    }
}

/// Network conditions.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    pub loss: f64,
    pub duplicate: f64,
    /// Each datagram is delayed uniformly in [min, max]: a wide range reorders.
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Conditions {
    pub fn perfect() -> Conditions {
        Conditions {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_micros(200),
        }
    }

    pub fn hostile() -> Conditions {
        Conditions {
            loss: 0.3,
            duplicate: 0.1,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(20),
        }
    }
}

/// Two nodes, their kernels (the truth), and the wire between them.
pub struct Pair {
    pub now: Instant,
    pub rng: StdRng,
    pub net: Conditions,
    pub nodes: [Node<Flow>; 2],
    pub kernels: [HashMap<FlowKey, Flow>; 2],
    pub config: [Config; 2],
    in_flight: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    payloads: HashMap<u64, Vec<u8>>,
    counter: u64,
    epochs: u32,
    pub committed: Vec<Flow>,
    /// Full resyncs each node finished receiving, with the external cache size at the end.
    pub resyncs_received: [Vec<usize>; 2],
    /// What each node's reported external-cache changes add up to (a warm kernel table).
    pub warm: [HashMap<FlowKey, Flow>; 2],
    /// Every datagram each node put on the wire (before loss), when `capture` is set: what an
    /// attacker on the sync link records.
    pub captured: [Vec<Vec<u8>>; 2],
    pub capture: bool,
    /// Sessions each node reported established, and external-cache wipes (entries removed).
    pub sessions: [usize; 2],
    pub wipes: [Vec<usize>; 2],
}

impl Pair {
    pub fn new(seed: u64, net: Conditions, tweak: impl Fn(&mut Config)) -> Pair {
        let mut config = [Config::new(1, 0x1000), Config::new(2, 0x2000)];
        for c in &mut config {
            tweak(c);
        }
        let nodes = [Node::new(config[0].clone()), Node::new(config[1].clone())];
        let mut pair = Pair {
            now: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            net,
            nodes,
            kernels: [HashMap::new(), HashMap::new()],
            config,
            in_flight: BinaryHeap::new(),
            payloads: HashMap::new(),
            counter: 0,
            epochs: 0,
            committed: Vec::new(),
            resyncs_received: [Vec::new(), Vec::new()],
            warm: [HashMap::new(), HashMap::new()],
            captured: [Vec::new(), Vec::new()],
            capture: false,
            sessions: [0, 0],
            wipes: [Vec::new(), Vec::new()],
        };
        pair.input(0, Input::Start);
        pair.input(1, Input::Start);
        pair
    }

    /// Feeds one input to node `i` and puts its datagrams on the wire.
    pub fn input(&mut self, i: usize, input: Input<'_, Flow>) {
        let actions = self.nodes[i].handle(self.now, input);
        self.execute(i, actions);
    }

    fn execute(&mut self, i: usize, actions: Vec<Action<Flow>>) {
        for action in actions {
            match action {
                Action::Transmit(bytes) => self.send(i, bytes),
                Action::Commit(flows) => self.committed = flows,
                Action::PeerRestarted { .. } => {}
                Action::SessionEstablished { .. } => self.sessions[i] += 1,
                Action::ExternalWiped { removed } => self.wipes[i].push(removed),
                Action::ResyncReceived { entries } => self.resyncs_received[i].push(entries),
                Action::ExternalChanged(changes) => {
                    for change in changes {
                        match change {
                            ExternalChange::Set(f) => {
                                self.warm[i].insert(f.key(), f);
                            }
                            ExternalChange::Removed(f) => {
                                self.warm[i].remove(&f.key());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Puts a datagram from node `from` on the wire (subject to the conditions).
    pub fn send(&mut self, from: usize, bytes: Vec<u8>) {
        if self.capture {
            self.captured[from].push(bytes.clone());
        }
        if self.rng.random_bool(self.net.loss) {
            return;
        }
        let copies = if self.rng.random_bool(self.net.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let span = self
                .net
                .max_delay
                .saturating_sub(self.net.min_delay)
                .as_micros() as u64;
            let delay = self.net.min_delay + Duration::from_micros(self.rng.random_range(0..=span));
            self.counter += 1;
            self.payloads.insert(self.counter, bytes.clone());
            self.in_flight
                .push(Reverse((self.now + delay, self.counter, 1 - from)));
        }
    }

    /// Kernel event on node `i`: applies it to the kernel model and feeds it to the node.
    pub fn kernel_event(&mut self, i: usize, event: Event<Flow>) {
        match &event {
            Event::New(f) | Event::Update(f) => {
                self.kernels[i].insert(f.key(), f.clone());
            }
            Event::Destroy(f) => {
                self.kernels[i].remove(&f.key());
            }
        }
        self.input(i, Input::Local(vec![event]));
    }

    /// A random new/update/destroy on node `i` among flow ids below `space`.
    pub fn random_event(&mut self, i: usize, space: u32) {
        let id = self.rng.random_range(0..space);
        let mut f = flow(id);
        let exists = self.kernels[i].contains_key(&f.key());
        let event = match (exists, self.rng.random_range(0..10)) {
            (false, _) => Event::New(f),
            (true, 0..=2) => Event::Destroy(f),
            (true, _) => {
                f.timeout = self.rng.random();
                f.mark = self.rng.random();
                Event::Update(f)
            }
        };
        self.kernel_event(i, event);
    }

    /// Runs the clock to `until`, delivering datagrams and firing timers in time order.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let wire = self.in_flight.peek().map(|Reverse((t, _, _))| *t);
            let timers = [self.nodes[0].next_deadline(), self.nodes[1].next_deadline()];
            let next = [wire, timers[0], timers[1]].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(next);
            if wire == Some(next) {
                let Reverse((_, id, to)) = self.in_flight.pop().unwrap();
                let bytes = self.payloads.remove(&id).unwrap();
                self.input(to, Input::Datagram(&bytes));
            } else {
                for (i, timer) in timers.into_iter().enumerate() {
                    if timer.is_some_and(|t| t <= self.now) {
                        self.input(i, Input::Timer);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Whether node `to`'s external cache equals node `from`'s kernel and internal cache.
    pub fn converged(&self, from: usize, to: usize) -> bool {
        let external = self.nodes[to].external();
        let internal = self.nodes[from].internal();
        external.len() == self.kernels[from].len()
            && internal.len() == self.kernels[from].len()
            && self.kernels[from].iter().all(|(k, f)| {
                external.get(k).as_ref() == Some(f) && internal.get(k).as_ref() == Some(f)
            })
    }

    /// Runs until both directions converged, in 10 ms steps; returns the time it took.
    pub fn run_to_convergence(&mut self, limit: Duration) -> Option<Duration> {
        let start = self.now;
        while self.now < start + limit {
            if self.converged(0, 1) && self.converged(1, 0) {
                return Some(self.now - start);
            }
            self.run_for(Duration::from_millis(10));
        }
        None
    }

    /// Replaces node `i` with a fresh incarnation (new epoch, empty caches) and starts it; the
    /// kernel model survives unless `lose_kernel`. The daemon then dumps the kernel.
    pub fn restart(&mut self, i: usize, lose_kernel: bool) {
        self.epochs += 1;
        let mut config = self.config[i].clone();
        config.epoch = config.epoch.wrapping_add(self.epochs * 7919);
        // A fresh incarnation draws fresh randomness (the daemon uses the OS's).
        self.rng.fill(&mut config.nonce);
        self.config[i] = config.clone();
        self.nodes[i] = Node::new(config);
        if lose_kernel {
            self.kernels[i].clear();
        }
        self.input(i, Input::Start);
        let dump: Vec<Flow> = self.kernels[i].values().cloned().collect();
        self.input(i, Input::ResyncFromKernel(dump));
    }
}
