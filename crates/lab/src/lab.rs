//! The [`Lab`]: owner of a set of namespaces, and the stale-namespace cleaner.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::netns::{run_ip, Netns};

/// Where `ip netns add` puts its namespace handles.
const NETNS_DIR: &str = "/run/netns";

/// Every lab namespace name starts with this, so strays are recognisable.
const LAB_PREFIX: &str = "td-";

/// Distinguishes the labs of one process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A set of network namespaces sharing a unique prefix.
///
/// Dropping it kills every process still running in its namespaces and
/// deletes them (which also deletes the veths and bridges inside), even
/// during a panic unwind.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    log_dir: Arc<PathBuf>,
}

impl Lab {
    /// Starts an empty lab named `td-{tag}-{pid}-{counter}`.
    ///
    /// `tag` is reduced to at most 8 lowercase letters and digits so the
    /// prefix stays short and parseable. Fails with a clear message when not
    /// running as root. Removes stale namespaces of dead test runs first.
    pub fn new(tag: &str) -> anyhow::Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "tandem-lab needs root to create network namespaces (running as uid {}); \
                 run the tests as root or guard them with tandem_lab::require_root!()",
                nix::unistd::geteuid()
            );
        }
        remove_stale(LAB_PREFIX);
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .take(8)
            .collect();
        let tag = if tag.is_empty() {
            "lab".to_string()
        } else {
            tag
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{LAB_PREFIX}{tag}-{}-{n}", std::process::id());
        let log_dir = log_root().join(&prefix);
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating log directory {}", log_dir.display()))?;
        Ok(Lab {
            prefix,
            namespaces: Vec::new(),
            log_dir: Arc::new(log_dir),
        })
    }

    /// Creates namespace `{prefix}-{name}` with `lo` up and IPv6 duplicate
    /// address detection off (so addresses are usable at once).
    pub fn netns(&mut self, name: &str) -> anyhow::Result<Netns> {
        if name.is_empty() || name.contains(['/', '\0']) || name.contains(char::is_whitespace) {
            bail!("invalid namespace name {name:?}");
        }
        let full = format!("{}-{name}", self.prefix);
        if self.namespaces.contains(&full) {
            bail!("namespace {full} already exists in this lab");
        }
        run_ip(&["netns", "add", &full])?;
        // Recorded before anything else can fail, so Drop removes it.
        self.namespaces.push(full.clone());
        let ns = Netns::new(full, self.log_dir.clone());
        ns.link_set("lo", true)?;
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        Ok(ns)
    }

    /// Creates bridge `name` inside `in_ns` and brings it up.
    ///
    /// STP forwarding delay and multicast snooping are off, so ports forward
    /// immediately and VRRP/neighbour-discovery multicast is always flooded.
    /// The namespace's bridges switch frames without passing them through
    /// netfilter, as a switch does: a host with `br_netfilter` (Docker loads
    /// it) would otherwise run every bridged frame through the IP hooks, and
    /// the sender's CPU figures would carry that cost.
    pub fn bridge(&mut self, in_ns: &Netns, name: &str) -> anyhow::Result<()> {
        in_ns.ip(&format!(
            "link add {name} type bridge forward_delay 0 mcast_snooping 0"
        ))?;
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net/bridge/bridge-nf-call-{family}");
            if in_ns.sysctl_exists(&key)? {
                in_ns.sysctl(&key, "0")?;
            }
        }
        in_ns.link_set(name, true)
    }

    /// Creates a veth pair: `a.1` inside namespace `a.0`, its peer `b.1`
    /// inside `b.0`; both ends up.
    pub fn veth(&mut self, a: (&Netns, &str), b: (&Netns, &str)) -> anyhow::Result<()> {
        let (a_ns, a_dev) = a;
        let (b_ns, b_dev) = b;
        run_ip(&[
            "-n",
            a_ns.name(),
            "link",
            "add",
            a_dev,
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            b_ns.name(),
        ])?;
        a_ns.link_set(a_dev, true)?;
        b_ns.link_set(b_dev, true)
    }

    /// The unique prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Full names of the namespaces created so far, in creation order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Directory holding the output logs of processes spawned in this lab;
    /// removed when the lab is dropped.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            kill_all_in(ns);
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = delete_netns(ns) {
                eprintln!("tandem-lab: {e:#}");
            }
        }
        // TANDEM_LAB_KEEP_LOGS=1 keeps the daemons' logs for a post-mortem.
        if std::env::var_os("TANDEM_LAB_KEEP_LOGS").is_none_or(|v| v != "1") {
            let _ = std::fs::remove_dir_all(&*self.log_dir);
        }
    }
}

/// Deletes namespaces (and their log directories) left behind by lab runs
/// whose process is gone, e.g. a test binary that was SIGKILLed.
///
/// Only names starting with both `td-` and `tag_prefix` are considered, and
/// only those whose embedded pid (`td-{tag}-{pid}-...`) is not alive.
/// Errors are printed, not returned: this is best-effort housekeeping.
pub fn remove_stale(tag_prefix: &str) {
    let is_stale = |name: &str| {
        name.starts_with(LAB_PREFIX)
            && name.starts_with(tag_prefix)
            && embedded_pid(name).is_some_and(|pid| !pid_alive(pid))
    };
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        let stale: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_stale(n))
            .collect();
        for ns in &stale {
            kill_all_in(ns);
        }
        for ns in &stale {
            match delete_netns(ns) {
                Ok(()) => eprintln!("tandem-lab: removed stale namespace {ns}"),
                Err(e) => eprintln!("tandem-lab: {e:#}"),
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(log_root()) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(is_stale) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Parent directory of all labs' log directories.
fn log_root() -> PathBuf {
    std::env::temp_dir().join("tandem-lab")
}

/// The pid in `td-{tag}-{pid}-{counter}[-{name}]`.
fn embedded_pid(name: &str) -> Option<i32> {
    let mut parts = name.split('-');
    let (_td, _tag, pid) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?.parse::<u32>().ok()?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// Whether a process with this pid exists.
fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILLs every process whose network namespace is `ns` (except us).
fn kill_all_in(ns: &str) {
    let Ok(out) = run_ip(&["netns", "pids", ns]) else {
        return;
    };
    let me = std::process::id();
    for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        if pid != me {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `ip netns del`, retried briefly (a namespace can be busy for a moment).
fn delete_netns(ns: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match run_ip(&["netns", "del", ns]) {
            Ok(_) => return Ok(()),
            Err(e) => {
                if !Path::new(NETNS_DIR).join(ns).exists() {
                    return Ok(());
                }
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    Err(last
        .expect("loop ran at least once")
        .context(format!("could not delete namespace {ns}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_embedded_pid() {
        assert_eq!(embedded_pid("td-pair-1234-0-a"), Some(1234));
        assert_eq!(embedded_pid("td-pair-1234-7"), Some(1234));
        assert_eq!(embedded_pid("td-pair-1234-0-my-ns"), Some(1234));
        assert_eq!(embedded_pid("td-pair-x-0-a"), None);
        assert_eq!(embedded_pid("td-pair-1234"), None);
        assert_eq!(embedded_pid("td-pair-1234-x-a"), None);
        assert_eq!(embedded_pid("tdm-manual"), None);
    }

    #[test]
    fn own_pid_is_alive() {
        assert!(pid_alive(std::process::id() as i32));
    }
}
