//! Starting tandemd or keepalived in a lab namespace from the same keepalived.conf text, and
//! the process ids the benchmarks measure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tandem_lab::{wait_until, Child, Netns};

/// Which daemon a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ours.
    Tandemd,
    /// Debian's keepalived, VRRP only.
    Keepalived,
}

impl Kind {
    /// Name for tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tandemd => "tandemd",
            Kind::Keepalived => "keepalived",
        }
    }
}

/// One `vrrp_instance` block.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Instance name.
    pub name: String,
    /// Interface it runs on.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// `advert_int` as written in the file.
    pub advert_int: String,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// The virtual address with prefix length.
    pub vip: String,
}

/// The configuration file text for a list of instances (read by both daemons).
pub fn render(instances: &[InstanceSpec]) -> String {
    let mut out = String::new();
    for i in instances {
        out.push_str(&format!(
            "vrrp_instance {} {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n    \
             priority {}\n    advert_int {}\n    version {}\n    virtual_ipaddress {{\n        {}\n    }}\n}}\n",
            i.name, i.interface, i.vrid, i.priority, i.advert_int, i.version, i.vip
        ));
    }
    out
}

/// A daemon running in a namespace; SIGKILLed (with keepalived's children) on drop.
pub struct Running {
    /// The process `ip netns exec` started (tandemd, or keepalived's parent).
    pub child: Child,
    /// Which daemon.
    pub kind: Kind,
    /// keepalived's VRRP child writes its pid here.
    vrrp_pidfile: Option<PathBuf>,
}

impl Running {
    /// Starts `kind` in `ns` with configuration `config`; files go to `dir`, named by `tag`.
    pub fn start(
        kind: Kind,
        tandemd: &Path,
        dir: &Path,
        ns: &Netns,
        tag: &str,
        config: &str,
    ) -> Result<Running> {
        let conf = dir.join(format!("{}-{tag}.conf", kind.name()));
        std::fs::write(&conf, config).with_context(|| format!("writing {}", conf.display()))?;
        let conf_s = conf.to_str().context("non-UTF-8 path")?;
        match kind {
            Kind::Tandemd => {
                let sock = dir.join(format!("tandemd-{tag}.sock"));
                let _ = std::fs::remove_file(&sock);
                let child = ns.spawn(&[
                    tandemd.to_str().context("non-UTF-8 path")?,
                    "-f",
                    conf_s,
                    "--control",
                    sock.to_str().context("non-UTF-8 path")?,
                ])?;
                let mut running = Running {
                    child,
                    kind,
                    vrrp_pidfile: None,
                };
                wait_until(
                    "tandemd control socket",
                    Duration::from_secs(30),
                    Duration::from_millis(5),
                    || sock.exists().then_some(()),
                )
                .with_context(|| format!("tandemd did not start:\n{}", running.child.log()))?;
                running.ensure_alive()?;
                Ok(running)
            }
            Kind::Keepalived => {
                let (child, vrrp_pid) = tandem_lab::peers::spawn_keepalived(ns, &conf, dir, tag)?;
                Ok(Running {
                    child,
                    kind,
                    vrrp_pidfile: Some(vrrp_pid),
                })
            }
        }
    }

    /// Fails with the log if the daemon has exited.
    pub fn ensure_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}):\n{}",
                self.kind.name(),
                self.child.log()
            );
        }
        Ok(())
    }

    /// Every process of the daemon: tandemd's one, or keepalived's parent and VRRP child.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let mut pids = vec![self.child.pid()];
        if let Some(file) = &self.vrrp_pidfile {
            let vrrp = wait_until(
                "keepalived's VRRP child pid file",
                Duration::from_secs(10),
                Duration::from_millis(20),
                || {
                    std::fs::read_to_string(file)
                        .ok()?
                        .trim()
                        .parse::<u32>()
                        .ok()
                },
            )?;
            pids.push(vrrp);
        }
        Ok(pids)
    }

    /// Sends SIGTERM (a graceful stop: priority-0 advert, addresses removed).
    pub fn terminate(&mut self) -> Result<()> {
        self.child.signal(Signal::SIGTERM)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self
            .vrrp_pidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }
}
