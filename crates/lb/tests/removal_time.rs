//! Time from a real server dying to its removal (issue 12, item 6c): tandem's HTTP_GET
//! checker (`delay_loop 1`, `retry 2`, `delay_before_retry 1`: three failures) beside HAProxy's
//! `check inter 1s fall 3` on the same server, both running while the server is killed.
//!
//! ```text
//! cargo test -p tandem-lb --test removal_time -- --ignored --nocapture
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tandem_lab::{wait_until, Lab, Netns};
use tandem_lb::check::{
    runner, Action, CheckKind, CheckerSpec, Connect, HttpSpec, RealServerSpec, Timing, UrlSpec,
    VirtualServerSpec,
};

const SERVER: &str = "10.78.1.2:20000";
const ROUNDS: usize = 3;

fn spec() -> Vec<VirtualServerSpec> {
    let mut timing = Timing::with_delay_loop(Duration::from_secs(1));
    timing.retry = 2;
    timing.delay_before_retry = Duration::from_secs(1);
    timing.connect_timeout = Duration::from_secs(1);
    timing.warmup = Duration::ZERO;
    let mut rs = RealServerSpec::new(SERVER.parse().unwrap());
    rs.checkers.push(CheckerSpec {
        kind: CheckKind::Http(HttpSpec {
            urls: vec![UrlSpec::path("/")],
            virtualhost: None,
            protocol: Default::default(),
            enable_sni: false,
        }),
        connect: Connect {
            to: SERVER.parse().unwrap(),
            bind: None,
        },
        timing,
    });
    vec![VirtualServerSpec::new("10.78.1.100:80", vec![rs])]
}

/// tandem's checker in `ns`; pool sizes arrive on the channel with their time.
fn start_tandem(ns: &Netns) -> mpsc::Receiver<(Instant, usize)> {
    let (tx, rx) = mpsc::channel();
    let ns = ns.clone();
    std::thread::spawn(move || {
        ns.enter(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (specs, probes, _) = runner::prepare(spec());
                let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel();
                let _running = runner::start(specs, probes, 7, runner::FileValues::none(), atx);
                while let Some(action) = arx.recv().await {
                    if let Action::SetPool { destinations, .. } = action {
                        if tx.send((Instant::now(), destinations.len())).is_err() {
                            return;
                        }
                    }
                }
            })
        })
        .unwrap();
    });
    rx
}

/// Whether HAProxy reports server `s0` UP, through its stats socket.
fn haproxy_up(socket: &Path) -> Option<bool> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let line = out.lines().find(|l| l.starts_with("pool,s0,"))?;
    Some(line.split(',').nth(17)?.starts_with("UP"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: kills a server 3 times; run with --ignored --nocapture"]
fn removal_time_beside_haproxy() {
    tandem_lab::require_root!();
    let mut lab = Lab::new("lbgone").unwrap();
    let dir = lab.netns("dir").unwrap();
    let rs = lab.netns("rs").unwrap();
    lab.veth((&dir, "eth0"), (&rs, "eth0")).unwrap();
    dir.ip("addr add 10.78.1.1/24 dev eth0").unwrap();
    rs.ip("addr add 10.78.1.2/24 dev eth0").unwrap();
    let haproxy = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok();
    let socket = lab.log_dir().join("haproxy.sock");
    let _haproxy = haproxy.then(|| {
        let cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\nbackend pool\n    option httpchk GET /\n    server s0 {SERVER} check inter 1s fall 3 rise 1\n\nfrontend f\n    bind 127.0.0.1:18081\n    default_backend pool\n",
            socket.display()
        );
        let path = lab.log_dir().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        dir.spawn(&["haproxy", "-db", "-f", path.to_str().unwrap()])
            .unwrap()
    });
    if !haproxy {
        println!("haproxy is not installed (apt-get install haproxy): tandem alone");
    }
    let pools = start_tandem(&dir);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (ip, port) = SERVER.split_once(':').unwrap();
        let mut server = rs
            .spawn(&["python3", "-m", "http.server", port, "--bind", ip])
            .unwrap();
        // Both see it up (tandem: a pool of one; HAProxy: UP).
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut pool = 0;
        while pool != 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            pool = pools
                .recv_timeout(left)
                .expect("tandem puts the server in")
                .1;
        }
        if haproxy {
            wait_until(
                "haproxy UP",
                Duration::from_secs(15),
                Duration::from_millis(20),
                || (haproxy_up(&socket) == Some(true)).then_some(()),
            )
            .unwrap();
        }
        // Let a check or two pass so that neither is mid-retry, then kill it.
        std::thread::sleep(Duration::from_millis(1500));
        while pools.try_recv().is_ok() {}
        let killed = Instant::now();
        server.kill().unwrap();
        // HAProxy is watched from its own thread while tandem's pool is awaited.
        let watch = haproxy.then(|| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                wait_until(
                    "haproxy DOWN",
                    Duration::from_secs(15),
                    Duration::from_millis(10),
                    || (haproxy_up(&socket) == Some(false)).then_some(()),
                )
                .map(|()| killed.elapsed())
            })
        });
        let (at, _) = (pools.iter())
            .find(|&(_, n)| n == 0)
            .expect("tandem removes the server");
        ours.push(at - killed);
        if let Some(watch) = watch {
            theirs.push(watch.join().unwrap().unwrap());
        }
    }
    println!("server killed -> removed, {ROUNDS} rounds (median, all):");
    println!(
        "{:<40} {:>8} ms  {:?}",
        "tandem HTTP_GET loop 1s retry 2 dbr 1s",
        median(ours.clone()).as_millis(),
        ours.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    if haproxy {
        println!(
            "{:<40} {:>8} ms  {:?}",
            "haproxy check inter 1s fall 3",
            median(theirs.clone()).as_millis(),
            theirs.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
        );
    }
    assert!(median(ours) <= Duration::from_secs(4));
}
