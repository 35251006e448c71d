//! ctnetlink against the real kernel, each test in its own lab namespace.

use std::net::IpAddr;
use std::time::Instant;

use tandem_ctnetlink::{
    Conntrack, DumpFilter, Event, EventKind, Events, Family, Flow, Groups, Status, TcpInfo, Tuple,
    L4,
};
use tandem_lab::{Lab, Netns};

fn ns(tag: &str) -> (Lab, Netns) {
    let mut lab = Lab::new(tag).unwrap();
    let ns = lab.netns("a").unwrap();
    (lab, ns)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tuple(src: &str, dst: &str, proto: u8, l4: L4) -> Tuple {
    Tuple {
        src: ip(src),
        dst: ip(dst),
        proto,
        l4,
    }
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Flow {
    let mut f = Flow::new(
        tuple(
            src,
            dst,
            6,
            L4::Ports {
                src: sport,
                dst: dport,
            },
        ),
        300,
    );
    f.status = Status(Status::CONFIRMED | Status::SEEN_REPLY | Status::ASSURED);
    f.tcp = Some(TcpInfo {
        state: TcpInfo::ESTABLISHED,
        wscale_orig: 7,
        wscale_reply: 7,
        flags_orig: TcpInfo::FLAG_WINDOW_SCALE | TcpInfo::FLAG_SACK_PERM,
        flags_reply: TcpInfo::FLAG_WINDOW_SCALE | TcpInfo::FLAG_SACK_PERM,
    });
    f
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Flow {
    Flow::new(
        tuple(
            src,
            dst,
            17,
            L4::Ports {
                src: sport,
                dst: dport,
            },
        ),
        60,
    )
}

fn with_ct<T: Send>(ns: &Netns, f: impl FnOnce(&mut Conntrack) -> T + Send) -> T {
    ns.enter(|| f(&mut Conntrack::open().unwrap())).unwrap()
}

fn listing(ns: &Netns) -> String {
    ns.run("conntrack -L 2>/dev/null; conntrack -L -f ipv6 2>/dev/null")
        .unwrap()
}

fn line_with<'a>(listing: &'a str, needle: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no entry with {needle:?} in\n{listing}"))
}

#[test]
fn dump_reads_what_conntrack_inserted() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctdump");
    ns.run("conntrack -I -p tcp -s 10.1.0.1 -d 10.2.0.1 --sport 4000 --dport 80 --state ESTABLISHED -t 120 -u ASSURED,SEEN_REPLY --mark 9")
        .unwrap();
    ns.run("conntrack -I -p udp -s fd00::1 -d fd00::2 --sport 53 --dport 53 -t 30 --zone 3")
        .unwrap();
    let v4 = with_ct(&ns, |ct| ct.dump(Some(Family::Ipv4)).unwrap());
    assert_eq!(v4.len(), 1);
    assert_eq!(v4[0].mark, 9);
    assert_eq!(v4[0].tcp.unwrap().state, TcpInfo::ESTABLISHED);
    let all = with_ct(&ns, |ct| ct.dump(None).unwrap());
    assert_eq!(all.len(), 2);
    let v6 = all.iter().find(|f| f.family() == Family::Ipv6).unwrap();
    assert_eq!((v6.zone, v6.orig.proto), (3, 17));
}

/// The kernel itself drops what the filter excludes (other address, port, protocol,
/// family), so a director counting one service's entries does not copy the whole table.
#[test]
fn filtered_dump_is_filtered_by_the_kernel() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctfilt");
    let flows = vec![
        tcp("10.9.0.1", "10.0.0.10", 40001, 80),
        tcp("10.9.0.2", "10.0.0.10", 40002, 80),
        tcp("10.9.0.3", "10.0.0.10", 40003, 443),
        tcp("10.9.0.4", "10.0.0.11", 40004, 80),
        udp("10.9.0.5", "10.0.0.10", 40005, 80),
        tcp("fd00::1", "fd00::10", 40006, 80),
    ];
    let filter = DumpFilter {
        dst: ip("10.0.0.10"),
        proto: 6,
        port: Some(80),
    };
    let (sent, kept) = with_ct(&ns, |ct| {
        let report = ct.create_batch(&flows).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        (
            ct.dump_kernel_filtered(&filter).unwrap(),
            ct.dump_matching(&filter).unwrap(),
        )
    });
    let mut sources: Vec<String> = sent.iter().map(|f| f.orig.src.to_string()).collect();
    sources.sort();
    assert_eq!(
        sources,
        ["10.9.0.1", "10.9.0.2"],
        "the kernel sent {sent:?}"
    );
    assert_eq!(kept.len(), 2);
    let any_port = DumpFilter {
        port: None,
        ..filter
    };
    let n = with_ct(&ns, |ct| ct.dump_kernel_filtered(&any_port).unwrap().len());
    assert_eq!(n, 3, "without a port: both port-80 entries and the 443 one");
}

#[test]
fn create_batch_is_what_conntrack_lists() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctcreate");
    let mut marked = tcp("10.1.0.1", "10.2.0.1", 40000, 80);
    marked.mark = 77;
    let mut snat = udp("192.168.1.10", "8.8.8.8", 5353, 53);
    snat.reply.dst = ip("203.0.113.1");
    snat.reply.l4 = L4::Ports {
        src: 53,
        dst: 61000,
    };
    snat.status.0 |= Status::SRC_NAT;
    let mut dnat = tcp("10.9.0.1", "10.9.0.2", 1111, 8080);
    dnat.reply.src = ip("10.9.9.9");
    dnat.reply.l4 = L4::Ports { src: 80, dst: 1111 };
    let mut zoned = udp("10.1.0.1", "10.2.0.4", 6000, 123);
    zoned.zone = 5;
    let icmp = Flow::new(
        tuple(
            "10.1.0.1",
            "10.2.0.3",
            1,
            L4::Icmp {
                id: 77,
                kind: 8,
                code: 0,
            },
        ),
        30,
    );
    let v6 = tcp("fd00::1", "fd00::2", 1234, 22);
    let flows = vec![marked, snat, dnat, zoned, icmp, v6];
    let report = with_ct(&ns, |ct| ct.create_batch(&flows).unwrap());
    assert_eq!(report.failed, vec![], "{report:?}");
    assert_eq!(report.datagrams, 1);

    let l = listing(&ns);
    println!("{l}");
    let m = line_with(&l, "sport=40000");
    assert!(
        m.contains("ESTABLISHED") && m.contains("mark=77") && m.contains("[ASSURED]"),
        "{m}"
    );
    assert!(
        m.contains("src=10.2.0.1 dst=10.1.0.1 sport=80 dport=40000"),
        "{m}"
    );
    let s = line_with(&l, "sport=5353");
    assert!(
        s.contains("src=8.8.8.8 dst=203.0.113.1 sport=53 dport=61000"),
        "{s}"
    );
    let d = line_with(&l, "sport=1111");
    assert!(
        d.contains("src=10.9.9.9 dst=10.9.0.1 sport=80 dport=1111"),
        "{d}"
    );
    assert!(line_with(&l, "sport=6000").contains("zone=5"));
    assert!(line_with(&l, "type=8 code=0 id=77").contains("type=0 code=0 id=77"));
    assert!(line_with(&l, "src=fd00::1").contains("ESTABLISHED"));

    // What comes back is what went in, NAT bits included; TCP got BE_LIBERAL.
    let dumped = with_ct(&ns, |ct| ct.dump(None).unwrap());
    for f in &flows {
        let got = dumped
            .iter()
            .find(|g| g.key() == f.key())
            .expect("entry dumped");
        assert_eq!(got.reply, f.reply, "{got:?}");
        assert_eq!(got.mark, f.mark);
        assert_eq!(got.is_snat(), f.is_snat());
        if let Some(t) = got.tcp {
            assert_eq!(t.state, TcpInfo::ESTABLISHED);
            assert_ne!(t.flags_orig & TcpInfo::FLAG_BE_LIBERAL, 0);
            assert_eq!((t.wscale_orig, t.wscale_reply), (7, 7));
        }
    }
    let snat_back = dumped.iter().find(|g| g.key() == flows[1].key()).unwrap();
    assert!(snat_back.status.has(Status::SRC_NAT), "{snat_back:?}");
    let dnat_back = dumped.iter().find(|g| g.key() == flows[2].key()).unwrap();
    assert!(dnat_back.status.has(Status::DST_NAT), "{dnat_back:?}");

    // Creating again fails per entry, with EEXIST, in one datagram.
    let again = with_ct(&ns, |ct| ct.create_batch(&flows).unwrap());
    assert_eq!(again.failed.len(), flows.len());
    assert!(again.failed.iter().all(|&(_, e)| e == libc::EEXIST));
}

#[test]
fn update_delete_flush_and_shorten() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctmod");
    let flows: Vec<Flow> = (0..10)
        .map(|i| Flow {
            timeout: 3600,
            ..udp("10.1.0.1", "10.2.0.1", 1000 + i, 53)
        })
        .collect();
    with_ct(&ns, |ct| {
        assert_eq!(ct.create_batch(&flows).unwrap().ok(), 10)
    });

    let mut changed = flows[0].clone();
    changed.mark = 1234;
    changed.timeout = 500;
    with_ct(&ns, |ct| ct.update(&changed).unwrap());
    assert!(line_with(&listing(&ns), "sport=1000 ").contains("mark=1234"));

    let report = with_ct(&ns, |ct| ct.shorten_timeouts(&flows[..5], 3).unwrap());
    assert_eq!(report.failed, vec![]);
    let dumped = with_ct(&ns, |ct| ct.dump(None).unwrap());
    for f in &dumped {
        let shortened = flows[..5].iter().any(|s| s.key() == f.key());
        assert_eq!(f.timeout <= 3, shortened, "{f:?}");
    }

    with_ct(&ns, |ct| ct.delete(&flows[9]).unwrap());
    let err = with_ct(&ns, |ct| ct.delete(&flows[9]).unwrap_err());
    assert!(err.to_string().contains("delete"), "{err}");
    assert_eq!(with_ct(&ns, |ct| ct.dump(None).unwrap()).len(), 9);

    with_ct(&ns, |ct| {
        ct.create(&tcp("fd00::1", "fd00::2", 1, 2)).unwrap()
    });
    assert_eq!(with_ct(&ns, |ct| ct.dump(None).unwrap()).len(), 10);
    with_ct(&ns, |ct| ct.flush(Some(Family::Ipv4)).unwrap());
    let left = with_ct(&ns, |ct| ct.dump(None).unwrap());
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].family(), Family::Ipv6);
    with_ct(&ns, |ct| ct.flush(None).unwrap());
    assert!(with_ct(&ns, |ct| ct.dump(None).unwrap()).is_empty());
}

#[test]
fn events_for_create_update_destroy() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctevents");
    let mut events = ns
        .enter(|| Events::subscribe(Groups::ALL).unwrap())
        .unwrap();
    let f = udp("10.5.0.1", "10.5.0.2", 1, 2);
    with_ct(&ns, |ct| ct.create(&f).unwrap());
    ns.run("conntrack -U -p udp -s 10.5.0.1 -d 10.5.0.2 --sport 1 --dport 2 --mark 5")
        .unwrap();
    with_ct(&ns, |ct| ct.delete(&f).unwrap());
    let got: Vec<(EventKind, Flow)> = (&mut events)
        .take(3)
        .map(|e| match e.unwrap() {
            Event::Flow { kind, flow, .. } => (kind, flow),
            Event::Overflow => panic!("overflow"),
        })
        .collect();
    let kinds: Vec<EventKind> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        kinds,
        [EventKind::New, EventKind::Update, EventKind::Destroy]
    );
    assert!(got.iter().all(|g| g.1.key() == f.key()));
    assert_eq!(got[1].1.mark, 5);
}

#[test]
fn events_name_the_socket_that_caused_them() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctorigin");
    let mut events = ns
        .enter(|| Events::subscribe(Groups::ALL).unwrap())
        .unwrap();
    let f = udp("10.5.0.1", "10.5.0.2", 3, 4);
    let port = with_ct(&ns, |ct| {
        ct.create(&f).unwrap();
        ct.port_id()
    });
    ns.run("conntrack -U -p udp -s 10.5.0.1 -d 10.5.0.2 --sport 3 --dport 4 --mark 5")
        .unwrap();
    let origins: Vec<u32> = (&mut events)
        .take(2)
        .map(|e| match e.unwrap() {
            Event::Flow { origin, .. } => origin,
            Event::Overflow => panic!("overflow"),
        })
        .collect();
    assert_ne!(port, 0);
    assert_eq!(origins[0], port, "our create carries our port id");
    assert_ne!(origins[1], port, "conntrack -U is another socket");
}

#[test]
fn events_of_an_ignored_origin_never_arrive() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctignore");
    let (mut ct, mut events) = ns
        .enter(|| {
            (
                Conntrack::open().unwrap(),
                Events::subscribe(Groups::ALL).unwrap(),
            )
        })
        .unwrap();
    events.ignore_origin(ct.port_id()).unwrap();
    let ours: Vec<Flow> = (0..100)
        .map(|i| udp("10.5.0.1", "10.5.0.2", 1000 + i, 53))
        .collect();
    ct.create_batch(&ours).unwrap();
    ct.delete_batch(&ours).unwrap();
    // Another socket's change arrives, and is the first thing that does.
    ns.run("conntrack -I -p udp -s 10.5.0.9 -d 10.5.0.2 --sport 7 --dport 53 -t 60")
        .unwrap();
    match events.next().unwrap().unwrap() {
        Event::Flow { kind, flow, origin } => {
            assert_eq!(kind, EventKind::New);
            assert_ne!(origin, ct.port_id());
            assert_eq!(
                flow.orig.src,
                ip("10.5.0.9"),
                "our 200 events were filtered out"
            );
        }
        Event::Overflow => panic!("overflow"),
    }
}

#[test]
fn overflow_is_reported_not_swallowed() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctoverflow");
    let mut events = ns
        .enter(|| Events::subscribe_with_rcvbuf(Groups::ALL, 4096).unwrap())
        .unwrap();
    let flows: Vec<Flow> = (0..2000)
        .map(|i| udp("10.6.0.1", "10.6.0.2", 10000 + i, 53))
        .collect();
    with_ct(&ns, |ct| ct.create_batch(&flows).unwrap());
    let mut overflowed = false;
    for e in (&mut events).take(50) {
        if e.unwrap() == Event::Overflow {
            overflowed = true;
            break;
        }
    }
    assert!(overflowed, "a 4 KiB buffer must overflow on 2000 events");
}

#[test]
fn batch_create_rate() {
    tandem_lab::require_root!();
    let (_lab, ns) = ns("ctrate");
    const N: u32 = 100_000;
    let flows: Vec<Flow> = (0..N)
        .map(|i| {
            let host = std::net::Ipv4Addr::from(0x0a00_0000 + (i / 50_000) + 1);
            let mut f = tcp("10.0.0.1", "10.1.0.1", 0, 443);
            f.orig.src = IpAddr::V4(host);
            f.orig.l4 = L4::Ports {
                src: (1024 + i % 50_000) as u16,
                dst: 443,
            };
            f.reply = f.orig.inverted();
            f
        })
        .collect();
    let start = Instant::now();
    let report = with_ct(&ns, |ct| ct.create_batch(&flows).unwrap());
    let ours = start.elapsed();
    assert_eq!(
        report.failed,
        vec![],
        "first failures: {:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    let count = ns.run("conntrack -C").unwrap();
    assert_eq!(count.trim(), N.to_string());

    const M: u32 = 2000;
    let script = format!(
        "for i in $(seq 1 {M}); do conntrack -I -p tcp -s 10.200.0.1 -d 10.201.0.1 --sport $((1024+i)) --dport 443 --state ESTABLISHED -t 300 -u ASSURED,SEEN_REPLY 2>/dev/null; done"
    );
    let start = Instant::now();
    ns.run(&script).unwrap();
    let theirs = start.elapsed();
    println!(
        "create_batch: {N} entries in {:.3}s = {:.0} entries/s ({} datagrams); conntrack -I loop: {M} in {:.3}s = {:.0} entries/s (100k extrapolated: {:.1}s)",
        ours.as_secs_f64(),
        f64::from(N) / ours.as_secs_f64(),
        report.datagrams,
        theirs.as_secs_f64(),
        f64::from(M) / theirs.as_secs_f64(),
        theirs.as_secs_f64() * f64::from(N) / f64::from(M),
    );
}
