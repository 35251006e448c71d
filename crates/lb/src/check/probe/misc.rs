//! MISC_CHECK: `misc_path` through `/bin/sh -c` in its own process group,
//! killed as a group at `misc_timeout`; the exit status decides (and, with
//! `misc_dynamic`, sets the weight).

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, User};
use tokio::process::Command;

use super::ProbeError;
use crate::check::action::Outcome;
use crate::check::spec::MiscSpec;

/// A prepared MISC_CHECK.
#[derive(Debug)]
pub struct MiscProbe {
    command: String,
    timeout: Duration,
    dynamic: bool,
    /// uid and gid to run as (`user`).
    ids: Option<(u32, u32)>,
}

impl MiscProbe {
    pub(super) fn new(spec: &MiscSpec, default_timeout: Duration) -> Result<MiscProbe, ProbeError> {
        let ids = match &spec.user {
            None => None,
            Some(line) => {
                let name = line.split_whitespace().next().unwrap_or_default();
                let user = User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| ProbeError::UnknownUser(name.to_string()))?;
                Some((user.uid.as_raw(), user.gid.as_raw()))
            }
        };
        Ok(MiscProbe {
            command: spec.path.clone(),
            timeout: spec.timeout.unwrap_or(default_timeout),
            dynamic: spec.dynamic,
            ids,
        })
    }

    pub(super) async fn run(&self) -> Outcome {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.ids {
            command.uid(uid).gid(gid);
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("starting `{}`: {e}", self.command)),
        };
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => misc_outcome(status, self.dynamic),
            Ok(Err(e)) => Outcome::Failed(format!("waiting for `{}`: {e}", self.command)),
            Err(_) => {
                if let Some(pid) = child.id() {
                    // The script and everything it started.
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
                let _ = child.wait().await;
                Outcome::Failed(format!(
                    "`{}` timed out after {:?}",
                    self.command, self.timeout
                ))
            }
        }
    }
}

/// keepalived's reading of a MISC_CHECK exit status: 0 is healthy, 1 is a
/// failure, and with `misc_dynamic` 2..=255 is healthy with weight status - 2
/// (without it, any non-zero status is a failure); a signal is a failure.
pub fn misc_outcome(status: ExitStatus, dynamic: bool) -> Outcome {
    match status.code() {
        Some(0) if dynamic => Outcome::HealthyWithStatus(0),
        Some(0) => Outcome::Healthy,
        Some(code) if dynamic && (2..=255).contains(&code) => {
            Outcome::HealthyWithStatus(code as u8)
        }
        Some(code) => Outcome::Failed(format!("exited with status {code}")),
        None => Outcome::Failed(format!(
            "killed by signal {}",
            status.signal().unwrap_or_default()
        )),
    }
}
