//! A sync group of two instances on two LANs: cutting one link of the master moves both VIPs,
//! and the notify hooks see keepalived's arguments; at a takeover every VIP of the group is in
//! place before the first gratuitous ARP leaves.

mod common;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use nix::sys::socket::{
    bind, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use socket2::{Domain, Protocol, Socket, Type};
use tandem_lab::{require_root, wait_until, Netns, Pair};

fn config(pair: &Pair, node: &str, priority: u8) -> Result<String> {
    let log = pair.lab.log_dir().join(format!("notify-{node}.log"));
    let script = pair.lab.log_dir().join(format!("notify-{node}.sh"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()?;
    Ok(group_g1(
        priority,
        "",
        &format!("    notify {}\n", script.display()),
    ))
}

fn notify_log(pair: &Pair, node: &str) -> String {
    std::fs::read_to_string(pair.lab.log_dir().join(format!("notify-{node}.log")))
        .unwrap_or_default()
}

#[test]
fn link_down_on_one_member_moves_the_whole_group() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("sync", 2)?;
    let a = start_tandemd(&pair, &pair.a, &config(&pair, "a", 150)?)?;
    let _b = start_tandemd(&pair, &pair.b, &config(&pair, "b", 100)?)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    pair.a.link_set("eth1", false)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        let took = wait_holder(&pair, vip, "b", Duration::from_secs(10))
            .map_err(|e| e.context(a.child.log()))?;
        println!(
            "{vip} moved to b within {} ms of the link cut",
            took.as_millis()
        );
    }
    let log = a.child.log();
    assert!(log.contains("(VI_1) Entering FAULT STATE"), "{log}");
    assert!(log.contains("(VI_0) Entering FAULT STATE"), "{log}");
    wait_until("group notify on a", Duration::from_secs(5), ms(20), || {
        notify_log(&pair, "a")
            .contains("GROUP G1 FAULT")
            .then_some(())
    })?;
    wait_until("group notify on b", Duration::from_secs(5), ms(20), || {
        notify_log(&pair, "b")
            .contains("GROUP G1 MASTER")
            .then_some(())
    })?;

    pair.a.link_set("eth1", true)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    Ok(())
}

/// What the router saw, in the order it happened there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// RTM_NEWADDR for this address.
    Added(IpAddr),
    /// A gratuitous ARP for this address left the router.
    Garp(IpAddr),
}

/// Watches one router from inside its namespace, with two readers:
///
/// - `order`: one thread that blocks on a packet socket (its ARP frames) and, before taking each frame,
///   drains an rtnetlink address socket. A notification queued before a frame left is read
///   before that frame, so "every address before the first ARP" can fail only if an
///   address really came after it;
/// - `stamps`: a thread blocked on a second rtnetlink socket, stamping each address
///   notification as it is read (for the time from the first VIP to the last).
struct RouterWatch {
    order: Arc<Mutex<Vec<Seen>>>,
    stamps: Arc<Mutex<Vec<(IpAddr, Instant)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RouterWatch {
    /// `macs`: the router's own MACs, whose ARP frames count as its announcements.
    fn start(ns: &Netns, macs: Vec<[u8; 6]>) -> Result<RouterWatch> {
        let (ordered_nl, arp, stamped_nl) =
            ns.enter(|| -> Result<(Socket, Socket, Socket)> {
                // Outgoing frames reach only ETH_P_ALL taps: take everything, keep ARP.
                let arp = Socket::new(
                    Domain::PACKET,
                    Type::RAW,
                    Some(Protocol::from(i32::from((libc::ETH_P_ALL as u16).to_be()))),
                )
                .context("opening packet socket")?;
                arp.set_read_timeout(Some(ms(2)))?;
                let ordered_nl = address_socket()?;
                ordered_nl.set_nonblocking(true)?;
                let stamped_nl = address_socket()?;
                stamped_nl.set_read_timeout(Some(ms(50)))?;
                Ok((ordered_nl, arp, stamped_nl))
            })??;
        let order = Arc::new(Mutex::new(Vec::new()));
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (order, stop) = (order.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    // Everything the kernel announced so far comes before the next frame.
                    while let Ok(n) = (&ordered_nl).read(&mut buf) {
                        let added = new_addresses(&buf[..n]);
                        order
                            .lock()
                            .unwrap()
                            .extend(added.into_iter().map(Seen::Added));
                    }
                    let Ok(n) = (&arp).read(&mut buf) else {
                        continue;
                    };
                    if let Some(ip) = gratuitous(&buf[..n], &macs) {
                        order.lock().unwrap().push(Seen::Garp(ip));
                    }
                }
            }));
        }
        {
            let (stamps, stop) = (stamps.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = (&stamped_nl).read(&mut buf) {
                        let at = Instant::now();
                        let added = new_addresses(&buf[..n]);
                        stamps
                            .lock()
                            .unwrap()
                            .extend(added.into_iter().map(|a| (a, at)));
                    }
                }
            }));
        }
        Ok(RouterWatch {
            order,
            stamps,
            stop,
            threads,
        })
    }

    fn order(&self) -> Vec<Seen> {
        self.order.lock().unwrap().clone()
    }

    fn stamps(&self) -> Vec<(IpAddr, Instant)> {
        self.stamps.lock().unwrap().clone()
    }
}

impl Drop for RouterWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An rtnetlink socket in the IPv4 address group (RTMGRP_IPV4_IFADDR).
fn address_socket() -> Result<Socket> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .context("opening rtnetlink socket")?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0x10)).context("joining the address group")?;
    let s = Socket::from(fd);
    s.set_recv_buffer_size(1 << 20)?;
    Ok(s)
}

/// IPv4 addresses of the RTM_NEWADDR messages in one netlink datagram.
fn new_addresses(mut buf: &[u8]) -> Vec<IpAddr> {
    const RTM_NEWADDR: u16 = 20;
    const IFA_LOCAL: u16 = 2;
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let msg = &buf[..len];
        // nlmsghdr (16 bytes), ifaddrmsg (8, family first), then attributes.
        if u16_at(msg, 4) == RTM_NEWADDR && msg.len() >= 24 && msg[16] == 2 {
            let mut attrs = &msg[24..];
            while attrs.len() >= 4 {
                let alen = usize::from(u16_at(attrs, 0));
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if u16_at(attrs, 2) == IFA_LOCAL && alen == 8 {
                    out.push(IpAddr::V4(Ipv4Addr::new(
                        attrs[4], attrs[5], attrs[6], attrs[7],
                    )));
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// The announced address, when the Ethernet frame is a gratuitous ARP (sender address =
/// target address) from one of `macs`.
fn gratuitous(frame: &[u8], macs: &[[u8; 6]]) -> Option<IpAddr> {
    if frame.len() < 14 || frame[12..14] != [0x08, 0x06] {
        return None;
    }
    let arp = &frame[14..];
    // htype ptype hlen plen oper (8 bytes), sha (6), spa (4), tha (6), tpa (4)
    if arp.len() < 28 || arp[4] != 6 || arp[5] != 4 {
        return None;
    }
    let sha: [u8; 6] = arp[8..14].try_into().ok()?;
    let (spa, tpa) = (&arp[14..18], &arp[24..28]);
    (macs.contains(&sha) && spa == tpa)
        .then(|| IpAddr::V4(Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3])))
}

fn mac_of(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&format!("-o link show dev {dev}"))?;
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("no link/ether in {out:?}"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    anyhow::ensure!(parts.len() == 6, "bad MAC {text}");
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)?;
    }
    Ok(mac)
}

/// The bound on the time from the group's first VIP to its last, as read by a thread of
/// the test: the addresses leave in one netlink batch, so the notifications arrive together;
/// the slack is for a loaded machine delaying the reading thread.
const GROUP_SPREAD_BOUND: Duration = Duration::from_millis(10);

#[test]
fn at_takeover_every_vip_of_the_group_is_in_place_before_the_first_gratuitous_arp() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("syncvip", 2)?;
    let mut a = start_tandemd(&pair, &pair.a, &config(&pair, "a", 150)?)?;
    let b = start_tandemd(&pair, &pair.b, &config(&pair, "b", 100)?)?;
    let vips: [IpAddr; 2] = ["10.0.0.254".parse()?, "10.0.1.254".parse()?];
    for vip in vips {
        wait_holder(&pair, &vip.to_string(), "a", Duration::from_secs(15))?;
    }
    let macs = vec![mac_of(&pair.b, "eth0")?, mac_of(&pair.b, "eth1")?];
    let watch = RouterWatch::start(&pair.b, macs)?;

    // Graceful: a sends priority 0 on both LANs and b's group takes over after skew time.
    a.child.signal(nix::sys::signal::Signal::SIGTERM)?;
    wait_until(
        "b to announce both VIPs",
        Duration::from_secs(10),
        ms(10),
        || {
            let order = watch.order();
            vips.iter()
                .all(|v| order.contains(&Seen::Garp(*v)))
                .then_some(())
        },
    )
    .map_err(|e| e.context(format!("{:?}\n{}", watch.order(), b.child.log())))?;
    let order = watch.order();
    let first_garp = order
        .iter()
        .position(|s| matches!(s, Seen::Garp(_)))
        .context("a gratuitous ARP")?;
    for vip in vips {
        let added = order.iter().position(|s| *s == Seen::Added(vip));
        assert!(
            added.is_some_and(|i| i < first_garp),
            "{vip} not added before the first gratuitous ARP: {order:?}"
        );
    }

    let stamps = watch.stamps();
    let when = |vip: IpAddr| {
        stamps
            .iter()
            .find(|(a, _)| *a == vip)
            .map(|(_, at)| *at)
            .with_context(|| format!("no notification for {vip}: {stamps:?}"))
    };
    let (t0, t1) = (when(vips[0])?, when(vips[1])?);
    let spread = t0.max(t1) - t0.min(t1);
    println!(
        "first→last VIP of the group on b: {} µs",
        spread.as_micros()
    );
    assert!(
        spread <= GROUP_SPREAD_BOUND,
        "the group's VIPs appeared {spread:?} apart: {stamps:?}"
    );
    let log = b.child.log();
    assert!(!log.contains("WARN"), "{log}");
    Ok(())
}
