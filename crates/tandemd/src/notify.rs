//! Notify hooks with keepalived's calling convention, so existing scripts keep working.
//!
//! `notify` gets `TYPE NAME STATE PRIORITY` (TYPE is `INSTANCE` or `GROUP`); `notify_master`,
//! `notify_backup`, `notify_fault` and `notify_stop` get nothing extra. The configured string is
//! a command line (a script and its own arguments), run through `/bin/sh` like keepalived's
//! parser splits it (the shell `exec`s it, so the hook is our child as keepalived's is), and
//! never waited for on the hot path. For each transition the specific hook starts before
//! `notify`; the router reports a sync group's move after its members'. They run as the script policy's
//! default user (`script_user`, `keepalived_script`, or root), as keepalived runs them.

use tandem_config::NotifyScripts;
use tandem_vrrp::State;

use crate::tracking::ScriptUser;

/// Whether a hook is about an instance or a sync group.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// `vrrp_instance`.
    Instance,
    /// `vrrp_sync_group`.
    Group,
}

impl Subject {
    fn word(self) -> &'static str {
        match self {
            Subject::Instance => "INSTANCE",
            Subject::Group => "GROUP",
        }
    }
}

/// Starts the hooks for a transition of `name` into `state`, without waiting for them, as
/// `user` (the script policy's default user; the plan dropped hooks it refused).
pub fn run(
    scripts: &NotifyScripts,
    user: Option<&ScriptUser>,
    subject: Subject,
    name: &str,
    state: State,
    priority: u8,
) {
    let Some(user) = user else {
        return;
    };
    let specific = match state {
        State::Master => scripts.master.as_deref(),
        State::Backup => scripts.backup.as_deref(),
        State::Fault => scripts.fault.as_deref(),
        State::Stop => scripts.stop.as_deref(),
        State::Init => None,
    };
    if let Some(command) = specific {
        spawn(command, user, &[]);
    }
    if let Some(command) = scripts.notify.as_deref() {
        let priority = priority.to_string();
        spawn(
            command,
            user,
            &[subject.word(), name, state.keyword(), &priority],
        );
    }
}

fn spawn(command: &str, user: &ScriptUser, args: &[&str]) {
    match self::command(command, user, args).spawn() {
        Ok(child) => reap(child, command.to_string()),
        Err(e) => tracing::warn!("starting notify script `{command}`: {e}"),
    }
}

/// The process for a hook: `command` (a command line) through `/bin/sh`, which `exec`s it,
/// with `args` after it, as `user`. Also runs the load balancer's checker notifies.
pub fn command(command: &str, user: &ScriptUser, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        // `exec`: the hook itself is our child, as keepalived forks it, not a shell around it
        // (one process less, and signals reach the script).
        .arg(format!("exec {command} \"$@\""))
        .arg("tandem-notify")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    if user.uid != nix::unistd::getuid().as_raw() || user.gid != nix::unistd::getgid().as_raw() {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Waits for a started hook in the background and warns when it fails.
pub fn reap(mut child: tokio::process::Child, command: String) {
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) if !status.success() => {
                tracing::warn!("notify script `{command}` exited with {status}")
            }
            Err(e) => tracing::warn!("waiting for notify script `{command}`: {e}"),
            Ok(_) => {}
        }
    });
}
