//! A simulated LAN of VRRP routers: a virtual clock, per-packet loss and delay, partitions,
//! crashes and restarts. No sockets, no sleeps: thousands of scenarios run in seconds.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_vrrp::{
    Action, Auth, Cause, Input, InstanceAction, InstanceConfig, Router, State, Version,
};

/// Multicast group every simulated router sends to.
pub const GROUP: &str = "224.0.0.18";

/// Address of node `i` on LAN `lan`.
pub fn address(lan: u32, i: usize) -> IpAddr {
    format!("10.0.{lan}.{}", i + 1).parse().unwrap()
}

/// A v3 instance config on LAN 0 for node `i`.
pub fn config(i: usize, priority: u8) -> InstanceConfig {
    config_on(0, i, priority)
}

/// A v3 instance config on `lan` for node `i`.
pub fn config_on(lan: u32, i: usize, priority: u8) -> InstanceConfig {
    InstanceConfig {
        name: format!("VI_{lan}"),
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        start_as_master: false,
        addresses: vec![format!("10.0.{lan}.254").parse().unwrap()],
        auth: Auth::None,
        source: address(lan, i),
        destinations: vec![GROUP.parse().unwrap()],
        check_source: false,
        garp_repeat_after: None,
        garp_refresh: None,
        lower_priority: Default::default(),
        higher_prio_send_advert: false,
    }
}

struct Delivery {
    to: usize,
    lan: u32,
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

/// One simulated node: a router and what it holds.
pub struct Node {
    pub router: Router,
    configs: Vec<(InstanceConfig, u32)>,
    groups: Vec<Vec<usize>>,
    pub alive: bool,
    /// Weighted links: (instance, link, weight), applied at every start.
    pub weights: Vec<(usize, u32, i32)>,
    /// Adds trackers and references to a freshly built router, at every start.
    pub setup: Option<fn(&mut Router)>,
    /// Which instances currently have their addresses on the "interface".
    pub holds: Vec<bool>,
    pub gratuitous: usize,
}

impl Node {
    fn build(configs: &[(InstanceConfig, u32)], groups: &[Vec<usize>]) -> Router {
        let mut router = Router::new();
        for (config, lan) in configs {
            router.add_instance(config.clone(), *lan, &[*lan]);
        }
        for (g, members) in groups.iter().enumerate() {
            router.add_group(&format!("G{g}"), members);
        }
        router
    }
}

/// The simulated network.
pub struct Sim {
    pub nodes: Vec<Node>,
    pub start: Instant,
    pub now: Instant,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: std::collections::HashMap<u64, Delivery>,
    seq: u64,
    pub rng: StdRng,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Delay range of a packet.
    pub delay: (Duration, Duration),
    /// Pairs of nodes that cannot hear each other.
    pub cut: HashSet<(usize, usize)>,
    /// LANs whose link is down, per node.
    pub links_down: HashSet<(usize, u32)>,
    /// Every transition: (time since start, node, instance, from, to).
    pub log: Vec<(Duration, usize, usize, State, State)>,
    /// Every advert sent: (time since start, node, instance name).
    pub adverts: Vec<(Duration, usize, String)>,
    /// Every transition with its cause: (node, instance, new state, cause).
    pub causes: Vec<(usize, usize, State, Cause)>,
    /// Every effective priority change: (node, instance, from, to, cause).
    pub priority_changes: Vec<(usize, usize, u8, u8, Cause)>,
}

impl Sim {
    /// A simulation with `seed` for its randomness.
    pub fn new(seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            nodes: Vec::new(),
            start,
            now: start,
            queue: BinaryHeap::new(),
            pending: Default::default(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            loss: 0.0,
            delay: (Duration::from_micros(100), Duration::from_micros(500)),
            cut: HashSet::new(),
            links_down: HashSet::new(),
            log: Vec::new(),
            adverts: Vec::new(),
            causes: Vec::new(),
            priority_changes: Vec::new(),
        }
    }

    /// Adds a node with one instance per `(config, lan)` and the given sync groups, not started.
    pub fn add_node(
        &mut self,
        configs: Vec<(InstanceConfig, u32)>,
        groups: Vec<Vec<usize>>,
    ) -> usize {
        let router = Node::build(&configs, &groups);
        let n = configs.len();
        self.nodes.push(Node {
            router,
            configs,
            groups,
            alive: false,
            weights: Vec::new(),
            setup: None,
            holds: vec![false; n],
            gratuitous: 0,
        });
        self.nodes.len() - 1
    }

    /// Adds a node with a single instance on LAN 0.
    pub fn add(&mut self, config: InstanceConfig) -> usize {
        self.add_node(vec![(config, 0)], vec![])
    }

    /// Starts (or restarts after a crash) a node with fresh state.
    pub fn start_node(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.router = Node::build(&n.configs, &n.groups);
        for &(id, link, weight) in &n.weights {
            n.router.track_weighted(id, link, weight);
        }
        if let Some(setup) = n.setup {
            setup(&mut n.router);
        }
        n.alive = true;
        n.holds.iter_mut().for_each(|h| *h = false);
        let downs: Vec<u32> = self
            .links_down
            .iter()
            .filter(|(i, _)| *i == node)
            .map(|(_, l)| *l)
            .collect();
        for lan in downs {
            let actions = self.nodes[node]
                .router
                .handle(self.now, Input::LinkDown(lan));
            self.execute(node, actions);
        }
        let actions = self.nodes[node].router.handle(self.now, Input::Start);
        self.execute(node, actions);
    }

    /// SIGHUP with a new configuration: unchanged instances carry over, the others are
    /// stopped on the old router and started on the new one. Returns what was carried.
    pub fn reload(
        &mut self,
        node: usize,
        configs: Vec<(InstanceConfig, u32)>,
        groups: Vec<Vec<usize>>,
    ) -> tandem_vrrp::Carried {
        let mut next = Node::build(&configs, &groups);
        let carried = next.carry_over(&self.nodes[node].router);
        let stop = self.nodes[node]
            .router
            .stop_instances(self.now, &carried.stopped);
        self.execute(node, stop);
        let mut holds = vec![false; configs.len()];
        for &(old, new) in &carried.kept {
            holds[new] = self.nodes[node].holds[old];
        }
        let n = &mut self.nodes[node];
        n.router = next;
        n.configs = configs;
        n.groups = groups;
        n.holds = holds;
        let start = self.nodes[node]
            .router
            .start_instances(self.now, &carried.started);
        self.execute(node, start);
        carried
    }

    /// SIGKILL: the node vanishes without a word; its addresses vanish with it.
    pub fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.alive = false;
        n.holds.iter_mut().for_each(|h| *h = false);
    }

    /// SIGTERM: priority-0 adverts go out, then the node is gone.
    pub fn stop(&mut self, node: usize) {
        let actions = self.nodes[node].router.handle(self.now, Input::Shutdown);
        self.execute(node, actions);
        self.nodes[node].alive = false;
    }

    /// Takes a node's link on `lan` down or up.
    pub fn set_link(&mut self, node: usize, lan: u32, up: bool) {
        if up {
            self.links_down.remove(&(node, lan));
        } else {
            self.links_down.insert((node, lan));
        }
        if self.nodes[node].alive {
            let input = if up {
                Input::LinkUp(lan)
            } else {
                Input::LinkDown(lan)
            };
            let actions = self.nodes[node].router.handle(self.now, input);
            self.execute(node, actions);
        }
    }

    /// Feeds any input to a running node and carries out what it returns.
    pub fn input(&mut self, node: usize, input: Input<'_>) {
        let actions = self.nodes[node].router.handle(self.now, input);
        self.execute(node, actions);
    }

    fn execute(&mut self, node: usize, actions: Vec<Action>) {
        for action in actions {
            if let Action::PriorityChanged {
                id,
                from,
                to,
                cause,
            } = action
            {
                self.priority_changes.push((node, id, from, to, cause));
            }
            let Action::Instance { id, action } = action else {
                continue;
            };
            match action {
                InstanceAction::Send { to, bytes } => {
                    let name = self.nodes[node].configs[id].0.name.clone();
                    self.adverts.push((self.now - self.start, node, name));
                    let lan = self.nodes[node].configs[id].1;
                    let src = self.nodes[node].configs[id].0.source;
                    self.transmit(node, lan, src, to, bytes);
                }
                InstanceAction::AddAddresses => self.nodes[node].holds[id] = true,
                InstanceAction::RemoveAddresses => self.nodes[node].holds[id] = false,
                InstanceAction::SendGratuitous
                | InstanceAction::SendGratuitousLowerPriority
                | InstanceAction::RefreshGratuitous => self.nodes[node].gratuitous += 1,
                InstanceAction::Transition { from, to, cause } => {
                    self.log.push((self.now - self.start, node, id, from, to));
                    self.causes.push((node, id, to, cause));
                }
            }
        }
    }

    fn transmit(&mut self, from: usize, lan: u32, src: IpAddr, dst: IpAddr, bytes: Vec<u8>) {
        if self.links_down.contains(&(from, lan)) {
            return;
        }
        for to in 0..self.nodes.len() {
            if to == from
                || self.cut.contains(&(from.min(to), from.max(to)))
                || self.links_down.contains(&(to, lan))
            {
                continue;
            }
            let on_lan = self.nodes[to]
                .configs
                .iter()
                .any(|(c, l)| *l == lan && (dst.is_multicast() || c.source == dst));
            if !on_lan || self.rng.random_bool(self.loss) {
                continue;
            }
            let (lo, hi) = self.delay;
            let delay = lo + (hi - lo).mul_f64(self.rng.random::<f64>());
            self.seq += 1;
            self.queue.push(Reverse((self.now + delay, self.seq)));
            self.pending.insert(
                self.seq,
                Delivery {
                    to,
                    lan,
                    src,
                    dst,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// Cuts or heals the path between two nodes.
    pub fn partition(&mut self, a: usize, b: usize, cut: bool) {
        let key = (a.min(b), a.max(b));
        if cut {
            self.cut.insert(key);
        } else {
            self.cut.remove(&key);
        }
    }

    /// Runs events until `duration` of simulated time has passed, calling `check` after each.
    pub fn run_checking(&mut self, duration: Duration, mut check: impl FnMut(&Sim)) {
        let end = self.now + duration;
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.router.next_deadline())
                .min();
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let Reverse((_, seq)) = self.queue.pop().unwrap();
                let d = self.pending.remove(&seq).unwrap();
                if self.nodes[d.to].alive {
                    let input = Input::Packet {
                        interface: d.lan,
                        src: d.src,
                        dst: d.dst,
                        ttl: 255,
                        bytes: &d.bytes,
                    };
                    let actions = self.nodes[d.to].router.handle(self.now, input);
                    self.execute(d.to, actions);
                }
            } else {
                for node in 0..self.nodes.len() {
                    let due = self.nodes[node].alive
                        && self.nodes[node]
                            .router
                            .next_deadline()
                            .is_some_and(|t| t <= self.now);
                    if due {
                        let actions = self.nodes[node].router.handle(self.now, Input::Timer);
                        self.execute(node, actions);
                    }
                }
            }
            check(self);
        }
        self.now = end;
    }

    /// Runs for `duration` of simulated time.
    pub fn run(&mut self, duration: Duration) {
        self.run_checking(duration, |_| {});
    }

    /// Nodes holding the addresses of instance `id`.
    pub fn holders(&self, id: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive && self.nodes[n].holds[id])
            .collect()
    }

    /// Nodes whose instance `id` is MASTER.
    pub fn masters(&self, id: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| {
                self.nodes[n].alive && self.nodes[n].router.instance(id).state() == State::Master
            })
            .collect()
    }

    /// Time (since start) at which `node`'s instance `id` last entered `state`.
    pub fn entered(&self, node: usize, id: usize, state: State) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|(_, n, i, _, to)| *n == node && *i == id && *to == state)
            .map(|(t, ..)| *t)
    }

    /// Elapsed simulated time.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}
