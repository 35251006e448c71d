//! Root tests: the checkers against real servers in a network namespace,
//! probed from a second namespace (the director).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{pool, Answer, Checking, WebServer};
use tandem_lab::{Lab, Netns};
use tandem_lb::check::digest::body_digest;
use tandem_lb::check::{
    Action, CheckKind, CheckerSpec, Connect, HttpSpec, MiscSpec, NotifyKind, RealServerSpec,
    Script, SorryServer, Timing, UrlSpec, VirtualServerSpec,
};

const MS: Duration = Duration::from_millis(1);

/// delay_loop 1 s, retry 2, delay_before_retry 500 ms, connect_timeout 400 ms.
fn timing() -> Timing {
    Timing {
        delay_loop: 1000 * MS,
        retry: 2,
        delay_before_retry: 500 * MS,
        warmup: Duration::ZERO,
        connect_timeout: 400 * MS,
        alpha: false,
    }
}

/// Director and real-server namespaces joined by a veth; the real servers
/// own 10.77.0.2-4.
fn lab() -> (Lab, Netns, Netns) {
    let mut lab = Lab::new("lbchk").unwrap();
    let dir = lab.netns("dir").unwrap();
    let rs = lab.netns("rs").unwrap();
    lab.veth((&dir, "eth0"), (&rs, "eth0")).unwrap();
    dir.ip("addr add 10.77.0.1/24 dev eth0").unwrap();
    for host in 2..=4 {
        rs.ip(&format!("addr add 10.77.0.{host}/24 dev eth0"))
            .unwrap();
    }
    (lab, dir, rs)
}

fn listen(ns: &Netns, addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.enter(move || TcpListener::bind(addr)).unwrap().unwrap()
}

fn http_checker(to: SocketAddr, url: UrlSpec) -> CheckerSpec {
    CheckerSpec {
        kind: CheckKind::Http(HttpSpec {
            urls: vec![url],
            virtualhost: None,
            protocol: Default::default(),
            enable_sni: false,
        }),
        connect: Connect { to, bind: None },
        timing: timing(),
    }
}

/// A notify script that appends its arguments to `log`.
fn recorder(dir: &Path) -> String {
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}/notify.log\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-lb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn http_get_failures_take_the_server_out_in_time_and_it_returns_when_healthy() {
    tandem_lab::require_root!();
    let (_lab, dir, rs) = lab();
    let tmp = tmpdir("http");
    let notify = recorder(&tmp);
    let body = "healthy page\n";
    let servers: Vec<WebServer> = (2..=4)
        .map(|h| WebServer::start(listen(&rs, &format!("10.77.0.{h}:8080")), Answer::ok(body)))
        .collect();
    let mut url = UrlSpec::path("/health");
    url.digest = Some(body_digest(body.as_bytes()));
    url.status_codes = vec![(200, 299)];
    let real_servers = servers
        .iter()
        .map(|s| {
            let mut r = RealServerSpec::new(s.addr);
            r.checkers.push(http_checker(s.addr, url.clone()));
            r.notify_up = Some(Script::from_line(&format!("{notify} up {}", s.addr)));
            r.notify_down = Some(Script::from_line(&format!("{notify} down {}", s.addr)));
            r
        })
        .collect();
    let checking = Checking::start(
        &dir,
        vec![VirtualServerSpec::new("[10.77.0.100]:tcp:80", real_servers)],
    );
    let all: Vec<(SocketAddr, u32)> = servers.iter().map(|s| (s.addr, 1)).collect();
    checking.wait_for("the initial pool", 5 * timing().delay_loop, |a| {
        pool(a) == Some(all.clone())
    });
    // Let every checker pass once so the retry rule (not the start rule) applies.
    std::thread::sleep(2 * timing().delay_loop + timing().delay_loop / 2);

    let t = timing();
    let bound = t.delay_before_retry * t.retry + t.delay_loop;
    let failures: [(&str, Answer); 3] = [
        (
            "wrong status",
            Answer {
                status: 500,
                ..Answer::ok(body)
            },
        ),
        ("wrong digest", Answer::ok("changed page\n")),
        (
            "timeout",
            Answer {
                stall: true,
                ..Answer::ok(body)
            },
        ),
    ];
    for (server, (what, answer)) in servers.iter().zip(failures) {
        let broken = Instant::now();
        server.set(answer);
        let out = checking.wait_for(&format!("{what}: {} out", server.addr), 4 * bound, |a| {
            pool(a).is_some_and(|p| !p.iter().any(|(addr, _)| *addr == server.addr))
        });
        let took = out - broken;
        // A timed-out probe adds its connect_timeout to each of the retry+1 attempts.
        let allowed = bound
            + if answer_stalls(what) {
                t.connect_timeout * (t.retry + 1)
            } else {
                Duration::ZERO
            }
            + 300 * MS;
        println!(
            "{what}: {} removed after {took:?} (delay_before_retry × retry + delay_loop = {bound:?}, allowed {allowed:?})",
            server.addr
        );
        assert!(
            took <= allowed,
            "{what}: removal took {took:?} > {allowed:?}"
        );
        assert!(
            took >= t.delay_before_retry * t.retry,
            "{what}: removed after {took:?}, before the retries could run"
        );
        let healed = Instant::now();
        server.set(Answer::ok(body));
        let back = checking.wait_for(&format!("{} back", server.addr), 4 * bound, |a| {
            pool(a).is_some_and(|p| p.iter().any(|(addr, _)| *addr == server.addr))
        });
        let took = back - healed;
        println!("{what}: {} back after {took:?}", server.addr);
        assert!(took <= t.delay_loop + t.connect_timeout + 300 * MS);
    }
    // The scripts run on their own: the last one may still be writing.
    let expected: Vec<String> = (servers.iter())
        .flat_map(|s| [format!("down {}\n", s.addr), format!("up {}\n", s.addr)])
        .collect();
    let read = || std::fs::read_to_string(tmp.join("notify.log")).unwrap_or_default();
    let complete = tandem_lab::wait_until(
        "every notify_down and notify_up",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let log = read();
            expected
                .iter()
                .all(|l| log.contains(l.as_str()))
                .then_some(())
        },
    );
    assert!(complete.is_ok(), "{}", read());
    drop(checking);
    let _ = std::fs::remove_dir_all(&tmp);
}

fn answer_stalls(what: &str) -> bool {
    what == "timeout"
}

#[test]
fn misc_dynamic_exit_status_changes_the_weight() {
    tandem_lab::require_root!();
    let (_lab, dir, _rs) = lab();
    let tmp = tmpdir("misc");
    let status = tmp.join("status");
    std::fs::write(&status, "0").unwrap();
    let addr: SocketAddr = "10.77.0.2:8080".parse().unwrap();
    let mut r = RealServerSpec::new(addr);
    r.weight = 3;
    r.checkers.push(CheckerSpec {
        kind: CheckKind::Misc(MiscSpec {
            path: format!("exit $(cat {})", status.display()),
            timeout: Some(500 * MS),
            dynamic: true,
            user: None,
        }),
        connect: Connect {
            to: addr,
            bind: None,
        },
        timing: timing(),
    });
    let checking = Checking::start(
        &dir,
        vec![VirtualServerSpec::new("[10.77.0.100]:tcp:80", vec![r])],
    );
    checking.wait_for("weight 3", 3 * timing().delay_loop, |a| {
        pool(a) == Some(vec![(addr, 3)])
    });
    std::fs::write(&status, "12").unwrap();
    let start = Instant::now();
    let at = checking.wait_for("weight 10 from exit 12", 3 * timing().delay_loop, |a| {
        pool(a) == Some(vec![(addr, 10)])
    });
    println!("misc_dynamic: weight 3 -> 10 after {:?}", at - start);
    std::fs::write(&status, "0").unwrap();
    checking.wait_for("weight 3 again from exit 0", 3 * timing().delay_loop, |a| {
        pool(a) == Some(vec![(addr, 3)])
    });
    std::fs::write(&status, "1").unwrap();
    checking.wait_for("removal on exit 1", 6 * timing().delay_loop, |a| {
        pool(a) == Some(vec![])
    });
    drop(checking);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn misc_timeout_kills_the_whole_process_group() {
    tandem_lab::require_root!();
    let (_lab, dir, _rs) = lab();
    let tmp = tmpdir("misckill");
    let pidfile = tmp.join("pid");
    let addr: SocketAddr = "10.77.0.2:8080".parse().unwrap();
    let mut r = RealServerSpec::new(addr);
    let mut t = timing();
    t.retry = 0;
    r.checkers.push(CheckerSpec {
        kind: CheckKind::Misc(MiscSpec {
            // The grandchild would outlive a kill of the shell alone.
            path: format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
            timeout: Some(300 * MS),
            dynamic: false,
            user: None,
        }),
        connect: Connect {
            to: addr,
            bind: None,
        },
        timing: t,
    });
    let checking = Checking::start(
        &dir,
        vec![VirtualServerSpec::new("[10.77.0.100]:tcp:80", vec![r])],
    );
    checking.wait_for("removal after the timeout", 3 * timing().delay_loop, |a| {
        pool(a) == Some(vec![])
    });
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tandem_lab::wait_until(
        "the script's sleep to be gone",
        2 * timing().delay_loop,
        20 * MS,
        || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init.
            (stat.is_empty() || stat.contains(") Z ")).then_some(())
        },
    )
    .unwrap();
    drop(checking);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn all_servers_down_runs_quorum_down_and_selects_the_sorry_server() {
    tandem_lab::require_root!();
    let (_lab, dir, rs) = lab();
    let tmp = tmpdir("sorry");
    let notify = recorder(&tmp);
    let mut servers: Vec<Option<WebServer>> = (2..=3)
        .map(|h| {
            Some(WebServer::start(
                listen(&rs, &format!("10.77.0.{h}:8080")),
                Answer::ok("x"),
            ))
        })
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let sorry: SocketAddr = "10.77.0.4:8080".parse().unwrap();
    let real_servers = addrs
        .iter()
        .map(|&a| {
            let mut r = RealServerSpec::new(a);
            r.checkers.push(CheckerSpec {
                kind: CheckKind::Tcp,
                connect: Connect { to: a, bind: None },
                timing: timing(),
            });
            r
        })
        .collect();
    let mut vs = VirtualServerSpec::new("[10.77.0.100]:tcp:80", real_servers);
    vs.sorry_server = Some(SorryServer {
        addr: sorry,
        inhibit: false,
    });
    vs.quorum_down = Some(Script::from_line(&format!("{notify} quorum_down")));
    vs.quorum_up = Some(Script::from_line(&format!("{notify} quorum_up")));
    let checking = Checking::start(&dir, vec![vs]);
    checking.wait_for("both servers in", 3 * timing().delay_loop, |a| {
        pool(a) == Some(vec![(addrs[0], 1), (addrs[1], 1)])
    });
    for s in &mut servers {
        s.take();
    }
    let mut quorum_down = false;
    checking.wait_for("the sorry server alone", 8 * timing().delay_loop, |a| {
        quorum_down |= matches!(a, Action::Notify(n) if n.kind == NotifyKind::QuorumDown);
        pool(a) == Some(vec![(sorry, 1)])
    });
    tandem_lab::wait_until(
        "quorum_down to have run",
        2 * timing().delay_loop,
        20 * MS,
        || {
            std::fs::read_to_string(tmp.join("notify.log"))
                .ok()
                .filter(|l| l.contains("quorum_down"))
        },
    )
    .unwrap();
    assert!(
        quorum_down,
        "a QuorumDown notification came with the sorry pool"
    );
    // One server back: the sorry server leaves and quorum_up runs.
    let _back = WebServer::start(listen(&rs, &addrs[0].to_string()), Answer::ok("x"));
    checking.wait_for("the first server back", 4 * timing().delay_loop, |a| {
        pool(a) == Some(vec![(addrs[0], 1)])
    });
    tandem_lab::wait_until(
        "quorum_up to have run",
        2 * timing().delay_loop,
        20 * MS,
        || {
            std::fs::read_to_string(tmp.join("notify.log"))
                .ok()
                .filter(|l| l.contains("quorum_up"))
        },
    )
    .unwrap();
    drop(checking);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn ping_check_passes_on_an_answered_echo_and_fails_on_silence() {
    tandem_lab::require_root!();
    let (_lab, dir, rs) = lab();
    let mut spec = CheckerSpec {
        kind: CheckKind::Ping,
        connect: Connect {
            to: "10.77.0.2:0".parse().unwrap(),
            bind: None,
        },
        timing: timing(),
    };
    let probe_in_dir = |spec: &CheckerSpec| {
        let spec = spec.clone();
        dir.enter(move || {
            let probe = tandem_lb::check::probe::Probe::new(&spec, None, Duration::ZERO).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(probe.run())
        })
        .unwrap()
    };
    assert!(
        probe_in_dir(&spec).is_healthy(),
        "the real server answers echoes"
    );
    rs.sysctl("net.ipv4.icmp_echo_ignore_all", "1").unwrap();
    let started = Instant::now();
    let silent = probe_in_dir(&spec);
    assert!(!silent.is_healthy(), "{silent:?}");
    assert!(started.elapsed() < 2 * spec.timing.connect_timeout);
    spec.connect.to = "10.77.0.9:0".parse().unwrap();
    assert!(!probe_in_dir(&spec).is_healthy(), "nobody owns 10.77.0.9");
}
