//! Pieces shared by the conntrack benchmarks (`sync`, `failover-flows`): a load generator that
//! creates entries through ctnetlink, tandemd's control socket, Debian's conntrackd run from a
//! generated conntrackd.conf, per-process CPU and memory, an nft byte counter on the sync link,
//! and a guard for the global `nf_conntrack_max`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tandem_ctnetlink::{Conntrack, Flow, Tuple, L4};
use tandem_lab::{wait_until, Child, Netns};

/// The sync port both tools use.
pub const SYNC_PORT: u16 = 3780;

/// Entry `i` of the generated load: TCP 10.200.x.y:port -> 10.201.0.1:80, established,
/// one hour timeout. Unique for `i` below 2^24; none of the labs' addresses.
pub fn entry(i: usize) -> Flow {
    let host = (i >> 14) as u32;
    let src = std::net::Ipv4Addr::from(0x0ac8_0000 | host);
    let orig = Tuple {
        src: src.into(),
        dst: std::net::Ipv4Addr::new(10, 201, 0, 1).into(),
        proto: 6,
        l4: L4::Ports {
            src: 1024 + (i & 0x3fff) as u16,
            dst: 80,
        },
    };
    Flow::tcp_established(orig, 3600)
}

/// Creates entries `0..n` in `ns`'s kernel table in batches of 5,000, as fast as the kernel
/// takes them (`rate` 0) or paced to `rate` entries per second. Returns the time it took.
pub fn generate(ns: &Netns, n: usize, rate: u64) -> Result<Duration> {
    const BATCH: usize = 5_000;
    ns.enter(move || -> Result<Duration> {
        let mut ct = Conntrack::open()?;
        let start = Instant::now();
        let mut done = 0;
        while done < n {
            let end = (done + BATCH).min(n);
            let batch: Vec<Flow> = (done..end).map(entry).collect();
            let report = ct.create_batch(&batch)?;
            anyhow::ensure!(
                report.failed.is_empty(),
                "the kernel refused {} of {} entries (first: {:?}); is nf_conntrack_max large enough?",
                report.failed.len(),
                batch.len(),
                report.failed.first()
            );
            done = end;
            if rate > 0 {
                let due = Duration::from_secs_f64(done as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(start.elapsed())
    })?
}

/// Number of entries in `ns`'s kernel table (`/proc/sys/net/netfilter/nf_conntrack_count`).
pub fn kernel_count(ns: &Netns) -> u64 {
    ns.run("cat /proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// Raises the global `net.netfilter.nf_conntrack_max` (writable only from the initial
/// namespace) and the conntrack hash table to match (`hashsize`: with the default 262,144
/// buckets a million entries per gateway make every insert walk a chain of eight, which no
/// operator running tables that size leaves in place), and puts the old values back when
/// dropped, also during a panic unwind.
pub struct ConntrackMax {
    old: Vec<(&'static str, String)>,
}

impl ConntrackMax {
    /// Makes sure the limit is at least `at_least`, with at least as many hash buckets.
    pub fn raise(at_least: u64) -> Result<ConntrackMax> {
        let mut guard = ConntrackMax { old: Vec::new() };
        guard.at_least(CONNTRACK_MAX, at_least)?;
        guard.at_least(HASHSIZE, at_least.next_power_of_two())?;
        Ok(guard)
    }

    fn at_least(&mut self, path: &'static str, value: u64) -> Result<()> {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("reading {path} (is nf_conntrack loaded?)"))?;
        if old.trim().parse::<u64>().unwrap_or(0) >= value {
            return Ok(());
        }
        std::fs::write(path, value.to_string())
            .with_context(|| format!("raising {path} to {value}"))?;
        self.old.push((path, old.trim().to_string()));
        Ok(())
    }
}

impl Drop for ConntrackMax {
    fn drop(&mut self) {
        for (path, old) in self.old.drain(..).rev() {
            if let Err(e) = std::fs::write(path, &old) {
                eprintln!("could not restore {path} to {old}: {e}");
            }
        }
    }
}

/// CPU time (user + system) of process `pid` so far.
pub fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Resident memory of process `pid` in bytes (`VmRSS`).
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Counts the bytes of UDP datagrams to the sync port that `ns` sends (IP headers included).
pub fn add_sync_counter(ns: &Netns) -> Result<()> {
    let rules = format!(
        "table inet bench {{\n chain out {{\n  type filter hook output priority 0;\n  udp dport {SYNC_PORT} counter\n }}\n}}\n"
    );
    let path = std::env::temp_dir().join(format!("tandem-bench-{}.nft", std::process::id()));
    std::fs::write(&path, rules)?;
    let out = ns.exec(&["nft", "-f", path.to_str().context("non-UTF-8 path")?]);
    let _ = std::fs::remove_file(&path);
    let out = out?;
    anyhow::ensure!(
        out.status.success(),
        "nft in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Bytes counted by [`add_sync_counter`] in `ns` so far.
pub fn sync_bytes(ns: &Netns) -> u64 {
    ns.run("nft list chain inet bench out")
        .ok()
        .and_then(|s| {
            let mut words = s.split_whitespace();
            while let Some(w) = words.next() {
                if w == "bytes" {
                    return words.next()?.parse().ok();
                }
            }
            None
        })
        .unwrap_or(0)
}

/// tandemd started with `-f keepalived.conf -f tandem.toml --control SOCK`.
pub struct Tandemd {
    /// The process.
    pub child: Child,
    /// Its control socket.
    pub control: PathBuf,
}

impl Tandemd {
    /// Starts tandemd in `ns` with the two configuration texts; files go to `dir` named by `tag`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        ns: &Netns,
        tag: &str,
        keepalived_conf: &str,
        toml: &str,
    ) -> Result<Tandemd> {
        let conf = dir.join(format!("keepalived-{tag}.conf"));
        let tml = dir.join(format!("tandem-{tag}.toml"));
        let control = dir.join(format!("tandemd-{tag}.sock"));
        std::fs::write(&conf, keepalived_conf)?;
        std::fs::write(&tml, toml)?;
        let _ = std::fs::remove_file(&control);
        let s = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
        let child = ns.spawn(&[
            &s(bin)?,
            "-f",
            &s(&conf)?,
            "-f",
            &s(&tml)?,
            "--control",
            &s(&control)?,
        ])?;
        let mut d = Tandemd { child, control };
        wait_until(
            "tandemd control socket",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || d.control.exists().then_some(()),
        )
        .with_context(|| format!("tandemd did not start:\n{}", d.child.log()))?;
        if let Some(st) = d.child.try_wait()? {
            bail!("tandemd exited ({st}):\n{}", d.child.log());
        }
        Ok(d)
    }

    /// The control socket's reply to `command`, waiting up to `timeout`.
    pub fn ask(&self, command: &str, timeout: Duration) -> Result<String> {
        tandem_lab::control::ask(&self.control, command, timeout)
    }

    /// One counter of the `stats` reply (0 when missing).
    pub fn stat(&self, key: &str) -> u64 {
        let reply = self
            .ask("stats", Duration::from_secs(10))
            .unwrap_or_default();
        tandem_lab::control::counter(&reply, key)
    }
}

/// Debian's conntrackd with a generated conntrackd.conf (FTFW over UDP).
pub struct Conntrackd {
    /// The process (foreground, no `-d`).
    pub child: Child,
    /// Its configuration file, for `conntrackd -C conf -c/-s/...`.
    pub conf: PathBuf,
    ns: Netns,
}

/// conntrackd.conf for one node: FTFW over UDP from `local` to `peer` on `dev`.
pub fn conntrackd_conf(dir: &Path, tag: &str, dev: &str, local: &str, peer: &str) -> String {
    let d = dir.display();
    format!(
        "Sync {{
    Mode FTFW {{
        ResendQueueSize 131072
    }}
    UDP {{
        IPv4_address {local}
        IPv4_Destination_Address {peer}
        Port {SYNC_PORT}
        Interface {dev}
        SndSocketBuffer 24985600
        RcvSocketBuffer 24985600
        Checksum on
    }}
}}
General {{
    HashSize 262144
    HashLimit 4194304
    LogFile {d}/conntrackd-{tag}.log
    Syslog off
    LockFile {d}/conntrackd-{tag}.lock
    UNIX {{
        Path {d}/conntrackd-{tag}.ctl
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 134217728
    Filter {{
        Address Ignore {{
            IPv4_address 127.0.0.1
            IPv4_address {local}
            IPv4_address {peer}
        }}
    }}
}}
"
    )
}

impl Conntrackd {
    /// Writes the configuration and starts `conntrackd -C conf` in `ns`.
    pub fn start(ns: &Netns, dir: &Path, tag: &str, conf_text: &str) -> Result<Conntrackd> {
        let conf = dir.join(format!("conntrackd-{tag}.conf"));
        std::fs::write(&conf, conf_text)?;
        for stale in ["lock", "ctl"] {
            let _ = std::fs::remove_file(dir.join(format!("conntrackd-{tag}.{stale}")));
        }
        let ctl = dir.join(format!("conntrackd-{tag}.ctl"));
        let child = ns.spawn(&["conntrackd", "-C", conf.to_str().context("non-UTF-8 path")?])?;
        let mut d = Conntrackd {
            child,
            conf,
            ns: ns.clone(),
        };
        wait_until(
            "conntrackd control socket",
            Duration::from_secs(15),
            Duration::from_millis(10),
            || ctl.exists().then_some(()),
        )
        .with_context(|| format!("conntrackd did not start:\n{}", d.child.log()))?;
        if let Some(st) = d.child.try_wait()? {
            bail!("conntrackd exited ({st}):\n{}", d.child.log());
        }
        Ok(d)
    }

    /// Runs `conntrackd -C conf ARGS` in the node's namespace; stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        let conf = self.conf.to_str().context("non-UTF-8 path")?;
        let mut argv = vec!["conntrackd", "-C", conf];
        argv.extend_from_slice(args);
        let out = self.ns.exec(&argv)?;
        anyhow::ensure!(
            out.status.success(),
            "conntrackd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `current active connections` of the internal and the external cache (`-s`).
    pub fn counts(&self) -> (u64, u64) {
        let Ok(s) = self.ctl(&["-s"]) else {
            return (0, 0);
        };
        let mut which = "";
        let (mut internal, mut external) = (0, 0);
        for line in s.lines() {
            let l = line.trim();
            if l.starts_with("cache internal") {
                which = "i";
            } else if l.starts_with("cache external") {
                which = "e";
            } else if l.starts_with("cache ") || l.starts_with("traffic") {
                which = "";
            } else if let Some(v) = l.strip_prefix("current active connections:") {
                let v = v.trim().parse().unwrap_or(0);
                match which {
                    "i" => internal = v,
                    "e" => external = v,
                    _ => {}
                }
            }
        }
        (internal, external)
    }
}

/// Formats `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
