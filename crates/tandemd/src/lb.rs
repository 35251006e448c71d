//! The LVS director half of tandemd: keepalived's `virtual_server` blocks balanced through the
//! nftables backend (table `inet tandem_lb`), or IPVS when tandem.toml says
//! `[lb] backend = "ipvs"`, their real servers checked by keepalived's checkers.
//!
//! ```text
//!  daemon loop ──start / reload / stop──▶ balancer task
//!                                          ├─ one checker runner per virtual server
//!                                          │    (tandem_lb::check: Monitor + probes)
//!                                          │        │ SetPool / Notify / Log
//!                                          │        ▼
//!                                          └─ Nftables: one netlink batch per pool change
//!                                             (or Ipvs: one request per changed service/server)
//! ```
//!
//! Load balancing runs whatever the VRRP state, as keepalived's checker process does: the
//! backup director checks the same servers and holds the same table, so it balances (and its
//! replicated conntrack entries keep their server) from the moment it takes the addresses.

mod convert;

use std::collections::HashMap;
use std::time::Duration;

use tandem_config::LbBackend;
use tandem_lb::check::{runner, Action, Destination, Notification, Script};
use tandem_lb::{Backend, Ipvs, Nftables};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::tracking::{Policy, ScriptUser};
pub use convert::{convert, Conversion, PlannedService};

/// How long stopping waits for the omega scripts (keepalived waits for them too).
const OMEGA_WAIT: Duration = Duration::from_secs(1);

/// What the load balancer runs: the converted services and who their scripts run as.
pub struct LbPlan {
    /// The virtual servers that are balanced.
    pub services: Vec<PlannedService>,
    /// The script policy of global_defs (script_user, enable_script_security).
    pub policy: Policy,
    /// The forwarding backend (`[lb] backend`; read at start only).
    pub backend: LbBackend,
}

impl LbPlan {
    /// Converts `config` (its warnings go to the caller through `warnings`).
    pub fn from_config(config: &tandem_config::Config) -> (LbPlan, Vec<tandem_config::Diagnostic>) {
        let Conversion { services, warnings } = convert(config);
        let plan = LbPlan {
            services,
            policy: Policy::from_global(&config.global),
            backend: config.lb_backend,
        };
        (plan, warnings)
    }
}

enum Command {
    Reload(LbPlan, oneshot::Sender<String>),
    Stop(oneshot::Sender<()>),
}

/// Handle on the balancer task.
pub struct LoadBalancer {
    commands: mpsc::UnboundedSender<Command>,
}

impl LoadBalancer {
    /// Starts checking and balancing `plan`'s services; `None` when there are none (no table
    /// is created then).
    pub fn start(plan: LbPlan) -> Option<LoadBalancer> {
        if plan.services.is_empty() {
            return None;
        }
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(Balancer::new(plan.backend).run(plan, rx));
        Some(LoadBalancer { commands })
    }

    /// Re-plans: unchanged virtual servers keep their checkers' state; the answer says what
    /// was kept, restarted and removed.
    pub async fn reload(&self, plan: LbPlan) -> String {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Reload(plan, tx)).is_err() {
            return "load balancing: not running".into();
        }
        rx.await
            .unwrap_or_else(|_| "load balancing: not running".into())
    }

    /// Stops the checkers (running omega's scripts) and removes tandem's table.
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// One virtual server being checked.
struct Active {
    /// Tags its actions: actions of a stopped runner are recognised and dropped.
    id: u64,
    planned: PlannedService,
    /// The pool last reported, `None` until the first report.
    pool: Option<Vec<Destination>>,
    running: runner::Running,
    forwarder: tokio::task::JoinHandle<()>,
}

struct Balancer {
    backend: Option<Box<dyn Backend + Send + Sync>>,
    active: Vec<Active>,
    next_id: u64,
    actions_tx: mpsc::UnboundedSender<(u64, Action)>,
    actions_rx: mpsc::UnboundedReceiver<(u64, Action)>,
    /// Who each script runs as, by command line (`None`: refused by script security).
    users: HashMap<String, Option<ScriptUser>>,
    /// A pool changed since the last apply.
    dirty: bool,
}

impl Balancer {
    fn new(choice: LbBackend) -> Balancer {
        let backend = open_backend(choice);
        let (actions_tx, actions_rx) = mpsc::unbounded_channel();
        Balancer {
            backend,
            active: Vec::new(),
            next_id: 0,
            actions_tx,
            actions_rx,
            users: HashMap::new(),
            dirty: false,
        }
    }

    async fn run(mut self, plan: LbPlan, mut commands: mpsc::UnboundedReceiver<Command>) {
        info!(
            "load balancing: starting {} virtual server(s) (runs in every VRRP state)",
            plan.services.len()
        );
        self.secure_scripts(&plan);
        for planned in plan.services {
            self.start_one(planned);
        }
        loop {
            tokio::select! {
                Some((id, action)) = self.actions_rx.recv() => {
                    self.on_action(id, action).await;
                    // What is already queued belongs to the same change (a runner's start).
                    while let Ok((id, action)) = self.actions_rx.try_recv() {
                        self.on_action(id, action).await;
                    }
                    self.apply_if_ready();
                }
                command = commands.recv() => match command {
                    Some(Command::Reload(plan, answer)) => {
                        let summary = self.reload(plan).await;
                        let _ = answer.send(summary);
                    }
                    Some(Command::Stop(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                }
            }
        }
    }

    /// Starts the checker runner of one virtual server.
    fn start_one(&mut self, planned: PlannedService) {
        let (specs, probes, skipped) = runner::prepare(vec![planned.spec.clone()]);
        for s in skipped {
            warn!(
                "load balancing: {}: a checker of real server {} cannot run: {}",
                s.vs, s.rs, s.error
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let running = runner::start(specs, probes, rand::random(), tx);
        let shared = self.actions_tx.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(action) = rx.recv().await {
                if shared.send((id, action)).is_err() {
                    return;
                }
            }
        });
        self.active.push(Active {
            id,
            planned,
            pool: None,
            running,
            forwarder,
        });
    }

    async fn on_action(&mut self, id: u64, action: Action) {
        let Some(active) = self.active.iter_mut().find(|a| a.id == id) else {
            // A runner stopped by a reload: its last words do not apply any more.
            return;
        };
        match action {
            Action::SetPool { destinations, .. } => {
                debug!(
                    "load balancing: {}: pool of {} server(s)",
                    active.planned.spec.name,
                    destinations.len()
                );
                active.pool = Some(destinations);
                self.dirty = true;
            }
            Action::Notify(n) => self.notify(&n).await,
            Action::Log(line) => info!("{line}"),
        }
    }

    /// Applies every pool in one batch, once every runner has reported its first pool (so the
    /// start, and a reload, is one change too).
    fn apply_if_ready(&mut self) {
        if !self.dirty || self.active.iter().any(|a| a.pool.is_none()) {
            return;
        }
        self.dirty = false;
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        let services: Vec<tandem_lb::Service> = (self.active.iter())
            .flat_map(|a| a.planned.services(a.pool.as_deref().unwrap_or_default()))
            .collect();
        match backend.apply(&services) {
            Ok(()) => debug!("load balancing: {} service(s) applied", services.len()),
            Err(e) => error!("load balancing: applying the pools: {e} (the previous pools stay)"),
        }
    }

    /// Runs a notification's script as the script policy says (keepalived's arguments: the
    /// configured command line, nothing added).
    async fn notify(&self, n: &Notification) {
        let Some(script) = &n.script else {
            return;
        };
        let line = command_line(script);
        let Some(Some(user)) = self.users.get(&line) else {
            return;
        };
        let child = crate::notify::command(&line, user, &[]).spawn();
        match child {
            Ok(mut child) if n.stopping => {
                if tokio::time::timeout(OMEGA_WAIT, child.wait())
                    .await
                    .is_err()
                {
                    warn!("load balancing: script `{line}` still runs after {OMEGA_WAIT:?}");
                }
            }
            Ok(child) => crate::notify::reap(child, line),
            Err(e) => warn!("load balancing: starting script `{line}`: {e}"),
        }
    }

    /// Resolves who each notify/quorum script runs as, refusing (with keepalived's words)
    /// those script security refuses.
    fn secure_scripts(&mut self, plan: &LbPlan) {
        let scripts = (plan.services.iter()).flat_map(|s| {
            let vs = [&s.spec.quorum_up, &s.spec.quorum_down].into_iter();
            let rs = (s.spec.real_servers.iter()).flat_map(|r| [&r.notify_up, &r.notify_down]);
            vs.chain(rs).flatten()
        });
        for script in scripts {
            let line = command_line(script);
            if self.users.contains_key(&line) {
                continue;
            }
            let user = match plan.policy.user_for(script.user.as_deref(), None) {
                Ok(user) => match plan.policy.check(&line, &user) {
                    Ok(None) => Some(user),
                    Ok(Some(warning)) => {
                        warn!("load balancing: {warning}");
                        Some(user)
                    }
                    Err(refusal) => {
                        error!("load balancing: {refusal}");
                        None
                    }
                },
                Err(e) => {
                    error!("load balancing: script `{line}` will not run: {e}");
                    None
                }
            };
            self.users.insert(line, user);
        }
    }

    async fn reload(&mut self, plan: LbPlan) -> String {
        self.users.clear();
        self.secure_scripts(&plan);
        let mut old = std::mem::take(&mut self.active);
        let (mut kept, mut started) = (0, 0);
        for planned in plan.services {
            match old.iter().position(|a| a.planned == planned) {
                Some(i) => {
                    self.active.push(old.remove(i));
                    kept += 1;
                }
                None => {
                    self.start_one(planned);
                    started += 1;
                }
            }
        }
        let removed = old.len();
        for gone in old {
            info!(
                "load balancing: {}: removed or changed, its checkers stop",
                gone.planned.spec.name
            );
            gone.running.stop().await;
            let _ = gone.forwarder.await;
        }
        if started > 0 {
            info!("load balancing: {started} new or changed virtual server(s): their checkers restart from keepalived's initial state");
        }
        self.dirty = true;
        self.apply_if_ready();
        format!(
            "load balancing: {kept} virtual server(s) kept with their checker state, \
             {started} (re)started, {removed} removed"
        )
    }

    async fn stop(&mut self) {
        let stopping = std::mem::take(&mut self.active);
        let ids: Vec<u64> = stopping.iter().map(|a| a.id).collect();
        for active in stopping {
            active.running.stop().await;
            let _ = active.forwarder.await;
        }
        // Their shutdown actions (omega's scripts) are queued now: run them.
        while let Ok((id, action)) = self.actions_rx.try_recv() {
            match action {
                Action::Notify(n) if ids.contains(&id) => self.notify(&n).await,
                Action::Log(line) if ids.contains(&id) => info!("{line}"),
                _ => {}
            }
        }
        if let Some(backend) = self.backend.as_mut() {
            match backend.clear() {
                Ok(()) => info!("load balancing: tandem's services removed"),
                Err(e) => error!("load balancing: removing tandem's services: {e}"),
            }
        }
    }
}

/// Opens the chosen backend: nftables unless tandem.toml asks for IPVS. A backend that
/// cannot open leaves the checkers running with nothing balanced (said in the log).
fn open_backend(choice: LbBackend) -> Option<Box<dyn Backend + Send + Sync>> {
    let opened: Result<Box<dyn Backend + Send + Sync>, _> = match choice {
        LbBackend::Auto | LbBackend::Nftables => Nftables::open().map(|b| Box::new(b) as _),
        LbBackend::Ipvs => Ipvs::open().map(|b| Box::new(b) as _),
    };
    match opened {
        Ok(backend) => {
            let name = if choice == LbBackend::Ipvs {
                "IPVS".to_string()
            } else {
                format!("nftables (table {})", tandem_lb::TABLE)
            };
            info!("load balancing: forwarding through {name}");
            Some(backend)
        }
        Err(e) => {
            error!("load balancing: cannot open the forwarding backend: {e}; real servers are checked but nothing is balanced");
            None
        }
    }
}

fn command_line(script: &Script) -> String {
    script.argv.join(" ")
}
