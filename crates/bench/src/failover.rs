//! `tandem-bench failover`: takeover time after the master's link is cut (hard) or the master
//! is stopped with SIGTERM (graceful), for tandemd and keepalived in the same topology.

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
    /// keepalived's figure quoted in the issue, for scale.
    reference: f64,
}

/// One measured takeover.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// From the cut / SIGTERM to the VIP on the backup.
    from_trigger: Duration,
    /// From the master's last advert (hard) or its priority-0 advert (graceful) as the backup
    /// received it, to the VIP on the backup.
    from_advert: Option<Duration>,
}

/// Runs the failover benchmark and prints the table.
pub fn run(tandemd: &Path, runs: Option<usize>, daemons: &[Kind]) -> Result<()> {
    let slow = runs.unwrap_or(7);
    let fast = runs.unwrap_or(15);
    let cells = [
        cell(2, 1000, Mode::Hard, slow, 3.34),
        cell(2, 1000, Mode::Graceful, slow, 0.625),
        cell(3, 100, Mode::Hard, fast, 0.337),
        cell(3, 100, Mode::Graceful, fast, 0.076),
    ];
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
    println!("  Cells: median [min-max] in seconds.\n");

    let pair = Pair::new("bench").context("building the lab (run as root)")?;
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
        for &kind in daemons {
            let mut t = Vec::new();
            let mut a = Vec::new();
            for (i, phase) in phases(c.runs, &mut rng).into_iter().enumerate() {
                let s = run_once(&pair, kind, &c, tandemd, phase)
                    .with_context(|| format!("{} {} run {}", kind.name(), describe(&c), i + 1))?;
                eprintln!(
                    "  {:<10} {:<20} run {:>2} (phase {phase:.2}): {} s from t0, {} s from advert",
                    kind.name(),
                    describe(&c),
                    i + 1,
                    secs(s.from_trigger),
                    s.from_advert.map_or("-".into(), secs)
                );
                t.push(s.from_trigger);
                a.extend(s.from_advert);
            }
            trigger.push(Summary::of(&t));
            advert.push(Summary::of(&a));
        }
        let adv = c.advert.as_secs_f64();
        let skew = adv * f64::from(256 - u32::from(BACKUP_PRIORITY)) / 256.0;
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
        row.push(format!("{:.3}", c.reference));
        rows.push(row);
        let mut row = vec![String::new(), what_a.to_string(), theory_a];
        row.extend(advert.iter().map(|s| s.map_or("-".into(), |s| s.cell())));
        row.push(String::new());
        rows.push(row);
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
    }
}

fn describe(c: &Cell) -> String {
    format!(
        "v{} adv {}s {}",
        c.version,
        c.advert.as_secs_f64(),
        match c.mode {
            Mode::Hard => "hard",
            Mode::Graceful => "graceful",
        }
    )
}

fn config(c: &Cell, priority: u8) -> String {
    render(&[InstanceSpec {
        name: "VI_1".into(),
        interface: "eth0".into(),
        vrid: 51,
        priority,
        advert_int: format!("{}", c.advert.as_secs_f64()),
        version: c.version,
        vip: format!("{VIP}/24"),
    }])
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

/// Puts the lab back: a's link up, the VIP on neither router.
fn reset(pair: &Pair) -> Result<()> {
    pair.a.link_set("eth0", true)?;
    for ns in pair.routers() {
        if ns.has_address(VIP)? {
            ns.ip(&format!("addr del {VIP}/24 dev eth0"))?;
        }
    }
    Ok(())
}

fn run_once(pair: &Pair, kind: Kind, c: &Cell, tandemd: &Path, phase: f64) -> Result<Sample> {
    reset(pair)?;
    let master_ip: IpAddr = Pair::v4(0, tandem_lab::HOST_A).into();
    let vip: IpAddr = VIP.parse()?;
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
        "a to hold the VIP and b not",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            let a = pair.a.has_address(VIP).ok()?;
            let b = pair.b.has_address(VIP).ok()?;
            (a && !b).then_some(())
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
    let took = loop {
        let Some(e) = watcher.next_before(deadline) else {
            bail!(
                "b did not take {VIP} within {:?}\n--- a ---\n{}\n--- b ---\n{}",
                deadline - t0,
                master.child.log(),
                backup.child.log()
            );
        };
        heard.note(&e);
        if let Event::Added { at, addr } = e {
            if addr == vip {
                break at;
            }
        }
    };
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
    })
}
