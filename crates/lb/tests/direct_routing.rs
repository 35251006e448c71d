//! Direct routing (`lb_kind DR`) through table `netdev tandem_lb_dr`, in network namespaces:
//! a client, a director holding the VIP and three real servers on one switch (a bridge);
//! the servers hold the VIP on `lo` and neither answer nor announce ARP for it.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use common::nft;
use tandem_lab::{EchoServer, FlowOptions, Lab, Netns, TcpFlows};
use tandem_lb::{Backend, Link, Nftables, Persistence, Protocol, Scheduler, Service};

const VIP: &str = "10.0.0.100";
const PORT: u16 = 80;
const SERVERS: [&str; 3] = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];
const VIP6: &str = "fd00::100";
const SERVERS6: [&str; 3] = ["fd00::11", "fd00::12", "fd00::13"];
/// Each answer's body: large enough that replies through the director would show.
const BODY: usize = 20_000;

struct Topology {
    _lab: Lab,
    client: Netns,
    director: Netns,
    /// The director's interface index of `eth0`.
    eth0: u32,
    /// Requests answered, per server.
    counts: Vec<Arc<AtomicUsize>>,
    /// The real servers' namespaces.
    servers: Vec<Netns>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Joins `name` to the switch with an `eth0` inside it.
fn plug(lab: &mut Lab, switch: &Netns, ns: &Netns, name: &str) -> anyhow::Result<()> {
    let port = format!("p{name}");
    lab.veth((ns, "eth0"), (switch, &port))?;
    switch.ip(&format!("link set {port} master br0"))?;
    Ok(())
}

fn ifindex(ns: &Netns, dev: &str) -> anyhow::Result<u32> {
    let line = ns.ip(&format!("-o link show {dev}"))?;
    line.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .with_context(|| format!("no index in {line:?}"))
}

/// Bytes `dev` received (`ip netns exec` mounts the namespace's own sysfs).
fn rx_bytes(ns: &Netns, dev: &str) -> anyhow::Result<u64> {
    let v = ns.run(&format!("cat /sys/class/net/{dev}/statistics/rx_bytes"))?;
    Ok(v.trim().parse()?)
}

impl Topology {
    fn new(tag: &str) -> anyhow::Result<Topology> {
        let mut lab = Lab::new(tag)?;
        let switch = lab.netns("sw")?;
        lab.bridge(&switch, "br0")?;
        let client = lab.netns("client")?;
        let director = lab.netns("director")?;
        plug(&mut lab, &switch, &client, "client")?;
        plug(&mut lab, &switch, &director, "director")?;
        client.ip("addr add 10.0.0.2/24 dev eth0")?;
        client.ip("addr add fd00::2/64 dev eth0")?;
        director.ip("addr add 10.0.0.1/24 dev eth0")?;
        director.ip(&format!("addr add {VIP}/32 dev eth0"))?;
        director.ip("addr add fd00::1/64 dev eth0")?;
        director.ip(&format!("addr add {VIP6}/128 dev eth0"))?;
        let mut counts = Vec::new();
        let mut servers = Vec::new();
        for (i, addr) in SERVERS.iter().enumerate() {
            let name = format!("rs{}", i + 1);
            let ns = lab.netns(&name)?;
            plug(&mut lab, &switch, &ns, &name)?;
            for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                ns.sysctl(&format!("net.ipv4.conf.all.{key}"), value)?;
                ns.sysctl(&format!("net.ipv4.conf.eth0.{key}"), value)?;
            }
            ns.ip(&format!("addr add {addr}/24 dev eth0"))?;
            ns.ip(&format!("addr add {VIP}/32 dev lo"))?;
            // IPv6 answers neighbour solicitations only for the receiving interface's own
            // addresses: the VIP on lo stays quiet without a sysctl.
            ns.ip(&format!("addr add {}/64 dev eth0", SERVERS6[i]))?;
            ns.ip(&format!("addr add {VIP6}/128 dev lo"))?;
            counts.push(serve_http(&ns, name)?);
            servers.push(ns);
        }
        for addr in SERVERS.iter().chain(&SERVERS6) {
            client.wait_ping(addr, Duration::from_secs(5))?;
        }
        let eth0 = ifindex(&director, "eth0")?;
        Ok(Topology {
            _lab: lab,
            client,
            director,
            eth0,
            counts,
            servers,
        })
    }

    fn service(&self, scheduler: Scheduler, weights: &[u32]) -> Service {
        self.service_on(VIP, &SERVERS, scheduler, weights)
    }

    fn service_on(
        &self,
        vip: &str,
        servers: &[&str],
        scheduler: Scheduler,
        weights: &[u32],
    ) -> Service {
        self.service_at(vip, PORT, servers, scheduler, weights)
    }

    fn service_at(
        &self,
        vip: &str,
        port: u16,
        servers: &[&str],
        scheduler: Scheduler,
        weights: &[u32],
    ) -> Service {
        let mut s = Service::dr(ip(vip), port, Protocol::Tcp, scheduler, &["eth0"]);
        for (addr, &w) in servers.iter().zip(weights) {
            s = s.server(ip(addr), port, w).egress(
                ip(addr),
                Link {
                    name: "eth0".into(),
                    index: self.eth0,
                },
            );
        }
        s
    }

    fn backend(&self) -> anyhow::Result<Nftables> {
        Ok(self.director.enter(Nftables::open)??)
    }

    fn counts(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    /// `n` requests (each a new connection) to the VIP; the servers that answered.
    fn requests(&self, n: usize) -> anyhow::Result<Vec<String>> {
        self.requests_to(VIP, n)
    }

    fn requests_to(&self, vip: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let to = SocketAddr::new(ip(vip), PORT);
        self.client.enter(move || {
            (0..n)
                .map(|_| {
                    let body = tandem_lab::http_get(None, to)?;
                    Ok(body.lines().next().unwrap_or_default().to_string())
                })
                .collect()
        })?
    }
}

/// An HTTP server on port 80 of `ns` answering with its name and padding to [`BODY`].
fn serve_http(ns: &Netns, name: String) -> anyhow::Result<Arc<AtomicUsize>> {
    let mut body = format!("{name}\n").into_bytes();
    body.resize(BODY, b'.');
    // `::` takes IPv4 too (dual stack).
    tandem_lab::serve_http(ns, SocketAddr::new(ip("::"), PORT), body)
}

#[test]
fn dr_spreads_flows_per_weight_and_replies_bypass_the_director() -> anyhow::Result<()> {
    tandem_lab::require_root!(Ok(()));
    let t = Topology::new("lbdr")?;
    // An operator's own netdev table, which tandem must leave alone.
    nft(&t.director, "add table netdev operator")?;
    let mut lb = t.backend()?;
    lb.apply(&[t.service(Scheduler::WeightedRoundRobin, &[1, 2, 3])])?;
    let listing = nft(&t.director, "list table netdev tandem_lb_dr")?;
    for want in [
        "hook ingress device \"eth0\"",
        // The source address (network header, byte 12) and port hashed together.
        "jhash @nh,96,32 . th sport mod 4093",
        "fwd ip to 10.0.0.11 device \"eth0\"",
        "fwd ip to 10.0.0.13 device \"eth0\"",
    ] {
        assert!(listing.contains(want), "{want} missing from\n{listing}");
    }
    let before = rx_bytes(&t.director, "eth0")?;
    // Hashed per connection, the spread is statistical: enough connections that the
    // bound below is over four standard deviations wide.
    let n = 1200;
    let answers = t.requests(n)?;
    let received = rx_bytes(&t.director, "eth0")? - before;
    let counts = t.counts();
    eprintln!("per server {counts:?}, director received {received} bytes");
    assert_eq!(counts.iter().sum::<usize>(), n);
    for (i, (&c, w)) in counts.iter().zip([1, 2, 3]).enumerate() {
        let expected = n * w / 6;
        assert!(
            c.abs_diff(expected) <= expected / 5 + 15,
            "rs{} answered {c} of {n}, expected about {expected}: {counts:?}",
            i + 1
        );
        assert_eq!(
            answers
                .iter()
                .filter(|a| **a == format!("rs{}", i + 1))
                .count(),
            c
        );
    }
    // Every request came through the director, no answer did.
    let answered = (n * BODY) as u64;
    assert!(
        received < answered / 10,
        "the director received {received} bytes while the servers sent {answered}"
    );

    // Stopping removes exactly tandem's tables.
    lb.clear()?;
    let tables = nft(&t.director, "list tables")?;
    assert!(!tables.contains("tandem_lb"), "{tables}");
    assert!(tables.contains("table netdev operator"), "{tables}");
    Ok(())
}

#[test]
fn dr_persistence_keeps_each_client_on_its_server_and_a_dead_server_moves_only_its_clients(
) -> anyhow::Result<()> {
    tandem_lab::require_root!(Ok(()));
    let t = Topology::new("lbdrp")?;
    for i in 20..60 {
        t.client.ip(&format!("addr add 10.0.0.{i}/24 dev eth0"))?;
    }
    let mut lb = t.backend()?;
    let mut s = t.service(Scheduler::RoundRobin, &[1, 1, 1]);
    s.persistence = Some(Persistence {
        timeout: Duration::from_secs(300),
        prefix_len: 32,
    });
    lb.apply(std::slice::from_ref(&s))?;
    let owner = |t: &Topology| -> anyhow::Result<Vec<String>> {
        (20..60)
            .map(|i| {
                let from = ip(&format!("10.0.0.{i}"));
                let answers = t.client.enter(move || {
                    (0..3)
                        .map(|_| tandem_lab::http_get(Some(from), SocketAddr::new(ip(VIP), PORT)))
                        .collect::<anyhow::Result<Vec<String>>>()
                })??;
                let names: Vec<&str> = answers.iter().filter_map(|a| a.lines().next()).collect();
                if names.iter().any(|n| *n != names[0]) {
                    bail!("client {from} went to {names:?}");
                }
                Ok(names[0].to_string())
            })
            .collect()
    };
    let before = owner(&t)?;
    for rs in ["rs1", "rs2", "rs3"] {
        let c = before.iter().filter(|o| *o == rs).count();
        assert!(
            (5..=25).contains(&c),
            "{rs} holds {c} of 40 clients: {before:?}"
        );
    }
    // rs2 leaves (its checker failed): only its clients move.
    s.servers.retain(|sv| sv.addr != ip(SERVERS[1]));
    lb.apply(std::slice::from_ref(&s))?;
    let after = owner(&t)?;
    for (b, a) in before.iter().zip(&after) {
        if b != "rs2" {
            assert_eq!(a, b, "a client of a remaining server moved");
        } else {
            assert_ne!(a, "rs2");
        }
    }
    lb.clear()?;
    Ok(())
}

#[test]
fn dr_forwards_ipv6_by_neighbour_discovery() -> anyhow::Result<()> {
    tandem_lab::require_root!(Ok(()));
    let t = Topology::new("lbdr6")?;
    let mut lb = t.backend()?;
    lb.apply(&[t.service_on(VIP6, &SERVERS6, Scheduler::RoundRobin, &[1, 1, 1])])?;
    let listing = nft(&t.director, "list table netdev tandem_lb_dr")?;
    assert!(
        listing.contains("fwd ip6 to fd00::11 device \"eth0\""),
        "{listing}"
    );
    let answers = t.requests_to(VIP6, 90)?;
    let counts = t.counts();
    eprintln!("IPv6 per server {counts:?}");
    assert_eq!(answers.len(), 90);
    assert!(counts.iter().all(|&c| c >= 10), "{counts:?}");
    lb.clear()?;
    Ok(())
}

/// Port of the long-lived connections' echo servers.
const ECHO: u16 = 7000;

/// Long-lived connections through the VIP, and the server each one reached.
struct Held {
    flows: TcpFlows,
    /// Per flow (by id), the index of the server that accepted it.
    owner: Vec<usize>,
}

impl Held {
    fn open(t: &Topology, echo: &[EchoServer], n: usize) -> anyhow::Result<Held> {
        let opts = FlowOptions {
            interval: Duration::from_millis(50),
            ..FlowOptions::default()
        };
        let flows = TcpFlows::start_with(&t.client, SocketAddr::new(ip(VIP), ECHO), n, opts)?;
        flows.wait_all_progress(Duration::from_secs(10))?;
        let owner = (flows.report().per_flow.iter())
            .map(|f| {
                let port = f.local.port();
                echo.iter()
                    .position(|e| e.peers().iter().any(|p| p.port() == port))
                    .with_context(|| format!("no server accepted flow {}", f.id))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Held { flows, owner })
    }

    /// Connections per server.
    fn spread(&self) -> [usize; 3] {
        let mut out = [0; 3];
        self.owner.iter().for_each(|&o| out[o] += 1);
        out
    }

    /// Waits until every flow has echoed once more or died (a reset arrives one round trip
    /// after the first packet sent to a server that does not know the connection); the ids
    /// of the dead.
    fn settle(&self) -> Vec<usize> {
        let _ = self.flows.wait_all_progress(Duration::from_secs(5));
        let dead: Vec<usize> = self.flows.report().dead().iter().map(|f| f.id).collect();
        dead
    }
}

fn echo_servers(t: &Topology) -> anyhow::Result<Vec<EchoServer>> {
    t.servers
        .iter()
        .map(|ns| EchoServer::start(ns, ECHO))
        .collect()
}

/// Empties the director's flow memory of the service on `ECHO` by hand: what a director
/// without one (the stateless design, or a backup that just took over) does next.
fn forget_flows(t: &Topology) -> anyhow::Result<()> {
    for addr in SERVERS {
        let set = format!("tcp_10_0_0_100_{ECHO}_f_{}_0", addr.replace('.', "_"));
        // A server not in the pool has no set.
        let _ = nft(&t.director, &format!("flush set netdev tandem_lb_dr {set}"));
    }
    Ok(())
}

#[test]
fn dr_connections_stay_on_their_server_when_a_server_joins_or_a_weight_changes(
) -> anyhow::Result<()> {
    tandem_lab::require_root!(Ok(()));
    const FLOWS: usize = 60;
    let t = Topology::new("lbdrj")?;
    let echo = echo_servers(&t)?;
    let mut lb = t.backend()?;
    let service = |weights: &[u32]| {
        t.service_at(
            VIP,
            ECHO,
            &SERVERS[..weights.len()],
            Scheduler::WeightedRoundRobin,
            weights,
        )
    };
    lb.apply(&[service(&[1, 1])])?;
    let held = Held::open(&t, &echo, FLOWS)?;
    let before = held.spread();
    assert_eq!(before[2], 0, "rs3 is not in the pool yet: {before:?}");
    let listing = nft(&t.director, "list table netdev tandem_lb_dr")?;
    assert!(
        listing.contains("update @tcp_10_0_0_100_7000_f_10_0_0_11_0"),
        "{listing}"
    );

    // rs3 joins (its checker brought it back), then rs1's weight triples: the buckets they
    // take move, the connections already in them stay where they are.
    lb.apply(&[service(&[1, 1, 1])])?;
    let joined = held.settle();
    lb.apply(&[service(&[3, 1, 1])])?;
    let reweighted = held.settle();
    // New connections do follow the new pool.
    let fresh = Held::open(&t, &echo, 30)?;
    let fresh_spread = fresh.spread();

    // The same connections with the memory emptied: what the stateless director did.
    forget_flows(&t)?;
    let forgotten = held.settle();
    println!(
        "DR, {FLOWS} connections over rs1, rs2 {before:?}; rs3 joined, then rs1's weight 1 -> 3: \
         reset with the flow memory {} + {}, with the memory emptied {} (the stateless \
         director's figure); new connections {fresh_spread:?}",
        joined.len(),
        reweighted.len(),
        forgotten.len()
    );
    assert!(joined.is_empty(), "reset when rs3 joined: {joined:?}");
    assert!(
        reweighted.is_empty(),
        "reset when rs1's weight changed: {reweighted:?}"
    );
    assert!(
        fresh_spread[2] > 0,
        "rs3 takes new connections: {fresh_spread:?}"
    );
    // The buckets did move: without the memory some connections are reset.
    assert!(
        !forgotten.is_empty(),
        "the pool change moved no connection's bucket"
    );
    lb.clear()?;
    Ok(())
}

#[test]
fn dr_a_leaving_server_moves_only_its_connections() -> anyhow::Result<()> {
    tandem_lab::require_root!(Ok(()));
    const FLOWS: usize = 60;
    let t = Topology::new("lbdrl")?;
    let echo = echo_servers(&t)?;
    let mut lb = t.backend()?;
    let service = |servers: &[&str], weights: &[u32]| {
        t.service_at(VIP, ECHO, servers, Scheduler::RoundRobin, weights)
    };
    lb.apply(&[service(&SERVERS, &[1, 1, 1])])?;
    let held = Held::open(&t, &echo, FLOWS)?;
    let spread = held.spread();
    assert!(spread.iter().all(|&n| n >= 5), "{spread:?}");

    // rs2 quiesced (weight 0): its connections stay, new ones avoid it.
    lb.apply(&[service(&SERVERS, &[1, 0, 1])])?;
    let quiesced = held.settle();
    let fresh = Held::open(&t, &echo, 30)?;
    assert!(
        quiesced.is_empty(),
        "reset when rs2 was quiesced: {quiesced:?}"
    );
    assert_eq!(fresh.spread()[1], 0, "{:?}", fresh.spread());

    // rs2 leaves: exactly its connections move (to servers that reset them).
    lb.apply(&[service(&[SERVERS[0], SERVERS[2]], &[1, 1])])?;
    let dead = held.settle();
    let of_rs2: Vec<usize> = (0..FLOWS).filter(|&i| held.owner[i] == 1).collect();
    println!(
        "DR, {FLOWS} connections {spread:?}; rs2 quiesced: {} reset; rs2 removed: {} reset, \
         {} of them rs2's",
        quiesced.len(),
        dead.len(),
        dead.iter().filter(|i| held.owner[**i] == 1).count()
    );
    assert_eq!(dead, of_rs2, "only rs2's connections move");
    assert!(fresh.settle().is_empty(), "the new connections stay");
    lb.clear()?;
    Ok(())
}
