//! Shared set-up for the kernel tests: two namespaces joined by a veth.

#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::time::Duration;

use tandem_lab::{Lab, Netns};

/// Two namespaces `a` and `b`, each with `eth0` on one veth pair, carrying
/// 10.0.0.1/24 + fd00::1/64 (a) and 10.0.0.2/24 + fd00::2/64 (b).
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    // Last, so the namespaces are deleted after everything else is dropped.
    pub lab: Lab,
}

pub fn pair(tag: &str) -> anyhow::Result<Pair> {
    let mut lab = Lab::new(tag)?;
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    lab.veth((&a, "eth0"), (&b, "eth0"))?;
    a.ip("addr add 10.0.0.1/24 dev eth0")?;
    b.ip("addr add 10.0.0.2/24 dev eth0")?;
    a.ip("addr add fd00::1/64 dev eth0")?;
    b.ip("addr add fd00::2/64 dev eth0")?;
    link_local(&a, "eth0")?;
    link_local(&b, "eth0")?;
    Ok(Pair { a, b, lab })
}

/// Waits for the interface's IPv6 link-local address (it appears once the
/// link has carrier) and returns it.
pub fn link_local(ns: &Netns, dev: &str) -> anyhow::Result<Ipv6Addr> {
    tandem_lab::wait_until(
        &format!("a link-local address on {dev} in {}", ns.name()),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            ns.addresses().ok()?.into_iter().find_map(|a| match a.addr {
                std::net::IpAddr::V6(v6)
                    if a.dev == dev && (v6.segments()[0] & 0xffc0) == 0xfe80 && !a.tentative =>
                {
                    Some(v6)
                }
                _ => None,
            })
        },
    )
}

/// A current-thread runtime for code running inside `Netns::enter`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building tokio runtime")
}

/// The interface's MAC address as `ip` reports it.
pub fn mac_of(ns: &Netns, dev: &str) -> anyhow::Result<[u8; 6]> {
    let out = ns.ip(&format!("-o link show dev {dev}"))?;
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no link/ether in {out:?}"))?;
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16)?;
    }
    Ok(mac)
}

/// Interface index as `ip` reports it.
pub fn index_of(ns: &Netns, dev: &str) -> anyhow::Result<u32> {
    let out = ns.ip(&format!("-o link show dev {dev}"))?;
    let idx = out
        .split(':')
        .next()
        .ok_or_else(|| anyhow::anyhow!("unexpected `ip link` output {out:?}"))?;
    Ok(idx.trim().parse()?)
}

pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
