//! The LVS director half of tandemd: keepalived's `virtual_server` blocks balanced through the
//! nftables backend (table `inet tandem_lb` for NAT, `netdev tandem_lb_dr` for DR), or IPVS
//! when tandem.toml says `[lb] backend = "ipvs"`, their real servers checked by keepalived's
//! checkers. For DR the device that reaches each real server comes from the kernel's route
//! lookup, made before every apply.
//!
//! ```text
//!  daemon loop ──start / reload / stop──▶ balancer task
//!                                          ├─ one checker runner per virtual server
//!                                          │    (tandem_lb::check: Monitor + probes)
//!                                          │        │ SetPool / Notify / Log
//!                                          │        ▼
//!                                          ├─ every 2 s, for least-connection services:
//!                                          │    one filtered conntrack dump per service,
//!                                          │    connections per real server (loads.rs)
//!                                          └─ Nftables: one netlink batch per pool change
//!                                               (or per real change of those counts)
//!                                             (or Ipvs: one request per changed service/server)
//! ```
//!
//! Load balancing runs whatever the VRRP state, as keepalived's checker process does: the
//! backup director checks the same servers and holds the same table, so it balances (and its
//! replicated conntrack entries keep their server) from the moment it takes the addresses.

mod convert;
mod files;
mod loads;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tandem_config::LbBackend;
use tandem_ctnetlink::Conntrack;
use tandem_lb::check::{runner, Action, CheckKind, Destination, Notification, Script};
use tandem_lb::{
    Backend, ForeignChange, Forwarding, Ipvs, Link, Load, Nftables, ServiceKey, TableWatch,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::tracking::{FileSpec, Policy, ScriptUser};
pub use convert::{convert, Conversion, PlannedService};

/// How long a burst of nf_tables changes may pause before the table is put back.
const CHANGE_SETTLE: Duration = Duration::from_millis(20);

/// How long stopping waits for the omega scripts (keepalived waits for them too).
const OMEGA_WAIT: Duration = Duration::from_secs(1);

/// What the load balancer runs: the converted services and who their scripts run as.
pub struct LbPlan {
    /// The virtual servers that are balanced.
    pub services: Vec<PlannedService>,
    /// The script policy of global_defs (script_user, enable_script_security).
    pub policy: Policy,
    /// The `track_file`s some FILE_CHECK follows.
    pub files: Vec<FileSpec>,
    /// The forwarding backend (`[lb] backend`; read at start only).
    pub backend: LbBackend,
}

impl LbPlan {
    /// Converts `config` (its warnings go to the caller through `warnings`).
    pub fn from_config(config: &tandem_config::Config) -> (LbPlan, Vec<tandem_config::Diagnostic>) {
        let Conversion { services, warnings } = convert(config);
        let followed = |name: &str| {
            (services.iter())
                .flat_map(|s| &s.spec.real_servers)
                .flat_map(|r| &r.checkers)
                .any(|c| matches!(&c.kind, CheckKind::File(f) if f.track_file == name))
        };
        let files = (config.track_files.iter())
            .filter(|f| followed(&f.name))
            .map(FileSpec::from_config)
            .collect();
        let plan = LbPlan {
            services,
            policy: Policy::from_global(&config.global),
            files,
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
    /// Where the `track_file` values its FILE_CHECKs follow go.
    files_tx: mpsc::UnboundedSender<(String, i64)>,
    /// Connections per real server of each least-connection service, as last counted:
    /// a pool change programs these.
    loads: HashMap<ServiceKey, BTreeMap<SocketAddr, Load>>,
    /// The counts the schedules in the kernel were planned from: new counts are compared
    /// with these, so a slow drift adds up to a change instead of never being applied.
    applied_loads: HashMap<ServiceKey, BTreeMap<SocketAddr, Load>>,
}

impl Active {
    /// The services to program now: the pool's servers, and the last counts.
    fn services(&self) -> Vec<tandem_lb::Service> {
        self.services_with(&self.loads)
    }

    /// The services with `loads` as their counts.
    fn services_with(
        &self,
        loads: &HashMap<ServiceKey, BTreeMap<SocketAddr, Load>>,
    ) -> Vec<tandem_lb::Service> {
        let mut services = self
            .planned
            .services(self.pool.as_deref().unwrap_or_default());
        for s in &mut services {
            s.loads = loads.get(&s.key).cloned().unwrap_or_default();
        }
        services
    }
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
    /// Route lookups for DR servers (`None`: rtnetlink could not be opened).
    routes: Option<rtnetlink::Handle>,
    /// DR servers already reported as not reachable on-link, and why.
    unreachable: HashMap<IpAddr, String>,
    /// The socket that counts connections; `None` until needed, or after it failed.
    conntrack: Option<Conntrack>,
    /// Counting fails (said once, not every period, until it works again).
    counting_failed: bool,
    /// The `track_file`s FILE_CHECK follows.
    files: files::FileWatchers,
}

impl Balancer {
    fn new(choice: LbBackend) -> Balancer {
        let backend = open_backend(choice);
        let (actions_tx, actions_rx) = mpsc::unbounded_channel();
        let routes = match rtnetlink::new_connection() {
            Ok((connection, handle, _)) => {
                tokio::spawn(connection);
                Some(handle)
            }
            Err(e) => {
                error!("load balancing: cannot open rtnetlink for DR route lookups: {e}");
                None
            }
        };
        Balancer {
            routes,
            unreachable: HashMap::new(),
            backend,
            active: Vec::new(),
            next_id: 0,
            actions_tx,
            actions_rx,
            users: HashMap::new(),
            dirty: false,
            conntrack: None,
            counting_failed: false,
            files: files::FileWatchers::new(),
        }
    }

    async fn run(mut self, plan: LbPlan, mut commands: mpsc::UnboundedReceiver<Command>) {
        info!(
            "load balancing: starting {} virtual server(s) (runs in every VRRP state)",
            plan.services.len()
        );
        self.secure_scripts(&plan);
        let _ = self.files.follow(&plan.files);
        for planned in plan.services {
            self.start_one(planned);
        }
        let mut watch = self.watch_tables();
        let mut refresh = tokio::time::interval(loads::REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changes = async { watch.as_mut()?.next().await.ok() }, if watch.is_some() => {
                    self.on_table_changes(changes, watch.as_mut()).await;
                }
                (name, value) = self.files.changed() => {
                    for a in &self.active {
                        let _ = a.files_tx.send((name.clone(), value));
                    }
                }
                _ = refresh.tick(), if self.counts_connections() => {
                    self.refresh_loads().await;
                    self.apply_if_ready().await;
                }
                Some((id, action)) = self.actions_rx.recv() => {
                    self.on_action(id, action).await;
                    // What is already queued belongs to the same change (a runner's start).
                    while let Ok((id, action)) = self.actions_rx.try_recv() {
                        self.on_action(id, action).await;
                    }
                    self.apply_if_ready().await;
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

    /// Subscribes to nf_tables changes, to notice another program removing or editing the
    /// table (a firewall reload's `flush ruleset`); without it that goes unnoticed.
    fn watch_tables(&self) -> Option<TableWatch> {
        let port = self.backend.as_ref()?.nf_tables_port()?;
        match TableWatch::open(port) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!(
                    "load balancing: cannot watch nf_tables changes ({e}): a flush of the \
                     ruleset by another program will not be noticed until the next reload"
                );
                None
            }
        }
    }

    /// Another program changed nf_tables (`None`: the notifications overran the socket, so
    /// assume it did). When it touched tandem's table, the table is put back whole, once
    /// the burst is over (a `flush ruleset` reports every object of the firewall).
    async fn on_table_changes(
        &mut self,
        first: Option<Vec<ForeignChange>>,
        mut watch: Option<&mut TableWatch>,
    ) {
        let mut changes = first;
        if let Some(watch) = watch.as_mut() {
            while let Ok(more) = tokio::time::timeout(CHANGE_SETTLE, watch.next()).await {
                match (changes.as_mut(), more) {
                    (Some(all), Ok(more)) => all.extend(more),
                    _ => changes = None,
                }
            }
        }
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        let ours: Vec<&ForeignChange> = match &changes {
            Some(all) => all
                .iter()
                .filter(|c| backend.owns_table(c.family, &c.table))
                .collect(),
            None => {
                warn!("load balancing: nf_tables change notifications were lost: re-applying the table");
                Vec::new()
            }
        };
        if changes.is_some() && ours.is_empty() {
            return;
        }
        if let Some(first) = ours.first() {
            warn!(
                "load balancing: another program changed table {} ({} by netlink port {}, {} \
                 change(s)): putting the table back",
                first.table,
                first.what,
                first.port,
                ours.len()
            );
        }
        backend.forget();
        self.dirty = true;
        self.apply_if_ready().await;
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
        let (files_tx, updates) = mpsc::unbounded_channel();
        let files = runner::FileValues {
            initial: self.files.values().clone(),
            updates,
        };
        let running = runner::start(specs, probes, rand::random(), files, tx);
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
            files_tx,
            loads: HashMap::new(),
            applied_loads: HashMap::new(),
        });
    }

    /// Whether some running service spreads by connection counts.
    fn counts_connections(&self) -> bool {
        (self.active.iter())
            .any(|a| (a.planned.templates.iter()).any(tandem_lb::plan::follows_connection_counts))
    }

    /// Counts the connections of every least-connection service (one conntrack dump each,
    /// filtered by the kernel) and marks the pools dirty when a schedule would really
    /// change.
    async fn refresh_loads(&mut self) {
        let mut wanted: Vec<(usize, tandem_lb::Service)> = Vec::new();
        for (i, a) in self.active.iter().enumerate() {
            if a.pool.is_none() {
                continue;
            }
            let counted = a.services_with(&a.applied_loads).into_iter();
            wanted.extend(
                counted
                    .filter(tandem_lb::plan::follows_connection_counts)
                    .map(|s| (i, s)),
            );
        }
        if wanted.is_empty() {
            return;
        }
        // One dump per distinct query (services of one mark family share theirs).
        let mut queries: Vec<loads::Query> = Vec::new();
        let which: Vec<usize> = (wanted.iter())
            .map(|(_, s)| {
                let q = loads::query(&s.key);
                queries.iter().position(|&k| k == q).unwrap_or_else(|| {
                    queries.push(q);
                    queries.len() - 1
                })
            })
            .collect();
        let conntrack = self.conntrack.take();
        let dumped = tokio::task::spawn_blocking(move || {
            let mut ct = match conntrack {
                Some(ct) => ct,
                None => Conntrack::open()?,
            };
            let mut flows = Vec::with_capacity(queries.len());
            for q in &queries {
                flows.push(match q {
                    loads::Query::Filtered(f) => ct.dump_matching(f)?,
                    loads::Query::Family(family) => ct.dump(Some(*family))?,
                });
            }
            Ok::<_, tandem_ctnetlink::Error>((ct, flows))
        })
        .await;
        let failure = match dumped {
            Ok(Ok((ct, flows))) => {
                self.conntrack = Some(ct);
                if std::mem::take(&mut self.counting_failed) {
                    info!("load balancing: counting connections works again");
                }
                Ok(flows)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let flows = match failure {
            Ok(flows) => flows,
            Err(e) => {
                if !std::mem::replace(&mut self.counting_failed, true) {
                    error!(
                        "load balancing: counting connections for the least-connection \
                         schedulers: {e}; they keep their last weights (retried every {:?})",
                        loads::REFRESH
                    );
                }
                return;
            }
        };
        let mut changed = false;
        for ((i, applied), q) in wanted.into_iter().zip(which) {
            let mut next = applied.clone();
            next.loads = loads::count(&flows[q], &applied.servers);
            self.active[i].loads.insert(next.key, next.loads.clone());
            if !loads::worth_applying(&applied, &next) {
                continue;
            }
            info!(
                "load balancing: {}: connections per server (active/inactive) and the \
                 weights new connections now follow: {}",
                convert::key_name(&next.key),
                loads::describe(&next)
            );
            changed = true;
        }
        self.dirty |= changed;
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
    async fn apply_if_ready(&mut self) {
        if !self.dirty || self.active.iter().any(|a| a.pool.is_none()) {
            return;
        }
        self.dirty = false;
        if self.backend.is_none() {
            return;
        }
        let mut services: Vec<tandem_lb::Service> =
            self.active.iter().flat_map(Active::services).collect();
        for service in &mut services {
            if service.forwarding == Forwarding::DirectRouting {
                self.find_egress(service).await;
            }
        }
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        match backend.apply(&services) {
            Ok(()) => {
                debug!("load balancing: {} service(s) applied", services.len());
                for s in services.iter().filter(|s| !s.loads.is_empty()) {
                    debug!(
                        "load balancing: {}: new connections follow {}",
                        convert::key_name(&s.key),
                        loads::describe(s)
                    );
                }
                for a in &mut self.active {
                    a.applied_loads = a.loads.clone();
                }
            }
            Err(e) => error!("load balancing: applying the pools: {e} (the previous pools stay)"),
        }
    }

    /// Fills a DR service's egress devices from the kernel's routes; a server that is not
    /// on-link cannot be reached by its MAC, so it is left out (and said so once).
    async fn find_egress(&mut self, service: &mut tandem_lb::Service) {
        let Some(handle) = &self.routes else {
            service.servers.clear();
            service.sorry = None;
            return;
        };
        let addresses: HashSet<IpAddr> = (service.servers.iter())
            .chain(service.sorry.iter())
            .map(|s| s.addr)
            .collect();
        let mut lost = Vec::new();
        for addr in addresses {
            let why = match tandem_sys::next_hop(handle, addr).await {
                Ok(hop) => match (hop.kind, hop.gateway, hop.oif) {
                    (tandem_sys::route_type::UNICAST, None, Some((index, name))) => {
                        service.dr.egress.push((addr, Link { name, index }));
                        self.unreachable.remove(&addr);
                        continue;
                    }
                    (_, Some(gateway), _) => format!(
                        "it is reached through gateway {gateway}, not on-link: direct routing \
                         needs the real server on a segment of the director"
                    ),
                    (kind, None, _) => format!("its route is not a unicast route (type {kind})"),
                },
                Err(e) => e.to_string(),
            };
            lost.push(addr);
            if self.unreachable.get(&addr) != Some(&why) {
                error!(
                    "load balancing: {} (DR): real server {addr} is left out: {why}",
                    convert::key_name(&service.key)
                );
                self.unreachable.insert(addr, why);
            }
        }
        service.servers.retain(|s| !lost.contains(&s.addr));
        if service.sorry.is_some_and(|s| lost.contains(&s.addr)) {
            service.sorry = None;
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
        // Runners kept through the reload learn the values of files read anew.
        for (name, value) in self.files.follow(&plan.files) {
            for a in &self.active {
                let _ = a.files_tx.send((name.clone(), value));
            }
        }
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
        self.apply_if_ready().await;
        format!(
            "load balancing: {kept} virtual server(s) kept with their checker state, \
             {started} (re)started, {removed} removed"
        )
    }

    async fn stop(&mut self) {
        self.files.stop();
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
            let tables = backend.holdings();
            match backend.clear() {
                Ok(()) => info!("load balancing: {tables} removed"),
                Err(e) => error!("load balancing: removing {tables}: {e}"),
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
