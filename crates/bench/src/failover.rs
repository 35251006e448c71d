//! `tandem-bench failover`: takeover time after the master's link is cut (hard) or the master
//! is stopped with SIGTERM (graceful), for tandemd and keepalived in the same topology; for a
//! sync group of two instances on two LANs, also the time from its first VIP to its last.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use tandem_lab::{wait_until, Pair};

use crate::daemons::{render, InstanceSpec, Kind, Running};
use crate::summary::{print_table, secs, Summary};
use crate::watch::{Event, Watcher};

const VIP: &str = "10.0.0.254";
/// The second member's VIP in the sync-group cells (on eth1, the second LAN).
const VIP2: &str = "10.0.1.254";
const MASTER_PRIORITY: u8 = 150;
const BACKUP_PRIORITY: u8 = 100;

/// How the master goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `ip link set eth0 down` on the master at a random point of the advert cycle.
    Hard,
    /// SIGTERM: the master sends priority 0 and removes its addresses.
    Graceful,
}

/// One row group of the table.
#[derive(Debug, Clone, Copy)]
struct Cell {
    version: u8,
    advert: Duration,
    mode: Mode,
    runs: usize,
    /// keepalived's figure quoted in the issue, for scale (NaN: none quoted).
    reference: f64,
    /// A sync group of two instances (VIP on eth0, VIP2 on eth1) instead of one instance.
    group: bool,
}

/// One measured takeover.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// From the cut / SIGTERM to the VIP on the backup.
    from_trigger: Duration,
    /// From the master's last advert (hard) or its priority-0 advert (graceful) as the backup
    /// received it, to the VIP on the backup.
    from_advert: Option<Duration>,
    /// From the first VIP of the group on the backup to the last (group cells).
    spread: Option<Duration>,
}

/// Runs the failover benchmark and prints the table.
/// `only_cells`: run only the cells whose name contains one of these words (all when empty).
pub fn run(
    tandemd: &Path,
    runs: Option<usize>,
    daemons: &[Kind],
    only_cells: &[String],
) -> Result<()> {
    let slow = runs.unwrap_or(7);
    let fast = runs.unwrap_or(15);
    let cells: Vec<Cell> = [
        cell(2, 1000, Mode::Hard, slow, 3.34),
        cell(2, 1000, Mode::Graceful, slow, 0.625),
        cell(3, 100, Mode::Hard, fast, 0.337),
        cell(3, 100, Mode::Graceful, fast, 0.076),
        Cell {
            group: true,
            ..cell(3, 100, Mode::Hard, fast, f64::NAN)
        },
        Cell {
            group: true,
            ..cell(3, 100, Mode::Graceful, fast, 0.068)
        },
    ]
    .into_iter()
    .filter(|c| {
        only_cells.is_empty() || only_cells.iter().any(|w| describe(c).contains(w.as_str()))
    })
    .collect();
    println!("failover: master a (priority {MASTER_PRIORITY}) and backup b (priority {BACKUP_PRIORITY}) on one LAN, VIP {VIP}/24;");
    println!("  each run starts both daemons afresh; once a is master and 2 advert intervals have passed,");
    println!("  the next advert of a seen by b starts the cycle and the trigger falls at phase (k+0.5)/N of");
    println!(
        "  it, k = 0..N-1 in random order (stratified: the same phases for both daemons), then:"
    );
    println!("  hard     = `ip -n A link set eth0 down` (t0 = when the command returned);");
    println!("  graceful = SIGTERM to the master (t0 = just before kill(2)).");
    println!(
        "  The VIP appearing on b is seen by an rtnetlink socket (RTMGRP_IPV4_IFADDR) inside b,"
    );
    println!(
        "  and adverts by a raw protocol-112 socket inside b; a thread per socket stamps each"
    );
    println!("  message on receipt (no process spawned per poll).");
    println!("  'from advert' = from the master's last advert heard by b (hard) or its priority-0 advert");
    println!("  (graceful): the like-for-like comparison with Master_Down_Interval / Skew_Time.");
    println!("  Theory for b: MDI = 3*adv + (256-{BACKUP_PRIORITY})/256*adv; a cut at a uniformly random point");
    println!("  of the cycle gives MDI-adv..MDI, mean MDI-adv/2. Skew = (256-{BACKUP_PRIORITY})/256*adv.");
    println!(
        "  'group' cells: vrrp_sync_group of VI_1 (eth0, {VIP}/24) and VI_2 (eth1, {VIP2}/24);"
    );
    println!("  the takeover ends when the group's last VIP is on b, and 'first→last VIP' is the time from");
    println!(
        "  the first VIP's address notification to the last one's (both read by the same thread)."
    );
    println!("  'graceful − skew' = 'from priority-0 advert' minus Skew_Time, in milliseconds.");
    println!("  Cells: median [min-max] in seconds unless marked.\n");

    let pair = Pair::with_lans("bench", 2).context("building the lab (run as root)")?;
    let mut rng = rand::rng();
    let phases = |runs: usize, rng: &mut rand::rngs::ThreadRng| {
        let mut p: Vec<f64> = (0..runs).map(|k| (k as f64 + 0.5) / runs as f64).collect();
        p.shuffle(rng);
        p
    };
    let mut rows = vec![{
        let mut h = vec![
            "cell".to_string(),
            "measured from".to_string(),
            "theory".to_string(),
        ];
        h.extend(daemons.iter().map(|d| d.name().to_string()));
        h.push("keepalived (issue)".to_string());
        h
    }];
    for c in cells {
        let mut trigger = Vec::new();
        let mut advert = Vec::new();
        let mut spread = Vec::new();
        let mut over_skew = Vec::new();
        let adv = c.advert.as_secs_f64();
        let skew = adv * f64::from(256 - u32::from(BACKUP_PRIORITY)) / 256.0;
        for &kind in daemons {
            let mut t = Vec::new();
            let mut a = Vec::new();
            let mut sp = Vec::new();
            for (i, phase) in phases(c.runs, &mut rng).into_iter().enumerate() {
                let s = run_once(&pair, kind, &c, tandemd, phase)
                    .with_context(|| format!("{} {} run {}", kind.name(), describe(&c), i + 1))?;
                eprintln!(
                    "  {:<10} {:<26} run {:>2} (phase {phase:.2}): {} s from t0, {} s from advert{}",
                    kind.name(),
                    describe(&c),
                    i + 1,
                    secs(s.from_trigger),
                    s.from_advert.map_or("-".into(), secs),
                    s.spread
                        .map_or(String::new(), |d| format!(", first→last VIP {} ms", micros(d)))
                );
                t.push(s.from_trigger);
                a.extend(s.from_advert);
                sp.extend(s.spread);
            }
            trigger.push(Summary::of(&t));
            over_skew.push(millis_over(&a, skew));
            advert.push(Summary::of(&a));
            spread.push(Summary::of(&sp));
        }
        let mdi = 3.0 * adv + skew;
        let (theory_t, theory_a, what_t, what_a) = match c.mode {
            Mode::Hard => (
                format!("{:.3} ({:.3}–{:.3})", mdi - adv / 2.0, mdi - adv, mdi),
                format!("{mdi:.3} (MDI)"),
                "cut",
                "last advert",
            ),
            Mode::Graceful => (
                format!("{skew:.3} (skew)"),
                format!("{skew:.3} (skew)"),
                "SIGTERM",
                "priority-0 advert",
            ),
        };
        let mut row = vec![describe(&c), what_t.to_string(), theory_t];
        row.extend(trigger.iter().map(|s| s.map_or("-".into(), |s| s.cell())));
        row.push(if c.reference.is_nan() {
            "-".to_string()
        } else {
            format!("{:.3}", c.reference)
        });
        rows.push(row);
        let mut row = vec![String::new(), what_a.to_string(), theory_a];
        row.extend(advert.iter().map(|s| s.map_or("-".into(), |s| s.cell())));
        row.push(String::new());
        rows.push(row);
        if c.mode == Mode::Graceful {
            let mut row = vec![
                String::new(),
                "graceful − skew (ms)".to_string(),
                "0 (within 5)".to_string(),
            ];
            row.extend(over_skew.iter().cloned());
            row.push(String::new());
            rows.push(row);
        }
        if c.group {
            let mut row = vec![
                String::new(),
                "first→last VIP (ms)".to_string(),
                "0 (within 1)".to_string(),
            ];
            row.extend(spread.iter().map(|s| {
                s.map_or("-".into(), |s| {
                    format!("{} [{}–{}]", micros(s.median), micros(s.min), micros(s.max))
                })
            }));
            row.push(String::new());
            rows.push(row);
        }
    }
    println!();
    print_table(&rows);
    Ok(())
}

fn cell(version: u8, advert_ms: u64, mode: Mode, runs: usize, reference: f64) -> Cell {
    Cell {
        version,
        advert: Duration::from_millis(advert_ms),
        mode,
        runs,
        reference,
        group: false,
    }
}

fn describe(c: &Cell) -> String {
    format!(
        "v{} adv {}s {}{}",
        c.version,
        c.advert.as_secs_f64(),
        match c.mode {
            Mode::Hard => "hard",
            Mode::Graceful => "graceful",
        },
        if c.group { " group" } else { "" }
    )
}

/// The VIPs a cell moves.
fn vips(c: &Cell) -> &'static [&'static str] {
    if c.group {
        &[VIP, VIP2]
    } else {
        &[VIP]
    }
}

fn config(c: &Cell, priority: u8) -> String {
    let instance = |name: &str, interface: &str, vrid, vip: &str| InstanceSpec {
        name: name.into(),
        interface: interface.into(),
        vrid,
        priority,
        advert_int: format!("{}", c.advert.as_secs_f64()),
        version: c.version,
        vip: format!("{vip}/24"),
    };
    if !c.group {
        return render(&[instance("VI_1", "eth0", 51, VIP)]);
    }
    format!(
        "vrrp_sync_group G1 {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n{}",
        render(&[
            instance("VI_1", "eth0", 51, VIP),
            instance("VI_2", "eth1", 52, VIP2)
        ])
    )
}

/// Milliseconds with microsecond precision.
fn micros(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// `median [min–max]` of `samples` minus `reference` seconds, in signed milliseconds.
fn millis_over(samples: &[Duration], reference: f64) -> String {
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|d| (d.as_secs_f64() - reference) * 1000.0)
        .collect();
    if ms.is_empty() {
        return "-".into();
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    format!("{median:+.1} [{:+.1}–{:+.1}]", ms[0], ms[n - 1])
}

/// What b heard from the master.
struct Heard {
    master: IpAddr,
    /// Its latest advert with a non-zero priority.
    last_advert: Option<Instant>,
    /// Its first priority-0 advert.
    priority_zero: Option<Instant>,
}

impl Heard {
    fn note(&mut self, e: &Event) {
        if let Event::Advert { at, src, priority } = *e {
            if src == self.master {
                if priority == 0 {
                    self.priority_zero.get_or_insert(at);
                } else {
                    self.last_advert = Some(at);
                }
            }
        }
    }
}

/// Puts the lab back: a's link up, the VIPs on neither router.
fn reset(pair: &Pair) -> Result<()> {
    pair.a.link_set("eth0", true)?;
    for ns in pair.routers() {
        for (vip, dev) in [(VIP, "eth0"), (VIP2, "eth1")] {
            if ns.has_address(vip)? {
                ns.ip(&format!("addr del {vip}/24 dev {dev}"))?;
            }
        }
    }
    Ok(())
}

fn run_once(pair: &Pair, kind: Kind, c: &Cell, tandemd: &Path, phase: f64) -> Result<Sample> {
    reset(pair)?;
    let master_ip: IpAddr = Pair::v4(0, tandem_lab::HOST_A).into();
    let wanted: Vec<IpAddr> = vips(c)
        .iter()
        .map(|v| v.parse())
        .collect::<Result<_, _>>()?;
    let watcher = Watcher::start(&pair.b, "eth0")?;
    let dir = pair.lab.log_dir();
    let mut master = Running::start(
        kind,
        tandemd,
        dir,
        &pair.a,
        "a",
        &config(c, MASTER_PRIORITY),
    )?;
    let mut backup = Running::start(
        kind,
        tandemd,
        dir,
        &pair.b,
        "b",
        &config(c, BACKUP_PRIORITY),
    )?;
    let settled = wait_until(
        "a to hold the VIPs and b none",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            for vip in vips(c) {
                let a = pair.a.has_address(vip).ok()?;
                let b = pair.b.has_address(vip).ok()?;
                if !a || b {
                    return None;
                }
            }
            Some(())
        },
    );
    if let Err(e) = settled {
        bail!(
            "{e:#}\n--- a ---\n{}\n--- b ---\n{}",
            master.child.log(),
            backup.child.log()
        );
    }
    std::thread::sleep((c.advert * 2).max(Duration::from_millis(300)));
    master.ensure_alive()?;
    backup.ensure_alive()?;

    let mut heard = Heard {
        master: master_ip,
        last_advert: None,
        priority_zero: None,
    };
    // Everything that arrived so far, without waiting.
    while let Some(e) = watcher.next_before(Instant::now()) {
        heard.note(&e);
    }
    // The next advert of a starts the cycle the trigger falls into.
    let seen = heard.last_advert;
    let wait = Instant::now() + c.advert * 2;
    while heard.last_advert == seen {
        let Some(e) = watcher.next_before(wait) else {
            bail!("b heard no advert from a for {:?}", c.advert * 2);
        };
        heard.note(&e);
    }
    let cycle = heard.last_advert.context("an advert was just seen")?;
    if let Some(left) = (cycle + c.advert.mul_f64(phase)).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    while let Some(e) = watcher.next_before(Instant::now()) {
        heard.note(&e);
    }
    let t0 = match c.mode {
        Mode::Hard => {
            pair.a.link_set("eth0", false)?;
            Instant::now()
        }
        Mode::Graceful => {
            let t = Instant::now();
            master.terminate()?;
            t
        }
    };
    let adv = c.advert.as_secs_f64();
    let deadline = t0 + Duration::from_secs_f64(4.0 * adv + 5.0);
    // When each VIP appeared on b.
    let mut appeared: Vec<Option<Instant>> = vec![None; wanted.len()];
    while appeared.iter().any(Option::is_none) {
        let Some(e) = watcher.next_before(deadline) else {
            bail!(
                "b did not take {:?} within {:?}\n--- a ---\n{}\n--- b ---\n{}",
                vips(c),
                deadline - t0,
                master.child.log(),
                backup.child.log()
            );
        };
        heard.note(&e);
        if let Event::Added { at, addr } = e {
            if let Some(i) = wanted.iter().position(|w| *w == addr) {
                appeared[i].get_or_insert(at);
            }
        }
    }
    let appeared: Vec<Instant> = appeared.into_iter().flatten().collect();
    let first = appeared.iter().min().copied().context("at least one VIP")?;
    let took = appeared.iter().max().copied().context("at least one VIP")?;
    let reference = match c.mode {
        Mode::Hard => heard.last_advert,
        Mode::Graceful => heard.priority_zero,
    };
    drop(master);
    drop(backup);
    drop(watcher);
    reset(pair)?;
    Ok(Sample {
        from_trigger: took.saturating_duration_since(t0),
        from_advert: reference.map(|r| took.saturating_duration_since(r)),
        spread: c.group.then(|| took.saturating_duration_since(first)),
    })
}
