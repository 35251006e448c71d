//! One tandemd per node. A second daemon started by mistake (a unit and a manual start, a
//! mistyped command) must not remove the live addresses as "leftovers", steal the control
//! socket or the pid file, or open a second sync socket: it refuses before touching anything.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

/// Held for the daemon's life: the locks on the control socket and the pid file.
pub struct NodeLock {
    _control: Flock<File>,
    pid: Option<(PathBuf, Flock<File>)>,
}

impl NodeLock {
    /// Takes the node: refuses when another tandemd runs in this network namespace, or holds
    /// the same control socket or pid file (wherever it runs).
    pub fn acquire(control: &Path, pid_file: Option<&Path>) -> Result<NodeLock> {
        if let Some(other) = other_daemon_here() {
            bail!(
                "another tandemd (pid {other}) runs in this network namespace: \
                 stop it first, or talk to it with tandemctl; nothing was changed"
            );
        }
        create_parent(control)?;
        if let Some(path) = pid_file {
            create_parent(path)?;
        }
        let lock_path = lock_path(control);
        let control_lock = lock(&lock_path).with_context(|| {
            format!(
                "another tandemd uses the control socket {} (its lock {} is held); nothing was changed",
                control.display(),
                lock_path.display()
            )
        })?;
        let pid = match pid_file {
            Some(path) => Some((path.to_path_buf(), write_pid(path)?)),
            None => None,
        };
        Ok(NodeLock {
            _control: control_lock,
            pid,
        })
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        if let Some((path, _)) = &self.pid {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates the directory that holds `path` (mode 0755) when it is missing, as systemd's
/// `RuntimeDirectory=tandem` does for the unit, so a manual start finds `/run/tandem` too.
/// Only the last level: a mistyped deeper path stays an error.
fn create_parent(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating the directory {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The lock file beside the control socket (the socket itself cannot be locked).
fn lock_path(control: &Path) -> PathBuf {
    let mut name = control.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Opens `path` without following a symlink and locks it exclusively, without waiting.
fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| anyhow::anyhow!("locking {}: {}", path.display(), errno.desc()))
}

/// Locks the pid file and writes this process's pid into it.
fn write_pid(path: &Path) -> Result<Flock<File>> {
    let mut file = match lock(path) {
        Ok(file) => file,
        Err(e) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            bail!(
                "{e}: tandemd pid {} holds the pid file {}; nothing was changed",
                holder.trim(),
                path.display()
            );
        }
    };
    let mut old = String::new();
    let _ = file.read_to_string(&mut old);
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing pid file {}", path.display()))?;
    Ok(file)
}

/// Another live tandemd process in this process's network namespace, if any.
fn other_daemon_here() -> Option<u32> {
    let own_ns = std::fs::read_link("/proc/self/ns/net").ok()?;
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let is_tandemd = std::fs::read_to_string(dir.join("comm"))
            .is_ok_and(|comm| comm.trim_end() == "tandemd");
        if !is_tandemd || !alive(&dir) {
            continue;
        }
        if std::fs::read_link(dir.join("ns/net")).ok().as_ref() == Some(&own_ns) {
            return Some(pid);
        }
    }
    None
}

/// Whether the process is running (not a zombie waiting to be reaped, not exiting).
fn alive(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X' | 'x') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_control_socket_is_refused_and_names_it() {
        let dir = std::env::temp_dir().join(format!("tandem-single-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let control = dir.join("ctl.sock");
        let first = lock(&lock_path(&control)).unwrap();
        let second = lock(&lock_path(&control));
        assert!(second.is_err());
        drop(first);
        assert!(lock(&lock_path(&control)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_pid_file_gets_our_pid_and_a_second_holder_is_named() {
        let dir = std::env::temp_dir().join(format!("tandem-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tandemd.pid");
        let held = write_pid(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let refused = write_pid(&path).err().unwrap().to_string();
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_pid_file_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("tandem-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("victim");
        std::fs::write(&target, "precious\n").unwrap();
        let link = dir.join("tandemd.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_pid(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_socket_directory_is_created_but_only_its_last_level() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tandem-rundir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("tandem").join("tandemd.sock");
        create_parent(&socket).unwrap();
        let made = std::fs::metadata(dir.join("tandem")).unwrap();
        assert!(made.is_dir());
        assert_eq!(made.permissions().mode() & 0o777, 0o755);
        // Again: an existing directory is fine.
        create_parent(&socket).unwrap();
        let deeper = dir.join("a").join("b").join("tandemd.sock");
        let refused = create_parent(&deeper).err().unwrap().to_string();
        assert!(refused.contains("creating the directory"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
