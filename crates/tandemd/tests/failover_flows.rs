//! Flows that survive failover: 50 long-lived TCP connections (and a UDP stream) through a
//! source-NATing gateway pair with a stateful forward policy and `nf_conntrack_tcp_loose=0`.
//! After SIGKILL of the master, after a graceful stop and after failback, every connection
//! keeps moving bytes both ways; without replication they die, which proves the test can fail.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{
    example_config, require_root, wait_until, EchoServer, FlowOptions, Gateway, Netns, Side,
    TcpFlows, UdpFlow, SIDE_A, SIDE_B,
};

const FLOWS: usize = 50;
const VIPS: [&str; 2] = ["10.1.0.254", "10.2.0.254"];

fn etc(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../etc")
        .join(file)
}

/// One gateway of the pair.
struct Node<'a> {
    ns: &'a Netns,
    side: Side,
}

/// How replication is set up for a run.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// tandemd's built-in sequence.
    Builtin,
    /// No replication at all.
    Off,
    /// Built-in sequence off; notify hooks run etc/primary-backup.sh through `conntrackd`.
    Scripts,
}

fn start(gw: &Gateway, node: &Node, mode: Mode) -> Result<Daemon> {
    let tag = node.ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let (mut conf, mut toml) = example_config(&etc(""), node.side, gw.lab.log_dir())?;
    if mode == Mode::Scripts {
        let hook = scripts_hook(gw)?;
        conf = conf.replace(
            "vrrp_sync_group GATEWAY {",
            &format!(
                "vrrp_sync_group GATEWAY {{\n    notify_master \"{hook} primary\"\n    notify_backup \"{hook} backup\"\n    notify_fault \"{hook} fault\""
            ),
        );
    }
    if mode == Mode::Scripts {
        // This node leaves the sequence to its notify hooks.
        toml = toml.replace("builtin_failover = true", "builtin_failover = false");
    }
    let extra = match mode {
        Mode::Off => vec![],
        _ => vec![write_config_in(gw, &format!("tandem-{tag}.toml"), &toml)?],
    };
    start_tandemd_in(&gw.lab, node.ns, &conf, &extra)
}

/// A wrapper that runs etc/primary-backup.sh with `conntrackd` being tandemctl.
fn scripts_hook(gw: &Gateway) -> Result<String> {
    let dir = gw.lab.log_dir();
    let tandemctl = Path::new(TANDEMD).with_file_name("tandemctl");
    if !tandemctl.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "tandemctl"])
            .status()?;
        anyhow::ensure!(status.success(), "building tandemctl");
    }
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("conntrackd");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&tandemctl, &link)?;
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {log}\nPATH={bin}:$PATH exec {script} \"$@\" >> {log} 2>&1\n",
            log = dir.join("hook.log").display(),
            bin = bin.display(),
            script = etc("primary-backup.sh").display()
        ),
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()?;
    Ok(hook.display().to_string())
}

/// The master's machine dies: its daemon is killed and its links go dark at once (killing only
/// the daemon would leave its kernel forwarding and answering ARP for the VIPs).
fn crash(ns: &Netns, d: &mut Daemon) -> Result<()> {
    d.child.kill()?;
    links(ns, false)
}

fn links(ns: &Netns, up: bool) -> Result<()> {
    for dev in ["pub0", "int0", "sync0"] {
        ns.link_set(dev, up)?;
    }
    Ok(())
}

fn holds_all(ns: &Netns) -> bool {
    VIPS.iter().all(|v| ns.has_address(v).unwrap_or(false))
}

fn wait_master(ns: &Netns, d: &Daemon, deadline: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait_until(
        &format!("{} holding both VIPs", ns.name()),
        deadline,
        ms(5),
        || holds_all(ns).then_some(()),
    )
    .with_context(|| tail(&d.child.log()))?;
    Ok(t.elapsed())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

struct Traffic {
    tcp: TcpFlows,
    udp: UdpFlow,
    server: EchoServer,
}

fn traffic(gw: &Gateway, dead_after: Duration) -> Result<Traffic> {
    let server = EchoServer::start(&gw.server, 0)?;
    let to: SocketAddr = SocketAddr::new(tandem_lab::gateway::SERVER_ADDR.into(), server.port());
    let opts = FlowOptions {
        interval: ms(20),
        dead_after,
        ..FlowOptions::default()
    };
    let tcp = TcpFlows::start_with(&gw.client, to, FLOWS, opts)?;
    let udp = UdpFlow::start_with(&gw.client, to, opts)?;
    tcp.wait_all_progress(Duration::from_secs(10))?;
    Ok(Traffic { tcp, udp, server })
}

/// Checks every flow moves again after a takeover and prints the longest stall.
fn survived(t: &Traffic, what: &str) -> Result<Duration> {
    t.tcp
        .wait_all_progress(Duration::from_secs(10))
        .with_context(|| format!("after {what}: {}", t.tcp.report()))?;
    let report = t.tcp.report();
    let udp = t.udp.report();
    println!(
        "{what}: {}/{} TCP flows alive, longest stall {} ms; UDP {} lost, longest gap {} ms",
        report.alive,
        report.total,
        report.longest_stall.as_millis(),
        udp.lost,
        udp.longest_gap.as_millis()
    );
    anyhow::ensure!(report.alive == FLOWS, "{what}: {report}");
    Ok(report.longest_stall)
}

fn nodes(gw: &Gateway) -> (Node<'_>, Node<'_>) {
    (
        Node {
            ns: &gw.a,
            side: SIDE_A,
        },
        Node {
            ns: &gw.b,
            side: SIDE_B,
        },
    )
}

/// Waits until B's external cache holds every test connection in ESTABLISHED state (a count
/// of entries alone can be reached while the last connection's update is still on its way,
/// and an entry committed in SYN_SENT state would rightly drop the mid-stream packets).
fn replicated(b: &Daemon, t: &Traffic) -> Result<()> {
    let established = || tandem_lab::control::established_in_external(&b.control, t.server.port());
    wait_until(
        "connections replicated to the backup",
        Duration::from_secs(10),
        ms(20),
        || (established() >= FLOWS).then_some(()),
    )
    .with_context(|| {
        format!(
            "{} of {FLOWS} established in b's external cache",
            established()
        )
    })?;
    Ok(())
}

#[test]
fn fifty_connections_survive_kill_failback_and_graceful_stop() -> Result<()> {
    require_root!(Ok(()));
    let gw = Gateway::new("flows")?;
    let (na, nb) = nodes(&gw);
    let mut a = start(&gw, &na, Mode::Builtin)?;
    let b = start(&gw, &nb, Mode::Builtin)?;
    wait_master(&gw.a, &a, Duration::from_secs(15))?;
    let t = traffic(&gw, Duration::from_secs(10))?;
    replicated(&b, &t)?;

    // 1. The master dies (SIGKILL, links dark).
    t.tcp.mark();
    t.udp.mark();
    crash(&gw.a, &mut a)?;
    let took = wait_master(&gw.b, &b, Duration::from_secs(5))?;
    println!(
        "master died: b holds both VIPs after {} ms",
        took.as_millis()
    );
    let stall_kill = survived(&t, "after the master died")
        .with_context(|| format!("b's log:\n{}", tail(&b.child.log())))?;
    let log = b.child.log();
    assert!(log.contains("before announcing: commit:"), "{}", tail(&log));

    // 2. The old master returns (it cleans up the VIPs it left behind before its links come
    // up), waits for b's state, then takes over with the flows.
    let mut a = start(&gw, &na, Mode::Builtin)?;
    links(&gw.a, true)?;
    t.tcp.mark();
    wait_master(&gw.a, &a, Duration::from_secs(15))?;
    wait_until("b released the VIPs", Duration::from_secs(5), ms(5), || {
        (!VIPS.iter().any(|v| gw.b.has_address(v).unwrap_or(true))).then_some(())
    })?;
    let stall_back = survived(&t, "after failback to the returning master")?;
    replicated(&b, &t)?;

    // 3. Graceful stop of the master.
    t.tcp.mark();
    a.child.signal(Signal::SIGTERM)?;
    wait_master(&gw.b, &b, Duration::from_secs(5))?;
    let stall_term = survived(&t, "after SIGTERM of the master")?;
    assert!(a
        .child
        .wait_timeout(Duration::from_secs(5))?
        .is_some_and(|s| s.success()));
    println!(
        "longest stall: {} ms (kill), {} ms (failback), {} ms (graceful)",
        stall_kill.as_millis(),
        stall_back.as_millis(),
        stall_term.as_millis()
    );
    Ok(())
}

#[test]
fn without_replication_the_connections_die() -> Result<()> {
    require_root!(Ok(()));
    let gw = Gateway::new("noflows")?;
    let (na, nb) = nodes(&gw);
    let mut a = start(&gw, &na, Mode::Off)?;
    let b = start(&gw, &nb, Mode::Off)?;
    wait_master(&gw.a, &a, Duration::from_secs(15))?;
    let t = traffic(&gw, Duration::from_secs(2))?;
    t.tcp.mark();
    crash(&gw.a, &mut a)?;
    wait_master(&gw.b, &b, Duration::from_secs(5))?;
    let err = t.tcp.wait_all_progress(Duration::from_secs(6));
    let report = t.tcp.report();
    println!(
        "without replication: {}/{} TCP flows alive after the failover",
        report.alive, report.total
    );
    assert!(
        err.is_err(),
        "flows survived without replication: the test could not fail"
    );
    assert_eq!(report.alive, 0, "{report}");
    Ok(())
}

#[test]
fn mixed_pair_with_primary_backup_script_keeps_the_flows() -> Result<()> {
    require_root!(Ok(()));
    let gw = Gateway::new("mixed")?;
    let (na, nb) = nodes(&gw);
    let mut a = start(&gw, &na, Mode::Builtin)?;
    let b = start(&gw, &nb, Mode::Scripts)?;
    wait_master(&gw.a, &a, Duration::from_secs(15))?;
    let t = traffic(&gw, Duration::from_secs(10))?;
    replicated(&b, &t)?;
    t.tcp.mark();
    crash(&gw.a, &mut a)?;
    wait_master(&gw.b, &b, Duration::from_secs(5))?;
    let stall = survived(&t, "mixed pair, b driven by primary-backup.sh").with_context(|| {
        std::fs::read_to_string(gw.lab.log_dir().join("hook.log")).unwrap_or_default()
    })?;
    let hooks = std::fs::read_to_string(gw.lab.log_dir().join("hook.log"))?;
    assert!(
        hooks.contains("primary") && hooks.contains("commit:"),
        "{hooks}"
    );
    println!("mixed pair longest stall {} ms", stall.as_millis());
    Ok(())
}
