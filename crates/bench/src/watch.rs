//! Timestamped events seen from inside a namespace, without spawning a process per poll:
//! addresses added, from an rtnetlink multicast socket and VRRP adverts from a raw
//! protocol-112 socket, each read by its own thread.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::socket::{
    bind, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tandem_lab::Netns;

/// rtnetlink multicast groups for IPv4 and IPv6 address changes.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTM_NEWADDR: u16 = 20;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// How often the reader threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Something that happened in the watched namespace, stamped on receipt.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// A VRRP advert arrived.
    Advert {
        /// When it was read.
        at: Instant,
        /// IP source.
        src: IpAddr,
        /// Priority field.
        priority: u8,
    },
    /// An address was added.
    Added {
        /// When the notification was read.
        at: Instant,
        /// The address.
        addr: IpAddr,
    },
}

/// Reader threads for one namespace; stopped on drop.
pub struct Watcher {
    rx: Receiver<Event>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Watcher {
    /// Opens both sockets inside `ns` (adverts joined on `interface`) and starts reading.
    pub fn start(ns: &Netns, interface: &str) -> Result<Watcher> {
        let ifname = interface.to_string();
        let (netlink, vrrp) = ns.enter(move || -> Result<(Socket, Socket)> {
            let fd = socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkRoute,
            )
            .context("opening rtnetlink socket")?;
            bind(
                fd.as_raw_fd(),
                &NetlinkAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR),
            )
            .context("joining rtnetlink address groups")?;
            let netlink = Socket::from(fd);
            netlink.set_recv_buffer_size(1 << 20)?;
            netlink.set_read_timeout(Some(POLL))?;
            let vrrp = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                .context("opening raw VRRP socket")?;
            let index = nix::net::if_::if_nametoindex(ifname.as_str())
                .with_context(|| format!("no interface {ifname}"))?;
            vrrp.join_multicast_v4_n(
                &Ipv4Addr::new(224, 0, 0, 18),
                &InterfaceIndexOrAddress::Index(index),
            )?;
            vrrp.set_recv_buffer_size(1 << 20)?;
            vrrp.set_read_timeout(Some(POLL))?;
            Ok((netlink, vrrp))
        })??;
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            reader(netlink, tx.clone(), stop.clone(), parse_netlink),
            reader(vrrp, tx, stop.clone(), parse_advert),
        ];
        Ok(Watcher { rx, stop, threads })
    }

    /// The next event, waiting at most until `deadline`; events already queued are returned
    /// even when it has passed.
    pub fn next_before(&self, deadline: Instant) -> Option<Event> {
        match deadline.checked_duration_since(Instant::now()) {
            None => self.rx.try_recv().ok(),
            Some(left) => self.rx.recv_timeout(left).ok(),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A thread reading datagrams from `sock` and sending what `parse` finds in them.
fn reader(
    sock: Socket,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
    parse: fn(Instant, &[u8], &mut Vec<Event>),
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut events = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match (&sock).read(&mut buf) {
                Ok(n) => {
                    parse(Instant::now(), &buf[..n], &mut events);
                    for e in events.drain(..) {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => std::thread::sleep(POLL),
            }
        }
    })
}

/// An IPv4 packet from the raw socket: header, then the VRRP header (priority at byte 2).
fn parse_advert(at: Instant, p: &[u8], out: &mut Vec<Event>) {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if p.len() < ihl + 4 {
        return;
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    out.push(Event::Advert {
        at,
        src,
        priority: p[ihl + 2],
    });
}

/// rtnetlink messages: `nlmsghdr` (16 bytes), `ifaddrmsg` (8 bytes), then attributes.
fn parse_netlink(at: Instant, mut buf: &[u8], out: &mut Vec<Event>) {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return;
        }
        let kind = u16_at(buf, 4);
        let msg = &buf[..len];
        if kind == RTM_NEWADDR && msg.len() >= 24 {
            let family = msg[16];
            let mut local = None;
            let mut address = None;
            let mut attrs = &msg[24..];
            while attrs.len() >= 4 {
                let alen = usize::from(u16_at(attrs, 0));
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                let data = &attrs[4..alen];
                let ip = match (family, data.len()) {
                    (2, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                        data[0], data[1], data[2], data[3],
                    ))),
                    (10, 16) => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(data);
                        Some(IpAddr::V6(Ipv6Addr::from(o)))
                    }
                    _ => None,
                };
                match u16_at(attrs, 2) {
                    IFA_LOCAL => local = ip,
                    IFA_ADDRESS => address = ip,
                    _ => {}
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
            if let Some(addr) = local.or(address) {
                out.push(Event::Added { at, addr });
            }
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
}
