//! [`Pair`]: the standard two-router topology most end-to-end tests use.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::{wait_until, Lab, Netns};

/// Two routers (`a`, `b`) and a client (`c`) on bridged LANs, built by one call.
///
/// Namespace `sw` holds bridges `br0..brN-1`; each of `a`, `b`, `c` has
/// `eth{i}` attached to `br{i}` with addresses `10.0.{i}.{1,2,100}/24` and
/// `fd00:0:0:{i}::{1,2,100}/64`. IPv6 link-local addresses are usable when
/// the constructor returns. Forwarding is left at the kernel default (off).
#[derive(Debug)]
pub struct Pair {
    /// Owner of all namespaces; dropping the pair tears everything down.
    pub lab: Lab,
    /// First router, host number 1 on every LAN.
    pub a: Netns,
    /// Second router, host number 2 on every LAN.
    pub b: Netns,
    /// Client, host number 100 on every LAN.
    pub client: Netns,
    /// Namespace holding the bridges.
    pub switch: Netns,
    /// Number of LANs (interfaces per node).
    pub lans: usize,
}

/// Host number of router `a` on every LAN.
pub const HOST_A: u8 = 1;
/// Host number of router `b` on every LAN.
pub const HOST_B: u8 = 2;
/// Host number of the client on every LAN.
pub const HOST_CLIENT: u8 = 100;

impl Pair {
    /// The usual topology with one LAN (`eth0` on `br0`, 10.0.0.0/24, fd00::/64).
    pub fn new(tag: &str) -> anyhow::Result<Pair> {
        Pair::with_lans(tag, 1)
    }

    /// The topology with `lans` LANs: `eth{i}` on `br{i}`, 10.0.{i}.0/24 and
    /// fd00:0:0:{i}::/64.
    pub fn with_lans(tag: &str, lans: usize) -> anyhow::Result<Pair> {
        anyhow::ensure!(
            (1..=255).contains(&lans),
            "with_lans: need 1..=255 LANs, got {lans}"
        );
        let mut lab = Lab::new(tag)?;
        let switch = lab.netns("sw")?;
        let a = lab.netns("a")?;
        let b = lab.netns("b")?;
        let client = lab.netns("c")?;
        for i in 0..lans {
            let br = format!("br{i}");
            lab.bridge(&switch, &br)?;
            for (node, short, host) in [
                (&a, "a", HOST_A),
                (&b, "b", HOST_B),
                (&client, "c", HOST_CLIENT),
            ] {
                let dev = format!("eth{i}");
                let port = format!("{short}-eth{i}");
                lab.veth((node, &dev), (&switch, &port))?;
                switch.ip(&format!("link set dev {port} master {br}"))?;
                node.ip(&format!("addr add {}/24 dev {dev}", Pair::v4(i, host)))?;
                node.ip(&format!(
                    "addr add {}/64 dev {dev} nodad",
                    Pair::v6(i, host)
                ))?;
            }
        }
        for node in [&a, &b, &client] {
            wait_until(
                &format!("usable link-local addresses in {}", node.name()),
                Duration::from_secs(10),
                Duration::from_millis(20),
                || {
                    let addrs = node.addresses().ok()?;
                    let ready = (0..lans).all(|i| {
                        let dev = format!("eth{i}");
                        addrs.iter().any(|x| {
                            x.dev == dev
                                && matches!(x.addr, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local())
                        })
                    }) && addrs.iter().all(|x| !x.tentative);
                    ready.then_some(())
                },
            )?;
        }
        Ok(Pair {
            lab,
            a,
            b,
            client,
            switch,
            lans,
        })
    }

    /// IPv4 address of host number `host` on LAN `lan` (10.0.{lan}.{host}).
    pub fn v4(lan: usize, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, lan as u8, host)
    }

    /// IPv6 address of host number `host` on LAN `lan`: `fd00:0:0:{lan}::{host}`
    /// with the decimal digits written as they are (host 100 is `::100`), so
    /// it reads like the IPv4 address.
    pub fn v6(lan: usize, host: u8) -> Ipv6Addr {
        format!("fd00:0:0:{lan}::{host}")
            .parse()
            .expect("decimal digits are valid hex groups")
    }

    /// The two routers, for loops that configure both.
    pub fn routers(&self) -> [&Netns; 2] {
        [&self.a, &self.b]
    }
}
