//! Checker scale (issue 12, item 6b): 1,000 real servers checked with
//! HTTP_GET every second, CPU and memory of tandem's checkers beside
//! HAProxy's `check inter 1s` on the same servers, one after the other.
//!
//! ```text
//! cargo test -p tandem-lb --test check_scale -- --ignored --nocapture
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use tandem_lab::{Lab, Netns};
use tandem_lb::check::{
    runner, CheckKind, CheckerSpec, Connect, HttpSpec, RealServerSpec, Timing, UrlSpec,
    VirtualServerSpec,
};

const SERVERS: u16 = 1000;
const FIRST_PORT: u16 = 20000;
const WINDOW: Duration = Duration::from_secs(30);
const SERVER_IP: &str = "10.77.1.2";

/// 1,000 listeners answering `200 ok`, counting requests (`GET /count`).
const SERVER_PY: &str = r#"
import asyncio, sys
count = 0
async def handle(reader, writer):
    global count
    try:
        req = await reader.readuntil(b"\r\n\r\n")
    except Exception:
        writer.close(); return
    if req.startswith(b"GET /count "):
        body = str(count).encode()
    else:
        count += 1
        body = b"ok\n"
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    try:
        await writer.drain()
    finally:
        writer.close()
async def main():
    ip, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for p in range(first, first + n):
        await asyncio.start_server(handle, ip, p, backlog=64)
    print("listening", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"#;

fn requests(ns: &Netns) -> u64 {
    let to: SocketAddr = format!("{SERVER_IP}:{FIRST_PORT}").parse().unwrap();
    ns.enter(move || {
        let mut s = TcpStream::connect(to).unwrap();
        s.write_all(b"GET /count HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.rsplit("\r\n\r\n")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    })
    .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64
}

fn specs() -> Vec<VirtualServerSpec> {
    let mut timing = Timing::with_delay_loop(Duration::from_secs(1));
    timing.connect_timeout = Duration::from_secs(2);
    let real_servers = (0..SERVERS)
        .map(|i| {
            let addr: SocketAddr = format!("{SERVER_IP}:{}", FIRST_PORT + i).parse().unwrap();
            let mut r = RealServerSpec::new(addr);
            r.checkers.push(CheckerSpec {
                kind: CheckKind::Http(HttpSpec {
                    urls: vec![UrlSpec::path("/")],
                    virtualhost: None,
                    protocol: Default::default(),
                    enable_sni: false,
                }),
                connect: Connect {
                    to: addr,
                    bind: None,
                },
                timing: timing.clone(),
            });
            r
        })
        .collect();
    vec![VirtualServerSpec::new("[10.77.1.100]:tcp:80", real_servers)]
}

struct Figures {
    cpu_percent: f64,
    rss_mib: f64,
    checks_per_s: f64,
}

/// tandem's checkers on a current-thread runtime (one thread does every
/// probe), measured with that thread's rusage; RSS is the process's growth.
fn measure_tandem(dir: &Netns, rs: &Netns) -> Figures {
    let rss_before = rss_kib(std::process::id());
    let dir2 = dir.clone();
    let handle = std::thread::spawn(move || {
        dir2.enter(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (specs, probes, skipped) = runner::prepare(specs());
                assert!(skipped.is_empty());
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let running = runner::start(specs, probes, 1, runner::FileValues::none(), tx);
                let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
                // Warm up past the bootstrap delay and warmup spread.
                tokio::time::sleep(Duration::from_secs(4)).await;
                let cpu0 = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
                let t0 = Instant::now();
                tokio::time::sleep(WINDOW).await;
                let cpu1 = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
                let secs = |u: &nix::sys::resource::Usage| {
                    let t = u.user_time() + u.system_time();
                    t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6
                };
                let used = secs(&cpu1) - secs(&cpu0);
                let elapsed = t0.elapsed().as_secs_f64();
                running.stop().await;
                drain.abort();
                (used, elapsed)
            })
        })
        .unwrap()
    });
    // Count the requests the servers saw during (roughly) the same window.
    std::thread::sleep(Duration::from_secs(4));
    let n0 = requests(rs);
    std::thread::sleep(WINDOW);
    let n1 = requests(rs);
    let rss_after = rss_kib(std::process::id());
    let (used, elapsed) = handle.join().unwrap();
    Figures {
        cpu_percent: 100.0 * used / elapsed,
        rss_mib: rss_after.saturating_sub(rss_before) as f64 / 1024.0,
        checks_per_s: (n1 - n0) as f64 / WINDOW.as_secs_f64(),
    }
}

fn measure_haproxy(lab: &Lab, dir: &Netns, rs: &Netns) -> Option<Figures> {
    if std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_err()
    {
        println!("haproxy is not installed (apt-get install haproxy): no comparison");
        return None;
    }
    let mut cfg = String::from(
        "global\n    maxconn 4000\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout check 2s\n\nbackend pool\n    option httpchk GET /\n",
    );
    for i in 0..SERVERS {
        cfg.push_str(&format!(
            "    server s{i} {SERVER_IP}:{} check inter 1s\n",
            FIRST_PORT + i
        ));
    }
    cfg.push_str("\nfrontend f\n    bind 127.0.0.1:18080\n    default_backend pool\n");
    let path = lab.log_dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = dir
        .spawn(&["haproxy", "-db", "-f", path.to_str().unwrap()])
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let pid = child.pid();
    let (cpu0, n0, t0) = (cpu_of(pid), requests(rs), Instant::now());
    std::thread::sleep(WINDOW);
    let (cpu1, n1) = (cpu_of(pid), requests(rs));
    let elapsed = t0.elapsed().as_secs_f64();
    Some(Figures {
        cpu_percent: 100.0 * (cpu1 - cpu0) / elapsed,
        rss_mib: rss_kib(pid) as f64 / 1024.0,
        checks_per_s: (n1 - n0) as f64 / elapsed,
    })
}

#[test]
#[ignore = "benchmark: 1,000 servers for 2 × 30 s; run with --ignored --nocapture"]
fn thousand_http_checks_per_second_beside_haproxy() {
    tandem_lab::require_root!();
    let mut lab = Lab::new("lbscale").unwrap();
    let dir = lab.netns("dir").unwrap();
    let rs = lab.netns("rs").unwrap();
    lab.veth((&dir, "eth0"), (&rs, "eth0")).unwrap();
    dir.ip("addr add 10.77.1.1/24 dev eth0").unwrap();
    rs.ip(&format!("addr add {SERVER_IP}/24 dev eth0")).unwrap();
    let script = lab.log_dir().join("servers.py");
    std::fs::write(&script, SERVER_PY).unwrap();
    let servers = rs
        .spawn(&[
            "python3",
            script.to_str().unwrap(),
            SERVER_IP,
            &FIRST_PORT.to_string(),
            &SERVERS.to_string(),
        ])
        .unwrap();
    tandem_lab::wait_until(
        "the 1,000 listeners",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || servers.log().contains("listening").then_some(()),
    )
    .unwrap();

    let ours = measure_tandem(&dir, &rs);
    let haproxy = measure_haproxy(&lab, &dir, &rs);
    println!("checker scale: {SERVERS} real servers, HTTP_GET every 1 s, {WINDOW:?} window");
    println!(
        "{:<22} {:>10} {:>10} {:>12}",
        "", "CPU %", "RSS MiB", "checks/s"
    );
    println!(
        "{:<22} {:>10.1} {:>10.1} {:>12.0}",
        "tandem (1 thread)", ours.cpu_percent, ours.rss_mib, ours.checks_per_s
    );
    if let Some(h) = &haproxy {
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>12.0}",
            "haproxy check inter 1s", h.cpu_percent, h.rss_mib, h.checks_per_s
        );
    }
    assert!(
        ours.checks_per_s > 0.9 * f64::from(SERVERS),
        "tandem checked only {:.0}/s",
        ours.checks_per_s
    );
}
