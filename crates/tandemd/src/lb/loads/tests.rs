use std::net::IpAddr;

use tandem_ctnetlink::{Tuple, L4};
use tandem_lb::{Protocol, Scheduler};

use super::*;

const VIP: &str = "10.1.0.254";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A client connection to the VIP DNATed to `server:port`, established or not.
fn dnat(client_port: u16, server: &str, port: u16, established: bool) -> Flow {
    let orig = Tuple {
        src: ip("10.1.0.100"),
        dst: ip(VIP),
        proto: 6,
        l4: L4::Ports {
            src: client_port,
            dst: 80,
        },
    };
    let mut f = if established {
        Flow::tcp_established(orig, 300)
    } else {
        Flow::new(orig, 120)
    };
    f.reply = Tuple {
        src: ip(server),
        dst: ip("10.1.0.100"),
        proto: 6,
        l4: L4::Ports {
            src: port,
            dst: client_port,
        },
    };
    f
}

fn lc(weights: &[u32]) -> Service {
    let mut s = Service::nat(ip(VIP), 80, Protocol::Tcp, Scheduler::LeastConnection);
    for (i, &w) in weights.iter().enumerate() {
        s = s.server(ip(&format!("10.2.0.{}", i + 1)), 8080, w);
    }
    s
}

fn with_loads(mut s: Service, active: &[u64]) -> Service {
    for (i, &a) in active.iter().enumerate() {
        let at: SocketAddr = format!("10.2.0.{}:8080", i + 1).parse().unwrap();
        s.loads.insert(
            at,
            Load {
                active: a,
                inactive: 0,
            },
        );
    }
    s
}

#[test]
fn counts_dnat_entries_per_server_by_address_and_port() {
    let servers = lc(&[1, 1]).servers;
    let mut flows: Vec<Flow> = (0..5)
        .map(|i| dnat(1000 + i, "10.2.0.1", 8080, true))
        .collect();
    flows.push(dnat(2000, "10.2.0.1", 8080, false));
    flows.push(dnat(2001, "10.2.0.2", 8080, true));
    // Same address, another port: another service's server, not ours.
    flows.push(dnat(2002, "10.2.0.2", 9090, true));
    // Not DNATed (the director's own connection to the VIP).
    let mut local = dnat(2003, VIP, 80, true);
    local.reply.src = ip(VIP);
    flows.push(local);
    let loads = count(&flows, &servers);
    let at = |s: &str| loads.get(&s.parse::<SocketAddr>().unwrap()).copied();
    assert_eq!(
        at("10.2.0.1:8080"),
        Some(Load {
            active: 5,
            inactive: 1
        })
    );
    assert_eq!(
        at("10.2.0.2:8080"),
        Some(Load {
            active: 1,
            inactive: 0
        })
    );
    assert_eq!(loads.len(), 2);
}

#[test]
fn a_server_of_port_zero_counts_every_port() {
    let mut s = lc(&[1]);
    s.servers[0].port = 0;
    let flows = [dnat(1, "10.2.0.1", 80, true), dnat(2, "10.2.0.1", 81, true)];
    let loads = count(&flows, &s.servers);
    assert_eq!(loads.values().map(|l| l.active).sum::<u64>(), 2);
}

#[test]
fn queries_filter_by_vip_and_port_or_dump_the_family_for_marks() {
    let q = query(&lc(&[1]).key);
    assert_eq!(
        q,
        Query::Filtered(DumpFilter {
            dst: ip(VIP),
            proto: 6,
            port: Some(80)
        })
    );
    let fwm = ServiceKey::Fwmark {
        mark: 5,
        ipv6: true,
    };
    assert_eq!(query(&fwm), Query::Family(Family::Ipv6));
}

#[test]
fn steady_counts_rewrite_nothing() {
    let before = with_loads(lc(&[1, 1, 1]), &[20, 0, 0]);
    // A few connections more or less on a busy server: same schedule.
    assert!(!worth_applying(
        &before,
        &with_loads(lc(&[1, 1, 1]), &[21, 0, 0])
    ));
    assert!(!worth_applying(&before, &before.clone()));
    // Idle and balanced, counts wobbling by one: nothing either.
    let even = with_loads(lc(&[1, 1, 1]), &[30, 30, 30]);
    assert!(!worth_applying(
        &even,
        &with_loads(lc(&[1, 1, 1]), &[31, 30, 29])
    ));
}

#[test]
fn a_real_change_in_load_rewrites_the_schedule() {
    let idle = lc(&[1, 1, 1]);
    let busy = with_loads(lc(&[1, 1, 1]), &[20, 0, 0]);
    assert!(worth_applying(&idle, &busy), "one server now holds 20");
    assert!(worth_applying(&busy, &idle), "its connections ended");
    let even = with_loads(lc(&[1, 1, 1]), &[30, 30, 30]);
    assert!(worth_applying(
        &even,
        &with_loads(lc(&[1, 1, 1]), &[30, 30, 45])
    ));
}

#[test]
fn services_that_do_not_count_never_rewrite() {
    let mut wrr = lc(&[1, 1]);
    wrr.scheduler = Scheduler::WeightedRoundRobin;
    assert!(!worth_applying(&wrr, &with_loads(wrr.clone(), &[50, 0])));
    let mut persistent = lc(&[1, 1]);
    persistent.persistence = Some(tandem_lb::Persistence {
        timeout: Duration::from_secs(300),
        prefix_len: 32,
    });
    assert!(!worth_applying(
        &persistent,
        &with_loads(persistent.clone(), &[50, 0])
    ));
}

#[test]
fn describe_shows_counts_and_weights() {
    let s = with_loads(lc(&[1, 1]), &[20, 0]);
    assert_eq!(
        describe(&s),
        "10.2.0.1:8080 20/0 → 1, 10.2.0.2:8080 0/0 → 64"
    );
}
