//! The IPVS backend against a real kernel's `ip_vs`, in a virtual machine.
//!
//! The machines tandem is developed on have no `ip_vs`, Debian's kernel has
//! it. The outer test, [`ipvs_backend_in_a_debian_kernel_vm`], has
//! `tandem_lab::vm` boot Debian's cloud kernel (cached under cargo's target
//! tmp dir) in qemu (TCG) with busybox, the IPVS modules, Debian's `ipvsadm`
//! and this test binary (each with its shared libraries). The VM's init
//! runs the inner test, [`inside_the_vm`], which
//! drives the real [`Ipvs`] backend and checks the kernel's state both
//! through its own dumps and through `ipvsadm`'s output.
//!
//! Needs qemu-system-x86_64, busybox-static, ipvsadm, cpio and apt-get with
//! Debian's package lists; without them the test skips, or fails under
//! `TANDEM_LAB_REQUIRE=1`.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tandem_lab::vm::{self, Vm};
use tandem_lb::ipvs::{DaemonState, RealServer, SyncDaemon, VirtualService};
use tandem_lb::{
    Backend, Forwarding, Ipvs, Persistence, Protocol, Scheduler, Server, Service, ServiceKey,
};

/// Set in the VM's environment: the inner test runs only there.
const IN_VM: &str = "TANDEM_IPVS_VM";
/// Modules loaded in the VM (their dependencies come along): ip_vs through
/// the schedulers tested.
const MODULES: &[&str] = &["ip_vs_rr", "ip_vs_wrr", "ip_vs_sh"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- outer

#[test]
fn ipvs_backend_in_a_debian_kernel_vm() {
    const TEST: &str = "the IPVS kernel test";
    if std::env::var_os(IN_VM).is_some() {
        return;
    }
    if let Some(tool) = vm::missing_tool() {
        return vm::cannot_run(TEST, &format!("{tool} is not installed"));
    }
    let built = Vm::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "ipvs-backend")
        .modules(MODULES)
        .binary_from_path("ipvsadm", "/sbin/ipvsadm")
        .and_then(|vm| vm.run_test(IN_VM, "inside_the_vm"));
    match built {
        Ok(boot) => boot.assert_test_passed(),
        Err(e) => vm::cannot_run(TEST, &format!("{e:#}")),
    }
}

// ---------------------------------------------------------------- inner

fn ipvsadm(args: &[&str]) -> String {
    let out = Command::new("/sbin/ipvsadm").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ipvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One space between fields: ipvsadm pads columns.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_lists(listing: &str, lines: &[&str]) {
    for l in lines {
        assert!(
            listing.lines().any(|x| x == *l),
            "`{l}` missing from ipvsadm's listing:\n{listing}"
        );
    }
}

fn assert_lists_start(listing: &str, prefix: &str) {
    assert!(
        listing.lines().any(|x| x.starts_with(prefix)),
        "`{prefix}...` missing from ipvsadm's listing:\n{listing}"
    );
}

fn assert_not_lists(listing: &str, prefix: &str) {
    assert!(
        !listing.lines().any(|x| x.starts_with(prefix)),
        "`{prefix}` still in ipvsadm's listing:\n{listing}"
    );
}

fn web() -> Service {
    Service::nat(
        ip("10.0.0.1"),
        80,
        Protocol::Tcp,
        Scheduler::WeightedRoundRobin,
    )
    .server(ip("10.0.1.1"), 8080, 1)
    .server(ip("10.0.1.2"), 8080, 2)
}

fn dns() -> Service {
    Service {
        key: ServiceKey::Addr {
            vip: ip("10.0.0.2"),
            port: 53,
            protocol: Protocol::Udp,
        },
        scheduler: Scheduler::RoundRobin,
        forwarding: Forwarding::DirectRouting,
        persistence: Some(Persistence {
            timeout: Duration::from_secs(300),
            prefix_len: 24,
        }),
        servers: vec![Server {
            addr: ip("10.0.1.3"),
            port: 0,
            weight: 1,
        }],
        sorry: None,
        dr: Default::default(),
        loads: Default::default(),
    }
}

fn marked() -> Service {
    Service {
        key: ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        },
        scheduler: Scheduler::SourceHash,
        forwarding: Forwarding::Tunnel,
        persistence: None,
        servers: vec![Server {
            addr: ip("10.0.1.4"),
            port: 0,
            weight: 1,
        }],
        sorry: None,
        dr: Default::default(),
        loads: Default::default(),
    }
}

/// Runs only in the VM the outer test boots (it changes the kernel's IPVS
/// tables, which a developer's machine may be using).
#[test]
#[ignore = "runs inside the VM that ipvs_backend_in_a_debian_kernel_vm boots"]
fn inside_the_vm() {
    if std::env::var_os(IN_VM).is_none() {
        eprintln!("skipped: runs only inside the VM (set by ipvs_backend_in_a_debian_kernel_vm)");
        return;
    }
    // The operator's own service, which tandem must leave alone.
    ipvsadm(&["-A", "-t", "10.9.9.9:22", "-s", "rr"]);
    ipvsadm(&["-a", "-t", "10.9.9.9:22", "-r", "10.9.9.10:22", "-m"]);

    let mut lb = Ipvs::open().expect("open the IPVS backend");
    let t = Instant::now();
    lb.apply(&[web(), dns(), marked()])
        .expect("apply three services");
    println!("applied 3 services, 4 real servers in {:?}", t.elapsed());

    // Its own dump.
    let services = lb.services().unwrap();
    assert_eq!(services.len(), 4, "{services:?}");
    assert!(services.contains(&VirtualService {
        key: dns().key,
        scheduler: "rr".into(),
        persistence: dns().persistence,
    }));
    let mut servers = lb.real_servers(&web().key).unwrap();
    servers.sort_by_key(|r| r.addr);
    assert_eq!(
        servers,
        vec![
            RealServer {
                addr: ip("10.0.1.1"),
                port: 8080,
                forwarding: Forwarding::Nat,
                weight: 1
            },
            RealServer {
                addr: ip("10.0.1.2"),
                port: 8080,
                forwarding: Forwarding::Nat,
                weight: 2
            },
        ]
    );
    // ipvsadm's view.
    let listing = ipvsadm(&["-Ln"]);
    println!("{listing}");
    assert_lists(
        &listing,
        &[
            "TCP 10.0.0.1:80 wrr",
            "-> 10.0.1.1:8080 Masq 1 0 0",
            "-> 10.0.1.2:8080 Masq 2 0 0",
            "UDP 10.0.0.2:53 rr persistent 300 mask 255.255.255.0",
            "-> 10.0.1.3:53 Route 1 0 0",
            "FWM 7 sh",
            "-> 10.0.1.4:0 Tunnel 1 0 0",
            "TCP 10.9.9.9:22 rr",
        ],
    );

    // Edit: a weight, a server out, another scheduler, persistence off.
    let mut web2 = web();
    web2.scheduler = Scheduler::RoundRobin;
    web2.servers = vec![Server {
        addr: ip("10.0.1.2"),
        port: 8080,
        weight: 5,
    }];
    let mut dns2 = dns();
    dns2.persistence = None;
    lb.apply(&[web2.clone(), dns2, marked()]).expect("edit");
    let listing = ipvsadm(&["-Ln"]);
    assert_lists(
        &listing,
        &[
            "TCP 10.0.0.1:80 rr",
            "-> 10.0.1.2:8080 Masq 5 0 0",
            "UDP 10.0.0.2:53 rr",
        ],
    );
    assert_not_lists(&listing, "-> 10.0.1.1:8080");
    assert_not_lists(&listing, "UDP 10.0.0.2:53 rr persistent");

    // Every server quiesced: the sorry server joins; back: it leaves.
    let mut sorry = web2.clone();
    sorry.servers[0].weight = 0;
    sorry.sorry = Some(Server {
        addr: ip("10.0.1.9"),
        port: 0,
        weight: 1,
    });
    lb.apply(&[sorry.clone(), marked()]).expect("sorry server");
    let listing = ipvsadm(&["-Ln"]);
    assert_lists(
        &listing,
        &["-> 10.0.1.2:8080 Masq 0 0 0", "-> 10.0.1.9:80 Masq 1 0 0"],
    );
    assert_not_lists(&listing, "UDP 10.0.0.2:53");
    sorry.servers[0].weight = 3;
    lb.apply(&[sorry, marked()]).expect("sorry server leaves");
    let listing = ipvsadm(&["-Ln"]);
    assert_lists(&listing, &["-> 10.0.1.2:8080 Masq 3 0 0"]);
    assert_not_lists(&listing, "-> 10.0.1.9:80");

    // A refusal names the service and the kernel's errno (no ip_vs_mh here).
    let bad = Service::nat(ip("10.0.0.3"), 80, Protocol::Tcp, Scheduler::MaglevHash);
    let mut other = Ipvs::open().unwrap();
    let err = other.apply(&[bad]).unwrap_err().to_string();
    println!("refused as expected: {err}");
    assert!(err.contains("TCP 10.0.0.3:80"), "{err}");
    assert!(err.contains("os error"), "{err}");

    // The sync daemon as keepalived runs it: backup, then master on MASTER.
    let syncd = SyncDaemon {
        interface: "lo".into(),
        sync_id: 51,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    lb.start_daemon(&syncd, DaemonState::Backup)
        .expect("start backup");
    assert_lists_start(
        &ipvsadm(&["-L", "--daemon"]),
        "backup sync daemon (mcast=lo, syncid=51",
    );
    lb.stop_daemon(DaemonState::Backup).unwrap();
    lb.start_daemon(&syncd, DaemonState::Master)
        .expect("start master");
    let daemons = lb.daemons().unwrap();
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert_eq!(daemons[0].state, DaemonState::Master);
    let listing = ipvsadm(&["-L", "--daemon"]);
    assert_lists_start(&listing, "master sync daemon (mcast=lo, syncid=51");
    assert_not_lists(&listing, "backup");
    lb.stop_daemon(DaemonState::Master).unwrap();
    lb.stop_daemon(DaemonState::Backup)
        .expect("stopping a stopped daemon is fine");
    assert!(lb.daemons().unwrap().is_empty());

    // Stopped the moment it started (as when an instance takes over at once): the kernel
    // answers nothing when the daemon's thread has not run yet, but the daemon is gone.
    for state in [DaemonState::Backup, DaemonState::Master] {
        lb.start_daemon(&syncd, state).unwrap();
        let t = Instant::now();
        lb.stop_daemon(state)
            .expect("stop a daemon started a moment before");
        println!(
            "{} daemon stopped right after its start in {:?}",
            state.name(),
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(lb.daemons().unwrap().is_empty());
    }

    // Clear removes tandem's services only.
    lb.clear().expect("clear");
    let listing = ipvsadm(&["-Ln"]);
    println!("{listing}");
    assert_lists(
        &listing,
        &["TCP 10.9.9.9:22 rr", "-> 10.9.9.10:22 Masq 1 0 0"],
    );
    assert_not_lists(&listing, "TCP 10.0.0.1:80");
    assert_not_lists(&listing, "FWM 7");
    assert_eq!(lb.services().unwrap().len(), 1);
}
