//! keepalived's notify FIFOs: one line per transition (`INSTANCE "VI_1" MASTER 150`,
//! `GROUP "G1" BACKUP 0`) written to a named pipe a monitoring process reads.
//!
//! As keepalived does: the FIFO is created when missing (mode 0644 under the umask, owned by
//! the configured or default script user), its reader script is started with the FIFO's path
//! as its last argument, and the FIFO is opened read-write and non-blocking, so a missing
//! reader never blocks the open and a full pipe never blocks the daemon (the line is dropped).
//! At close a FIFO tandemd created is removed first, so a reader looping on it cannot reopen it.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::stat::Mode;
use tandem_vrrp::State;
use tracing::{info, warn};

use crate::log_limit::LogLimiter;
use crate::notify::Subject;
use crate::tracking::ScriptUser;

/// One FIFO as the configuration asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoPlan {
    /// `notify_fifo` or `vrrp_notify_fifo`, for logs.
    pub keyword: &'static str,
    /// Where it is.
    pub path: PathBuf,
    /// Owner of a FIFO tandemd creates (None: tandemd's own).
    pub owner: Option<ScriptUser>,
    /// The reader script and who runs it.
    pub script: Option<(String, ScriptUser)>,
}

/// The line keepalived writes for `name` entering `state`; groups carry priority 0.
pub fn line(subject: Subject, name: &str, state: State, priority: u8) -> String {
    let kind = match subject {
        Subject::Instance => "INSTANCE",
        Subject::Group => "GROUP",
    };
    let state = match state {
        State::Init => "{UNKNOWN}",
        other => other.keyword(),
    };
    format!("{kind} \"{name}\" {state} {priority}\n")
}

/// An open FIFO.
pub struct NotifyFifo {
    plan: FifoPlan,
    file: File,
    /// Whether tandemd made it (then it removes it at close).
    created: bool,
    /// Lines dropped or failed, for a rate-limited log line.
    failures: LogLimiter,
}

impl NotifyFifo {
    /// Creates the FIFO if missing, starts its script, opens it. `None` (after an error line)
    /// when it cannot be created or opened: transitions then go on without it.
    pub fn open(plan: FifoPlan) -> Option<NotifyFifo> {
        let keyword = plan.keyword;
        let path = plan.path.clone();
        let mode = Mode::S_IRUSR | Mode::S_IWUSR | Mode::S_IRGRP | Mode::S_IROTH;
        let created = match nix::unistd::mkfifo(&path, mode) {
            Ok(()) => {
                chown_created(&path, plan.owner.as_ref());
                true
            }
            Err(Errno::EEXIST) => false,
            Err(e) => {
                tracing::error!("{keyword} {}: cannot create it: {e}", path.display());
                return None;
            }
        };
        if let Some((command, user)) = &plan.script {
            start_script(keyword, command, user, &path);
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match opened {
            Ok(file) => {
                info!("{keyword} {} open", path.display());
                Some(NotifyFifo {
                    plan,
                    file,
                    created,
                    failures: LogLimiter::default(),
                })
            }
            Err(e) => {
                tracing::error!("{keyword} {}: cannot open it: {e}", path.display());
                if created {
                    let _ = std::fs::remove_file(&path);
                }
                None
            }
        }
    }

    /// What it was opened from.
    pub fn plan(&self) -> &FifoPlan {
        &self.plan
    }

    /// Writes one line without waiting: a line that does not fit in the pipe (a slow or
    /// missing reader) is dropped, and counted in a rate-limited warning.
    pub fn write(&mut self, line: &str) {
        // A line shorter than PIPE_BUF goes in whole or not at all.
        let error = match (&self.file).write(line.as_bytes()) {
            Ok(n) if n == line.len() => return,
            Ok(_) => "written in part".to_string(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                "pipe full (reader slow or missing)".into()
            }
            Err(e) => e.to_string(),
        };
        if let Some(n) = self.failures.hit(Instant::now(), 1) {
            warn!(
                "{} {}: {n} line(s) not written: {error}",
                self.plan.keyword,
                self.plan.path.display()
            );
        }
    }

    /// Closes it, removing it first if tandemd created it.
    pub fn close(self) {
        if self.created {
            if let Err(e) = std::fs::remove_file(&self.plan.path) {
                warn!(
                    "{} {}: removing it: {e}",
                    self.plan.keyword,
                    self.plan.path.display()
                );
            }
        }
        drop(self.file);
    }
}

/// Gives a FIFO tandemd just created to its configured owner.
fn chown_created(path: &Path, owner: Option<&ScriptUser>) {
    let Some(owner) = owner else {
        return;
    };
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let new_uid = (owner.uid != uid).then(|| nix::unistd::Uid::from_raw(owner.uid));
    let new_gid = (owner.gid != gid).then(|| nix::unistd::Gid::from_raw(owner.gid));
    if new_uid.is_none() && new_gid.is_none() {
        return;
    }
    if let Err(e) = nix::unistd::chown(path, new_uid, new_gid) {
        warn!(
            "failed to set uid:gid {}:{} for fifo {}: {e}",
            owner.uid,
            owner.gid,
            path.display()
        );
    }
}

/// Starts the reader script with the FIFO's path as its last argument, never waiting for it;
/// its end is logged (keepalived runs it with no timeout).
fn start_script(keyword: &'static str, command: &str, user: &ScriptUser, path: &Path) {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("{command} \"$@\""))
        .arg(format!("tandem-{keyword}"))
        .arg(path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    if user.uid != nix::unistd::getuid().as_raw() || user.gid != nix::unistd::getgid().as_raw() {
        cmd.uid(user.uid).gid(user.gid);
    }
    match cmd.spawn() {
        Ok(mut child) => {
            info!("{keyword}_script `{command}` started as {}", user.name);
            let command = command.to_string();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) => info!("{keyword}_script `{command}` terminated ({status})"),
                    Err(e) => warn!("{keyword}_script `{command}`: waiting for it: {e}"),
                }
            });
        }
        Err(e) => warn!("{keyword}_script `{command}`: cannot start it: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_keepalived_s() {
        assert_eq!(
            line(Subject::Instance, "VI_1", State::Master, 150),
            "INSTANCE \"VI_1\" MASTER 150\n"
        );
        assert_eq!(
            line(Subject::Group, "G1", State::Backup, 0),
            "GROUP \"G1\" BACKUP 0\n"
        );
        assert_eq!(
            line(Subject::Instance, "VI_1", State::Stop, 0),
            "INSTANCE \"VI_1\" STOP 0\n"
        );
    }
}
