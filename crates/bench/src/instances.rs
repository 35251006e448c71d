//! `tandem-bench instances`: 1,000 VRRP instances on a pair (VRIDs reused across LANs), CPU and
//! memory of the daemons in steady state, and exactly one master per instance.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tandem_lab::{Netns, Pair};

use crate::daemons::{render, InstanceSpec, Kind, Running};
use crate::summary::print_table;

/// keepalived's figures quoted in the issue: CPU % master, CPU % backup, MB.
const ISSUE_KEEPALIVED: (f64, f64, f64) = (3.33, 1.17, 14.5);

/// Shape of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Bridges (interfaces per router).
    pub lans: usize,
    /// VRIDs per LAN (1..=255).
    pub per_lan: u8,
    /// Seconds to let the pair settle after every VIP is in place.
    pub settle: u64,
    /// Seconds to measure CPU over.
    pub duration: u64,
}

/// What one daemon pair did.
#[derive(Debug, Clone)]
struct Outcome {
    startup: Duration,
    cpu_master: Spread,
    cpu_backup: Spread,
    /// Share of the CPU time spent in the kernel (stime), master and backup.
    kernel_master: f64,
    kernel_backup: f64,
    rss_master: u64,
    rss_backup: u64,
    on_master: usize,
    on_backup: usize,
    exactly_one: usize,
}

/// Measurement windows per run.
const WINDOWS: u32 = 5;

/// Median and range of a daemon's CPU share over the windows, % of a core.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Spread {
        samples.sort_by(f64::total_cmp);
        Spread {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} [{:.2}-{:.2}]", self.median, self.min, self.max)
    }
}

/// The VIP of instance `vrid` on LAN `lan`: 10.{100+lan}.0.{vrid}/32, off every LAN's subnet.
fn vip(lan: usize, vrid: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 100 + lan as u8, 0, vrid)
}

fn config(shape: Shape, priority: u8) -> String {
    let mut specs = Vec::new();
    for lan in 0..shape.lans {
        for vrid in 1..=shape.per_lan {
            specs.push(InstanceSpec {
                name: format!("VI_{lan}_{vrid}"),
                interface: format!("eth{lan}"),
                vrid,
                priority,
                advert_int: "1".into(),
                version: 2,
                vip: format!("{}/32", vip(lan, vrid)),
            });
        }
    }
    render(&specs)
}

/// Runs the benchmark for each daemon and prints the table.
pub fn run(tandemd: &Path, shape: Shape, daemons: &[Kind]) -> Result<()> {
    let total = shape.lans * usize::from(shape.per_lan);
    let ticks = clock_ticks()?;
    println!(
        "instances: {total} VRRP instances ({} LANs x {} VRIDs, VRIDs reused on every LAN), \
         VRRPv2, advert_int 1 s, one /32 VIP each;",
        shape.lans, shape.per_lan
    );
    println!(
        "  master a priority 150, backup b priority 100, same keepalived.conf for both daemons."
    );
    println!(
        "  After every VIP is on a and none on b, {} s settle, then CPU over {} s in {WINDOWS} \
         windows = time on a CPU",
        shape.settle, shape.duration
    );
    println!(
        "  (/proc/PID/task/*/schedstat, ns) summed over the daemon's processes and threads \
         (keepalived: parent + VRRP child);"
    );
    println!(
        "  CPU cells: median [min-max] over the windows; the target is a third of the median."
    );
    println!("  kernel share = stime / (utime + stime) of /proc/PID/stat (CLK_TCK {ticks});");
    println!("  RSS = VmRSS summed over the same processes at the end. Fresh lab per daemon.\n");
    let mut outcomes = Vec::new();
    for &kind in daemons {
        let o = run_one(tandemd, shape, kind)
            .with_context(|| format!("{} with {total} instances", kind.name()))?;
        outcomes.push((kind, o));
    }
    let mut header = vec!["".to_string()];
    header.extend(outcomes.iter().map(|(k, _)| k.name().to_string()));
    header.push("keepalived (issue)".into());
    header.push("target for tandemd".into());
    let (ik_m, ik_b, ik_mb) = ISSUE_KEEPALIVED;
    let keep = outcomes
        .iter()
        .find(|(k, _)| *k == Kind::Keepalived)
        .map(|(_, o)| o);
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String, issue: String, target: String| {
        let mut r = vec![name.to_string()];
        r.extend(outcomes.iter().map(|(_, o)| f(o)));
        r.push(issue);
        r.push(target);
        r
    };
    let third = |f: &dyn Fn(&Outcome) -> f64, fallback: f64| {
        format!("<= {:.2}", keep.map_or(fallback, f) / 3.0)
    };
    let mb = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
    let rows = vec![
        header,
        row(
            "CPU master (% of a core)",
            &|o| o.cpu_master.to_string(),
            format!("{ik_m:.2}"),
            third(&|o| o.cpu_master.median, ik_m),
        ),
        row(
            "CPU backup (% of a core)",
            &|o| o.cpu_backup.to_string(),
            format!("{ik_b:.2}"),
            third(&|o| o.cpu_backup.median, ik_b),
        ),
        row(
            "  kernel share (stime), master / backup",
            &|o| format!("{:.0} % / {:.0} %", o.kernel_master, o.kernel_backup),
            String::new(),
            String::new(),
        ),
        row(
            "RSS master (MiB)",
            &|o| mb(o.rss_master),
            format!("{ik_mb:.1}"),
            format!(
                "<= {}",
                keep.map_or(format!("{ik_mb:.1}"), |k| mb(k.rss_master))
            ),
        ),
        row(
            "RSS backup (MiB)",
            &|o| mb(o.rss_backup),
            String::new(),
            format!("<= {}", keep.map_or("-".into(), |k| mb(k.rss_backup))),
        ),
        row(
            "start to all VIPs on a (s)",
            &|o| format!("{:.2}", o.startup.as_secs_f64()),
            String::new(),
            String::new(),
        ),
        row(
            "VIPs on a / on b",
            &|o| format!("{} / {}", o.on_master, o.on_backup),
            String::new(),
            format!("{total} / 0"),
        ),
        row(
            "instances with exactly one master",
            &|o| format!("{}/{total}", o.exactly_one),
            String::new(),
            format!("{total}/{total}"),
        ),
    ];
    println!();
    print_table(&rows);
    Ok(())
}

fn run_one(tandemd: &Path, shape: Shape, kind: Kind) -> Result<Outcome> {
    let total = shape.lans * usize::from(shape.per_lan);
    let pair = Pair::with_lans("inst", shape.lans)?;
    let dir = pair.lab.log_dir();
    let all: HashSet<Ipv4Addr> = (0..shape.lans)
        .flat_map(|lan| (1..=shape.per_lan).map(move |v| vip(lan, v)))
        .collect();
    let start = Instant::now();
    let mut master = Running::start(kind, tandemd, dir, &pair.a, "a", &config(shape, 150))?;
    let mut backup = Running::start(kind, tandemd, dir, &pair.b, "b", &config(shape, 100))?;
    eprintln!("  {}: started, waiting for {total} VIPs on a", kind.name());
    let deadline = start + Duration::from_secs(300);
    let startup = loop {
        master.ensure_alive()?;
        backup.ensure_alive()?;
        let on_a = held(&pair.a, &all)?.len();
        let on_b = held(&pair.b, &all)?.len();
        if on_a == total && on_b == 0 {
            break start.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "after 300 s: {on_a} VIPs on a, {on_b} on b\n--- a (tail) ---\n{}\n--- b (tail) ---\n{}",
                tail(&master.child.log()),
                tail(&backup.child.log())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "  {}: all VIPs on a after {:.2} s; settling {} s, measuring {} s",
        kind.name(),
        startup.as_secs_f64(),
        shape.settle,
        shape.duration
    );
    std::thread::sleep(Duration::from_secs(shape.settle));
    let (pm, pb) = (master.pids()?, backup.pids()?);
    let (m0, b0) = (cpu_ticks(&pm)?, cpu_ticks(&pb)?);
    // Several windows, their median reported: a second in which the kernel happened to run
    // other work's softirqs on a daemon's time moves one window, not the figure.
    let window = Duration::from_secs(shape.duration) / WINDOWS;
    let (mut on_master, mut on_backup) = (Vec::new(), Vec::new());
    for _ in 0..WINDOWS {
        let t0 = Instant::now();
        let (rm0, rb0) = (runtime_ns(&pm)?, runtime_ns(&pb)?);
        std::thread::sleep(window);
        let (rm1, rb1) = (runtime_ns(&pm)?, runtime_ns(&pb)?);
        let wall = t0.elapsed().as_secs_f64();
        let pct = |ns: u64| ns as f64 / 1e9 / wall * 100.0;
        on_master.push(pct(rm1 - rm0));
        on_backup.push(pct(rb1 - rb0));
    }
    let (m1, b1) = (cpu_ticks(&pm)?, cpu_ticks(&pb)?);
    let kernel = |d: (u64, u64)| d.1 as f64 / (d.0 + d.1).max(1) as f64 * 100.0;
    let (dm, db) = ((m1.0 - m0.0, m1.1 - m0.1), (b1.0 - b0.0, b1.1 - b0.1));
    let (rss_master, rss_backup) = (rss(&pm)?, rss(&pb)?);
    master.ensure_alive()?;
    backup.ensure_alive()?;
    let on_a = held(&pair.a, &all)?;
    let on_b = held(&pair.b, &all)?;
    let exactly_one = all
        .iter()
        .filter(|v| on_a.contains(v) != on_b.contains(v))
        .count();
    Ok(Outcome {
        startup,
        cpu_master: Spread::of(on_master),
        cpu_backup: Spread::of(on_backup),
        kernel_master: kernel(dm),
        kernel_backup: kernel(db),
        rss_master,
        rss_backup,
        on_master: on_a.len(),
        on_backup: on_b.len(),
        exactly_one,
    })
}

/// Which of `vips` are configured in `ns` (one `ip -o -4 addr show` call).
fn held(ns: &Netns, vips: &HashSet<Ipv4Addr>) -> Result<HashSet<Ipv4Addr>> {
    let out = ns.ip("-o -4 addr show")?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut t = l.split_whitespace().skip_while(|t| *t != "inet");
            t.next()?;
            t.next()?.split('/').next()?.parse().ok()
        })
        .filter(|a| vips.contains(a))
        .collect())
}

/// (utime, stime) (fields 14 and 15 of /proc/PID/stat), summed.
fn cpu_ticks(pids: &[u32]) -> Result<(u64, u64)> {
    let mut sum = (0, 0);
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces; count fields after its ')'.
        let rest = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): utime is field 14, stime 15.
        let utime: u64 = fields.get(11).context("short stat")?.parse()?;
        let stime: u64 = fields.get(12).context("short stat")?.parse()?;
        sum.0 += utime;
        sum.1 += stime;
    }
    Ok(sum)
}

/// Time on a CPU in nanoseconds (first field of /proc/PID/task/TID/schedstat), summed over
/// every thread of every process: exact, where utime+stime count whole clock ticks (at
/// 0.4 % of a core over 25 s, ten of them).
fn runtime_ns(pids: &[u32]) -> Result<u64> {
    let mut sum = 0;
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("listing /proc/{pid}/task"))?;
        for task in tasks {
            let path = task?.path().join("schedstat");
            let stat = match std::fs::read_to_string(&path) {
                Ok(stat) => stat,
                // A thread (or a script child's) that ended between listing and reading.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let ns: u64 = stat
                .split_whitespace()
                .next()
                .context("empty schedstat")?
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?;
            sum += ns;
        }
    }
    Ok(sum)
}

/// VmRSS in bytes, summed.
fn rss(pids: &[u32]) -> Result<u64> {
    let mut sum = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")?;
        sum += kb * 1024;
    }
    Ok(sum)
}

/// `getconf CLK_TCK`.
fn clock_ticks() -> Result<u64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing getconf CLK_TCK")
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
