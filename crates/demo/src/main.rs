//! `scripts/demo`: builds a lab (gateways a and b, a client, one LAN), runs tandemd on both
//! gateways, kills the master and prints a measured timeline of the takeover and the failback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use tandem_lab::{wait_until, Child, Netns, Pair};

const VIP: &str = "10.0.0.254";
const ADVERT_INT: f64 = 0.1;

fn config(priority: u8) -> String {
    format!(
        "global_defs {{\n    router_id gw-{priority}\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    advert_int {ADVERT_INT}\n    version 3\n    \
         virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
    )
}

fn tandemd_path() -> Result<PathBuf> {
    if let Some(p) = std::env::args().nth(1) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("tandemd");
    if !p.exists() {
        bail!("tandemd not found next to {}; pass its path", exe.display());
    }
    Ok(p)
}

fn start(pair: &Pair, ns: &Netns, name: &str, priority: u8, tandemd: &Path) -> Result<Child> {
    let conf = pair.lab.log_dir().join(format!("{name}.conf"));
    std::fs::write(&conf, config(priority))?;
    let sock = pair.lab.log_dir().join(format!("{name}.sock"));
    ns.spawn(&[
        tandemd.to_str().context("path")?,
        "-f",
        conf.to_str().context("path")?,
        "--control",
        sock.to_str().context("path")?,
    ])
}

fn holds(ns: &Netns) -> bool {
    ns.has_address(VIP).unwrap_or(false)
}

fn wait_for(what: &str, f: impl Fn() -> bool) -> Result<Duration> {
    let t = Instant::now();
    wait_until(
        what,
        Duration::from_secs(15),
        Duration::from_millis(2),
        || f().then_some(()),
    )?;
    Ok(t.elapsed())
}

fn main() -> Result<()> {
    let tandemd = tandemd_path()?;
    let pair = Pair::new("demo").context("building the lab (run as root)")?;
    let t0 = Instant::now();
    let stamp = |t: Instant| format!("{:>7.3} s", t.duration_since(t0).as_secs_f64());
    println!("lab: namespaces a, b (gateways) and client on one LAN 10.0.0.0/24, VIP {VIP}");
    println!(
        "tandemd on a (priority 150) and b (priority 100), VRRPv3, advert_int {ADVERT_INT} s\n"
    );
    let mut a = start(&pair, &pair.a, "a", 150, &tandemd)?;
    let _b = start(&pair, &pair.b, "b", 100, &tandemd)?;
    wait_for("a to become master", || holds(&pair.a) && !holds(&pair.b))
        .with_context(|| format!("a never became master:\n{}", a.log()))?;
    println!("{}  a is MASTER and holds {VIP}", stamp(Instant::now()));
    pair.client
        .wait_ping(VIP, Duration::from_secs(5))
        .context("client cannot reach the VIP")?;
    println!("{}  client reaches {VIP}", stamp(Instant::now()));
    std::thread::sleep(Duration::from_millis(500)); // let the pair run steadily for a moment

    let failure = Instant::now();
    a.signal(Signal::SIGKILL)?;
    println!("{}  t0: SIGKILL of the master (a)", stamp(failure));
    let took = wait_for("b to take the VIP", || holds(&pair.b))?;
    let down = Duration::from_secs_f64(3.0 * ADVERT_INT + (256.0 - 100.0) / 256.0 * ADVERT_INT);
    println!(
        "{}  b is MASTER and holds {VIP}: t0 + {} ms (Master_Down_Interval {} ms)",
        stamp(Instant::now()),
        took.as_millis(),
        down.as_millis()
    );
    pair.client
        .wait_ping(VIP, Duration::from_secs(5))
        .context("client cannot reach the VIP after takeover")?;
    println!("{}  client reaches {VIP} through b", stamp(Instant::now()));

    let back = Instant::now();
    let _a = start(&pair, &pair.a, "a", 150, &tandemd)?;
    println!("{}  a restarts", stamp(back));
    let took = wait_for("a to preempt back", || holds(&pair.a) && !holds(&pair.b))?;
    println!(
        "{}  a preempted back: {} ms after restart; b released the VIP",
        stamp(Instant::now()),
        took.as_millis()
    );
    println!("\nconnection-tracking replication joins this demo in a later release.");
    Ok(())
}
