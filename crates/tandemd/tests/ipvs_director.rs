//! tandemd itself as an IPVS director, against a real kernel's `ip_vs`.
//!
//! The machines tandem is developed on have no `ip_vs`; Debian's kernel has it. The outer
//! test, [`tandemd_directs_ipvs_in_a_debian_kernel_vm`], boots Debian's cloud kernel in qemu
//! through `tandem_lab::vm` with busybox, the IPVS modules, `dummy`, Debian's `ipvsadm`,
//! tandemd and this test binary. The VM's init runs the inner test, [`director_inside_the_vm`],
//! which gives a dummy interface the director's and two real servers' addresses, runs the
//! real servers' listeners, starts tandemd on a keepalived.conf with a `vrrp_instance`, an
//! `lvs_sync_daemon` following it and a `virtual_server` with two TCP_CHECKed real servers
//! (`[lb] backend = "ipvs"` in tandem.toml), and watches the kernel through `ipvsadm`:
//!
//! - the virtual service with its scheduler, persistence, both servers and their weights;
//! - the sync daemon in backup state while the instance is BACKUP, in master state once it
//!   took over (no peer: after its master-down interval);
//! - a real server whose listener closes leaves after its retries, and comes back;
//! - SIGTERM: tandem's service and the sync daemon gone (stopped in master state, not restarted
//!   as backup on the way out), the operator's own service kept;
//! - an address owner (priority 255) runs the master daemon from its start.
//!
//! Needs qemu-system-x86_64, busybox-static, ipvsadm, cpio and apt-get with Debian's package
//! lists; without them the test skips, or fails under `TANDEM_LAB_REQUIRE=1`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tandem_lab::vm::{self, Vm};
use tandem_lab::wait_until;

/// Set in the VM's environment: the inner test runs only there.
const IN_VM: &str = "TANDEM_IPVS_DIRECTOR_VM";
/// Where tandemd is inside the VM.
const TANDEMD: &str = "/sbin/tandemd";
/// Modules loaded in the VM (with their dependencies): IPVS and the schedulers used, and
/// `dummy` for the director's interface (it creates `dummy0`).
const MODULES: &[&str] = &["ip_vs", "ip_vs_rr", "ip_vs_wrr", "dummy"];

const IFACE: &str = "dummy0";
const DIRECTOR: &str = "10.0.0.2";
const VIP: &str = "10.0.0.100";
const VRID: u8 = 51;
const PRIORITY: u8 = 100;
/// Seconds between adverts: the master-down interval (~6.8 s) leaves time to see the
/// sync daemon in backup state first, even under TCG.
const ADVERT_INT: f64 = 2.0;
/// The real servers on the dummy interface, their port and their weights.
const SERVERS: [(&str, u16); 2] = [("10.0.0.11", 2), ("10.0.0.12", 5)];
const RS_PORT: u16 = 8080;
/// The checkers' timing (keepalived's keywords).
const DELAY_LOOP: u64 = 1;
const RETRY: u64 = 2;
const DELAY_BEFORE_RETRY: u64 = 1;
const PERSISTENCE: u64 = 300;
/// tandemd's control socket and log inside the VM.
const CONTROL: &str = "/run/tandem.sock";
const LOG: &str = "/tmp/tandemd.log";
/// The operator's own service, which tandem must leave alone.
const OPERATOR: &str = "10.9.9.9:22";

// ---------------------------------------------------------------- outer

#[test]
fn tandemd_directs_ipvs_in_a_debian_kernel_vm() {
    const TEST: &str = "the IPVS director test";
    if std::env::var_os(IN_VM).is_some() {
        return;
    }
    if let Some(tool) = vm::missing_tool() {
        return vm::cannot_run(TEST, &format!("{tool} is not installed"));
    }
    let built = Vm::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "ipvs-director")
        .modules(MODULES)
        .memory_mib(1536)
        .binary(Path::new(env!("CARGO_BIN_EXE_tandemd")), TANDEMD)
        .binary_from_path("ipvsadm", "/sbin/ipvsadm")
        .and_then(|vm| vm.run_test(IN_VM, "director_inside_the_vm"));
    match built {
        Ok(boot) => boot.assert_test_passed(),
        Err(e) => vm::cannot_run(TEST, &format!("{e:#}")),
    }
}

// ---------------------------------------------------------------- inner

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ipvsadm's output with one space between fields (it pads columns).
fn ipvsadm(args: &[&str]) -> String {
    sh("/sbin/ipvsadm", args)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn services() -> String {
    ipvsadm(&["-Ln"])
}

fn daemons() -> String {
    ipvsadm(&["-L", "--daemon"])
}

fn lists(listing: &str, line: &str) -> bool {
    listing.lines().any(|l| l.starts_with(line))
}

fn server_line(addr: &str, weight: u16) -> String {
    format!("-> {addr}:{RS_PORT} Masq {weight} ")
}

/// A real server: a TCP listener accepting (and dropping) connections until closed.
struct Listener {
    open: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn open(addr: &str) -> Listener {
        let at: SocketAddr = format!("{addr}:{RS_PORT}").parse().unwrap();
        let listener = TcpListener::bind(at).unwrap_or_else(|e| panic!("listen on {at}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let still = open.clone();
        let thread = std::thread::spawn(move || {
            while still.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    // Nothing pending: a short pause, then look at `open` again.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Listener {
            open,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket: connections are refused from now on.
    fn close(mut self) {
        self.open.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn keepalived_conf(priority: u8) -> String {
    let reals: String = SERVERS
        .iter()
        .map(|(addr, weight)| {
            format!(
                "    real_server {addr} {RS_PORT} {{\n\
                 \x20       weight {weight}\n\
                 \x20       TCP_CHECK {{\n\
                 \x20           connect_timeout 1\n\
                 \x20           retry {RETRY}\n\
                 \x20           delay_before_retry {DELAY_BEFORE_RETRY}\n\
                 \x20       }}\n\
                 \x20   }}\n"
            )
        })
        .collect();
    format!(
        "global_defs {{\n\
         \x20   lvs_sync_daemon {IFACE} VI_1\n\
         }}\n\
         vrrp_instance VI_1 {{\n\
         \x20   state BACKUP\n\
         \x20   interface {IFACE}\n\
         \x20   virtual_router_id {VRID}\n\
         \x20   priority {priority}\n\
         \x20   advert_int {ADVERT_INT}\n\
         \x20   virtual_ipaddress {{\n\
         \x20       {VIP}/24\n\
         \x20   }}\n\
         }}\n\
         virtual_server {VIP} 80 {{\n\
         \x20   delay_loop {DELAY_LOOP}\n\
         \x20   lb_algo wrr\n\
         \x20   lb_kind NAT\n\
         \x20   persistence_timeout {PERSISTENCE}\n\
         \x20   protocol TCP\n\
         {reals}\
         }}\n"
    )
}

/// The VRRP state of VI_1 as tandemd's control socket reports it.
fn vrrp_state(control: &Path) -> String {
    let status =
        tandem_lab::control::ask(control, "status", Duration::from_secs(5)).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("instance=VI_1 "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("state="))
        })
        .unwrap_or("?")
        .to_string()
}

/// Polls `ipvsadm` every 20 ms until `f` holds, failing with `what` and tandemd's log.
fn wait_for(what: &str, deadline: Duration, log: &Path, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    if let Err(e) = wait_until(what, deadline, Duration::from_millis(20), || {
        f().then_some(())
    }) {
        panic!(
            "{e}\nservices:\n{}\ndaemons:\n{}\ntandemd's log:\n{}",
            services(),
            daemons(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    start.elapsed()
}

/// Runs only in the VM the outer test boots (it changes the kernel's IPVS tables and
/// interfaces, which a developer's machine may be using).
#[test]
#[ignore = "runs inside the VM that tandemd_directs_ipvs_in_a_debian_kernel_vm boots"]
fn director_inside_the_vm() {
    if std::env::var_os(IN_VM).is_none() {
        eprintln!(
            "skipped: runs only inside the VM (set by tandemd_directs_ipvs_in_a_debian_kernel_vm)"
        );
        return;
    }
    // The director's interface: its own address and the real servers'.
    if !Path::new("/sys/class/net").join(IFACE).exists() {
        sh("ip", &["link", "add", IFACE, "type", "dummy"]);
    }
    sh(
        "ip",
        &["addr", "add", &format!("{DIRECTOR}/24"), "dev", IFACE],
    );
    for (addr, _) in SERVERS {
        sh("ip", &["addr", "add", &format!("{addr}/24"), "dev", IFACE]);
    }
    sh("ip", &["link", "set", IFACE, "up"]);
    let mut listeners: Vec<Option<Listener>> = SERVERS
        .iter()
        .map(|(a, _)| Some(Listener::open(a)))
        .collect();

    ipvsadm(&["-A", "-t", OPERATOR, "-s", "rr"]);
    ipvsadm(&["-a", "-t", OPERATOR, "-r", "10.9.9.10:22", "-m"]);

    let control = Path::new(CONTROL);
    let log = Path::new(LOG);
    let start = Instant::now();
    let tandemd = start_tandemd(PRIORITY);

    // BACKUP: the sync daemon listens (backup state), as keepalived starts it.
    wait_for("VI_1 in BACKUP", Duration::from_secs(10), log, || {
        vrrp_state(control) == "BACKUP"
    });
    let listing = daemons();
    let backup = format!("backup sync daemon (mcast={IFACE}, syncid={VRID}");
    assert!(lists(&listing, &backup), "{listing}");
    assert!(!lists(&listing, "master sync daemon"), "{listing}");
    assert_eq!(
        vrrp_state(control),
        "BACKUP",
        "the daemons must be listed while VI_1 is BACKUP"
    );
    println!("while BACKUP: {listing}");

    // The service as keepalived.conf describes it, both servers up from the start.
    let service = format!("TCP {VIP}:80 wrr persistent {PERSISTENCE}");
    wait_for(
        "tandem's service with both servers",
        Duration::from_secs(20),
        log,
        || {
            let l = services();
            lists(&l, &service)
                && SERVERS
                    .iter()
                    .all(|(addr, w)| lists(&l, &server_line(addr, *w)))
        },
    );
    println!(
        "service with both servers in IPVS {:?} after tandemd started",
        start.elapsed()
    );
    println!("{}", services());

    // No peer: MASTER after the master-down interval; the daemon switches to master state.
    let master = format!("master sync daemon (mcast={IFACE}, syncid={VRID}");
    let down = Duration::from_secs_f64(
        3.0 * ADVERT_INT + (256.0 - f64::from(PRIORITY)) / 256.0 * ADVERT_INT,
    );
    wait_for(
        "the master sync daemon",
        down + Duration::from_secs(10),
        log,
        || {
            let l = daemons();
            lists(&l, &master) && !lists(&l, "backup sync daemon")
        },
    );
    let took_over = start.elapsed();
    assert_eq!(vrrp_state(control), "MASTER");
    println!(
        "sync daemon in master state {took_over:?} after start (master-down interval {down:?}): {}",
        daemons()
    );

    // A real server stops listening: it leaves after RETRY more failures, then returns.
    let (gone_addr, gone_weight) = SERVERS[1];
    let gone_line = server_line(gone_addr, gone_weight);
    listeners[1].take().unwrap().close();
    let removed = wait_for(
        "the closed real server to leave",
        Duration::from_secs(DELAY_LOOP + RETRY * DELAY_BEFORE_RETRY + 10),
        log,
        || !lists(&services(), &gone_line),
    );
    let l = services();
    assert!(lists(&l, &server_line(SERVERS[0].0, SERVERS[0].1)), "{l}");
    let least = Duration::from_secs(RETRY * DELAY_BEFORE_RETRY);
    assert!(
        removed >= least,
        "removed after {removed:?}, before its {RETRY} retries {DELAY_BEFORE_RETRY} s apart"
    );
    println!(
        "closed real server left IPVS {removed:?} after its listener closed \
         (delay_loop {DELAY_LOOP} s, retry {RETRY}, delay_before_retry {DELAY_BEFORE_RETRY} s)"
    );
    listeners[1] = Some(Listener::open(gone_addr));
    let back = wait_for(
        "the real server to come back",
        Duration::from_secs(DELAY_LOOP + 10),
        log,
        || lists(&services(), &gone_line),
    );
    println!("real server back in IPVS {back:?} after its listener reopened");

    // SIGTERM: tandem's service and the sync daemon go, the operator's service stays.
    let (status, logged) = stop_tandemd(tandemd);
    let l = services();
    let d = daemons();
    println!("after SIGTERM:\n{l}\n{d}");
    assert!(status.success(), "tandemd failed: {logged}");
    assert!(!lists(&l, &format!("TCP {VIP}:80")), "{l}\n{logged}");
    assert!(lists(&l, &format!("TCP {OPERATOR} rr")), "{l}");
    assert!(lists(&l, "-> 10.9.9.10:22 Masq 1"), "{l}");
    assert!(!d.contains("sync daemon"), "{d}\n{logged}");
    // As keepalived: stopped in the state it ran in, not restarted as backup on the way out.
    let shutdown = &logged[logged.find("Received SIGTERM").expect("SIGTERM logged")..];
    assert!(
        shutdown.contains("IPVS sync daemon: master stopped"),
        "{shutdown}"
    );
    assert!(
        !shutdown.contains("IPVS sync daemon: backup on"),
        "the backup daemon was restarted at shutdown:\n{shutdown}"
    );
    assert!(!logged.contains("ERROR"), "{logged}");
    println!("---- tandemd's log ----\n{logged}");

    // The address owner (priority 255) takes over at once: the backup daemon started with
    // tandemd gives way to the master daemon right away, without an error.
    let start = Instant::now();
    let owner = start_tandemd(255);
    wait_for(
        "the owner's master sync daemon",
        Duration::from_secs(10),
        log,
        || {
            let l = daemons();
            lists(&l, &master) && !lists(&l, "backup sync daemon")
        },
    );
    println!(
        "owner (priority 255): sync daemon in master state {:?} after start",
        start.elapsed()
    );
    assert_eq!(vrrp_state(control), "MASTER");
    let (status, logged) = stop_tandemd(owner);
    assert!(status.success(), "{logged}");
    assert!(!logged.contains("ERROR"), "{logged}");
    assert!(!daemons().contains("sync daemon"), "{}", daemons());
    for l in listeners.into_iter().flatten() {
        l.close();
    }
}

/// Starts tandemd on keepalived.conf (VI_1 at `priority`) and tandem.toml choosing IPVS.
fn start_tandemd(priority: u8) -> std::process::Child {
    let conf = Path::new("/tmp/keepalived.conf");
    let toml = Path::new("/tmp/tandem.toml");
    std::fs::write(conf, keepalived_conf(priority)).unwrap();
    std::fs::write(toml, "[lb]\nbackend = \"ipvs\"\n").unwrap();
    let out = std::fs::File::create(LOG).unwrap();
    Command::new(TANDEMD)
        .arg("-f")
        .arg(conf)
        .arg("-f")
        .arg(toml)
        .args(["--control", CONTROL])
        .args(["--log", "debug", "--log-target", "stderr"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start tandemd")
}

/// SIGTERMs tandemd and waits for it; returns its exit status and log.
fn stop_tandemd(mut tandemd: std::process::Child) -> (std::process::ExitStatus, String) {
    let stop = Instant::now();
    kill(Pid::from_raw(tandemd.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_until(
        "tandemd to exit",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || tandemd.try_wait().unwrap(),
    )
    .unwrap();
    println!(
        "tandemd exited ({status}) {:?} after SIGTERM",
        stop.elapsed()
    );
    (status, std::fs::read_to_string(LOG).unwrap_or_default())
}
