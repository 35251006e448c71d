//! The IPVS backend against a real kernel's `ip_vs`, in a virtual machine.
//!
//! The machines tandem is developed on have no `ip_vs`, Debian's kernel has
//! it. The outer test, [`ipvs_backend_in_a_debian_kernel_vm`], downloads
//! Debian's cloud kernel package (cached under cargo's target tmp dir),
//! builds an initramfs with busybox, the IPVS modules, Debian's `ipvsadm`
//! and this test binary (each with its shared libraries), and boots it in
//! qemu (TCG). The VM's init runs the inner test, [`inside_the_vm`], which
//! drives the real [`Ipvs`] backend and checks the kernel's state both
//! through its own dumps and through `ipvsadm`'s output.
//!
//! Needs qemu-system-x86_64, busybox-static, ipvsadm, cpio and apt-get with
//! Debian's package lists; without them the test skips, or fails under
//! `TANDEM_LAB_REQUIRE=1`.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tandem_lb::ipvs::{DaemonState, RealServer, SyncDaemon, VirtualService};
use tandem_lb::{
    Backend, Forwarding, Ipvs, Persistence, Protocol, Scheduler, Server, Service, ServiceKey,
};

/// Set in the VM's environment: the inner test runs only there.
const IN_VM: &str = "TANDEM_IPVS_VM";
/// The line the VM's init prints after the inner test, with its exit code.
const DONE_MARKER: &str = "TANDEM-IPVS-VM-DONE";
/// Modules in load order: ip_vs's dependencies, ip_vs, the schedulers tested.
const MODULES: &[&str] = &[
    "libcrc32c",
    "nf_defrag_ipv4",
    "nf_defrag_ipv6",
    "nf_conntrack",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
];
/// How long the VM may take, boot to power-off (TCG: boot takes ~3 s).
const VM_DEADLINE: Duration = Duration::from_secs(300);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- outer

/// Skips (or fails under TANDEM_LAB_REQUIRE=1) when the VM cannot be built.
fn cannot_run(why: String) {
    if std::env::var_os("TANDEM_LAB_REQUIRE").is_some_and(|v| v == "1") {
        panic!("TANDEM_LAB_REQUIRE=1 but the IPVS kernel test cannot run: {why}");
    }
    eprintln!("skipped: the IPVS kernel test needs a Debian kernel VM: {why}");
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Debian's cloud kernel package, downloaded once into `cache`; returns the
/// directory it is unpacked in.
fn kernel_package(cache: &Path) -> Result<PathBuf> {
    let unpacked = cache.join("kernel");
    if unpacked.join("boot").is_dir() {
        return Ok(unpacked);
    }
    let depends = run(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let image = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .context("apt-cache names no kernel image for linux-image-cloud-amd64")?
        .to_string();
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs)?;
    run(Command::new("apt-get")
        .args(["download", "-q", &image])
        .current_dir(&debs))?;
    let deb = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains(&image))
        .context("apt-get download left no .deb")?;
    let partial = cache.join("kernel.partial");
    let _ = std::fs::remove_dir_all(&partial);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &unpacked)?;
    Ok(unpacked)
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(found) = find_file(&p, name) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// The shared libraries `ldd` lists for `binary` (the loader included).
fn libraries(binary: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = run(Command::new("ldd").arg(binary))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Copies `from` to the same absolute path under `root`.
fn copy_in(root: &Path, from: &Path, to: &str) -> Result<()> {
    let dest = root.join(to.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap())?;
    std::fs::copy(from, &dest).with_context(|| format!("copy {from:?} to {dest:?}"))?;
    Ok(())
}

fn init_script() -> String {
    let insmods: String = MODULES
        .iter()
        .map(|m| format!("insmod /mods/{m}.ko || echo \"insmod {m} failed\"\n"))
        .collect();
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin:/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t tmpfs tmp /tmp\n\
         mount -t devtmpfs dev /dev\n\
         {insmods}\
         ip link set lo up\n\
         {IN_VM}=1 RUST_BACKTRACE=1 /tandem-test --ignored --exact inside_the_vm --nocapture --test-threads=1\n\
         echo \"{DONE_MARKER} rc=$?\"\n\
         poweroff -f\n"
    )
}

/// Builds the initramfs (an uncompressed newc cpio) and returns its path
/// and the kernel image's.
fn build_vm(cache: &Path) -> Result<(PathBuf, PathBuf)> {
    let kernel = kernel_package(cache)?;
    let vmlinuz = std::fs::read_dir(kernel.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .context("no vmlinuz in the kernel package")?;

    let root = cache.join("initramfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "sbin", "proc", "sys", "tmp", "dev", "mods"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let busybox = which("busybox").context("busybox is not installed (busybox-static)")?;
    ensure!(
        run(Command::new("file").arg(&busybox)).map_or(true, |f| f.contains("statically")),
        "{busybox:?} is not static: install busybox-static"
    );
    copy_in(&root, &busybox, "/bin/busybox")?;
    for m in MODULES {
        let ko = find_file(&kernel.join("lib/modules"), &format!("{m}.ko"))
            .with_context(|| format!("module {m}.ko not in the kernel package"))?;
        copy_in(&root, &ko, &format!("/mods/{m}.ko"))?;
    }
    let ipvsadm = which("ipvsadm").context("ipvsadm is not installed")?;
    let me = std::env::current_exe()?;
    copy_in(&root, &ipvsadm, "/sbin/ipvsadm")?;
    copy_in(&root, &me, "/tandem-test")?;
    for lib in libraries(&ipvsadm)?.union(&libraries(&me)?) {
        copy_in(&root, lib, &lib.to_string_lossy())?;
    }
    let init = root.join("init");
    std::fs::write(&init, init_script())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;

    let image = cache.join("initramfs.cpio");
    let cpio = std::fs::File::create(&image)?;
    let status = Command::new("sh")
        .args(["-c", "find . | cpio -o -H newc --quiet"])
        .current_dir(&root)
        .stdout(cpio)
        .status()?;
    ensure!(status.success(), "cpio failed");
    Ok((vmlinuz, image))
}

/// Boots the VM and returns its serial console output.
fn boot(vmlinuz: &Path, initramfs: &Path) -> Result<String> {
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let mut stdout = qemu.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = qemu.try_wait()? {
            break status;
        }
        if start.elapsed() > VM_DEADLINE {
            let _ = qemu.kill();
            let _ = qemu.wait();
            let out = reader.join().unwrap_or_default();
            bail!("the VM did not power off within {VM_DEADLINE:?}; its console:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader.join().unwrap_or_default();
    eprintln!(
        "VM ran {:.1} s, qemu {status}",
        start.elapsed().as_secs_f64()
    );
    Ok(out)
}

#[test]
fn ipvs_backend_in_a_debian_kernel_vm() {
    if std::env::var_os(IN_VM).is_some() {
        return;
    }
    for tool in ["qemu-system-x86_64", "cpio", "apt-get", "dpkg-deb", "ldd"] {
        if which(tool).is_none() {
            return cannot_run(format!("{tool} is not installed"));
        }
    }
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ipvs-vm");
    std::fs::create_dir_all(&cache).unwrap();
    let (vmlinuz, initramfs) = match build_vm(&cache) {
        Ok(v) => v,
        Err(e) => return cannot_run(format!("{e:#}")),
    };
    let console = boot(&vmlinuz, &initramfs).unwrap();
    println!("---- VM console ----\n{console}\n---- end ----");
    assert!(
        console.contains(&format!("{DONE_MARKER} rc=0")),
        "the inner test failed or did not finish in the VM (console above)"
    );
    assert!(
        console.contains("test result: ok. 1 passed"),
        "the inner test did not pass in the VM (console above)"
    );
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
