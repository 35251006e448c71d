//! The async side: runs each checker's [`Probe`] when the [`Monitor`]
//! says it is due, feeds the outcomes back, and hands the resulting
//! [`Action`]s to the daemon over a channel.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::action::{Action, CheckerId, Notification};
use super::monitor::Monitor;
use super::probe::{Probe, ProbeError};
use super::spec::VirtualServerSpec;

/// A checker left out because it cannot run, with where it was.
#[derive(Debug)]
pub struct Skipped {
    /// Virtual server name.
    pub vs: String,
    /// Real server address.
    pub rs: std::net::SocketAddr,
    /// Why.
    pub error: ProbeError,
}

/// Builds the probes, dropping (and reporting) checkers that cannot run,
/// as keepalived drops a checker it cannot set up.
pub fn prepare(
    mut specs: Vec<VirtualServerSpec>,
) -> (
    Vec<VirtualServerSpec>,
    HashMap<CheckerId, Arc<Probe>>,
    Vec<Skipped>,
) {
    let mut probes = HashMap::new();
    let mut skipped = Vec::new();
    for (vs_i, vs) in specs.iter_mut().enumerate() {
        let delay_loop = vs
            .real_servers
            .iter()
            .flat_map(|r| &r.checkers)
            .map(|c| c.timing.delay_loop)
            .next()
            .unwrap_or(super::spec::DEFAULT_DELAY_LOOP);
        for (rs_i, rs) in vs.real_servers.iter_mut().enumerate() {
            let mut kept = Vec::new();
            for checker in rs.checkers.drain(..) {
                if matches!(checker.kind, super::spec::CheckKind::File(_)) {
                    // No probe: the file's values drive it.
                    kept.push(checker);
                    continue;
                }
                match Probe::new(&checker, None, delay_loop) {
                    Ok(probe) => {
                        let id = CheckerId {
                            vs: vs_i,
                            rs: rs_i,
                            check: kept.len(),
                        };
                        probes.insert(id, Arc::new(probe));
                        kept.push(checker);
                    }
                    Err(error) => skipped.push(Skipped {
                        vs: vs.name.clone(),
                        rs: rs.addr,
                        error,
                    }),
                }
            }
            rs.checkers = kept;
        }
    }
    (specs, probes, skipped)
}

/// Handle on a running checker task.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the checks; the task sends the shutdown actions (omega) and ends.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// The `track_file` values FILE_CHECK follows: those read at start, then each change.
pub struct FileValues {
    /// Value of each track_file (by name) when the checks start; a file not listed reads 0.
    pub initial: HashMap<String, i64>,
    /// `(name, value)` each time a file's number changes.
    pub updates: mpsc::UnboundedReceiver<(String, i64)>,
}

impl FileValues {
    /// No file followed.
    pub fn none() -> FileValues {
        FileValues {
            initial: HashMap::new(),
            updates: mpsc::unbounded_channel().1,
        }
    }
}

/// Starts checking `specs` (already [`prepare`]d) on the current tokio
/// runtime; actions arrive on `actions`, the initial pools first.
pub fn start(
    specs: Vec<VirtualServerSpec>,
    probes: HashMap<CheckerId, Arc<Probe>>,
    seed: u64,
    files: FileValues,
    actions: mpsc::UnboundedSender<Action>,
) -> Running {
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(specs, probes, seed, files, actions, stop_rx));
    Running {
        stop: Some(stop_tx),
        task,
    }
}

/// Probes due within this much of now start together: a thousand checkers
/// spread over a one-second delay loop then wake the thread about a hundred
/// times a second instead of a thousand, at the price of starting a probe
/// at most this much early.
const BATCH: Duration = Duration::from_millis(10);

async fn run(
    specs: Vec<VirtualServerSpec>,
    probes: HashMap<CheckerId, Arc<Probe>>,
    seed: u64,
    mut files: FileValues,
    actions: mpsc::UnboundedSender<Action>,
    mut stop: oneshot::Receiver<()>,
) {
    let (mut monitor, initial) = Monitor::with_files(specs, Instant::now(), seed, &files.initial);
    send_all(&actions, initial);
    // The probes in flight run inside this task rather than one spawned
    // task each: at a thousand checks a second the spawns, their result
    // channel and a fresh timer per loop were a sizeable part of the CPU.
    let mut in_flight = FuturesUnordered::new();
    let idle = || Instant::now() + Duration::from_secs(3600);
    let mut deadline = monitor.next_deadline().unwrap_or_else(idle);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(sleep);
    loop {
        for id in monitor.due(Instant::now() + BATCH) {
            let Some(probe) = probes.get(&id).cloned() else {
                continue;
            };
            in_flight.push(async move { (id, probe.run().await) });
        }
        let next = monitor.next_deadline().unwrap_or_else(idle);
        if next != deadline {
            deadline = next;
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
        tokio::select! {
            _ = &mut sleep => {}
            Some((id, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                send_all(&actions, monitor.on_outcome(Instant::now(), id, outcome));
            }
            Some((name, value)) = files.updates.recv() => {
                send_all(&actions, monitor.on_file_value(&name, value));
            }
            _ = &mut stop => {
                send_all(&actions, monitor.stop());
                return;
            }
        }
    }
}

fn send_all(tx: &mpsc::UnboundedSender<Action>, actions: Vec<Action>) {
    for action in actions {
        let _ = tx.send(action);
    }
}

/// Runs a notification's script as keepalived does: the configured argv,
/// no shell and no added argument; while stopping, waits for it up to one
/// second. Returns the child's exit status when it was waited for.
pub async fn run_notify(
    notification: &Notification,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let Some(script) = &notification.script else {
        return Ok(None);
    };
    let Some((program, args)) = script.argv.split_first() else {
        return Ok(None);
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()?;
    if notification.stopping {
        return match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
            Ok(status) => status.map(Some),
            Err(_) => Ok(None),
        };
    }
    // Reap it in the background.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(None)
}
