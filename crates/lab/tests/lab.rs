//! End-to-end checks of the lab itself; they need root and `ip netns`.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tandem_lab::{require_root, wait_until, Lab, Pair};

const DEADLINE: Duration = Duration::from_secs(10);

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn assert_all_gone(names: &[String]) {
    assert!(!names.is_empty());
    for n in names {
        assert!(!ns_exists(n), "namespace {n} still exists");
    }
}

#[test]
fn client_pings_both_routers_v4_and_v6() {
    require_root!();
    let pair = Pair::new("ping").unwrap();
    for addr in ["10.0.0.1", "10.0.0.2", "fd00::1", "fd00::2"] {
        pair.client.wait_ping(addr, DEADLINE).unwrap();
    }
    assert!(pair.a.has_address("10.0.0.1").unwrap());
    assert!(pair.a.has_address("fd00:0:0:0::1").unwrap());
    assert!(!pair.a.has_address("10.0.0.2").unwrap());
    assert!(pair.client.has_address("fd00::100").unwrap());
    assert!(pair.a.addresses().unwrap().iter().all(|a| !a.tentative));

    // The system ping, where installed, agrees.
    if let Ok(out) = pair.client.exec(&["ping", "-c1", "-W1", "10.0.0.1"]) {
        if out.status.code() != Some(127)
            && !String::from_utf8_lossy(&out.stderr).contains("No such file")
        {
            wait_until(
                "ping -c1 -W1 10.0.0.1",
                DEADLINE,
                Duration::from_millis(50),
                || {
                    let out = pair.client.exec(&["ping", "-c1", "-W1", "10.0.0.1"]).ok()?;
                    out.status.success().then_some(())
                },
            )
            .unwrap();
        }
    }
}

#[test]
fn several_lans() {
    require_root!();
    let pair = Pair::with_lans("lans", 2).unwrap();
    assert_eq!(Pair::v4(1, 2).to_string(), "10.0.1.2");
    assert_eq!(Pair::v6(1, 100).to_string(), "fd00:0:0:1::100");
    pair.client.wait_ping("10.0.1.2", DEADLINE).unwrap();
    pair.client.wait_ping("fd00:0:0:1::2", DEADLINE).unwrap();
    pair.a.wait_ping("10.0.1.100", DEADLINE).unwrap();
    assert!(pair.b.has_address("10.0.1.2").unwrap());
}

#[test]
fn link_down_stops_traffic() {
    require_root!();
    let pair = Pair::new("link").unwrap();
    pair.client.wait_ping("10.0.0.1", DEADLINE).unwrap();
    pair.a.link_set("eth0", false).unwrap();
    assert!(!pair.client.ping("10.0.0.1").unwrap());
    pair.a.link_set("eth0", true).unwrap();
    pair.client.wait_ping("10.0.0.1", DEADLINE).unwrap();
}

#[test]
fn namespaces_are_gone_after_drop() {
    require_root!();
    let pair = Pair::new("drop").unwrap();
    let names = pair.lab.namespaces().to_vec();
    assert_eq!(names.len(), 4);
    for n in &names {
        assert!(ns_exists(n), "{n} missing");
        assert!(n.starts_with(pair.lab.prefix()));
    }
    let log_dir = pair.lab.log_dir().to_path_buf();
    assert!(log_dir.exists());
    drop(pair);
    assert_all_gone(&names);
    assert!(!log_dir.exists());
}

#[test]
fn namespaces_are_gone_after_panic() {
    require_root!();
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = Pair::new("panic").unwrap();
        *names.lock().unwrap() = pair.lab.namespaces().to_vec();
        let _sleeper = pair.a.spawn(&["sleep", "100"]).unwrap();
        panic!("deliberate panic with a live lab");
    }));
    assert!(result.is_err());
    assert_all_gone(&names.lock().unwrap());
}

#[test]
fn enter_opens_sockets_inside_the_namespace() {
    require_root!();
    let pair = Pair::new("enter").unwrap();
    // Not an address of the host, so binding there fails...
    assert!(UdpSocket::bind("10.0.0.1:0").is_err());
    // ...but works inside `a`, and the socket stays in `a` afterwards.
    let sock = pair
        .a
        .enter(|| UdpSocket::bind("10.0.0.1:0"))
        .unwrap()
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let client = pair
        .client
        .enter(|| UdpSocket::bind("10.0.0.100:0"))
        .unwrap()
        .unwrap();
    client.send_to(b"hello", ("10.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from.ip().to_string(), "10.0.0.100");

    // Borrowing closures work, and panics propagate.
    let name = pair.a.name().to_string();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pair.a.enter(|| panic!("inside {name}")).unwrap();
    }));
    assert!(r.is_err());
}

#[test]
fn commands_report_failures() {
    require_root!();
    let mut lab = Lab::new("cmds").unwrap();
    let ns = lab.netns("x").unwrap();
    assert!(ns.name().starts_with(lab.prefix()));
    assert!(ns.name().ends_with("-x"));
    assert_eq!(ns.run("echo hi").unwrap(), "hi\n");
    let err = ns.run("echo oops >&2; exit 3").unwrap_err().to_string();
    assert!(err.contains("oops") && err.contains("exit 3"), "{err}");
    let out = ns.exec(&["sh", "-c", "exit 4"]).unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = ns.ip("link show nosuchdev").unwrap_err().to_string();
    assert!(
        err.contains("link show nosuchdev") && err.contains("nosuchdev"),
        "{err}"
    );
    assert!(lab.netns("x").is_err(), "duplicate namespace accepted");

    // sysctl applies to the namespace only.
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if host_before.trim() == "1" { "0" } else { "1" };
    ns.sysctl("net.ipv4.ip_forward", flipped).unwrap();
    assert_eq!(
        ns.run("cat /proc/sys/net/ipv4/ip_forward").unwrap().trim(),
        flipped
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
    assert_eq!(
        ns.run("cat /proc/sys/net/ipv6/conf/all/accept_dad")
            .unwrap()
            .trim(),
        "0"
    );
    assert!(ns.sysctl("net.no.such.key", "1").is_err());
    // lo is up: loopback works.
    assert!(ns.ping("127.0.0.1").unwrap());
}

#[test]
fn spawned_processes_log_and_die() {
    require_root!();
    let mut lab = Lab::new("spawn").unwrap();
    let ns = lab.netns("x").unwrap();
    let mut child = ns
        .spawn(&[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exec sleep 100",
        ])
        .unwrap();
    wait_until("child output", DEADLINE, Duration::from_millis(10), || {
        let log = child.log();
        (log.contains("to-stdout") && log.contains("to-stderr")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; log: {}", child.log()));
    assert!(child
        .wait_timeout(Duration::from_millis(50))
        .unwrap()
        .is_none());

    // signal() reaches the real command, not a wrapper.
    child.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child
        .wait_timeout(DEADLINE)
        .unwrap()
        .expect("SIGTERM ignored");
    assert!(!status.success());
    assert!(child.signal(nix::sys::signal::Signal::SIGTERM).is_err());

    // kill() takes the process group down with it.
    let mut group = ns
        .spawn(&["sh", "-c", "sleep 100 & sleep 100; wait"])
        .unwrap();
    wait_until("two sleepers", DEADLINE, Duration::from_millis(10), || {
        let pids = tandem_lab_pids(ns.name());
        (pids.len() >= 3).then_some(())
    })
    .unwrap();
    group.kill().unwrap();
    wait_until("group to die", DEADLINE, Duration::from_millis(10), || {
        tandem_lab_pids(ns.name()).is_empty().then_some(())
    })
    .unwrap();

    // Dropping the lab kills what is still running; the log stays readable.
    let mut survivor = ns
        .spawn(&["sh", "-c", "echo alive; exec sleep 100"])
        .unwrap();
    wait_until(
        "survivor output",
        DEADLINE,
        Duration::from_millis(10),
        || survivor.log().contains("alive").then_some(()),
    )
    .unwrap();
    let path = survivor.log_path().to_path_buf();
    drop(lab);
    assert!(survivor.wait_timeout(DEADLINE).unwrap().is_some());
    assert!(!path.exists());
    assert!(survivor.log().contains("alive"));
}

fn tandem_lab_pids(ns: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn stale_namespaces_of_dead_runs_are_removed() {
    require_root!();
    // The namespace's owner is alive while it is set up (so concurrent
    // `Lab::new` calls leave it alone) and dies just before the cleanup.
    let mut owner = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let name = format!("td-stale-{}-0-a", owner.id());
    let live = format!("td-stale-{}-0-a", std::process::id());
    for n in [&name, &live] {
        let st = std::process::Command::new("ip")
            .args(["netns", "add", n])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut orphan = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "100"])
        .spawn()
        .unwrap();
    wait_until(
        "orphan to start",
        DEADLINE,
        Duration::from_millis(10),
        || (!tandem_lab_pids(&name).is_empty()).then_some(()),
    )
    .unwrap();
    owner.kill().unwrap();
    owner.wait().unwrap();

    tandem_lab::remove_stale("td-stale-");
    let orphan_status = orphan.wait().unwrap();
    let live_survived = ns_exists(&live);
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &live])
        .status();
    assert!(!ns_exists(&name), "stale namespace not removed");
    assert!(
        !orphan_status.success(),
        "process in stale namespace not killed"
    );
    assert!(live_survived, "namespace of a live process was removed");
}
