//! SIGHUP and `tandemctl reload`: re-read every configuration file and apply the difference.
//!
//! An invalid new configuration is refused with its located errors and the running one stays.
//! Instances that are still the same virtual router keep their state, timers and addresses (no
//! transition, no notify, no gap in adverts); when their settings changed they run on with the
//! new ones, and a master adds and removes just the addresses, routes and rules that changed.
//! `use_vmac` macvlans are made at start only: a new one takes a restart. Removed ones stop
//! gracefully (priority 0, addresses removed); added ones start. The replication service and
//! its caches are left running.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use tracing::{error, info, warn};

use tandem_sys::AddressSpec;
use tandem_vrrp::State;

use super::Daemon;
use crate::plan::{self, InstancePlan, Plan};

impl Daemon {
    /// Reloads; the text is the answer for `tandemctl reload` (errors start with `error:`).
    pub(super) async fn reload(&mut self) -> String {
        info!("Reloading configuration from {}", self.files_display());
        if let Some(refusal) = self.reload_refusal() {
            return refusal;
        }
        match self.read_configuration().await {
            Ok(config) => self.reload_with(config).await,
            Err(refusal) => refusal,
        }
    }

    /// An interface the instances name came back under a new index (deleted and re-created
    /// by ifupdown, netplan or an operator): its instances run again on the new one, as
    /// keepalived's do. The plan is rebuilt from the files only when they still hold what
    /// was loaded, so an edit nobody has reloaded yet is not applied behind the operator's
    /// back.
    pub(super) async fn on_interface_recreated(&mut self, name: &str, old: u32, new: u32) {
        warn!(
            "{name} was re-created (index {old}, now {new}): running its instances on the new \
             interface"
        );
        if let Some(refusal) = self.reload_refusal() {
            warn!("{name}: {}", refusal.trim_end());
            return;
        }
        let config = match self.read_configuration().await {
            Ok(config) => config,
            Err(refusal) => {
                error!("{name}: {}", refusal.trim_end());
                return;
            }
        };
        if fingerprint(&config) != self.running.fingerprint {
            warn!(
                "{name}: the configuration files changed since they were loaded, so they are \
                 not applied now; its instances stay down until `tandemctl reload` (or SIGHUP)"
            );
            return;
        }
        let answer = self.reload_with(config).await;
        info!(
            "{name} re-created: {}",
            answer.trim_end().replace('\n', "; ")
        );
    }

    /// Why a reload cannot run now, if it cannot.
    fn reload_refusal(&self) -> Option<String> {
        let committing =
            (self.failover.as_ref()).is_some_and(|f| f.coordinator.waiting_for_commit());
        committing.then(|| {
            let text = "error: reload refused: a promotion is waiting for its commit; try again in a moment\n";
            warn!("{}", text.trim_end());
            text.to_string()
        })
    }

    /// Reads and checks every configuration file (off the loop's thread).
    async fn read_configuration(&self) -> Result<tandem_config::Config, String> {
        let files = self.running.files.clone();
        let config_id = self.running.config_id.clone();
        let loaded =
            tokio::task::spawn_blocking(move || crate::load(&files, config_id.as_deref())).await;
        match loaded {
            Ok(Ok(config)) => Ok(config),
            Ok(Err(report)) => Err(refused(&report)),
            Err(e) => Err(refused(&format!("error: reading the configuration: {e}\n"))),
        }
    }

    /// Applies a configuration that was read and checked.
    async fn reload_with(&mut self, config: tandem_config::Config) -> String {
        let (lb_plan, lb_warnings) = crate::lb::LbPlan::from_config(&config);
        for w in config.warnings.iter().chain(&lb_warnings) {
            warn!("{}", w.render());
        }
        let next = match plan::lookup_interfaces(&self.handle, &config).await {
            Ok(interfaces) => plan::build(&config, &interfaces),
            Err(e) => Err(e),
        };
        let mut next = match next {
            Ok(next) => next,
            Err(e) => return refused(&format!("error: {e:#}\n")),
        };
        let (watch, generation) = match self.processes.watch(&mut next).await {
            Ok(watched) => watched,
            Err(e) => return refused(&format!("error: {e:#}\n")),
        };
        // Settings read at start only: a change is said, and waits for the next restart.
        let restart_only = [
            (
                config.sync != self.running.sync,
                "conntrack replication settings changed: they take effect at the next restart \
                 (the running replication and its caches are kept)",
            ),
            (
                config.global.lvs_sync_daemon != self.running.lvs_sync_daemon,
                "lvs_sync_daemon changed: it takes effect at the next restart",
            ),
            (
                config.lb_backend != self.running.lb_backend,
                "[lb] backend changed: it takes effect at the next restart",
            ),
            (
                config.metrics != self.running.metrics,
                "[metrics] changed: the listener changes at the next restart",
            ),
        ];
        let mut notes = String::new();
        for (_, note) in restart_only.iter().filter(|(changed, _)| *changed) {
            warn!("{note}");
            let _ = writeln!(notes, "warning: {note}");
        }
        self.running.fingerprint = fingerprint(&config);
        let summary = self.apply(next).await;
        self.use_process_watch(watch, generation);
        let balanced = self.reload_load_balancer(lb_plan).await;
        info!("Reload done: {summary}; {balanced}");
        format!("{notes}reload: {summary}\n{balanced}\n")
    }

    /// Swaps in the new plan: carries running instances over (moving the addresses of masters
    /// whose list changed), stops the others on the old plan, opens and closes sockets,
    /// starts what is new.
    async fn apply(&mut self, mut next: Plan) -> String {
        let now = Instant::now();
        // Unchanged scripts and files keep their tasks and states; the new router's trackers
        // start from them.
        self.trackers.apply(&next.tracking, &mut next.router, false);
        let carried = next.router.carry_over(&self.plan.router);
        for &old in &carried.stopped {
            info!(
                "({}) removed, or now another virtual router: stopping it",
                self.plan.instances[old].name
            );
        }
        // Masters whose addresses changed: (new id, addresses to add, addresses to remove).
        let moves: Vec<(usize, Vec<AddressSpec>, Vec<AddressSpec>)> = (carried.changed.iter())
            .filter(|&&(_, new)| next.router.instance(new).state() == State::Master)
            .map(|&(old, new)| {
                let (before, after) = (
                    &self.plan.instances[old].addresses,
                    &next.instances[new].addresses,
                );
                (new, missing(after, before), missing(before, after))
            })
            .collect();
        // Masters whose routes or rules changed: the old lists, and the new instance.
        let routed: Vec<(InstancePlan, usize)> = (carried.kept.iter())
            .filter(|&&(_, new)| next.router.instance(new).state() == State::Master)
            .filter(|&&(old, new)| {
                let (before, after) = (&self.plan.instances[old], &next.instances[new]);
                before.routes != after.routes || before.rules != after.rules
            })
            .map(|&(old, new)| (self.plan.instances[old].clone(), new))
            .collect();
        let stopping = self.plan.router.stop_instances(now, &carried.stopped);
        self.execute(stopping).await;

        // Sockets: keep those the new plan describes the same way, open the new ones.
        let mut sockets = HashMap::new();
        let mut opened = Vec::new();
        for (key, wanted) in &next.sockets {
            let same = self.plan.sockets.get(key) == Some(wanted);
            match self.sockets.get(key).filter(|_| same) {
                Some(socket) => {
                    sockets.insert(*key, socket.clone());
                }
                None => match super::open_socket(*key, wanted, &next) {
                    Ok(socket) => {
                        sockets.insert(*key, std::sync::Arc::new(socket));
                        opened.push(*key);
                    }
                    Err(e) => error!("{e:#}: instances on {} will not be heard", wanted.ifname),
                },
            }
        }
        for (key, reader) in std::mem::take(&mut self.readers) {
            let kept = sockets.contains_key(&key) && !opened.contains(&key);
            if kept {
                self.readers.insert(key, reader);
            } else {
                reader.abort();
            }
        }
        self.sockets = sockets;
        for key in opened {
            self.spawn_reader(key);
        }
        self.plan = next;
        self.alerts.apply(self.plan.alerts.clone());
        self.drop_log.clear();
        crate::panic_guard::track(self.plan.all_addresses());
        for &new in &carried.started {
            info!(
                "({}) added or changed: starting it",
                self.plan.instances[new].name
            );
        }
        for &(_, new) in &carried.changed {
            info!(
                "({}) settings changed: running on in {} with them",
                self.plan.instances[new].name,
                self.plan.router.instance(new).state()
            );
        }
        for (id, add, remove) in moves {
            self.move_addresses(id, &add, &remove).await;
        }
        for (old, new) in routed {
            self.move_routes(&old, new).await;
        }
        let starting = self.plan.router.start_instances(now, &carried.started);
        self.execute(starting).await;
        // Kept instances follow the new set of trackers (one removed may release a FAULT).
        let retracked = self.plan.router.handle(now, tandem_vrrp::Input::Retrack);
        self.execute(retracked).await;
        let changed = match carried.changed.len() {
            0 => String::new(),
            n => format!(" ({n} with new settings)"),
        };
        format!(
            "{} instance(s) kept{changed}, {} stopped, {} started",
            carried.kept.len(),
            carried.stopped.len(),
            carried.started.len()
        )
    }

    /// A master's address list changed: the removed addresses go, the added ones come and are
    /// announced; the addresses it keeps are not touched.
    async fn move_addresses(&mut self, id: usize, add: &[AddressSpec], remove: &[AddressSpec]) {
        let name = self.plan.instances[id].name.clone();
        for (spec, result) in remove.iter().zip(self.addresses.remove_all(remove).await) {
            match result {
                Ok(()) => info!("({name}) removing {spec}: no longer configured"),
                Err(e) => error!("({name}) {e}"),
            }
        }
        for (spec, result) in add.iter().zip(self.addresses.add_all(add).await) {
            match result {
                Ok(()) => info!("({name}) adding {spec}: newly configured"),
                Err(e) => error!("({name}) {e}"),
            }
        }
        if !add.is_empty() {
            self.announce(id, self.plan.instances[id].garp_repeat, true);
        }
    }

    /// A master's routes or rules changed: those no longer configured go, the new ones
    /// come; the ones it keeps are not touched.
    async fn move_routes(&mut self, old: &InstancePlan, id: usize) {
        let new = &self.plan.instances[id];
        let (remove_routes, remove_rules) = (
            missing(&old.routes, &new.routes),
            missing(&old.rules, &new.rules),
        );
        let (add_routes, add_rules) = (
            missing(&new.routes, &old.routes),
            missing(&new.rules, &old.rules),
        );
        let name = new.name.clone();
        let removed = self
            .addresses
            .apply(false, &[], &remove_routes, &remove_rules)
            .await;
        let added = self
            .addresses
            .apply(true, &[], &add_routes, &add_rules)
            .await;
        for result in removed.into_iter().chain(added) {
            if let Err(e) = result {
                error!("({name}) {e}");
            }
        }
        info!(
            "({name}) routes and rules: {} added, {} removed",
            add_routes.len() + add_rules.len(),
            remove_routes.len() + remove_rules.len()
        );
    }

    /// Re-plans the balanced services: started when they appear, stopped (table removed) when
    /// the last one goes, otherwise unchanged virtual servers keep their checkers' state.
    async fn reload_load_balancer(&mut self, plan: crate::lb::LbPlan) -> String {
        match self.lb.take() {
            Some(lb) if plan.services.is_empty() => {
                lb.stop().await;
                "load balancing: stopped (no virtual_server left)".into()
            }
            Some(lb) => {
                let summary = lb.reload(plan).await;
                self.lb = Some(lb);
                summary
            }
            None => {
                let count = plan.services.len();
                self.lb = crate::lb::LoadBalancer::start(plan);
                format!("load balancing: {count} virtual server(s) started")
            }
        }
    }

    fn files_display(&self) -> String {
        (self.running.files.iter())
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Logs a refused reload's located errors; the running configuration stays.
fn refused(report: &str) -> String {
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        error!("{line}");
    }
    error!("Reload refused: the running configuration stays in force");
    format!("{report}error: reload refused: the running configuration stays in force\n")
}

/// The items of `these` that `those` does not hold, in order: what a reload adds (new list
/// against old) or removes (old against new).
fn missing<T: PartialEq + Clone>(these: &[T], those: &[T]) -> Vec<T> {
    these
        .iter()
        .filter(|x| !those.contains(x))
        .cloned()
        .collect()
}

/// What identifies a loaded configuration: two reads of unchanged files give the same value.
pub fn fingerprint(config: &tandem_config::Config) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{config:?}").hash(&mut hasher);
    hasher.finish()
}
