//! Runs one `vrrp_script` every interval in its own task: the command goes through `/bin/sh`
//! as its user, in a process group of its own, so a hung script is killed at its timeout with
//! everything it started (SIGTERM to the group, SIGKILL two seconds later if anything is
//! left, as keepalived does). A timeout counts as a failure. The output goes to the debug log.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tandem_vrrp::{ScriptCounter, TrackerState};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Event, ScriptSpec};

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Succeeded,
    /// Another exit status.
    Failed(i32),
    /// Killed by a signal it was not sent by us.
    Signalled(i32),
    /// Still running at its timeout: killed.
    TimedOut,
    /// Could not be started.
    NotStarted,
}

impl Outcome {
    /// Whether the run counts as a success.
    pub fn success(self) -> bool {
        self == Outcome::Succeeded
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::Failed(code) => write!(f, "failed (exited with status {code})"),
            Outcome::Signalled(sig) => write!(f, "failed (due to signal {sig})"),
            Outcome::TimedOut => f.write_str("timed_out"),
            Outcome::NotStarted => f.write_str("failed (could not be started)"),
        }
    }
}

/// Longest output kept from one run for the log.
const OUTPUT_LIMIT: usize = 4096;
/// How long a script has to die after SIGTERM before the group gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Runs `spec` forever (until the task is aborted), sending each outcome with the state it
/// leaves the rise/fall counter in.
pub async fn run(
    spec: ScriptSpec,
    generation: u64,
    mut counter: ScriptCounter,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut tick = tokio::time::interval(spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Outcome> = None;
    loop {
        tick.tick().await;
        let outcome = run_once(&spec).await;
        if last != Some(outcome) {
            info!("Script `{}` now {outcome}", spec.name);
        }
        last = Some(outcome);
        let changed = counter.record(outcome.success());
        if let Some(state) = changed {
            let word = if state == TrackerState::Up {
                "succeeded"
            } else {
                "failed"
            };
            info!("VRRP_Script({}) {word}", spec.name);
        }
        let event = Event::Script {
            name: spec.name.clone(),
            generation,
            outcome,
            state: counter.state(),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// One run: start, wait up to the timeout, kill the group if needed.
async fn run_once(spec: &ScriptSpec) -> Outcome {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.user.uid != nix::unistd::getuid().as_raw()
        || spec.user.gid != nix::unistd::getgid().as_raw()
    {
        cmd.uid(spec.user.uid).gid(spec.user.gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            warn!(
                "vrrp_script {}: starting `{}`: {e}",
                spec.name, spec.command
            );
            return Outcome::NotStarted;
        }
    };
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let output = tokio::spawn(async move {
        let mut text = Vec::new();
        for pipe in [
            out.as_mut()
                .map(|p| p as &mut (dyn tokio::io::AsyncRead + Unpin + Send)),
            err.as_mut().map(|p| p as _),
        ]
        .into_iter()
        .flatten()
        {
            let mut buf = Vec::new();
            let _ = pipe.take(OUTPUT_LIMIT as u64).read_to_end(&mut buf).await;
            text.extend_from_slice(&buf);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let outcome = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => Outcome::Succeeded,
                (Some(code), _) => Outcome::Failed(code),
                (None, Some(sig)) => Outcome::Signalled(sig),
                (None, None) => Outcome::Failed(-1),
            }
        }
        Ok(Err(e)) => {
            warn!("vrrp_script {}: waiting for it: {e}", spec.name);
            Outcome::Failed(-1)
        }
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(pid, Signal::SIGTERM);
                let ended = tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok();
                // Anything the script started in its group goes with it (the group still
                // exists while the leader is unreaped or a member lives).
                let _ = killpg(pid, Signal::SIGKILL);
                if !ended {
                    let _ = child.wait().await;
                }
            }
            info!(
                "vrrp_script {}: still running after its timeout of {:.3} s: killed",
                spec.name,
                spec.timeout.as_secs_f64()
            );
            Outcome::TimedOut
        }
    };
    if let Ok(Ok(text)) = tokio::time::timeout(TERM_GRACE, output).await {
        let text = text.trim_end();
        if !text.is_empty() {
            debug!("vrrp_script {} output: {text}", spec.name);
        }
    }
    outcome
}
