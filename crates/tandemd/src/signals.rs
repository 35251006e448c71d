//! Every catchable signal has a meaning: keepalived's (HUP reload, USR1 data dump, USR2 stats
//! dump, SIGRTMIN+2 JSON dump), terminal stops ignored, and everything whose default would kill
//! the process ends it the way SIGTERM does, so no signal leaves addresses behind on a node
//! that no longer advertises.

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::warn;

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
    /// Stop gracefully (priority 0, addresses removed); the signal's name for the log.
    Stop(&'static str),
    /// Re-read every configuration file (SIGHUP).
    Reload,
    /// Write the data dump (SIGUSR1).
    DumpData,
    /// Write the statistics dump (SIGUSR2).
    DumpStats,
    /// Write the JSON dump (SIGRTMIN+2, keepalived's `--signum=JSON`).
    DumpJson,
    /// Write the statistics dump, then clear the counters (SIGRTMAX, `--signum=STATS_CLEAR`).
    DumpStatsAndClear,
}

/// Signals whose default action ends the process: they stop the daemon gracefully instead.
/// SIGILL, SIGFPE, SIGSEGV, SIGBUS, SIGTRAP and SIGSYS are left alone: they report a fault in
/// the process itself and cannot be returned from.
const STOPPING: &[(libc::c_int, &str)] = &[
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGIO, "SIGIO"),
];

/// Terminal stop signals: a stopped master keeps its addresses but sends no adverts, so the
/// peer takes them too. They are refused.
const IGNORED: &[(libc::c_int, &str)] = &[
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
];

/// Installs the handlers; the receiver yields what each signal asks for, in arrival order.
pub fn listen() -> Result<mpsc::Receiver<Signalled>> {
    let (tx, rx) = mpsc::channel(16);
    let mut handled: Vec<(libc::c_int, Option<Signalled>, &'static str)> = vec![
        (libc::SIGHUP, Some(Signalled::Reload), "SIGHUP"),
        (libc::SIGUSR1, Some(Signalled::DumpData), "SIGUSR1"),
        (libc::SIGUSR2, Some(Signalled::DumpStats), "SIGUSR2"),
    ];
    handled.extend(
        STOPPING
            .iter()
            .map(|&(n, name)| (n, Some(Signalled::Stop(name)), name)),
    );
    handled.extend(IGNORED.iter().map(|&(n, name)| (n, None, name)));
    let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for n in low..=high {
        let meaning = if n == low + 2 {
            Signalled::DumpJson
        } else if n == high {
            Signalled::DumpStatsAndClear
        } else {
            Signalled::Stop("a real-time signal")
        };
        handled.push((n, Some(meaning), "a real-time signal"));
    }
    for (number, meaning, name) in handled {
        let mut stream = signal(SignalKind::from_raw(number))
            .with_context(|| format!("installing the {name} handler"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                match meaning {
                    Some(m) => {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    None => warn!(
                        "ignoring {name}: a stopped tandemd would keep its addresses without advertising them"
                    ),
                }
            }
        });
    }
    Ok(rx)
}
