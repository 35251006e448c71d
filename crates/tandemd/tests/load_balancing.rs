//! tandemd as an LVS director, end to end in the gateway lab: keepalived.conf's
//! `virtual_server` balanced through nftables, real servers checked with HTTP_GET / TCP_CHECK,
//! notify and quorum scripts, the sorry server, and 50 balanced connections across the death
//! of the master director, in NAT mode and in DR mode.
//!
//! ```text
//!  NAT: client 10.1.0.100 ── VIP 10.1.0.254 ── director a / b ── 10.2.0.0/24 ── real servers
//!  DR:  client, director a / b (VIP 10.5.0.100), real servers (VIP on lo): one switch
//! ```

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{
    example_config, require_root, wait_until, EchoServer, FlowOptions, Gateway, Lab, Netns, Side,
    TcpFlows, SIDE_A, SIDE_B,
};

const VIP: &str = "10.1.0.254";
/// The source address the gateways' source NAT gives forwarded connections: what the real
/// servers see of the client (the checkers come from the directors' own addresses).
const SNAT: &str = "10.2.0.254";

fn etc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc")
}

/// A web server on `addr:8080` (added to the server namespace's `eth0`) answering its name,
/// healthy (200) or not (503) as the test says; counts the requests that came through the
/// director's NAT.
struct Web {
    healthy: Arc<AtomicBool>,
    client_requests: Arc<Mutex<usize>>,
}

impl Web {
    fn start(ns: &Netns, addr: &str, name: &str) -> Result<Web> {
        ns.ip(&format!("addr add {addr}/24 dev eth0"))?;
        let bind: SocketAddr = format!("{addr}:8080").parse()?;
        let listener = ns.enter(move || TcpListener::bind(bind))??;
        let healthy = Arc::new(AtomicBool::new(true));
        let client_requests = Arc::new(Mutex::new(0));
        let (h, c, name) = (healthy.clone(), client_requests.clone(), name.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let (h, c, name) = (h.clone(), c.clone(), name.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    if s.peer_addr().is_ok_and(|p| p.ip().to_string() == SNAT) {
                        *c.lock().unwrap() += 1;
                    }
                    let status = if h.load(Ordering::SeqCst) {
                        "200 OK"
                    } else {
                        "503 Unavailable"
                    };
                    let _ = write!(
                        s,
                        "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                        name.len()
                    );
                    // The client closes first (no TIME_WAIT here for a reused port).
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        Ok(Web {
            healthy,
            client_requests,
        })
    }

    fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::SeqCst);
    }
}

/// One HTTP/1.0 GET to the VIP from the client; the body (the answering server's name).
fn get(client: &Netns) -> Result<String> {
    get_from(client, None)
}

/// [`get`] from the client's address `from` (None: the kernel's choice).
fn get_from(client: &Netns, from: Option<IpAddr>) -> Result<String> {
    let to: SocketAddr = format!("{VIP}:80").parse()?;
    client.enter(move || tandem_lab::http_get(from, to))?
}

/// Waits for the VIP to answer the client (the director `d` set up and a server in).
fn wait_answers(client: &Netns, d: &Daemon) -> Result<()> {
    wait_until("the VIP answers", Duration::from_secs(10), ms(100), || {
        get(client).ok()
    })
    .with_context(|| d.child.log())?;
    Ok(())
}

fn tally(client: &Netns, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut t = BTreeMap::new();
    for _ in 0..n {
        *t.entry(get(client)?).or_insert(0) += 1;
    }
    Ok(t)
}

fn count(t: &BTreeMap<String, usize>, name: &str) -> usize {
    t.get(name).copied().unwrap_or(0)
}

/// Waits for a line in the notify log; when it appeared.
fn wait_line(log: &Path, line: &str, deadline: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait_until(
        &format!("`{line}` in the notify log"),
        deadline,
        ms(20),
        || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|text| text.lines().any(|l| l == line))
        },
    )?;
    Ok(t.elapsed())
}

fn nft_table(ns: &Netns) -> bool {
    ns.exec(&["nft", "list", "table", "inet", "tandem_lb"])
        .is_ok_and(|o| o.status.success())
}

/// The connections `server` accepted from address `from`.
fn connections_from(server: &EchoServer, from: &str) -> usize {
    (server.peers().iter())
        .filter(|p| p.ip().to_string() == from)
        .count()
}

/// After director a's death (killed, its links down): waits for director `b` (in `b_ns`) to
/// take `vip` and for every flow of `tcp` to move again, prints the figures, and asserts that
/// no connection was lost and none was opened again elsewhere: each server holds exactly the
/// ones it had (`per_server` counts them, `before` is what it counted before).
fn survive_master_death(
    kind: &str,
    b_ns: &Netns,
    b: &Daemon,
    vip: &str,
    tcp: &TcpFlows,
    before: &[usize],
    per_server: impl Fn() -> Vec<usize>,
) -> Result<()> {
    let took = wait_has(b_ns, vip, Duration::from_secs(5))?;
    tcp.wait_all_progress(Duration::from_secs(10))
        .with_context(|| format!("{}\n{}", tcp.report(), b.child.log()))?;
    let report = tcp.report();
    let after = per_server();
    println!(
        "{kind} director a killed: b took the VIP after {} ms; {}/{} balanced connections \
         alive, longest stall {} ms; per server before {before:?}, after {after:?}",
        took.as_millis(),
        report.alive,
        report.total,
        report.longest_stall.as_millis()
    );
    assert_eq!(report.alive, tcp.len(), "{report}");
    assert_eq!(before, after);
    Ok(())
}

#[test]
fn director_balances_per_weight_checks_servers_and_falls_back_to_the_sorry_server() -> Result<()> {
    require_root!(Ok(()));
    let gw = Gateway::new("lbdir")?;
    let webs = [
        Web::start(&gw.server, "10.2.0.11", "rs1")?,
        Web::start(&gw.server, "10.2.0.12", "rs2")?,
        Web::start(&gw.server, "10.2.0.13", "rs3")?,
    ];
    let _sorry = Web::start(&gw.server, "10.2.0.14", "sorry")?;
    let scripts = ScriptDir::new("lbdir")?;
    let log = scripts.path("notify.log");
    let notify = scripts.script(
        "notify.sh",
        &format!("echo \"$*\" >> {}", log.display()),
        0o755,
    )?;
    let notify = notify.display();
    // delay_loop 1, retry 1, delay_before_retry 1: a failing server leaves within 2 s.
    let real = |host: u8, weight: u32| {
        format!(
            "    real_server 10.2.0.{host} 8080 {{
        weight {weight}
        notify_up \"{notify} up rs{n}\"
        notify_down \"{notify} down rs{n}\"
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
",
            n = host - 10
        )
    };
    let (conf, _) = example_config(&etc(), SIDE_A, gw.lab.log_dir())?;
    let conf = format!(
        "{conf}
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    quorum_up \"{notify} quorum_up\"
    quorum_down \"{notify} quorum_down\"
    sorry_server 10.2.0.14 8080
{}{}{}}}
",
        real(11, 3),
        real(12, 2),
        real(13, 1)
    );
    let mut d = start_tandemd_in(&gw.lab, &gw.a, &conf, &[])?;
    wait_has(&gw.a, VIP, Duration::from_secs(15))?;
    wait_answers(&gw.client, &d)?;
    let log_text = d.child.log();
    assert!(!log_text.contains("parsed but not applied"), "{log_text}");

    // 1. wrr 3:2:1, counted at the servers.
    let counted = || -> Vec<usize> {
        (webs.iter())
            .map(|w| *w.client_requests.lock().unwrap())
            .collect()
    };
    let before = counted();
    let t = tally(&gw.client, 60)?;
    println!("wrr 3:2:1 over 60 requests: {t:?}");
    let at_servers: Vec<usize> = (counted().iter().zip(&before))
        .map(|(now, then)| now - then)
        .collect();
    for (name, want) in [("rs1", 30), ("rs2", 20), ("rs3", 10)] {
        assert!(
            count(&t, name).abs_diff(want) <= 2,
            "{name}: {t:?} (want {want})"
        );
    }
    assert_eq!(
        at_servers,
        [count(&t, "rs1"), count(&t, "rs2"), count(&t, "rs3")]
    );

    // 2. rs2 fails its check: out within delay_before_retry × retry + delay_loop, once the
    // checkers ran (a first check that fails takes a server out without retries).
    wait_until("every checker ran", Duration::from_secs(5), ms(50), || {
        (d.child.log().matches("succeeded on service").count() >= 3).then_some(())
    })?;
    webs[1].set_healthy(false);
    let out = wait_line(&log, "down rs2", Duration::from_secs(6))?;
    println!(
        "rs2 failing: notify_down after {} ms (bound 2000 ms + one check)",
        out.as_millis()
    );
    assert!(
        out >= Duration::from_secs(1) && out <= Duration::from_millis(3000),
        "one retry 1 s after the first failure, within 2 s of delay_loop + retry: {out:?}"
    );
    let t = tally(&gw.client, 40)?;
    assert_eq!(count(&t, "rs2"), 0, "{t:?}");
    assert!(count(&t, "rs1") > count(&t, "rs3"), "{t:?}");

    // 3. rs2 healthy again: back at the next check.
    webs[1].set_healthy(true);
    let back = wait_line(&log, "up rs2", Duration::from_secs(4))?;
    println!("rs2 healthy: notify_up after {} ms", back.as_millis());
    let t = tally(&gw.client, 30)?;
    assert!(count(&t, "rs2") > 0, "{t:?}");

    // 4. Everyone fails: quorum lost, the sorry server answers.
    webs.iter().for_each(|w| w.set_healthy(false));
    wait_line(&log, "quorum_down", Duration::from_secs(6))?;
    // The script and the pool's batch go out together; which lands first is not fixed.
    wait_until(
        "the sorry server answers alone",
        Duration::from_secs(2),
        ms(20),
        || {
            let t = tally(&gw.client, 10).ok()?;
            (count(&t, "sorry") == 10).then_some(())
        },
    )?;
    webs.iter().for_each(|w| w.set_healthy(true));
    wait_line(&log, "quorum_up", Duration::from_secs(6))?;
    wait_until(
        "the real servers answer again",
        Duration::from_secs(2),
        ms(20),
        || {
            let t = tally(&gw.client, 12).ok()?;
            (count(&t, "sorry") == 0).then_some(())
        },
    )?;

    // 5. SIGHUP with the same file: the virtual server keeps its checkers' state.
    d.child.signal(Signal::SIGHUP)?;
    wait_until("the reload", Duration::from_secs(10), ms(50), || {
        d.child.log().contains("Reload done").then_some(())
    })?;
    let log_text = d.child.log();
    assert!(
        log_text.contains("1 virtual server(s) kept with their checker state, 0 (re)started"),
        "{log_text}"
    );
    assert_eq!(count(&tally(&gw.client, 6)?, "sorry"), 0);

    // 6. SIGTERM: tandem's table goes with it.
    assert!(nft_table(&gw.a));
    d.child.signal(Signal::SIGTERM)?;
    let status = d.child.wait_timeout(Duration::from_secs(10))?;
    assert!(status.is_some_and(|s| s.success()), "{}", d.child.log());
    assert!(!nft_table(&gw.a), "table inet tandem_lb left behind");
    Ok(())
}

/// Both directors, conntrack replication with the pair's key, 50 long-lived connections
/// balanced over three servers; the master is killed mid-stream.
#[test]
fn balanced_connections_survive_the_master_directors_death() -> Result<()> {
    require_root!(Ok(()));
    const FLOWS: usize = 50;
    const PORT: u16 = 7000;
    let gw = Gateway::new("lbflows")?;
    let servers = [
        EchoServer::start(&gw.server, 0)?,
        EchoServer::start(&gw.server, 0)?,
        EchoServer::start(&gw.server, 0)?,
    ];
    let reals: Vec<(String, u16)> = (servers.iter())
        .map(|s| ("10.2.0.100".to_string(), s.port()))
        .collect();
    let vs = rr_tcp_checked(&format!("{VIP} {PORT}"), &reals, "");
    let mut a = start_director(&gw, &gw.a, SIDE_A, &vs)?;
    let b = start_director(&gw, &gw.b, SIDE_B, &vs)?;
    wait_until("a holds both VIPs", Duration::from_secs(15), ms(5), || {
        (gw.a.has_address(VIP).unwrap_or(false) && gw.a.has_address(SNAT).unwrap_or(false))
            .then_some(())
    })?;
    // The backup director has planned the same service (load balancing runs in every state).
    wait_until("b's table", Duration::from_secs(10), ms(50), || {
        nft_table(&gw.b).then_some(())
    })?;
    let to: SocketAddr = SocketAddr::new(VIP.parse::<IpAddr>()?, PORT);
    let opts = FlowOptions {
        interval: ms(20),
        dead_after: Duration::from_secs(10),
        ..FlowOptions::default()
    };
    // The checkers must have run once (warmup) before every server is surely in: all are
    // in from the start (no alpha), so the flows can start now.
    let tcp = TcpFlows::start_with(&gw.client, to, FLOWS, opts)?;
    tcp.wait_all_progress(Duration::from_secs(10))?;
    let per_server = || servers.iter().map(|s| connections_from(s, SNAT)).collect();
    let before: Vec<usize> = per_server();
    println!("50 connections over the three servers: {before:?}");
    assert_eq!(before.iter().sum::<usize>(), FLOWS, "{before:?}");
    assert!(before.iter().all(|&n| n >= 10), "rr spread: {before:?}");
    wait_until(
        "connections replicated to b",
        Duration::from_secs(10),
        ms(20),
        || (tandem_lab::control::established_in_external(&b.control, PORT) >= FLOWS).then_some(()),
    )?;

    tcp.mark();
    a.child.kill()?;
    for dev in ["pub0", "int0", "sync0"] {
        gw.a.link_set(dev, false)?;
    }
    survive_master_death("NAT", &gw.b, &b, VIP, &tcp, &before, per_server)
}

/// Both directors with `persistence_timeout 300` and `lb_algo rr`: persistent clients note
/// their server through director a; a is SIGKILLed; each client's next connection, through b
/// (whose persistence sets never saw them), reaches the same server.
#[test]
fn persistent_clients_keep_their_server_across_the_master_directors_death() -> Result<()> {
    require_root!(Ok(()));
    const CLIENTS: u8 = 12;
    let gw = Gateway::new("lbpers")?;
    let _webs = [
        Web::start(&gw.server, "10.2.0.11", "rs1")?,
        Web::start(&gw.server, "10.2.0.12", "rs2")?,
        Web::start(&gw.server, "10.2.0.13", "rs3")?,
    ];
    let clients: Vec<IpAddr> = (1..=CLIENTS)
        .map(|i| format!("10.1.0.{}", 100 + i).parse())
        .collect::<Result<_, _>>()?;
    for c in &clients {
        gw.client.ip(&format!("addr add {c}/24 dev eth0"))?;
    }
    let reals: Vec<(String, u16)> = (11..=13)
        .map(|host| (format!("10.2.0.{host}"), 8080))
        .collect();
    let vs = rr_tcp_checked(
        &format!("{VIP} 80"),
        &reals,
        "    persistence_timeout 300\n",
    );
    let mut a = start_director(&gw, &gw.a, SIDE_A, &vs)?;
    let b = start_director(&gw, &gw.b, SIDE_B, &vs)?;
    wait_has(&gw.a, VIP, Duration::from_secs(15))?;
    wait_until("b's table", Duration::from_secs(10), ms(50), || {
        nft_table(&gw.b).then_some(())
    })?;
    wait_answers(&gw.client, &a)?;

    // Through a: each client's server, the same on a second connection (a's sets).
    let mut before = Vec::new();
    for &c in &clients {
        let first = get_from(&gw.client, Some(c))?;
        assert_eq!(get_from(&gw.client, Some(c))?, first, "{c} moved on a");
        before.push(first);
    }
    let spread: std::collections::BTreeSet<&String> = before.iter().collect();
    println!("persistent clients through a: {before:?}");
    assert!(spread.len() >= 2, "every client on one server: {before:?}");
    // b holds no persistence entry for them: what follows is b's own choice.
    let listing = gw.b.exec(&["nft", "list", "table", "inet", "tandem_lb"])?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("_p_10_2_0_11_8080"), "{listing}");
    for c in &clients {
        assert!(
            !listing.contains(&c.to_string()),
            "{c} in b's sets: {listing}"
        );
    }

    a.child.kill()?;
    for dev in ["pub0", "int0", "sync0"] {
        gw.a.link_set(dev, false)?;
    }
    wait_has(&gw.b, VIP, Duration::from_secs(5))?;
    let mut after = Vec::new();
    for &c in &clients {
        let server = wait_until(
            "a connection through b",
            Duration::from_secs(10),
            ms(50),
            || get_from(&gw.client, Some(c)).ok(),
        )
        .with_context(|| b.child.log())?;
        after.push(server);
    }
    let kept = before.iter().zip(&after).filter(|(x, y)| x == y).count();
    println!(
        "director a killed: {kept}/{} persistent clients reached their server again through b \
         (after: {after:?})",
        clients.len()
    );
    assert_eq!(before, after);
    Ok(())
}

/// One-armed DR directors: client, directors a (10.5.0.1) and b (10.5.0.3) and three real
/// servers on one switch; the servers hold the VIP on `lo` and keep quiet about it in ARP.
struct DrLab {
    lab: Lab,
    client: Netns,
    a: Netns,
    b: Netns,
    servers: Vec<Netns>,
}

const DR_VIP: &str = "10.5.0.100";

impl DrLab {
    fn new(tag: &str) -> Result<DrLab> {
        let mut lab = Lab::new(tag)?;
        let switch = lab.netns("sw")?;
        lab.bridge(&switch, "br0")?;
        let host = |lab: &mut Lab, name: &str, addr: &str| -> Result<Netns> {
            let ns = lab.netns(name)?;
            let port = format!("p{name}");
            lab.veth((&ns, "eth0"), (&switch, &port))?;
            switch.ip(&format!("link set {port} master br0"))?;
            ns.ip(&format!("addr add {addr}/24 dev eth0"))?;
            Ok(ns)
        };
        let client = host(&mut lab, "c", "10.5.0.2")?;
        let a = host(&mut lab, "da", "10.5.0.1")?;
        let b = host(&mut lab, "db", "10.5.0.3")?;
        let mut servers = Vec::new();
        for i in 1..=3 {
            let ns = host(&mut lab, &format!("rs{i}"), &format!("10.5.0.1{i}"))?;
            for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                ns.sysctl(&format!("net.ipv4.conf.all.{key}"), value)?;
                ns.sysctl(&format!("net.ipv4.conf.eth0.{key}"), value)?;
            }
            ns.ip(&format!("addr add {DR_VIP}/32 dev lo"))?;
            servers.push(ns);
        }
        Ok(DrLab {
            lab,
            client,
            a,
            b,
            servers,
        })
    }

    /// tandemd on director `ns` with VRRP `priority` and the DR `virtual_server` `vs`.
    fn start(&self, ns: &Netns, priority: u8, vs: &str) -> Result<Daemon> {
        let conf = format!(
            "vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
             priority {priority}\n    advert_int 1\n    virtual_ipaddress {{\n        {DR_VIP}/32\n    }}\n}}\n{vs}"
        );
        start_tandemd_in(&self.lab, ns, &conf, &[])
    }
}

fn dr_table(ns: &Netns) -> String {
    ns.exec(&["nft", "list", "table", "netdev", "tandem_lb_dr"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Two tandemd directors with `lb_kind DR`, 50 long-lived connections through the VIP to
/// three real servers, the master SIGKILLed mid-stream: the backup, which never saw the
/// connections (no connection table, no replication), hashes each one to the same server.
#[test]
fn dr_connections_survive_the_master_directors_death() -> Result<()> {
    require_root!(Ok(()));
    const FLOWS: usize = 50;
    const PORT: u16 = 7000;
    let t = DrLab::new("lbdr")?;
    let servers: Vec<EchoServer> = (t.servers.iter())
        .map(|ns| EchoServer::start(ns, PORT))
        .collect::<Result<_>>()?;
    let real: String = (11..=13)
        .map(|h| {
            format!(
                "    real_server 10.5.0.{h} {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
            )
        })
        .collect();
    let vs = format!(
        "virtual_server {DR_VIP} {PORT} {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n{real}}}\n"
    );
    let mut a = t.start(&t.a, 150, &vs)?;
    let b = t.start(&t.b, 100, &vs)?;
    wait_has(&t.a, DR_VIP, Duration::from_secs(15))?;
    // Both directors forward to every server, the backup too.
    for (name, ns) in [("a", &t.a), ("b", &t.b)] {
        wait_until(
            &format!("{name}'s DR table"),
            Duration::from_secs(10),
            ms(50),
            || {
                let table = dr_table(ns);
                (11..=13)
                    .all(|h| table.contains(&format!("fwd ip to 10.5.0.{h} device \"eth0\"")))
                    .then_some(())
            },
        )
        .with_context(|| format!("{}\n{}", a.child.log(), b.child.log()))?;
    }
    let to = SocketAddr::new(DR_VIP.parse::<IpAddr>()?, PORT);
    let opts = FlowOptions {
        interval: ms(20),
        dead_after: Duration::from_secs(10),
        ..FlowOptions::default()
    };
    let tcp = TcpFlows::start_with(&t.client, to, FLOWS, opts)?;
    tcp.wait_all_progress(Duration::from_secs(10))?;
    let per_server = || {
        servers
            .iter()
            .map(|s| connections_from(s, "10.5.0.2"))
            .collect()
    };
    let before: Vec<usize> = per_server();
    assert_eq!(before.iter().sum::<usize>(), FLOWS, "{before:?}");
    assert!(
        before.iter().all(|&n| n >= 5),
        "per-flow spread: {before:?}"
    );

    tcp.mark();
    a.child.kill()?;
    t.a.link_set("eth0", false)?;
    survive_master_death("DR", &t.b, &b, DR_VIP, &tcp, &before, per_server)
}

/// `lb_algo lc` on one director: 20 long connections held by the only server up, then two
/// idle servers join; once tandem has counted the conntrack entries per server, 30 new
/// connections go (nearly) all to the idle two, where round robin would give the busy one a
/// third.
#[test]
fn least_connection_sends_new_connections_to_the_idle_servers() -> Result<()> {
    require_root!(Ok(()));
    const HELD: usize = 20;
    const NEW: usize = 30;
    const PORT: u16 = 7000;
    const PORTS: [u16; 3] = [7101, 7102, 7103];
    let gw = Gateway::new("lblc")?;
    let busy = EchoServer::start(&gw.server, PORTS[0])?;
    let reals: Vec<(String, u16)> = PORTS.iter().map(|&p| ("10.2.0.100".into(), p)).collect();
    // alpha: a server is in only once its check has passed, so the two not yet listening
    // stay out.
    let vs = rr_tcp_checked(&format!("{VIP} {PORT}"), &reals, "    alpha\n")
        .replace("lb_algo rr", "lb_algo lc");
    let a = start_director(&gw, &gw.a, SIDE_A, &vs)?;
    let added = |port: u16| format!("Adding service [10.2.0.100]:tcp:{port} to VS");
    let log_has = |what: &str| a.child.log().contains(what);
    wait_until(
        "the busy server in the pool",
        Duration::from_secs(15),
        ms(20),
        || (gw.a.has_address(VIP).unwrap_or(false) && log_has(&added(PORTS[0]))).then_some(()),
    )
    .with_context(|| a.child.log())?;
    let to = SocketAddr::new(VIP.parse::<IpAddr>()?, PORT);
    let opts = FlowOptions {
        interval: ms(100),
        dead_after: Duration::from_secs(10),
        ..FlowOptions::default()
    };
    let held = TcpFlows::start_with(&gw.client, to, HELD, opts)?;
    held.wait_all_progress(Duration::from_secs(10))?;
    let from_clients = |s: &EchoServer| connections_from(s, SNAT);
    assert_eq!(from_clients(&busy), HELD);
    let idle = [
        EchoServer::start(&gw.server, PORTS[1])?,
        EchoServer::start(&gw.server, PORTS[2])?,
    ];
    // Both join, and a count after they did has put the busy server's weight down.
    let counted = format!("10.2.0.100:{} {HELD}/0 → 1,", PORTS[0]);
    let t = Instant::now();
    wait_until(
        "the counts applied",
        Duration::from_secs(20),
        ms(20),
        || {
            let log = a.child.log();
            let joined = log
                .rfind(&added(PORTS[1]))?
                .max(log.rfind(&added(PORTS[2]))?);
            (log[joined..].contains(&counted)).then_some(())
        },
    )
    .with_context(|| a.child.log())?;
    println!(
        "counts applied {} ms after the idle servers started",
        t.elapsed().as_millis()
    );
    let fresh = TcpFlows::start_with(&gw.client, to, NEW, opts)?;
    fresh.wait_all_progress(Duration::from_secs(10))?;
    let to_busy = from_clients(&busy) - HELD;
    let to_idle: Vec<usize> = idle.iter().map(from_clients).collect();
    println!(
        "{NEW} new connections: {to_busy} to the server holding {HELD}, {to_idle:?} to the \
         idle ones (round robin: {} each)",
        NEW / 3
    );
    assert_eq!(to_busy + to_idle.iter().sum::<usize>(), NEW);
    assert!(to_busy <= 2, "the busy server took {to_busy} of {NEW}");
    assert!(to_idle.iter().all(|&n| n >= 12), "{to_idle:?}");
    held.stop();
    fresh.stop();
    Ok(())
}

/// FILE_CHECK on real files: rs1 follows `down` (track_file weight 0: any number but 0
/// takes it out), rs2 follows `boost` with `weight 2` (its weight becomes 1 + 2 × the
/// number). Each write is seen by inotify and applied to the pool at once.
#[test]
fn file_check_numbers_take_a_server_out_and_move_a_weight() -> Result<()> {
    require_root!(Ok(()));
    let gw = Gateway::new("lbfile")?;
    let _webs = [
        Web::start(&gw.server, "10.2.0.11", "rs1")?,
        Web::start(&gw.server, "10.2.0.12", "rs2")?,
    ];
    let down = gw.lab.log_dir().join("down");
    let boost = gw.lab.log_dir().join("boost");
    std::fs::write(&down, "0\n")?;
    let (conf, _) = example_config(&etc(), SIDE_A, gw.lab.log_dir())?;
    let conf = format!(
        "{conf}
track_file down {{
    file {down}
    weight 0
}}
track_file boost {{
    file {boost}
    init_file 0
}}
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 10.2.0.11 8080 {{
        FILE_CHECK {{
            track_file down
        }}
    }}
    real_server 10.2.0.12 8080 {{
        FILE_CHECK {{
            track_file boost
            weight 2
        }}
    }}
}}
",
        down = down.display(),
        boost = boost.display(),
    );
    let d = start_tandemd_in(&gw.lab, &gw.a, &conf, &[])?;
    wait_has(&gw.a, VIP, Duration::from_secs(15))?;
    wait_answers(&gw.client, &d)?;
    let log = d.child.log();
    assert!(!log.contains("FILE_CHECK is not run"), "{log}");
    assert_eq!(std::fs::read_to_string(&boost)?.trim(), "0", "init_file");
    let t = tally(&gw.client, 20)?;
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t:?}");

    // boost 2: rs2's weight 1 + 2 × 2 = 5.
    let t0 = Instant::now();
    std::fs::write(&boost, "2\n")?;
    wait_until("rs2 weighs 5", Duration::from_secs(5), ms(5), || {
        d.child
            .log()
            .contains("Changing weight from 1 to 5")
            .then_some(())
    })?;
    println!(
        "boost written: weight changed after {} ms",
        t0.elapsed().as_millis()
    );
    let t = tally(&gw.client, 60)?;
    println!("weights 1:5 over 60 requests: {t:?}");
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 50), "{t:?}");

    // down 1: rs1 leaves; down 0: it returns.
    let t0 = Instant::now();
    std::fs::write(&down, "1\n")?;
    wait_until("rs1 out", Duration::from_secs(5), ms(5), || {
        d.child
            .log()
            .contains("Removing service [10.2.0.11]:tcp:8080")
            .then_some(())
    })?;
    println!(
        "down written: rs1 removed after {} ms",
        t0.elapsed().as_millis()
    );
    let t = tally(&gw.client, 12)?;
    assert_eq!(count(&t, "rs2"), 12, "{t:?}");
    std::fs::remove_file(&down)?;
    wait_until("rs1 back", Duration::from_secs(5), ms(5), || {
        d.child
            .log()
            .contains("Adding service [10.2.0.11]:tcp:8080")
            .then_some(())
    })?;
    let t = tally(&gw.client, 12)?;
    assert!(
        count(&t, "rs1") >= 1,
        "a deleted file reads 0: rs1 is back {t:?}"
    );
    Ok(())
}

/// A `virtual_server` (address and port in `service`) balancing `reals` round robin in NAT
/// mode with a TCP_CHECK each, plus `extra` lines.
fn rr_tcp_checked(service: &str, reals: &[(String, u16)], extra: &str) -> String {
    let real: String = (reals.iter())
        .map(|(addr, port)| {
            format!(
                "    real_server {addr} {port} {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
            )
        })
        .collect();
    format!(
        "virtual_server {service} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{extra}{real}}}\n"
    )
}

/// tandemd on one director of the NAT gateway lab: the example pair's configuration for
/// `side`, with replication, plus the virtual server `vs`.
fn start_director(gw: &Gateway, ns: &Netns, side: Side, vs: &str) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let (conf, toml) = example_config(&etc(), side, gw.lab.log_dir())?;
    let toml = write_config_in(gw, &format!("tandem-{tag}.toml"), &toml)?;
    start_tandemd_in(&gw.lab, ns, &format!("{conf}\n{vs}"), &[toml])
}

/// A firewall reload on the director (`systemctl restart nftables` runs `flush ruleset`)
/// takes tandem's table with everything else: tandem notices and puts it back, and the
/// service answers again; the operator's own table, loaded after the flush, stays.
#[test]
fn a_flushed_ruleset_gets_the_balancing_table_back() -> Result<()> {
    require_root!(Ok(()));
    const PORT: u16 = 7100;
    let gw = Gateway::new("lbflush")?;
    let server = EchoServer::start(&gw.server, 0)?;
    let reals = [("10.2.0.100".to_string(), server.port())];
    let vs = rr_tcp_checked(&format!("{VIP} {PORT}"), &reals, "");
    let a = start_director(&gw, &gw.a, SIDE_A, &vs)?;
    wait_until("a's table", Duration::from_secs(15), ms(20), || {
        nft_table(&gw.a).then_some(())
    })?;
    let flushed = Instant::now();
    gw.a.run(
        "nft 'flush ruleset; add table inet operator; \
         add chain inet operator input { type filter hook input priority 0; }'",
    )?;
    wait_until("a's table put back", Duration::from_secs(5), ms(2), || {
        nft_table(&gw.a).then_some(())
    })
    .with_context(|| a.child.log())?;
    println!(
        "the flushed table was back after {} ms",
        flushed.elapsed().as_millis()
    );
    assert!(
        gw.a.exec(&["nft", "list", "table", "inet", "operator"])?
            .status
            .success(),
        "the operator's table is gone"
    );
    let log = a.child.log();
    assert!(
        log.contains("another program changed table tandem_lb ("),
        "{log}"
    );
    // The service is whole again: a connection through the VIP reaches the server.
    wait_until(
        "a connection through the VIP",
        Duration::from_secs(15),
        ms(100),
        || {
            let to: SocketAddr = SocketAddr::new(VIP.parse().ok()?, PORT);
            let peers = server.peers().len();
            gw.client
                .enter(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)))
                .ok()?
                .ok()?;
            wait_until("the server saw it", Duration::from_secs(1), ms(5), || {
                (server.peers().len() > peers).then_some(())
            })
            .ok()
        },
    )
    .with_context(|| a.child.log())?;
    Ok(())
}
