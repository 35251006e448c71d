//! `failover-flows`: 50 TCP connections through the NAT gateway pair of `etc/` across the
//! master's death, with tandemd on both gateways and then with keepalived + conntrackd +
//! a primary-backup.sh, each with 0 and with N other replicated entries in the table.
//!
//! The master dies as a machine would: its daemons are SIGKILLed and its links (pub0, int0,
//! sync0) go down at once. We report how many connections move bytes again, the longest
//! stall of any of them, when the backup held the VIPs, and when its commit of the
//! replicated entries finished (tandemd: the timestamp of its `commit:` log line; the
//! script: `date` before and after `conntrackd -c`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tandem_lab::{
    example_config, wait_until, Child, EchoServer, FlowOptions, Gateway, Netns, TcpFlows, SIDE_A,
    SIDE_B,
};

use crate::ctbench::{
    conntrackd_conf, generate, kernel_count, thousands, ConntrackMax, Conntrackd, Tandemd,
};

const FLOWS: usize = 50;
const VIPS: [&str; 2] = ["10.1.0.254", "10.2.0.254"];

/// Which software runs on the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// tandemd with etc/ as shipped (warm standby on).
    Tandem,
    /// tandemd with `warm_standby = false`: the backup only caches, promotion commits all.
    TandemCold,
    /// keepalived + conntrackd + primary-backup.sh.
    KeepalivedConntrackd,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Tandem => "tandem",
            Setup::TandemCold => "tandem, warm_standby = false",
            Setup::KeepalivedConntrackd => "keepalived + conntrackd",
        }
    }
}

/// One case's numbers.
#[derive(Debug, Clone)]
struct Outcome {
    setup: Setup,
    others: usize,
    alive: usize,
    total: usize,
    stall: Duration,
    vips: Option<Duration>,
    commit: Option<Duration>,
    note: String,
}

/// Runs every setup with every count of other entries and prints the table.
pub fn run(tandemd: &Path, setups: &[Setup], others: &[usize]) -> Result<()> {
    let biggest = others.iter().copied().max().unwrap_or(0) as u64;
    let _max = ConntrackMax::raise(biggest + biggest / 4 + 10_000)?;
    let mut out = Vec::new();
    for &n in others {
        for &setup in setups {
            eprintln!(
                "failover-flows: {}, {} other entries ...",
                setup.name(),
                thousands(n as u64)
            );
            match case(tandemd, setup, n) {
                Ok(o) => {
                    eprintln!("  {o:?}");
                    out.push(o)
                }
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    out.push(Outcome {
                        setup,
                        others: n,
                        alive: 0,
                        total: 0,
                        stall: Duration::ZERO,
                        vips: None,
                        commit: None,
                        note: format!("run failed: {}", first_line(&format!("{e:#}"))),
                    });
                }
            }
        }
    }
    print_table(&out);
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The daemons of one gateway.
enum Node {
    Tandem(Tandemd),
    Kc {
        keepalived: Child,
        conntrackd: Conntrackd,
        /// The hook script's log (commit timestamps).
        hook_log: PathBuf,
    },
}

impl Node {
    fn external(&self) -> u64 {
        match self {
            Node::Tandem(d) => d.stat("external_entries"),
            Node::Kc { conntrackd, .. } => conntrackd.counts().1,
        }
    }

    fn kill(&mut self) -> Result<()> {
        match self {
            Node::Tandem(d) => d.child.kill(),
            Node::Kc {
                keepalived,
                conntrackd,
                ..
            } => {
                keepalived.kill()?;
                conntrackd.child.kill()
            }
        }
    }

    fn log(&self) -> String {
        match self {
            Node::Tandem(d) => d.child.log(),
            Node::Kc {
                keepalived,
                hook_log,
                ..
            } => format!(
                "{}\nhook:\n{}",
                keepalived.log(),
                std::fs::read_to_string(hook_log).unwrap_or_default()
            ),
        }
    }
}

fn etc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc")
}

fn start(gw: &Gateway, tandemd: &Path, setup: Setup, ns: &Netns, side: char) -> Result<Node> {
    let dir = gw.lab.log_dir().to_path_buf();
    let (keepalived_conf, toml) =
        example_config(&etc(), if side == 'a' { SIDE_A } else { SIDE_B }, &dir)?;
    let tag = format!("g{side}");
    match setup {
        Setup::Tandem | Setup::TandemCold => {
            let toml = if setup == Setup::TandemCold {
                anyhow::ensure!(
                    toml.contains("warm_standby = true"),
                    "etc/tandem.toml no longer says `warm_standby = true`"
                );
                toml.replace("warm_standby = true", "warm_standby = false")
            } else {
                toml
            };
            Ok(Node::Tandem(Tandemd::start(
                tandemd,
                &dir,
                ns,
                &tag,
                &keepalived_conf,
                &toml,
            )?))
        }
        Setup::KeepalivedConntrackd => {
            let (local, peer) = if side == 'a' {
                ("10.3.0.1", "10.3.0.2")
            } else {
                ("10.3.0.2", "10.3.0.1")
            };
            let conntrackd = Conntrackd::start(
                ns,
                &dir,
                &tag,
                &conntrackd_conf(&dir, &tag, "sync0", local, peer),
            )?;
            let hook = dir.join(format!("primary-backup-{tag}.sh"));
            let hook_log = dir.join(format!("primary-backup-{tag}.log"));
            std::fs::write(&hook, hook_script(&conntrackd.conf, &hook_log))?;
            std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            let h = hook.display();
            let conf = keepalived_conf
                .replace(
                    "router_id gateway",
                    "router_id gateway\n    script_user root",
                )
                .replace(
                    "vrrp_sync_group GATEWAY {",
                    &format!(
                        "vrrp_sync_group GATEWAY {{\n    notify_master \"{h} primary\"\n    notify_backup \"{h} backup\"\n    notify_fault \"{h} fault\""
                    ),
                );
            let path = dir.join(format!("keepalived-{tag}.conf"));
            std::fs::write(&path, conf)?;
            let pid = dir.join(format!("keepalived-{tag}.pid"));
            let vrrp_pid = dir.join(format!("keepalived-vrrp-{tag}.pid"));
            let s = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
            let keepalived = ns.spawn(&[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--vrrp",
                "-f",
                &s(&path)?,
                "-p",
                &s(&pid)?,
                "-r",
                &s(&vrrp_pid)?,
            ])?;
            Ok(Node::Kc {
                keepalived,
                conntrackd,
                hook_log,
            })
        }
    }
}

/// The failover sequence of conntrack-tools' primary-backup.sh, with this node's
/// conntrackd.conf, logging the time before and after the commit.
fn hook_script(conf: &Path, log: &Path) -> String {
    let (c, l) = (conf.display(), log.display());
    format!(
        "#!/bin/sh
C=\"conntrackd -C {c}\"
echo \"$1 $(date +%s.%N)\" >> {l}
case \"$1\" in
primary)
    echo \"commit-start $(date +%s.%N)\" >> {l}
    $C -c >> {l} 2>&1
    echo \"commit-end $(date +%s.%N)\" >> {l}
    $C -f >> {l} 2>&1
    $C -R >> {l} 2>&1
    $C -B >> {l} 2>&1
    ;;
backup)
    $C -n >> {l} 2>&1
    ;;
fault)
    $C -t >> {l} 2>&1
    ;;
esac
"
    )
}

fn holds_all(ns: &Netns) -> bool {
    VIPS.iter().all(|v| ns.has_address(v).unwrap_or(false))
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn case(tandemd: &Path, setup: Setup, others: usize) -> Result<Outcome> {
    let gw = Gateway::new("ffl")?;
    let mut a = start(&gw, tandemd, setup, &gw.a, 'a')?;
    let b = start(&gw, tandemd, setup, &gw.b, 'b')?;
    wait_until(
        "gw-a holding both VIPs",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || holds_all(&gw.a).then_some(()),
    )
    .with_context(|| a.log())?;
    let server = EchoServer::start(&gw.server, 0)?;
    let to = SocketAddr::new(tandem_lab::gateway::SERVER_ADDR.into(), server.port());
    let flows = TcpFlows::start_with(&gw.client, to, FLOWS, FlowOptions::default())?;
    flows.wait_all_progress(Duration::from_secs(10))?;

    if others > 0 {
        generate(&gw.a, others, 0)?;
    }
    // Until the backup's external cache holds them all, or stops growing for 20 s (the
    // table then says how many it got).
    let want = (others + FLOWS) as u64;
    let (mut last, mut since, started) = (0, Instant::now(), Instant::now());
    let replicated = loop {
        let n = b.external();
        if n >= want || since.elapsed() > Duration::from_secs(20) {
            break n;
        }
        if n != last {
            (last, since) = (n, Instant::now());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120 + others as u64 / 2_000),
            "backup has {n} of {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Steady state: what the backup received is in its kernel (a warm tandem backup reports
    // what it still has to apply), then whatever else it does with it is done. The failure
    // this measures hits a table of that size, not the burst that filled it.
    if let Node::Tandem(d) = &b {
        let _ = wait_until(
            "the backup's kernel caught up",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || (d.stat("warm_pending") == 0).then_some(()),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let kernel_before = kernel_count(&gw.b);

    flows.mark();
    let failed_at = Instant::now();
    let failed_epoch = epoch();
    a.kill()?;
    for dev in ["pub0", "int0", "sync0"] {
        gw.a.link_set(dev, false)?;
    }
    let vips = wait_until(
        "gw-b holding both VIPs",
        Duration::from_secs(20),
        Duration::from_millis(5),
        || holds_all(&gw.b).then(|| failed_at.elapsed()),
    )
    .ok();
    let _ = flows.wait_all_progress(Duration::from_secs(20));
    let report = flows.report();

    let (commit, note) = match &b {
        Node::Tandem(_) => tandem_commit(&b, failed_epoch),
        Node::Kc { hook_log, .. } => script_commit(hook_log, failed_epoch),
    };
    let dead = report.dead();
    let dead = match dead.first() {
        Some(f) => format!(
            "; {} died ({})",
            dead.len(),
            f.error.as_deref().unwrap_or("?")
        ),
        None => String::new(),
    };
    let short = if replicated < want {
        format!("; only {} of {want} replicated", thousands(replicated))
    } else {
        String::new()
    };
    let note = format!(
        "{note}; backup's kernel held {} entries before{dead}{short}",
        thousands(kernel_before)
    );
    Ok(Outcome {
        setup,
        others,
        alive: report.alive,
        total: report.total,
        stall: report.longest_stall,
        vips,
        commit,
        note,
    })
}

/// Without the terminal colour sequences tracing may put in.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2025-01-02T03:04:05.123456Z`).
fn parse_time(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 (civil calendar).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// When tandemd's commit after the failure finished: the timestamp of its `commit:` line.
fn tandem_commit(b: &Node, failed: f64) -> (Option<Duration>, String) {
    let found = wait_until(
        "the new master's commit in its log",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            let log = strip_ansi(&b.log());
            log.lines()
                .filter(|l| l.contains(" commit: ") && !l.contains("before announcing"))
                .filter_map(|l| {
                    let t = parse_time(l.split_whitespace().next()?)?;
                    (t >= failed - 0.001).then(|| (t, l.to_string()))
                })
                .next_back()
        },
    );
    match found {
        Ok((t, line)) => {
            let what = line
                .split_once(" commit: ")
                .map_or("", |(_, rest)| rest)
                .split(',')
                .next()
                .unwrap_or("")
                .to_string();
            let waited = strip_ansi(&b.log()).contains("announcing the addresses anyway");
            (
                Some(Duration::from_secs_f64((t - failed).max(0.0))),
                format!(
                    "commit: {what}{}",
                    if waited {
                        " (VIPs announced after commit_wait, before it finished)"
                    } else {
                        ""
                    }
                ),
            )
        }
        Err(e) => (None, e.to_string()),
    }
}

/// When the script's `conntrackd -c` after the failure returned.
fn script_commit(hook_log: &Path, failed: f64) -> (Option<Duration>, String) {
    let stamp = |word: &str| {
        std::fs::read_to_string(hook_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(word)?.trim().parse::<f64>().ok())
            .rfind(|&t| t >= failed)
    };
    match wait_until(
        "the script's conntrackd -c",
        Duration::from_secs(180),
        Duration::from_millis(100),
        || stamp("commit-end "),
    ) {
        Ok(end) => {
            let start = stamp("commit-start ").unwrap_or(end);
            (
                Some(Duration::from_secs_f64(end - failed)),
                format!("conntrackd -c took {:.2} s", end - start),
            )
        }
        Err(e) => (None, e.to_string()),
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

fn print_table(out: &[Outcome]) {
    println!();
    println!(
        "{:<48} | {:<12} | {:<13} | {:<16} | {:<25} | notes",
        "case", "surviving", "longest stall", "VIPs moved after", "commit done after failure"
    );
    println!(
        "{}",
        "-".repeat(48 + 3 + 12 + 3 + 13 + 3 + 16 + 3 + 25 + 3 + 30)
    );
    for o in out {
        println!(
            "{:<48} | {:<12} | {:<13} | {:<16} | {:<25} | {}",
            format!(
                "{}, {} other entries",
                o.setup.name(),
                thousands(o.others as u64)
            ),
            format!("{}/{}", o.alive, o.total),
            format!("{:.3} s", o.stall.as_secs_f64()),
            secs(o.vips),
            secs(o.commit),
            o.note
        );
    }
    // Target: tandem keeps every flow, and its stall does not grow with the table.
    println!();
    for setup in [Setup::Tandem, Setup::TandemCold] {
        let rows: Vec<&Outcome> = out
            .iter()
            .filter(|o| o.setup == setup && o.total > 0)
            .collect();
        let Some(empty) = rows.iter().find(|o| o.others == 0) else {
            continue;
        };
        for o in rows.iter().filter(|o| o.others > 0) {
            let grew = o.stall.as_secs_f64() - empty.stall.as_secs_f64();
            println!(
                "{}: {}/{} surviving with {} other entries; stall {:+.0} ms against the empty table ({}; target within 50 ms and 100 %)",
                setup.name(),
                o.alive,
                o.total,
                thousands(o.others as u64),
                grew * 1000.0,
                if grew <= 0.050 && o.alive == o.total {
                    "meets the target"
                } else {
                    "MISSES the target"
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1.5));
        assert_eq!(parse_time("2024-03-01T00:00:00Z"), Some(1_709_251_200.0));
        assert_eq!(strip_ansi("\x1b[2m2024\x1b[0m x"), "2024 x");
    }
}
