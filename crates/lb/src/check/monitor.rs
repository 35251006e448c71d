//! The sans-IO decision core: keepalived's `ipwrapper.c` rules for which
//! real servers are alive, each virtual service's quorum, its sorry server
//! and its pool, driven by check outcomes and a caller-supplied clock.
//!
//! ```text
//! let (mut monitor, actions) = Monitor::new(specs, now, seed);
//! loop {
//!     for id in monitor.due(now) { start_probe(id) }          // probes run elsewhere
//!     on probe result: actions = monitor.on_outcome(now, id, outcome)
//!     sleep_until(monitor.next_deadline())
//! }
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::action::{Action, CheckerId, Destination, Notification, NotifyKind, Outcome};
use super::spec::{format_addr, CheckKind, VirtualServerSpec, BOOTSTRAP_DELAY};

/// One checker's retry state (keepalived's `checker_t`).
#[derive(Clone, Debug)]
struct CheckerState {
    /// The checker considers its server healthy.
    is_up: bool,
    /// At least one check completed.
    has_run: bool,
    /// Failed attempts since the last decision.
    retry_it: u32,
    /// When the next probe is due; `None` while one is running.
    next_due: Option<Instant>,
    /// MISC_CHECK weight offset from `misc_dynamic` (keepalived's `cur_weight`).
    cur_weight: i64,
    /// Last exit status that set a dynamic weight.
    last_status: Option<u8>,
    /// FILE_CHECK: the track_file's number last applied.
    file_value: i64,
}

/// One real server's state (keepalived's `real_server_t`).
#[derive(Clone, Debug)]
struct RealServerState {
    alive: bool,
    /// Configured weight (`iweight`).
    initial_weight: i64,
    /// Weight after dynamic changes (`effective_weight`).
    effective_weight: i64,
    /// Checkers currently failing.
    failed_checkers: u32,
    checkers: Vec<CheckerState>,
}

/// One virtual service's state.
#[derive(Clone, Debug)]
struct VirtualServerState {
    quorum_up: bool,
    /// The sorry server is in the pool.
    sorry_active: bool,
    real_servers: Vec<RealServerState>,
    /// The pool last handed to the backend.
    last_pool: Option<Vec<Destination>>,
    /// Something the pool depends on changed since it was last compared.
    pool_dirty: bool,
}

/// Decides, with keepalived's semantics, which servers each virtual
/// service balances over; knows nothing of sockets or time sources.
#[derive(Debug)]
pub struct Monitor {
    specs: Vec<VirtualServerSpec>,
    state: Vec<VirtualServerState>,
    /// Every checker waiting for its next probe, earliest first: exactly one
    /// entry per checker whose `next_due` is set, so finding what is due
    /// does not scan a thousand checkers at each outcome.
    queue: BinaryHeap<Reverse<(Instant, CheckerId)>>,
}

/// keepalived's `real_weight`: negative weights count as 0.
fn real_weight(effective: i64) -> u32 {
    effective.clamp(0, i64::from(i32::MAX)) as u32
}

impl Monitor {
    /// Builds the state keepalived has after start: servers alive unless
    /// `alpha`, quorums computed, the sorry server in place when the quorum
    /// is already lost, and each checker's first probe spread at random over
    /// `BOOTSTRAP_DELAY + [0, warmup]` so that checks are not fired together.
    ///
    /// Returns the initial pools (and the quorum_down notifies keepalived
    /// runs at start when the sorry server is needed).
    pub fn new(specs: Vec<VirtualServerSpec>, now: Instant, seed: u64) -> (Monitor, Vec<Action>) {
        Monitor::with_files(specs, now, seed, &HashMap::new())
    }

    /// [`Monitor::new`] with the `track_file` numbers FILE_CHECK follows as read at start
    /// (a file not listed reads 0): as keepalived's start, a checker whose number means
    /// fault starts down and a weighted one starts with its share of the server's weight.
    pub fn with_files(
        specs: Vec<VirtualServerSpec>,
        now: Instant,
        seed: u64,
        files: &HashMap<String, i64>,
    ) -> (Monitor, Vec<Action>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state = Vec::with_capacity(specs.len());
        for vs in &specs {
            let mut real_servers = Vec::with_capacity(vs.real_servers.len());
            for rs in &vs.real_servers {
                let mut failed = 0;
                let mut file_weight = 0;
                let checkers = rs
                    .checkers
                    .iter()
                    .map(|c| {
                        if let CheckKind::File(f) = &c.kind {
                            let value = files.get(&f.track_file).copied().unwrap_or(0);
                            let status = f.status(value);
                            failed += u32::from(status.is_none());
                            file_weight += status.unwrap_or(0);
                            // Never probed: no due time; it has "run" (the file was read).
                            return CheckerState {
                                is_up: status.is_some(),
                                has_run: true,
                                retry_it: 0,
                                next_due: None,
                                cur_weight: status.unwrap_or(0),
                                last_status: None,
                                file_value: value,
                            };
                        }
                        let t = &c.timing;
                        let jitter = t.warmup.mul_f64(rng.random::<f64>());
                        if t.alpha {
                            failed += 1;
                        }
                        CheckerState {
                            is_up: !t.alpha,
                            has_run: false,
                            // One failure is enough before the first decision.
                            retry_it: t.retry,
                            next_due: Some(now + BOOTSTRAP_DELAY + jitter),
                            cur_weight: 0,
                            last_status: None,
                            file_value: 0,
                        }
                    })
                    .collect();
                let weight = i64::from(rs.weight);
                real_servers.push(RealServerState {
                    alive: failed == 0,
                    initial_weight: weight,
                    effective_weight: weight + file_weight,
                    failed_checkers: failed,
                    checkers,
                });
            }
            state.push(VirtualServerState {
                quorum_up: false,
                sorry_active: false,
                real_servers,
                last_pool: None,
                pool_dirty: true,
            });
        }
        let mut queue = BinaryHeap::new();
        for (vs, v) in state.iter().enumerate() {
            for (rs, r) in v.real_servers.iter().enumerate() {
                for (check, c) in r.checkers.iter().enumerate() {
                    if let Some(t) = c.next_due {
                        queue.push(Reverse((t, CheckerId { vs, rs, check })));
                    }
                }
            }
        }
        let mut monitor = Monitor {
            specs,
            state,
            queue,
        };
        let mut actions = Vec::new();
        for vs in 0..monitor.specs.len() {
            let spec = &monitor.specs[vs];
            let threshold = i64::from(spec.quorum) + i64::from(spec.hysteresis);
            monitor.state[vs].quorum_up = monitor.alive_weight(vs) >= threshold;
            monitor.update_quorum_state(vs, true, &mut actions);
        }
        monitor.flush_pools(&mut actions);
        (monitor, actions)
    }

    /// Checkers whose probe is due at `now`; each is marked running until
    /// [`Monitor::on_outcome`] reports its result.
    pub fn due(&mut self, now: Instant) -> Vec<CheckerId> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.queue.peek() {
            if t > now {
                break;
            }
            self.queue.pop();
            self.checker_mut(id).next_due = None;
            due.push(id);
        }
        // In configuration order, whatever their due times.
        due.sort_unstable();
        due
    }

    /// The earliest time a probe is due, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _))| *t)
    }

    /// When `id`'s next probe is due (`None` while it runs).
    pub fn next_due(&self, id: CheckerId) -> Option<Instant> {
        self.checker(id).next_due
    }

    /// Applies a probe's result with keepalived's retry rules: a failure is
    /// retried `retry` times, `delay_before_retry` apart, before the checker
    /// is declared down; a success brings it back at once; then the next
    /// probe is due after `delay_loop`.
    pub fn on_outcome(&mut self, now: Instant, id: CheckerId, outcome: Outcome) -> Vec<Action> {
        let mut actions = Vec::new();
        let timing = self.specs[id.vs].real_servers[id.rs].checkers[id.check]
            .timing
            .clone();
        let dynamic = matches!(
            &self.specs[id.vs].real_servers[id.rs].checkers[id.check].kind,
            CheckKind::Misc(m) if m.dynamic
        );
        if dynamic {
            if let Outcome::HealthyWithStatus(status) = outcome {
                self.apply_dynamic_weight(id, status, &mut actions);
            }
        }
        let c = self.checker(id).clone();
        let delay: Duration;
        if outcome.is_healthy() {
            delay = timing.delay_loop;
            self.checker_mut(id).retry_it = 0;
            if !c.is_up || !c.has_run {
                let what = self.describe(id);
                actions.push(Action::Log(format!("{what} succeeded on service.")));
                self.update_checker_state(id, true, &mut actions);
            }
        } else if c.is_up || !c.has_run {
            if c.retry_it < timing.retry {
                self.checker_mut(id).retry_it += 1;
                delay = timing.delay_before_retry;
            } else {
                delay = timing.delay_loop;
                let what = self.describe(id);
                let reason = match &outcome {
                    Outcome::Failed(r) => r.as_str(),
                    _ => "",
                };
                actions.push(Action::Log(if c.has_run && timing.retry > 0 {
                    format!("{what} failed after {} retries: {reason}", timing.retry)
                } else {
                    format!("{what} failed: {reason}")
                }));
                let checker = self.checker_mut(id);
                checker.retry_it = 0;
                let offset = std::mem::take(&mut checker.cur_weight);
                checker.last_status = None;
                self.state[id.vs].real_servers[id.rs].effective_weight -= offset;
                self.state[id.vs].pool_dirty = true;
                self.update_checker_state(id, false, &mut actions);
            }
        } else {
            // Already known down: no retries, look again after delay_loop.
            delay = timing.delay_loop;
        }
        let checker = self.checker_mut(id);
        checker.has_run = true;
        checker.next_due = Some(now + delay);
        self.queue.push(Reverse((now + delay, id)));
        self.flush_pools(&mut actions);
        actions
    }

    /// A `track_file`'s number changed: every FILE_CHECK following `name` applies it as
    /// keepalived does (`process_update_checker_track_file_status`): a number meaning fault
    /// takes the checker down (its weight share leaves the server), leaving fault brings it
    /// back with its share, otherwise the server's weight moves by the change of share.
    pub fn on_file_value(&mut self, name: &str, value: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut followers = Vec::new();
        for (vs, v) in self.specs.iter().enumerate() {
            for (rs, r) in v.real_servers.iter().enumerate() {
                for (check, c) in r.checkers.iter().enumerate() {
                    if let CheckKind::File(f) = &c.kind {
                        if f.track_file == name {
                            followers.push((CheckerId { vs, rs, check }, f.clone()));
                        }
                    }
                }
            }
        }
        for (id, f) in followers {
            let previous = std::mem::replace(&mut self.checker_mut(id).file_value, value);
            let (was, now) = (f.status(previous), f.status(value));
            if was == now {
                continue;
            }
            match (was, now) {
                (_, None) => {
                    actions.push(Action::Log(format!(
                        "{}: tracked file {name} now FAULT state",
                        self.describe(id)
                    )));
                    self.update_checker_state(id, false, &mut actions);
                    let share = std::mem::take(&mut self.checker_mut(id).cur_weight);
                    self.state[id.vs].real_servers[id.rs].effective_weight -= share;
                    self.state[id.vs].pool_dirty = true;
                }
                (None, Some(share)) => {
                    actions.push(Action::Log(format!(
                        "{}: tracked file {name} leaving FAULT state",
                        self.describe(id)
                    )));
                    self.checker_mut(id).cur_weight = share;
                    self.state[id.vs].real_servers[id.rs].effective_weight += share;
                    self.state[id.vs].pool_dirty = true;
                    self.update_checker_state(id, true, &mut actions);
                }
                (Some(old), Some(share)) => {
                    let weight =
                        self.state[id.vs].real_servers[id.rs].effective_weight + share - old;
                    self.update_weight(id.vs, id.rs, weight, &mut actions);
                    self.checker_mut(id).cur_weight = share;
                }
            }
        }
        self.flush_pools(&mut actions);
        actions
    }

    /// What keepalived does on shutdown: servers leave the pools and, for
    /// services with `omega`, notify_down and quorum_down run.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for vs in 0..self.specs.len() {
            let omega = self.specs[vs].omega;
            for rs in 0..self.specs[vs].real_servers.len() {
                let r = &mut self.state[vs].real_servers[rs];
                if !r.alive {
                    continue;
                }
                r.alive = false;
                if omega {
                    self.rs_notify(vs, rs, true, &mut actions);
                }
            }
            self.state[vs].quorum_up = false;
            self.state[vs].sorry_active = false;
            if omega {
                self.vs_notify(vs, true, &mut actions);
            }
            for r in &mut self.state[vs].real_servers {
                for c in &mut r.checkers {
                    c.next_due = None;
                }
            }
            self.queue.clear();
            if self.state[vs]
                .last_pool
                .as_ref()
                .is_some_and(|p| !p.is_empty())
            {
                self.state[vs].last_pool = Some(Vec::new());
                actions.push(Action::SetPool {
                    vs,
                    destinations: Vec::new(),
                });
            }
        }
        actions
    }

    /// Whether real server `rs` of virtual server `vs` is alive.
    pub fn is_alive(&self, vs: usize, rs: usize) -> bool {
        self.state[vs].real_servers[rs].alive
    }

    /// Whether virtual server `vs` has its quorum.
    pub fn quorum_up(&self, vs: usize) -> bool {
        self.state[vs].quorum_up
    }

    /// Whether `vs`'s sorry server is serving.
    pub fn sorry_active(&self, vs: usize) -> bool {
        self.state[vs].sorry_active
    }

    /// `rs`'s current weight (after `misc_dynamic`).
    pub fn weight(&self, vs: usize, rs: usize) -> u32 {
        real_weight(self.state[vs].real_servers[rs].effective_weight)
    }

    /// The pool `vs` should have now.
    pub fn pool(&self, vs: usize) -> Vec<Destination> {
        let spec = &self.specs[vs];
        let v = &self.state[vs];
        let mut pool = Vec::new();
        for (rs, r) in spec.real_servers.iter().zip(&v.real_servers) {
            let weight = if r.alive && !v.sorry_active {
                Some(real_weight(r.effective_weight))
            } else if rs.inhibit_on_failure {
                Some(0)
            } else {
                None
            };
            if let Some(weight) = weight {
                pool.push(Destination {
                    addr: rs.addr,
                    weight,
                });
            }
        }
        if let Some(sorry) = &spec.sorry_server {
            if v.sorry_active || sorry.inhibit {
                pool.push(Destination {
                    addr: sorry.addr,
                    weight: u32::from(v.sorry_active),
                });
            }
        }
        pool
    }

    /// The specs the monitor was built from.
    pub fn specs(&self) -> &[VirtualServerSpec] {
        &self.specs
    }

    fn checker(&self, id: CheckerId) -> &CheckerState {
        &self.state[id.vs].real_servers[id.rs].checkers[id.check]
    }

    fn checker_mut(&mut self, id: CheckerId) -> &mut CheckerState {
        &mut self.state[id.vs].real_servers[id.rs].checkers[id.check]
    }

    fn describe(&self, id: CheckerId) -> String {
        let c = &self.specs[id.vs].real_servers[id.rs].checkers[id.check];
        format!("{} {}", c.kind.keyword(), format_addr(c.connect.to))
    }

    fn rs_name(&self, vs: usize, rs: usize) -> String {
        format_addr(self.specs[vs].real_servers[rs].addr)
    }

    /// Sum of the alive servers' weights (`weigh_live_realservers`).
    fn alive_weight(&self, vs: usize) -> i64 {
        self.state[vs]
            .real_servers
            .iter()
            .filter(|r| r.alive)
            .map(|r| i64::from(real_weight(r.effective_weight)))
            .sum()
    }

    /// `misc_dynamic`: exit status 0 restores the configured weight, 2..=255
    /// sets it to status - 2 (keepalived's `misc_check_child_thread`).
    fn apply_dynamic_weight(&mut self, id: CheckerId, status: u8, actions: &mut Vec<Action>) {
        if status == 1 || self.checker(id).last_status == Some(status) {
            return;
        }
        let r = &self.state[id.vs].real_servers[id.rs];
        let c = self.checker(id);
        let base = r.effective_weight - c.cur_weight;
        let cur = if status == 0 {
            0
        } else {
            i64::from(status) - 2 - r.initial_weight
        };
        let checker = self.checker_mut(id);
        checker.cur_weight = cur;
        checker.last_status = Some(status);
        self.update_weight(id.vs, id.rs, base + cur, actions);
    }

    /// `update_svr_wgt`.
    fn update_weight(&mut self, vs: usize, rs: usize, weight: i64, actions: &mut Vec<Action>) {
        let v = &mut self.state[vs];
        v.pool_dirty = true;
        let r = &mut v.real_servers[rs];
        let old = real_weight(r.effective_weight);
        r.effective_weight = weight;
        let new = real_weight(weight);
        if old != new {
            let active = if r.alive { "" } else { "in" };
            actions.push(Action::Log(format!(
                "Changing weight from {old} to {new} for {active}active service {} of VS {}",
                self.rs_name(vs, rs),
                self.specs[vs].name
            )));
            self.update_quorum_state(vs, false, actions);
        }
    }

    /// `update_svr_checker_state`: a real server leaves when its first
    /// checker fails and returns when its last failing checker recovers.
    fn update_checker_state(&mut self, id: CheckerId, alive: bool, actions: &mut Vec<Action>) {
        let c = self.checker(id);
        if c.is_up == alive {
            if !c.has_run {
                let alpha = self.specs[id.vs].real_servers[id.rs].checkers[id.check]
                    .timing
                    .alpha;
                if alpha || !alive {
                    self.rs_notify(id.vs, id.rs, false, actions);
                }
                self.checker_mut(id).has_run = true;
            }
            return;
        }
        self.checker_mut(id).has_run = true;
        let failed = self.state[id.vs].real_servers[id.rs].failed_checkers;
        if alive && failed <= 1 || !alive && failed == 0 {
            self.set_server_state(id.vs, id.rs, alive, actions);
        }
        self.checker_mut(id).is_up = alive;
        let r = &mut self.state[id.vs].real_servers[id.rs];
        if alive {
            r.failed_checkers = r.failed_checkers.saturating_sub(1);
        } else {
            r.failed_checkers += 1;
        }
    }

    /// `perform_svr_state`.
    fn set_server_state(&mut self, vs: usize, rs: usize, alive: bool, actions: &mut Vec<Action>) {
        if self.state[vs].real_servers[rs].alive == alive {
            return;
        }
        let inhibit = self.specs[vs].real_servers[rs].inhibit_on_failure;
        let (verb, prep) = match (alive, inhibit) {
            (true, true) => ("Enabling", "of"),
            (true, false) => ("Adding", "to"),
            (false, true) => ("Disabling", "of"),
            (false, false) => ("Removing", "from"),
        };
        actions.push(Action::Log(format!(
            "{verb} service {} {prep} VS {}",
            self.rs_name(vs, rs),
            self.specs[vs].name
        )));
        self.state[vs].real_servers[rs].alive = alive;
        self.state[vs].pool_dirty = true;
        self.rs_notify(vs, rs, false, actions);
        self.update_quorum_state(vs, false, actions);
    }

    /// `update_quorum_state`: gains the quorum at `quorum + hysteresis`,
    /// loses it below `quorum - hysteresis` (or at zero weight), swapping
    /// the sorry server in and out.
    fn update_quorum_state(&mut self, vs: usize, init: bool, actions: &mut Vec<Action>) {
        let spec = &self.specs[vs];
        let (quorum, hysteresis) = (i64::from(spec.quorum), i64::from(spec.hysteresis));
        let sum = self.alive_weight(vs);
        let v = &self.state[vs];
        let threshold = if v.quorum_up {
            quorum - hysteresis
        } else {
            quorum + hysteresis
        };
        let name = spec.name.clone();
        let sorry = spec.sorry_server.as_ref().map(|s| format_addr(s.addr));
        if !v.quorum_up && sum >= threshold {
            self.state[vs].quorum_up = true;
            actions.push(Action::Log(format!(
                "Gained quorum {quorum}+{hysteresis}={threshold} <= {sum} for VS {name}"
            )));
            if self.state[vs].sorry_active {
                actions.push(Action::Log(format!(
                    "Removing sorry server {} from VS {name}",
                    sorry.unwrap_or_default()
                )));
                self.state[vs].sorry_active = false;
                self.state[vs].pool_dirty = true;
            }
            self.vs_notify(vs, false, actions);
        } else if (v.quorum_up && (sum == 0 || sum < threshold))
            || (init && !v.quorum_up && sorry.is_some() && !v.sorry_active)
        {
            self.state[vs].quorum_up = false;
            let what = if init {
                "Starting with quorum down"
            } else {
                "Lost quorum"
            };
            actions.push(Action::Log(format!(
                "{what} {quorum}-{hysteresis}={threshold} > {sum} for VS {name}"
            )));
            if let Some(sorry) = sorry {
                if !self.state[vs].sorry_active {
                    actions.push(Action::Log(format!(
                        "Adding sorry server {sorry} to VS {name}"
                    )));
                    self.state[vs].sorry_active = true;
                    self.state[vs].pool_dirty = true;
                }
            }
            self.vs_notify(vs, false, actions);
        }
    }

    fn rs_notify(&self, vs: usize, rs: usize, stopping: bool, actions: &mut Vec<Action>) {
        let spec = &self.specs[vs].real_servers[rs];
        let up = self.state[vs].real_servers[rs].alive;
        let (kind, script, word) = if up {
            (NotifyKind::RealServerUp, &spec.notify_up, "UP")
        } else {
            (NotifyKind::RealServerDown, &spec.notify_down, "DOWN")
        };
        actions.push(Action::Notify(Notification {
            kind,
            vs,
            rs: Some(rs),
            script: script.clone(),
            fifo_line: format!(
                "RS {} {} {word}",
                format_addr(spec.addr),
                self.specs[vs].name
            ),
            stopping,
        }));
    }

    fn vs_notify(&self, vs: usize, stopping: bool, actions: &mut Vec<Action>) {
        let spec = &self.specs[vs];
        let (kind, script, word) = if self.state[vs].quorum_up {
            (NotifyKind::QuorumUp, &spec.quorum_up, "UP")
        } else {
            (NotifyKind::QuorumDown, &spec.quorum_down, "DOWN")
        };
        actions.push(Action::Notify(Notification {
            kind,
            vs,
            rs: None,
            script: script.clone(),
            fifo_line: format!("VS {} {word}", spec.name),
            stopping,
        }));
    }

    /// Emits `SetPool` for every service whose pool changed; only services
    /// marked dirty are compared.
    fn flush_pools(&mut self, actions: &mut Vec<Action>) {
        for vs in 0..self.state.len() {
            if !std::mem::take(&mut self.state[vs].pool_dirty) {
                continue;
            }
            let pool = self.pool(vs);
            if self.state[vs].last_pool.as_ref() != Some(&pool) {
                self.state[vs].last_pool = Some(pool.clone());
                actions.push(Action::SetPool {
                    vs,
                    destinations: pool,
                });
            }
        }
    }
}
