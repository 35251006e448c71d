//! `scripts/demo`: the main job on one machine. Builds the gateway lab (client, gw-a, gw-b,
//! server; a public and an internal LAN with one VIP each; a sync link; source NAT to the
//! internal VIP; a stateful forward policy; `nf_conntrack_tcp_loose=0`), runs tandemd on both
//! gateways from the example configuration in `etc/`, opens 50 long-lived TCP connections and
//! a UDP stream from client to server, kills the master and prints a measured timeline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tandem_lab::gateway::SERVER_ADDR;
use tandem_lab::{
    control, example_config, wait_until, Child, EchoServer, FlowOptions, Gateway, Netns, Side,
    TcpFlows, UdpFlow, SIDE_A, SIDE_B,
};

const FLOWS: usize = 50;
const VIPS: [&str; 2] = ["10.1.0.254", "10.2.0.254"];

struct Node {
    child: Child,
    control: PathBuf,
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

fn etc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc")
}

fn start(gw: &Gateway, ns: &Netns, name: &str, side: Side, tandemd: &Path) -> Result<Node> {
    let dir = gw.lab.log_dir();
    let (keepalived, toml) = example_config(&etc_dir(), side, dir)?;
    let conf = dir.join(format!("{name}-keepalived.conf"));
    let sync = dir.join(format!("{name}-tandem.toml"));
    std::fs::write(&conf, keepalived)?;
    std::fs::write(&sync, toml)?;
    let control = dir.join(format!("{name}.sock"));
    let _ = std::fs::remove_file(&control);
    let path = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
    let child = ns.spawn(&[
        &path(tandemd)?,
        "-f",
        &path(&conf)?,
        "-f",
        &path(&sync)?,
        "--control",
        &path(&control)?,
    ])?;
    wait_until(
        "tandemd control socket",
        Duration::from_secs(10),
        ms(10),
        || control.exists().then_some(()),
    )
    .with_context(|| child.log())?;
    Ok(Node { child, control })
}

fn stat(node: &Node, key: &str) -> u64 {
    let reply = control::ask(&node.control, "stats", Duration::from_secs(5)).unwrap_or_default();
    control::counter(&reply, key)
}

fn holds_all(ns: &Netns) -> bool {
    VIPS.iter().all(|v| ns.has_address(v).unwrap_or(false))
}

fn holds_none(ns: &Netns) -> bool {
    !VIPS.iter().any(|v| ns.has_address(v).unwrap_or(true))
}

fn links(ns: &Netns, up: bool) -> Result<()> {
    for dev in ["pub0", "int0", "sync0"] {
        ns.link_set(dev, up)?;
    }
    Ok(())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn wait_for(what: &str, f: impl Fn() -> bool) -> Result<Duration> {
    let t = Instant::now();
    wait_until(what, Duration::from_secs(20), ms(2), || f().then_some(()))?;
    Ok(t.elapsed())
}

/// The line of a node's log that reports the commit before the VIPs were announced.
fn commit_line(node: &Node) -> String {
    node.child
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("before announcing"))
        .and_then(|l| l.split("before announcing: ").nth(1))
        .unwrap_or("no commit logged")
        .to_string()
}

fn main() -> Result<()> {
    let tandemd = tandemd_path()?;
    let gw = Gateway::new("demo").context("building the lab (run as root)")?;
    let t0 = Instant::now();
    let at = |t: Instant| format!("{:>8.3} s", t.duration_since(t0).as_secs_f64());
    println!("lab: client 10.1.0.100 -- [public VIP 10.1.0.254] gw-a | gw-b [internal VIP 10.2.0.254] -- server 10.2.0.100");
    println!("     sync link 10.3.0.0/24; SNAT to the internal VIP; stateful forward policy; tcp_loose=0");
    println!("     tandemd on both gateways from etc/keepalived.conf + etc/tandem.toml (VRRPv3, advert_int 0.1 s)\n");

    let mut a = start(&gw, &gw.a, "gw-a", SIDE_A, &tandemd)?;
    let b = start(&gw, &gw.b, "gw-b", SIDE_B, &tandemd)?;
    wait_for("gw-a to become master", || holds_all(&gw.a)).with_context(|| a.child.log())?;
    println!("{}  gw-a is MASTER and holds both VIPs", at(Instant::now()));

    let server = EchoServer::start(&gw.server, 0)?;
    let to = SocketAddr::new(SERVER_ADDR.into(), server.port());
    let opts = FlowOptions {
        interval: ms(20),
        dead_after: Duration::from_secs(5),
        ..FlowOptions::default()
    };
    let tcp = TcpFlows::start_with(&gw.client, to, FLOWS, opts)?;
    let udp = UdpFlow::start_with(&gw.client, to, opts)?;
    tcp.wait_all_progress(Duration::from_secs(10))?;
    println!("{}  client has {FLOWS} TCP connections and a UDP stream to the server, echoing every 20 ms", at(Instant::now()));
    wait_for("connections replicated to gw-b", || {
        control::established_in_external(&b.control, server.port()) >= FLOWS
    })?;
    println!(
        "{}  gw-b's external cache holds {} replicated flows, the {FLOWS} connections established",
        at(Instant::now()),
        stat(&b, "external_entries")
    );
    std::thread::sleep(ms(500)); // a moment of steady traffic before the failure

    tcp.mark();
    udp.mark();
    let failure = Instant::now();
    a.child.kill()?;
    links(&gw.a, false)?;
    println!(
        "\n{}  t0: gw-a dies (tandemd SIGKILLed, its links cut)",
        at(failure)
    );
    let took = wait_for("gw-b to hold the VIPs", || holds_all(&gw.b))?;
    println!(
        "{}  t0 + {} ms: gw-b is MASTER, both VIPs moved (Master_Down_Interval 0.361 s); {}",
        at(Instant::now()),
        took.as_millis(),
        commit_line(&b)
    );
    tcp.wait_all_progress(Duration::from_secs(10))
        .with_context(|| tcp.report().to_string())?;
    let report = tcp.report();
    let u = udp.report();
    println!(
        "{}  flows surviving: {}/{} TCP (bytes both ways since), longest stall {} ms; UDP {} lost, longest gap {} ms",
        at(Instant::now()),
        report.alive,
        report.total,
        report.longest_stall.as_millis(),
        u.lost,
        u.longest_gap.as_millis()
    );

    tcp.mark();
    let back = Instant::now();
    let a2 = start(&gw, &gw.a, "gw-a", SIDE_A, &tandemd)?;
    links(&gw.a, true)?;
    println!(
        "\n{}  gw-a returns; it waits for gw-b's flows before preempting",
        at(back)
    );
    let took = wait_for("gw-a to take the VIPs back", || {
        holds_all(&gw.a) && holds_none(&gw.b)
    })?;
    println!(
        "{}  gw-a is MASTER again {} ms after it returned; {}",
        at(Instant::now()),
        took.as_millis(),
        commit_line(&a2)
    );
    tcp.wait_all_progress(Duration::from_secs(10))
        .with_context(|| tcp.report().to_string())?;
    let report = tcp.report();
    println!(
        "{}  flows surviving: {}/{} TCP, longest stall across the failback {} ms",
        at(Instant::now()),
        report.alive,
        report.total,
        report.longest_stall.as_millis()
    );
    if report.alive != FLOWS {
        bail!("flows were lost: {report}");
    }
    println!("\nall {FLOWS} connections survived the failure and the failback.");
    Ok(())
}
