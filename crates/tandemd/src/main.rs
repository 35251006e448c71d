//! tandemd: VRRP (and, later, conntrack replication) for a pair of Linux gateways, configured
//! with the keepalived.conf the operator already has.

mod alerts;
mod announce;
mod conntrack;
mod control;
mod daemon;
mod deadline;
mod dump;
mod lb;
mod log_limit;
mod logging;
mod lvs_syncd;
mod metrics;
mod notify;
mod panic_guard;
mod plan;
mod signals;
mod single;
mod snapshot;
mod status;
mod track_process;
mod tracking;
mod vmacs;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use tandemd_cli::{Args, DEFAULT_FILES};
use tokio::sync::mpsc;
use tracing::{info, warn};

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.files.is_empty() {
        // keepalived.conf is required (its absence is reported); tandem.toml only if present.
        args.files = (DEFAULT_FILES.iter())
            .filter(|(path, required)| *required || std::path::Path::new(path).exists())
            .map(|(path, _)| PathBuf::from(path))
            .collect();
    }
    // Notify scripts that call `tandemctl` (or `conntrackd` linked to it) find this daemon.
    std::env::set_var("TANDEM_CONTROL", &args.control);
    let filter = std::env::var("TANDEM_LOG").unwrap_or_else(|_| args.log.clone());
    if let Err(e) = logging::init(&filter, args.log_format, args.log_target) {
        eprintln!("tandemd: {e}");
        return ExitCode::FAILURE;
    }
    // Parsed on a short-lived thread: the parser's temporaries (tokens, statement trees, a
    // large file's text) and the parsed model then sit in that thread's allocator arena, which
    // goes back to the system once the model is dropped after the plan is built, instead of
    // leaving a fragmented high-water mark in the daemon's own heap for its whole life.
    let loaded = std::thread::scope(|s| {
        s.spawn(|| load(&args.files, args.config_id.as_deref()))
            .join()
    });
    let config = match loaded.unwrap_or_else(|panic| std::panic::resume_unwind(panic)) {
        Ok(config) => config,
        Err(report) => {
            eprint!("{report}");
            return ExitCode::FAILURE;
        }
    };
    let (lb_plan, lb_warnings) = lb::LbPlan::from_config(&config);
    if args.check {
        let missing = tandem_config::check_interfaces(&config, tandem_sys::interface_exists);
        for w in config.warnings.iter().chain(&lb_warnings).chain(&missing) {
            eprintln!("{}", w.render());
        }
        println!(
            "configuration OK ({} warning(s)): {} instance(s), {} sync group(s), conntrack replication {}",
            config.warnings.len() + lb_warnings.len() + missing.len(),
            config.instances.len(),
            config.sync_groups.len(),
            match &config.sync {
                Some(sync) if sync.key.is_some() => "configured, authenticated",
                Some(_) => "configured, UNAUTHENTICATED",
                None => "off",
            }
        );
        return ExitCode::SUCCESS;
    }
    for w in config.warnings.iter().chain(&lb_warnings) {
        warn!("{}", w.render());
    }
    if config.sync.as_ref().is_some_and(|s| s.key.is_none()) {
        warn!(
            "conntrack replication runs WITHOUT authentication: anyone who reaches the sync \
             port can insert or delete flows in this node's kernel table"
        );
    }
    // Before anything is touched: a second daemon on this node stops here.
    let _node = match single::NodeLock::acquire(&args.control, args.pid_file.as_deref()) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    panic_guard::install();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, config, lb_plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration; the error is the rendered diagnostics.
pub fn load(
    files: &[PathBuf],
    config_id: Option<&str>,
) -> std::result::Result<tandem_config::Config, String> {
    if files.is_empty() {
        return Err("error: no configuration file given\n".into());
    }
    let options = tandem_config::LoadOptions {
        config_id: config_id.map(str::to_owned),
    };
    tandem_config::load_files_with(files, &options).map_err(|e| render_error(&e))
}

/// The errors, then the warnings (an undefined `$NAME` warned about often explains the error
/// that follows it), then how many of each.
fn render_error(error: &tandem_config::ConfigError) -> String {
    let (errors, warnings) = (error.diagnostics(), error.warnings());
    if errors.is_empty() {
        return format!("error: {error}\n");
    }
    let mut out: String = (errors.iter().chain(warnings))
        .map(|d| d.render() + "\n")
        .collect();
    out.push_str(&format!(
        "{} error(s), {} warning(s): the configuration is refused\n",
        errors.len(),
        warnings.len()
    ));
    out
}

async fn run(args: &Args, config: tandem_config::Config, lb_plan: lb::LbPlan) -> Result<()> {
    let (handle, _connection) = tandem_sys::connect().await?;
    let vmacs = vmacs::create(&handle, &config).await?;
    let result = run_with(args, config, lb_plan, handle.clone()).await;
    vmacs::remove(&handle, vmacs).await;
    result
}

/// [`run`] once the `use_vmac` macvlans exist.
async fn run_with(
    args: &Args,
    config: tandem_config::Config,
    lb_plan: lb::LbPlan,
    handle: rtnetlink::Handle,
) -> Result<()> {
    let interfaces = plan::lookup_interfaces(&handle, &config).await?;
    let plan = plan::build(&config, &interfaces)?;
    panic_guard::track(plan.all_addresses());
    let replication = match &config.sync {
        Some(sync) => {
            let mut own = conntrack::host_addresses();
            own.extend(config.instances.iter().flat_map(|i| {
                i.virtual_addresses
                    .iter()
                    .chain(&i.excluded_addresses)
                    .map(|a| a.address)
            }));
            let (handle, notices) =
                conntrack::start(sync, own).context("starting conntrack replication")?;
            Some(daemon::Replication {
                handle,
                builtin: sync.builtin_failover,
                commit_wait: sync.commit_wait,
                preempt_wait: sync.preempt_wait,
                notices: Some(notices),
            })
        }
        None => None,
    };
    let instance_count = config.instances.len();
    let fingerprint = daemon::fingerprint(&config);
    let running = daemon::Running {
        fingerprint,
        files: args.files.clone(),
        config_id: args.config_id.clone(),
        sync: config.sync.clone(),
        metrics: config.metrics.clone(),
        lvs_sync_daemon: config.global.lvs_sync_daemon.clone(),
        lb_backend: config.lb_backend,
        dumps: daemon::DumpPaths {
            data: args.data_file.clone(),
            stats: args.stats_file.clone(),
            json: args.json_file.clone(),
        },
    };
    // Everything the daemon needs is in the plan now.
    drop(config);
    release_free_memory();
    let signals = signals::listen()?;
    let links = tandem_sys::watch_links().await?;
    let (control_tx, control_rx) = mpsc::channel(16);
    if let Some(m) = &running.metrics {
        metrics::server::spawn(m.listen, control_tx.clone())
            .await
            .with_context(|| {
                let at = tracking::located(&m.location);
                format!("{at}: [metrics] listen {}", m.listen)
            })?;
    }
    let group = control::control_group(args.control_group.as_deref())?;
    let _control = control::listen(&args.control, group, control_tx)?;
    let mut daemon = daemon::Daemon::new(plan, handle, replication, running)?;
    // The director's half runs in every VRRP state (see lb.rs).
    daemon.set_load_balancer(lb::LoadBalancer::start(lb_plan));
    // IPVS's sync daemon follows one instance's state (see lvs_syncd.rs).
    let syncd = lvs_syncd::SyncDaemonDriver::start(daemon.running().lvs_sync_daemon.as_ref());
    daemon.set_sync_daemon(syncd);
    info!(
        "Starting tandemd {} with {} instance(s)",
        env!("CARGO_PKG_VERSION"),
        instance_count
    );
    daemon.run(links, control_rx, signals).await
}

/// Hands the memory the configuration parser freed back to the system. glibc keeps freed
/// memory of the parse thread's arena resident (8 MiB of a 1,000-instance configuration,
/// more than the daemon's whole live heap) until asked to trim.
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers
    // from us and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
