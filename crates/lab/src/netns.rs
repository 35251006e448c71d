//! [`Netns`]: a handle on one lab namespace and the commands run inside it.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::child::Child;

/// Where `ip netns add` puts its namespace handles.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS...` in the host context and returns stdout; the error
/// carries the command line and stderr.
pub(crate) fn run_ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One network namespace of a [`Lab`](crate::Lab); cheap to clone.
///
/// The namespace itself belongs to the lab: it disappears when the lab is
/// dropped, whatever handles remain.
#[derive(Clone, Debug)]
pub struct Netns {
    name: String,
    log_dir: Arc<PathBuf>,
}

/// One address configured in a namespace, as reported by `ip -o addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    /// Interface holding the address.
    pub dev: String,
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Still undergoing duplicate address detection (not usable yet).
    pub tentative: bool,
}

impl Netns {
    /// Wraps an existing namespace; `log_dir` receives spawned processes' output.
    pub(crate) fn new(name: String, log_dir: Arc<PathBuf>) -> Netns {
        Netns { name, log_dir }
    }

    /// Full namespace name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NS {args}` (split on whitespace) and returns stdout.
    pub fn ip(&self, args: &str) -> anyhow::Result<String> {
        let argv: Vec<&str> = args.split_whitespace().collect();
        self.ip_argv(&argv)
    }

    /// Like [`Netns::ip`] with pre-split arguments, for values with spaces.
    pub fn ip_argv(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec!["-n", &self.name];
        argv.extend_from_slice(args);
        run_ip(&argv)
    }

    /// Runs `cmd` inside the namespace and returns its output, whatever the
    /// exit status (callers inspect `status`).
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<Output> {
        anyhow::ensure!(!cmd.is_empty(), "exec: empty command");
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {cmd:?} in {}", self.name))
    }

    /// Runs `sh -c cmd` inside the namespace and returns stdout; a non-zero
    /// exit is an error carrying the command, stdout and stderr.
    pub fn run(&self, cmd: &str) -> anyhow::Result<String> {
        let out = self.exec(&["sh", "-c", cmd])?;
        if !out.status.success() {
            bail!(
                "`{cmd}` in {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                match String::from_utf8_lossy(&out.stdout).trim() {
                    "" => String::new(),
                    s => format!("\nstdout: {s}"),
                }
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `cmd` in the background inside the namespace.
    ///
    /// Its stdout and stderr go to a log file readable with [`Child::log`];
    /// the process (and its process group) is SIGKILLed when the [`Child`]
    /// is dropped, and at the latest when the lab is dropped.
    pub fn spawn(&self, cmd: &[&str]) -> anyhow::Result<Child> {
        Child::spawn(&self.name, &self.log_dir, cmd)
    }

    /// Sets a sysctl (`net.ipv4.ip_forward`, or with `/` separators when a
    /// component contains dots, e.g. `net/ipv6/conf/eth0.10/forwarding`)
    /// inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let rel = if key.contains('/') {
            key.to_string()
        } else {
            key.replace('.', "/")
        };
        let path = Path::new("/proc/sys").join(rel.trim_start_matches('/'));
        let value = value.to_string();
        // /proc/sys/net shows the network namespace of the opening thread.
        self.enter(move || std::fs::write(&path, value.as_bytes()))?
            .with_context(|| format!("setting sysctl {key} in {}", self.name))
    }

    /// Whether the namespace has sysctl `key` (`/`-separated); `net/bridge/*`
    /// exists only where the kernel has bridge netfilter.
    pub fn sysctl_exists(&self, key: &str) -> anyhow::Result<bool> {
        let path = Path::new("/proc/sys").join(key.trim_start_matches('/'));
        self.enter(move || path.exists())
    }

    /// Runs `f` on a fresh OS thread that has joined this namespace, so
    /// in-process code can open sockets there.
    ///
    /// Sockets keep their namespace, so `f` may return them for use from any
    /// thread. A panic in `f` is resumed in the caller.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let handle = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(s, move || -> anyhow::Result<T> {
                    nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("setns into {}", self.name))?;
                    drop(handle);
                    Ok(f())
                })
                .context("spawning namespace thread")?;
            match thread.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Brings interface `dev` up or down.
    pub fn link_set(&self, dev: &str, up: bool) -> anyhow::Result<()> {
        self.ip_argv(&["link", "set", "dev", dev, if up { "up" } else { "down" }])
            .map(drop)
    }

    /// All addresses configured on any interface in the namespace.
    pub fn addresses(&self) -> anyhow::Result<Vec<Addr>> {
        Ok(parse_addrs(&self.ip("-o addr show")?))
    }

    /// Whether IP `addr` (v4 or v6, without prefix length) is configured on
    /// any interface in the namespace; tests use it to see where a VIP is.
    pub fn has_address(&self, addr: &str) -> anyhow::Result<bool> {
        let want: IpAddr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not an IP address"))?;
        Ok(self.addresses()?.iter().any(|a| a.addr == want))
    }

    /// Sends one ICMP echo request to `addr` from inside the namespace and
    /// reports whether a reply came within a second.
    pub fn ping(&self, addr: &str) -> anyhow::Result<bool> {
        let dst: IpAddr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not an IP address"))?;
        self.enter(move || crate::ping::ping_once(dst, Duration::from_secs(1)))?
    }

    /// Pings `addr` until it answers or `deadline` passes.
    pub fn wait_ping(&self, addr: &str, deadline: Duration) -> anyhow::Result<()> {
        crate::wait_until(
            &format!("{addr} to answer ping from {}", self.name),
            deadline,
            Duration::from_millis(50),
            || self.ping(addr).ok().filter(|&ok| ok).map(drop),
        )
    }
}

/// Parses `ip -o addr show` output.
fn parse_addrs(out: &str) -> Vec<Addr> {
    out.lines()
        .filter_map(|line| {
            let mut tokens = line.split_whitespace();
            let _index = tokens.next()?;
            let dev = tokens.next()?;
            let dev = dev.split('@').next()?.to_string();
            let family = tokens.next()?;
            if family != "inet" && family != "inet6" {
                return None;
            }
            let (addr, len) = tokens.next()?.split_once('/')?;
            let tentative = tokens.take_while(|t| *t != "\\").any(|t| t == "tentative");
            Some(Addr {
                dev,
                addr: addr.parse().ok()?,
                prefix_len: len.parse().ok()?,
                tentative,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_o_addr() {
        let out = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.0.1/24 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 fd00::1/64 scope global nodad \\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::1:2ff:fe03:405/64 scope link tentative \\       valid_lft forever preferred_lft forever
";
        let addrs = parse_addrs(out);
        assert_eq!(addrs.len(), 5);
        assert_eq!(addrs[2].dev, "eth0");
        assert_eq!(addrs[2].addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(addrs[2].prefix_len, 24);
        assert!(!addrs[3].tentative);
        assert_eq!(addrs[3].addr, "fd00:0:0:0::1".parse::<IpAddr>().unwrap());
        assert!(addrs[4].tentative);
    }
}
