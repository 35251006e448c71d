//! `sync`: conntrack replication throughput and cost, tandemd against Debian's conntrackd
//! (FTFW over UDP) in the same two-namespace topology.
//!
//! A generator creates N entries in A's kernel through ctnetlink (batched, so it is not the
//! bottleneck); we time until B's external cache holds N and take each daemon's CPU time
//! (`/proc/PID/stat`) and resident memory (`VmRSS`) deltas, and the bytes of the sync
//! datagrams (an nft counter in both namespaces, the same for both tools). Then B's external
//! cache is flushed and A bulk-sends everything again (rate), and B commits its external
//! cache into its kernel (time), after which B's internal cache should hold all N entries.
//! A is killed before the commit, as the master is dead when a backup commits.
//! tandemd runs with `warm_standby = false`, so its backup only caches as conntrackd's does
//! and the commit does the full work, and with a key (every datagram authenticated under its
//! session's key), which conntrackd has no means to do: the figures include that cost.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_lab::{wait_until, Pair};

use crate::ctbench::{
    add_sync_counter, conntrackd_conf, cpu, generate, kernel_count, rss, sync_bytes, thousands,
    ConntrackMax, Conntrackd, Tandemd,
};

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Entry counts to measure.
    pub sizes: Vec<usize>,
    /// Generator rate in entries per second (0: as fast as the kernel takes them).
    pub rate: u64,
    /// Run tandemd.
    pub tandem: bool,
    /// Run conntrackd.
    pub conntrackd: bool,
}

/// One tool's numbers at one size.
#[derive(Debug, Default, Clone)]
struct Run {
    n: u64,
    generated: Duration,
    /// Until B's external cache held N (or stopped growing).
    replicated: Duration,
    reached: u64,
    cpu_a: Duration,
    cpu_b: Duration,
    rss_a: i64,
    rss_b: i64,
    bytes: u64,
    bulk: Option<Duration>,
    bulk_reached: u64,
    commit: Option<Duration>,
    kernel_after_commit: u64,
    internal_after_commit: u64,
    resync: Option<Duration>,
    internal_after_resync: u64,
    rss_a_end: u64,
    rss_b_end: u64,
}

/// Either daemon, seen through what the benchmark needs.
trait Node {
    fn pid(&self) -> u32;
    fn external(&self) -> u64;
    fn internal(&self) -> u64;
    fn flush_external(&self) -> Result<()>;
    fn bulk(&self) -> Result<()>;
    /// Commits the external cache; the time the commit took.
    fn commit(&self) -> Result<Duration>;
    /// Refills the internal cache from a kernel dump (the step after the commit in a
    /// promotion, `conntrackd -R`); the time it took.
    fn resync(&self) -> Result<Duration>;
}

impl Node for Tandemd {
    fn pid(&self) -> u32 {
        self.child.pid()
    }
    fn external(&self) -> u64 {
        self.stat("external_entries")
    }
    fn internal(&self) -> u64 {
        self.stat("internal_entries")
    }
    fn flush_external(&self) -> Result<()> {
        self.ask("flush external", Duration::from_secs(60))
            .map(drop)
    }
    fn bulk(&self) -> Result<()> {
        self.ask("bulk", Duration::from_secs(60)).map(drop)
    }
    fn commit(&self) -> Result<Duration> {
        let reply = self.ask("commit", Duration::from_secs(300))?;
        let ms = reply
            .split(" in ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
            .with_context(|| format!("unexpected commit reply: {reply}"))?;
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }
    fn resync(&self) -> Result<Duration> {
        let t = Instant::now();
        let reply = self.ask("resync", Duration::from_secs(300))?;
        anyhow::ensure!(reply.starts_with("resync:"), "resync: {reply}");
        Ok(t.elapsed())
    }
}

impl Node for Conntrackd {
    fn pid(&self) -> u32 {
        self.child.pid()
    }
    fn external(&self) -> u64 {
        self.counts().1
    }
    fn internal(&self) -> u64 {
        self.counts().0
    }
    fn flush_external(&self) -> Result<()> {
        self.ctl(&["-f", "external"]).map(drop)
    }
    fn bulk(&self) -> Result<()> {
        self.ctl(&["-B"]).map(drop)
    }
    fn commit(&self) -> Result<Duration> {
        let t = Instant::now();
        self.ctl(&["-c"])?;
        Ok(t.elapsed())
    }
    fn resync(&self) -> Result<Duration> {
        let t = Instant::now();
        self.ctl(&["-R"])?;
        Ok(t.elapsed())
    }
}

/// Runs the benchmark and prints the table.
pub fn run(tandemd: &Path, opts: &Opts) -> Result<()> {
    let biggest = opts.sizes.iter().copied().max().unwrap_or(0) as u64;
    let _max = ConntrackMax::raise(biggest + biggest / 4 + 10_000)?;
    let mut results: Vec<(usize, Option<Run>, Option<Run>)> = Vec::new();
    for &n in &opts.sizes {
        let t = if opts.tandem {
            eprintln!("sync: tandemd, {} entries ...", thousands(n as u64));
            Some(one(Tool::Tandem, tandemd, n, opts.rate)?)
        } else {
            None
        };
        let c = if opts.conntrackd {
            eprintln!("sync: conntrackd, {} entries ...", thousands(n as u64));
            Some(one(Tool::Conntrackd, tandemd, n, opts.rate)?)
        } else {
            None
        };
        results.push((n, t, c));
    }
    for (n, t, c) in &results {
        print_table(*n, t.as_ref(), c.as_ref());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    Tandem,
    Conntrackd,
}

const VRRP_A: &str = "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 1\n    version 3\n    virtual_ipaddress {\n        10.0.0.254/24\n    }\n}\n";

fn tandem_toml(local: &str, peer: &str) -> String {
    format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nport = 3780\nwarm_standby = false\nkey = \"{SYNC_KEY}\"\n"
    )
}

/// The pre-shared key of the benchmark pair (32 bytes, as a key file must hold at least).
const SYNC_KEY: &str = "bench-sync-key-0123456789abcdefg";

fn one(tool: Tool, tandemd: &Path, n: usize, rate: u64) -> Result<Run> {
    let pair = Pair::new("sync")?;
    for ns in pair.routers() {
        ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0").ok();
    }
    let dir = pair.lab.log_dir().to_path_buf();
    match tool {
        Tool::Tandem => {
            let a = Tandemd::start(
                tandemd,
                &dir,
                &pair.a,
                "a",
                VRRP_A,
                &tandem_toml("10.0.0.1", "10.0.0.2"),
            )?;
            let b = Tandemd::start(
                tandemd,
                &dir,
                &pair.b,
                "b",
                &VRRP_A.replace("priority 150", "priority 100"),
                &tandem_toml("10.0.0.2", "10.0.0.1"),
            )?;
            wait_until(
                "A holding the VIP",
                Duration::from_secs(15),
                Duration::from_millis(20),
                || {
                    pair.a
                        .has_address("10.0.0.254")
                        .unwrap_or(false)
                        .then_some(())
                },
            )?;
            // Let the start-up resync exchange settle.
            std::thread::sleep(Duration::from_secs(1));
            measure(&pair, &a, &b, n, rate)
                .with_context(|| format!("B's log:\n{}", tail(&b.child.log())))
        }
        Tool::Conntrackd => {
            let a = Conntrackd::start(
                &pair.a,
                &dir,
                "a",
                &conntrackd_conf(&dir, "a", "eth0", "10.0.0.1", "10.0.0.2"),
            )?;
            let b = Conntrackd::start(
                &pair.b,
                &dir,
                "b",
                &conntrackd_conf(&dir, "b", "eth0", "10.0.0.2", "10.0.0.1"),
            )?;
            std::thread::sleep(Duration::from_secs(1));
            measure(&pair, &a, &b, n, rate)
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Polls `count` until it reaches `n`, or stops growing for `stall`, or `deadline` passes.
/// Returns (elapsed at the last growth or on reaching n, last value).
fn wait_count(
    n: u64,
    deadline: Duration,
    stall: Duration,
    count: impl Fn() -> u64,
) -> (Duration, u64) {
    let start = Instant::now();
    let (mut last, mut last_change) = (u64::MAX, Duration::ZERO);
    loop {
        let c = count();
        let now = start.elapsed();
        if c >= n {
            return (now, c);
        }
        if c != last {
            last = c;
            last_change = now;
        }
        if now >= deadline || now - last_change >= stall {
            return (last_change, c);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn measure(pair: &Pair, a: &dyn Node, b: &dyn Node, n: usize, rate: u64) -> Result<Run> {
    add_sync_counter(&pair.a)?;
    add_sync_counter(&pair.b)?;
    let nn = n as u64;
    let deadline = Duration::from_secs(60 + nn / 4_000);
    let stall = Duration::from_secs(20);
    let (cpu_a0, cpu_b0) = (cpu(a.pid()), cpu(b.pid()));
    let (rss_a0, rss_b0) = (rss(a.pid()), rss(b.pid()));
    let bytes0 = sync_bytes(&pair.a) + sync_bytes(&pair.b);

    let generated = generate(&pair.a, n, rate)?;
    let (left, reached) = wait_count(nn, deadline, stall, || b.external());
    // From the first entry created until B's external cache held the last one.
    let replicated = generated + left;
    let mut run = Run {
        n: nn,
        generated,
        replicated,
        reached,
        cpu_a: cpu(a.pid()).saturating_sub(cpu_a0),
        cpu_b: cpu(b.pid()).saturating_sub(cpu_b0),
        rss_a: rss(a.pid()) as i64 - rss_a0 as i64,
        rss_b: rss(b.pid()) as i64 - rss_b0 as i64,
        bytes: sync_bytes(&pair.a) + sync_bytes(&pair.b) - bytes0,
        ..Run::default()
    };
    eprintln!(
        "  replicated {} of {} in {:.2} s (A's internal cache {}, A's kernel {})",
        thousands(reached),
        thousands(nn),
        replicated.as_secs_f64(),
        thousands(a.internal()),
        thousands(kernel_count(&pair.a))
    );

    // Bulk send: B forgets, A sends its whole internal cache again.
    b.flush_external()?;
    let _ = wait_until(
        "B's external cache flushed",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || (b.external() == 0).then_some(()),
    );
    let t = Instant::now();
    a.bulk()?;
    let asked = t.elapsed();
    let (took, got) = wait_count(reached, deadline, stall, || b.external());
    let took = asked + took;
    run.bulk = (got >= reached).then_some(took);
    run.bulk_reached = got;
    eprintln!(
        "  bulk: {} entries in {:.2} s",
        thousands(got),
        took.as_secs_f64()
    );

    // Commit B's external cache into B's kernel, as at a failover: with A gone. (Both
    // "gateways" share one kernel here, and the kernel builds an event message per created
    // entry while any namespace has a conntrack event listener: A's daemon alive would bill
    // B's commit for listening that separate machines do not share.)
    run.rss_a_end = rss(a.pid());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    match b.commit() {
        Ok(d) => run.commit = Some(d),
        Err(e) => eprintln!("  commit failed: {e:#}"),
    }
    run.kernel_after_commit = kernel_count(&pair.b);
    // The events of the committed entries reach B's internal cache (if its event path keeps
    // up): wait until the count settles.
    let (_, internal) = wait_count(got, Duration::from_secs(30), Duration::from_secs(3), || {
        b.internal()
    });
    run.internal_after_commit = internal;
    // What a promotion does next (primary-backup.sh: -f, -R; tandemd: resync): the internal
    // cache from a kernel dump.
    match b.resync() {
        Ok(d) => run.resync = Some(d),
        Err(e) => eprintln!("  resync failed: {e:#}"),
    }
    let (_, internal) = wait_count(got, Duration::from_secs(30), Duration::from_secs(3), || {
        b.internal()
    });
    run.internal_after_resync = internal;
    run.rss_b_end = rss(b.pid());
    eprintln!(
        "  commit: {:?}, B's kernel {}, B's internal cache {}",
        run.commit,
        thousands(run.kernel_after_commit),
        thousands(internal)
    );
    Ok(run)
}

fn per_entry_us(cpu: Duration, n: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Name, cell of one run, target.
type Row = (&'static str, Box<dyn Fn(&Run) -> String>, String);

fn print_table(n: usize, t: Option<&Run>, c: Option<&Run>) {
    let nn = n as u64;
    println!();
    println!("sync, {} entries", thousands(nn));
    let rows: Vec<Row> = vec![
        (
            "generator (A's kernel)",
            Box::new(|r: &Run| {
                format!(
                    "{:.2} s ({:.0}/s)",
                    r.generated.as_secs_f64(),
                    r.n as f64 / r.generated.as_secs_f64()
                )
            }),
            String::new(),
        ),
        (
            "replicated into B's external cache",
            Box::new(|r: &Run| {
                if r.reached >= r.n {
                    format!("{:.2} s", r.replicated.as_secs_f64())
                } else {
                    format!(
                        "only {} ({:.1} s)",
                        thousands(r.reached),
                        r.replicated.as_secs_f64()
                    )
                }
            }),
            String::new(),
        ),
        (
            "entries/s replicated",
            Box::new(|r: &Run| format!("{:.0}", r.reached as f64 / r.replicated.as_secs_f64())),
            String::new(),
        ),
        (
            "CPU per entry, sender (A)",
            Box::new(|r: &Run| {
                format!(
                    "{:.1} us ({:.0} % CPU)",
                    per_entry_us(r.cpu_a, r.reached),
                    r.cpu_a.as_secs_f64() * 100.0 / r.replicated.as_secs_f64()
                )
            }),
            target_third(c.map(|r| per_entry_us(r.cpu_a, r.reached)), 40.0, "us"),
        ),
        (
            "CPU per entry, receiver (B)",
            Box::new(|r: &Run| {
                format!(
                    "{:.1} us ({:.0} % CPU)",
                    per_entry_us(r.cpu_b, r.reached),
                    r.cpu_b.as_secs_f64() * 100.0 / r.replicated.as_secs_f64()
                )
            }),
            target_third(c.map(|r| per_entry_us(r.cpu_b, r.reached)), 40.0, "us"),
        ),
        (
            "memory per entry, sender (A)",
            Box::new(|r: &Run| format!("{} B", r.rss_a / r.reached.max(1) as i64)),
            target_third(
                c.map(|r| (r.rss_a / r.reached.max(1) as i64) as f64),
                528.0,
                "B",
            ),
        ),
        (
            "memory per entry, receiver (B)",
            Box::new(|r: &Run| format!("{} B", r.rss_b / r.reached.max(1) as i64)),
            target_third(
                c.map(|r| (r.rss_b / r.reached.max(1) as i64) as f64),
                464.0,
                "B",
            ),
        ),
        (
            "sync link bytes per entry (both ways)",
            Box::new(|r: &Run| format!("{:.1} B", r.bytes as f64 / r.reached.max(1) as f64)),
            String::new(),
        ),
        (
            "bulk send rate",
            Box::new(|r: &Run| match r.bulk {
                Some(d) => format!(
                    "{:.0}/s ({:.2} s)",
                    r.bulk_reached as f64 / d.as_secs_f64(),
                    d.as_secs_f64()
                ),
                None => format!("only {}", thousands(r.bulk_reached)),
            }),
            String::new(),
        ),
        (
            "commit on B",
            Box::new(|r: &Run| match r.commit {
                Some(d) => format!("{:.3} s", d.as_secs_f64()),
                None => "failed".into(),
            }),
            match c.and_then(|r| r.commit) {
                Some(d) => format!("< {:.3} s (1/5)", d.as_secs_f64() / 5.0),
                None => match n {
                    100_000 => "< 0.3 s".into(),
                    1_000_000 => "< 5 s".into(),
                    _ => String::new(),
                },
            },
        ),
        (
            "B's kernel after commit",
            Box::new(|r: &Run| thousands(r.kernel_after_commit)),
            String::new(),
        ),
        (
            "B's internal cache after commit",
            Box::new(|r: &Run| thousands(r.internal_after_commit)),
            thousands(nn),
        ),
        (
            "then resync from a kernel dump (-R)",
            Box::new(|r: &Run| match r.resync {
                Some(d) => format!(
                    "{:.3} s, {}",
                    d.as_secs_f64(),
                    thousands(r.internal_after_resync)
                ),
                None => "failed".into(),
            }),
            String::new(),
        ),
        (
            "RSS at the end, A / B",
            Box::new(|r: &Run| {
                format!(
                    "{:.0} / {:.0} MB",
                    r.rss_a_end as f64 / 1e6,
                    r.rss_b_end as f64 / 1e6
                )
            }),
            String::new(),
        ),
    ];
    let cell = |r: Option<&Run>, f: &dyn Fn(&Run) -> String| r.map_or("-".to_string(), f);
    println!(
        "{:<40} | {:<26} | {:<26} | target",
        "metric", "tandem", "conntrackd"
    );
    println!("{}", "-".repeat(40 + 3 + 26 + 3 + 26 + 3 + 24));
    for (name, f, target) in &rows {
        println!(
            "{:<40} | {:<26} | {:<26} | {}",
            name,
            cell(t, f.as_ref()),
            cell(c, f.as_ref()),
            target
        );
    }
}

/// "<= a third of conntrackd's": of the measured value when there is one, else of the value
/// the issue quotes.
fn target_third(measured: Option<f64>, quoted: f64, unit: &str) -> String {
    match measured {
        Some(v) => format!("<= {:.1} {unit} (1/3)", v / 3.0),
        None => format!("<= {:.1} {unit} (1/3 of {quoted})", quoted / 3.0),
    }
}
