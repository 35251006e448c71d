//! A third namespace attacks a running pair: forged, replayed and flooding sync datagrams
//! (with the source address of the real master), and forged VRRP adverts. Each test checks
//! that the peer's caches and kernel table did not change, that the drops are counted, and
//! that the log carries at most one line per cause and period.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use tandem_ctnetlink::{Conntrack, Flow};
use tandem_ctsync::wire::{self, attr, MessageType};
use tandem_ctsync::AuthKey;
use tandem_lab::{require_root, wait_until, Netns, Pair};

const KEY: &str = "attack-test-key-0123456789abcdef0123456789";
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 3780;

fn vrrp(priority: u8) -> String {
    vi_1_v3(51, priority)
}

fn start(pair: &Pair, ns: &Netns, priority: u8, local: Ipv4Addr, peer: Ipv4Addr) -> Result<Daemon> {
    start_on(pair, ns, priority, local, &format!("peer = \"{peer}\""))
}

/// Multicast sync group of [`start_multicast`].
const GROUP: Ipv4Addr = Ipv4Addr::new(225, 0, 0, 50);

fn start_multicast(pair: &Pair, ns: &Netns, priority: u8, local: Ipv4Addr) -> Result<Daemon> {
    start_on(pair, ns, priority, local, &format!("group = \"{GROUP}\""))
}

/// tandemd with a keyed sync section whose channel is `channel` (`peer = ...` or `group = ...`).
fn start_on(
    pair: &Pair,
    ns: &Netns,
    priority: u8,
    local: Ipv4Addr,
    channel: &str,
) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let text = format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\n{channel}\nport = {PORT}\nkey = \"{KEY}\"\n"
    );
    let toml = write_config(pair, &format!("sync-{tag}.toml"), &text)?;
    start_tandemd_with(pair, ns, &vrrp(priority), &[toml])
}

fn flows(from: usize, n: usize) -> Vec<Flow> {
    (from..from + n).map(test_flow).collect()
}

fn drops(d: &Daemon) -> u64 {
    let stats = d.query("stats").unwrap_or_default();
    stats
        .lines()
        .filter(|l| l.starts_with("drop_"))
        .filter_map(|l| l.split_once('=')?.1.parse::<u64>().ok())
        .sum()
}

fn kernel_count(ns: &Netns) -> Result<usize> {
    let out = ns.run("conntrack -L -p tcp 2>/dev/null | grep -c 'src=10.50.' || true")?;
    Ok(out.trim().parse().unwrap_or(0))
}

/// A running pair: a master with `n` flows, replicated into b's cache and (warm) kernel.
fn pair_with_flows(tag: &str, n: usize) -> Result<(Pair, Daemon, Daemon)> {
    pair_with_flows_on(tag, n, false)
}

/// [`pair_with_flows`], replicating over multicast when `multicast`.
fn pair_with_flows_on(tag: &str, n: usize, multicast: bool) -> Result<(Pair, Daemon, Daemon)> {
    let pair = Pair::new(tag)?;
    for ns in pair.routers() {
        ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0").ok();
    }
    let (a, b) = if multicast {
        (
            start_multicast(&pair, &pair.a, 150, A)?,
            start_multicast(&pair, &pair.b, 100, B)?,
        )
    } else {
        (
            start(&pair, &pair.a, 150, A, B)?,
            start(&pair, &pair.b, 100, B, A)?,
        )
    };
    create_flows(&pair.a, flows(0, n))?;
    wait_external(&b, n as u64, Duration::from_secs(30))?;
    wait_until("b's warm kernel", Duration::from_secs(20), ms(50), || {
        (kernel_count(&pair.b).ok()? == n).then_some(())
    })?;
    Ok((pair, a, b))
}

/// Sends UDP datagrams from `src` (spoofed, through a raw socket) to `dst`, `rate` per second.
fn spoof(
    ns: &Netns,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payloads: Vec<Vec<u8>>,
    rate: u64,
) -> Result<()> {
    ns.enter(move || -> Result<()> {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        let to = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        let started = Instant::now();
        for (i, payload) in payloads.iter().enumerate() {
            let total = 20 + 8 + payload.len();
            let mut packet = Vec::with_capacity(total);
            packet.extend_from_slice(&[
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                0,
                0x40,
                0,
                64,
                17,
                0,
                0,
            ]);
            packet.extend_from_slice(&src.octets());
            packet.extend_from_slice(&dst.octets());
            let udp_len = (8 + payload.len()) as u16;
            packet.extend_from_slice(&PORT.to_be_bytes());
            packet.extend_from_slice(&PORT.to_be_bytes());
            packet.extend_from_slice(&udp_len.to_be_bytes());
            packet.extend_from_slice(&[0, 0]);
            packet.extend_from_slice(payload);
            socket.send_to(&packet, &to)?;
            // Pace by the clock: `rate` per second on average.
            let due = started + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                if wait > Duration::from_millis(1) {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(())
    })?
}

/// A DATA datagram that would wipe b's external cache (RESYNC with nothing in it).
fn forged_wipe(key: Option<&AuthKey>, seq: u32, epoch: u32) -> Vec<u8> {
    let mut d = Vec::new();
    wire::start(
        &mut d,
        MessageType::Data,
        wire::FLAG_RESET,
        u32::from(A),
        epoch,
        seq,
    );
    wire::put_attr(&mut d, attr::RESYNC_BEGIN, &[]);
    wire::put_attr(&mut d, attr::RESYNC_END, &[]);
    wire::finish(&mut d, key);
    d
}

/// The kernel's count of UDP datagrams dropped in `ns` because a receive buffer was full.
fn receive_buffer_errors(ns: &Netns) -> Result<u64> {
    let snmp = ns.run("cat /proc/net/snmp")?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (
        udp.next().context("Udp header")?,
        udp.next().context("Udp values")?,
    );
    let at = (names.split_whitespace())
        .position(|n| n == "RcvbufErrors")
        .context("RcvbufErrors")?;
    Ok(values
        .split_whitespace()
        .nth(at)
        .context("value")?
        .parse()?)
}

fn hmac_lines(d: &Daemon) -> usize {
    log_lines_about(d, "fail authentication")
}

/// b's state has not moved: same external cache, same kernel table.
fn unchanged(pair: &Pair, b: &Daemon, n: usize) -> Result<()> {
    let hold = Instant::now() + Duration::from_secs(1);
    while Instant::now() < hold {
        assert_eq!(
            stat(b, "external_entries"),
            n as u64,
            "{}",
            b.query("stats")?
        );
        assert_eq!(kernel_count(&pair.b)?, n, "b's kernel table changed");
        std::thread::sleep(ms(100));
    }
    Ok(())
}

#[test]
fn forged_sync_datagrams_change_nothing_and_are_counted_once_in_the_log() -> Result<()> {
    require_root!(Ok(()));
    forged_datagrams_change_nothing("forge", false)
}

#[test]
fn forged_multicast_sync_datagrams_change_nothing_and_are_counted_once_in_the_log() -> Result<()> {
    require_root!(Ok(()));
    forged_datagrams_change_nothing("mforge", true)
}

fn forged_datagrams_change_nothing(tag: &str, multicast: bool) -> Result<()> {
    let (pair, _a, b) = pair_with_flows_on(tag, 500, multicast)?;
    let to = if multicast {
        pair.client.run("ip route add 224.0.0.0/4 dev eth0")?;
        GROUP
    } else {
        B
    };
    let before = drops(&b);
    let lines_before = hmac_lines(&b);
    let guessed = AuthKey::new(b"a key the attacker guessed, 32 bytes or more");
    // The pre-shared key used directly (what a peer of the previous protocol would send).
    let raw_psk = AuthKey::new(KEY.as_bytes());
    let forged: Vec<Vec<u8>> = (0..300u32)
        .map(|i| match i % 3 {
            0 => forged_wipe(None, i, i),
            1 => forged_wipe(Some(&guessed), i, i),
            _ => forged_wipe(Some(&raw_psk), i, 7),
        })
        .collect();
    spoof(&pair.client, A, to, forged, 10_000)?;
    wait_until("forgeries counted", Duration::from_secs(5), ms(20), || {
        (drops(&b) >= before + 300).then_some(())
    })?;
    unchanged(&pair, &b, 500)?;
    let lines = hmac_lines(&b) - lines_before;
    println!(
        "300 forged wipes: {} drops counted, {lines} log line(s)",
        drops(&b) - before
    );
    assert!(lines <= 1, "{lines} lines about bad HMACs");
    // Replication goes on.
    create_flows(&pair.a, flows(500, 10))?;
    wait_external(&b, 510, Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn datagrams_from_a_wrong_source_change_nothing_and_are_counted() -> Result<()> {
    require_root!(Ok(()));
    let (pair, _a, b) = pair_with_flows("wrongsrc", 500)?;
    let lines_before = log_lines_about(&b, "which is not the peer");
    // Wipes from the attacker's own address, even with the real key's old-style tag.
    let raw_psk = AuthKey::new(KEY.as_bytes());
    let forged: Vec<Vec<u8>> = (0..300u32)
        .map(|i| forged_wipe(if i % 2 == 0 { None } else { Some(&raw_psk) }, i, i))
        .collect();
    let attacker = Ipv4Addr::new(10, 0, 0, 100);
    spoof(&pair.client, attacker, B, forged, 10_000)?;
    wait_until(
        "wrong sources counted",
        Duration::from_secs(5),
        ms(20),
        || (stat(&b, "drop_wrong_source") >= 300).then_some(()),
    )?;
    unchanged(&pair, &b, 500)?;
    let lines = log_lines_about(&b, "which is not the peer") - lines_before;
    println!("300 datagrams from {attacker}: counted as drop_wrong_source, {lines} log line(s)");
    assert!(lines <= 1, "{lines} lines about the wrong source");
    Ok(())
}

fn log_lines_about(d: &Daemon, text: &str) -> usize {
    d.child.log().lines().filter(|l| l.contains(text)).count()
}

/// UDP payloads from `src` in a pcap file (Ethernet, IPv4).
fn udp_payloads_from(pcap: &Path, src: Ipv4Addr) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(pcap)?;
    anyhow::ensure!(bytes.len() >= 24, "pcap too short");
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?) as usize;
        let frame = bytes
            .get(at + 16..at + 16 + caplen)
            .context("truncated pcap")?;
        at += 16 + caplen;
        let Some(ip) = frame.get(14..) else { continue };
        if ip.len() < 28 || ip[0] >> 4 != 4 || ip[9] != 17 || ip[12..16] != src.octets() {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if let Some(payload) = ip.get(ihl + 8..) {
            out.push(payload.to_vec());
        }
    }
    Ok(out)
}

/// Whether `d` has nothing of its own in flight: no failover step waiting for replication,
/// nothing queued or unacknowledged on the sync channel.
fn quiet(d: &Daemon) -> bool {
    let status = d.query("status").unwrap_or_default();
    status.contains("steps_pending=0")
        && status.contains(" unacked=0 ")
        && status.contains(" queued_bytes=0 ")
}

/// Waits until both nodes are quiet, b first: b's last request has then been acknowledged,
/// so whatever a sends in answer is already queued or sent and a's quiet means it arrived.
fn wait_quiet(a: &Daemon, b: &Daemon) -> Result<()> {
    wait_until("replication quiet", Duration::from_secs(20), ms(20), || {
        (quiet(b) && quiet(a)).then_some(())
    })
    .with_context(|| {
        format!(
            "a:\n{}\nb:\n{}",
            a.query("status").unwrap_or_default(),
            b.query("status").unwrap_or_default()
        )
    })
}

#[test]
fn datagrams_replayed_from_earlier_runs_of_the_master_change_nothing() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("replay")?;
    for ns in pair.routers() {
        ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0").ok();
    }
    let pcap = pair.lab.log_dir().join("sync.pcap");
    let filter = format!("udp port {PORT} and src host {A}");
    let pcap_arg = pcap.to_str().context("path")?;
    let mut capture = pair.b.spawn(&[
        "tcpdump",
        "--immediate-mode",
        "-U",
        "-n",
        "-i",
        "eth0",
        "-w",
        pcap_arg,
        &filter,
    ])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    let mut a = start(&pair, &pair.a, 150, A, B)?;
    let b = start(&pair, &pair.b, 100, B, A)?;
    create_flows(&pair.a, flows(0, 500))?;
    wait_external(&b, 500, Duration::from_secs(30))?;
    // The master restarts twice; each run's datagrams are on record.
    for _ in 0..2 {
        let sessions = stat(&b, "sessions_established");
        a.child.signal(nix::sys::signal::Signal::SIGTERM)?;
        a.child.wait_timeout(Duration::from_secs(10))?;
        a = start(&pair, &pair.a, 150, A, B)?;
        wait_until("a new session", Duration::from_secs(20), ms(20), || {
            (stat(&b, "sessions_established") > sessions).then_some(())
        })?;
        // The failback's own replication (a's bulk, b's resync request) is not a replay.
        wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(15))?;
        wait_quiet(&a, &b)?;
    }
    // 100 connections end on the master: a replay would bring them back at b.
    let ended = flows(0, 100);
    pair.a
        .enter(move || Conntrack::open()?.delete_batch(&ended))??;
    wait_external(&b, 400, Duration::from_secs(30))?;
    wait_until(
        "b's kernel follows",
        Duration::from_secs(20),
        ms(50),
        || (kernel_count(&pair.b).ok()? == 400).then_some(()),
    )?;
    wait_quiet(&a, &b)?;
    // Everything the master sent so far is on file before the capture stops.
    let a_sent = stat(&a, "datagrams_sent");
    wait_until(
        "the capture caught up",
        Duration::from_secs(5),
        ms(20),
        || {
            let n = udp_payloads_from(&pcap, A).ok()?.len() as u64;
            (n >= a_sent).then_some(())
        },
    )?;
    capture.kill()?;
    let recorded = udp_payloads_from(&pcap, A)
        .with_context(|| format!("reading the capture; tcpdump said:\n{}", capture.log()))?;
    println!(
        "replaying {} datagrams of three runs of the master",
        recorded.len()
    );
    assert!(
        recorded.len() > 20,
        "too little captured ({} bytes of pcap); tcpdump said:\n{}",
        std::fs::metadata(&pcap).map_or(0, |m| m.len()),
        capture.log()
    );
    let before = drops(&b);
    let hellos = stat(&b, "hellos_received");
    let records = stat(&b, "records_received");
    let mut twice = recorded.clone();
    twice.extend(recorded.iter().cloned());
    let sent = twice.len() as u64;
    spoof(&pair.client, A, B, twice, 20_000)?;
    wait_until("replays counted", Duration::from_secs(5), ms(20), || {
        let seen = drops(&b) - before + stat(&b, "hellos_received") - hellos;
        (seen >= sent * 9 / 10).then_some(())
    })?;
    unchanged(&pair, &b, 400)?;
    assert_eq!(
        stat(&b, "records_received"),
        records,
        "a replayed record was applied"
    );
    // The live session is untouched.
    create_flows(&pair.a, flows(1000, 10))?;
    wait_external(&b, 410, Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn a_flood_of_forged_datagrams_does_not_stop_replication() -> Result<()> {
    require_root!(Ok(()));
    let (pair, _a, b) = pair_with_flows("flood", 200)?;
    let before = drops(&b);
    let overflow_before = receive_buffer_errors(&pair.b)?;
    let lines_before = hmac_lines(&b);
    let guessed = AuthKey::new(b"a key the attacker guessed, 32 bytes or more");
    const RATE: u64 = 100_000;
    let forged: Vec<Vec<u8>> = (0..(RATE * 5) as u32)
        .map(|i| forged_wipe(Some(&guessed), i, 1))
        .collect();
    let client = pair.client.clone();
    let flood = std::thread::spawn(move || spoof(&client, A, B, forged, RATE));
    let started = Instant::now();
    // Real traffic meanwhile: 2,000 new flows in ten bursts.
    for burst in 0..10 {
        create_flows(&pair.a, flows(1000 + burst * 200, 200))?;
        std::thread::sleep(ms(400));
    }
    flood.join().expect("flood thread")?;
    let took = started.elapsed();
    wait_external(&b, 2200, Duration::from_secs(30))?;
    let counted = drops(&b) - before;
    let overflowed = receive_buffer_errors(&pair.b)? - overflow_before;
    let lines = hmac_lines(&b) - lines_before;
    println!(
        "{} forged datagrams in {:.1} s: {counted} read and counted as drops by tandemd, \
         {overflowed} dropped by the kernel (receive buffer full), {lines} log lines; \
         2,000 real flows replicated meanwhile",
        RATE * 5,
        took.as_secs_f64()
    );
    // Every forgery is accounted for: dropped by tandemd after reading it, or by the kernel
    // when tandemd could not keep up (the real peer's datagrams are retransmitted).
    assert!(
        counted + overflowed >= RATE * 5 * 9 / 10,
        "{counted} + {overflowed} of {} accounted for",
        RATE * 5
    );
    assert!(lines <= 2, "{lines} lines about bad HMACs in {took:?}");
    assert_eq!(stat(&b, "external_entries"), 2200);
    Ok(())
}

/// Sends VRRPv3 adverts for VRID 51 from the client's own address (10.0.0.100, higher than
/// both routers'), `rate` per second.
fn forged_adverts(ns: &Netns, priority: u8, count: usize, rate: u64) -> Result<()> {
    ns.enter(move || -> Result<()> {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        use tandem_vrrp::{Advertisement, Auth, Version};
        let src: std::net::IpAddr = "10.0.0.100".parse()?;
        let group: std::net::IpAddr = "224.0.0.18".parse()?;
        let advert = Advertisement {
            version: Version::V3,
            vrid: 51,
            priority,
            interval_cs: 100,
            addresses: vec!["10.0.0.254".parse()?],
            auth: Auth::None,
        };
        let bytes = advert.encode(src, group);
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
        s.set_multicast_ttl_v4(255)?;
        s.set_ttl_v4(255)?;
        s.set_multicast_if_v4(&"10.0.0.100".parse()?)?;
        let to = SockAddr::from(std::net::SocketAddr::new(group, 0));
        let started = Instant::now();
        for i in 0..count {
            s.send_to(&bytes, &to)?;
            let due = started + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    })?
}

#[test]
fn an_address_owner_keeps_its_address_under_forged_priority_255_adverts() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("owner")?;
    let a = start_tandemd(&pair, &pair.a, &vrrp(255))?;
    let _b = start_tandemd(&pair, &pair.b, &vrrp(100))?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(10))?;
    let client = pair.client.clone();
    // 10 a second for 4 s, from an address higher than the owner's.
    let forger = std::thread::spawn(move || forged_adverts(&client, 255, 40, 10));
    let polls = hold_steady(&pair, "10.0.0.254", "a", Duration::from_secs(4), ms(20))?;
    forger.join().expect("forger")?;
    let discarded = a.counter("VI_1", "drop_owner")?;
    println!("owner kept its address over {polls} polls; {discarded} forged adverts discarded");
    assert!(discarded >= 35, "drop_owner={discarded}");
    Ok(())
}

#[test]
fn five_thousand_forged_lower_priority_adverts_get_one_answer_per_interval() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("lowprio")?;
    let a = start_tandemd(&pair, &pair.a, &vrrp(200))?;
    wait_has(&pair.a, "10.0.0.254", Duration::from_secs(10))?;
    let sent_before = a.counter("VI_1", "adverts_tx")?;
    let started = Instant::now();
    forged_adverts(&pair.client, 50, 5_000, 1_000)?;
    let took = started.elapsed().as_secs_f64();
    let sent = a.counter("VI_1", "adverts_tx")? - sent_before;
    let heard = a.counter("VI_1", "adverts_rx")?;
    println!("5,000 forged adverts in {took:.1} s: a heard {heard}, sent {sent} adverts");
    assert!(heard >= 4_500, "a heard only {heard}");
    // One regular advert per second plus at most one answer per second.
    let bound = 2 * (took.ceil() as u64 + 1);
    assert!(sent <= bound, "{sent} adverts sent, bound {bound}");
    // The log says who, in keepalived's words, once per answer: not 5,000 lines.
    let log = a.child.log();
    let lines: Vec<&str> = (log.lines())
        .filter(|l| l.contains("(VI_1) Received advert from 10.0.0.100 with lower priority"))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    assert!(lines.len() as u64 <= took.ceil() as u64 + 1, "{lines:#?}");
    assert!(
        lines[0].ends_with("with lower priority 50, ours 200, forcing new election"),
        "{}",
        lines[0]
    );
    Ok(())
}
