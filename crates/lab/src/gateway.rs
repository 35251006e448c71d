//! [`Gateway`]: client, two NAT gateways and a server, the topology of the
//! "flows survive failover" tests.
//!
//! ```text
//!  client 10.1.0.100 ── br-pub ──┬── pub0 gw-a int0 ──┬── br-int ── server 10.2.0.100
//!   (via 10.1.0.254)             │     sync0 10.3.0.1 │           (via 10.2.0.254)
//!                                │       │            │
//!                                │     sync0 10.3.0.2 │
//!                                └── pub0 gw-b int0 ──┘
//! ```
//!
//! The VIPs (10.1.0.254 on `pub0`, 10.2.0.254 on `int0`) are not configured:
//! the VRRP daemon under test (or a test, by hand) adds them.

use std::net::Ipv4Addr;

use anyhow::Context;

use crate::{Lab, Netns};

/// Gateway interface on the public LAN.
pub const GW_PUBLIC_DEV: &str = "pub0";
/// Gateway interface on the internal LAN.
pub const GW_INTERNAL_DEV: &str = "int0";
/// Gateway interface of the direct sync link between the two gateways.
pub const GW_SYNC_DEV: &str = "sync0";
/// Interface of the client (public LAN) and of the server (internal LAN).
pub const HOST_DEV: &str = "eth0";

/// Client address on the public LAN.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
/// Gateway A's own address on the public LAN.
pub const GW_A_PUBLIC: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// Gateway B's own address on the public LAN.
pub const GW_B_PUBLIC: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// Virtual address on the public LAN: the client's default gateway.
pub const VIP_PUBLIC: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
/// Server address on the internal LAN.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);
/// Gateway A's own address on the internal LAN.
pub const GW_A_INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// Gateway B's own address on the internal LAN.
pub const GW_B_INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
/// Virtual address on the internal LAN: the server's default gateway and the
/// source NAT address of forwarded connections.
pub const VIP_INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 254);
/// Gateway A's address on the sync link.
pub const GW_A_SYNC: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 1);
/// Gateway B's address on the sync link.
pub const GW_B_SYNC: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
/// Prefix length of all three networks.
pub const PREFIX_LEN: u8 = 24;

/// Bridge of the public LAN inside [`Gateway::switch`].
pub const PUBLIC_BRIDGE: &str = "brpub";
/// Bridge of the internal LAN inside [`Gateway::switch`].
pub const INTERNAL_BRIDGE: &str = "brint";

/// The gateways' nftables ruleset: stateful forwarding (only the client side
/// opens connections) and source NAT to the internal VIP.
///
/// The NAT rule matches forwarded traffic only (`iifname "pub0"`): without
/// it the gateways' own packets leaving `int0` (pings, VRRP adverts) would be
/// rewritten to the VIP as well.
pub const GW_RULESET: &str = r#"table inet gw {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "pub0" oifname "int0" ct state new accept
    }
    chain postrouting {
        type nat hook postrouting priority 100;
        iifname "pub0" oifname "int0" snat ip to 10.2.0.254
    }
}
"#;

/// Client, two gateways and a server, with public and internal bridged LANs
/// and a sync link; built by [`Gateway::new`].
///
/// Namespaces: `c` (client), `ga`, `gb` (gateways), `s` (server) and `sw`
/// (holding bridges [`PUBLIC_BRIDGE`] and [`INTERNAL_BRIDGE`]). Gateways
/// forward, NAT and filter as described in [`GW_RULESET`], with
/// `nf_conntrack_tcp_loose=0`, `rp_filter=0`, `arp_ignore=1` and
/// `arp_announce=2`. Cutting a gateway's link (`ip link set pub0 down` in
/// it) leaves the other hosts of that LAN connected.
#[derive(Debug)]
pub struct Gateway {
    /// Owner of all namespaces; dropping the topology tears everything down.
    pub lab: Lab,
    /// Client on the public LAN, default route via [`VIP_PUBLIC`].
    pub client: Netns,
    /// Gateway A (`.1` on every network).
    pub a: Netns,
    /// Gateway B (`.2` on every network).
    pub b: Netns,
    /// Server on the internal LAN, default route via [`VIP_INTERNAL`].
    pub server: Netns,
    /// Namespace holding both LAN bridges.
    pub switch: Netns,
}

impl Gateway {
    /// Builds the topology in a new lab named after `tag`.
    pub fn new(tag: &str) -> anyhow::Result<Gateway> {
        let mut lab = Lab::new(tag)?;
        let switch = lab.netns("sw")?;
        let client = lab.netns("c")?;
        let a = lab.netns("ga")?;
        let b = lab.netns("gb")?;
        let server = lab.netns("s")?;
        lab.bridge(&switch, PUBLIC_BRIDGE)?;
        lab.bridge(&switch, INTERNAL_BRIDGE)?;

        let attach = |lab: &mut Lab, ns: &Netns, dev: &str, port: &str, br: &str| {
            lab.veth((ns, dev), (&switch, port))?;
            switch.ip(&format!("link set dev {port} master {br}"))
        };
        attach(&mut lab, &client, HOST_DEV, "c-eth0", PUBLIC_BRIDGE)?;
        attach(&mut lab, &a, GW_PUBLIC_DEV, "a-pub0", PUBLIC_BRIDGE)?;
        attach(&mut lab, &b, GW_PUBLIC_DEV, "b-pub0", PUBLIC_BRIDGE)?;
        attach(&mut lab, &a, GW_INTERNAL_DEV, "a-int0", INTERNAL_BRIDGE)?;
        attach(&mut lab, &b, GW_INTERNAL_DEV, "b-int0", INTERNAL_BRIDGE)?;
        attach(&mut lab, &server, HOST_DEV, "s-eth0", INTERNAL_BRIDGE)?;
        lab.veth((&a, GW_SYNC_DEV), (&b, GW_SYNC_DEV))?;

        client.ip(&format!(
            "addr add {CLIENT_ADDR}/{PREFIX_LEN} dev {HOST_DEV}"
        ))?;
        client.ip(&format!("route add default via {VIP_PUBLIC}"))?;
        server.ip(&format!(
            "addr add {SERVER_ADDR}/{PREFIX_LEN} dev {HOST_DEV}"
        ))?;
        server.ip(&format!("route add default via {VIP_INTERNAL}"))?;

        let ruleset = lab.log_dir().join("gateway.nft");
        std::fs::write(&ruleset, GW_RULESET)
            .with_context(|| format!("writing {}", ruleset.display()))?;
        for (gw, addrs) in [
            (&a, [GW_A_PUBLIC, GW_A_INTERNAL, GW_A_SYNC]),
            (&b, [GW_B_PUBLIC, GW_B_INTERNAL, GW_B_SYNC]),
        ] {
            for (dev, addr) in [GW_PUBLIC_DEV, GW_INTERNAL_DEV, GW_SYNC_DEV]
                .into_iter()
                .zip(addrs)
            {
                gw.ip(&format!("addr add {addr}/{PREFIX_LEN} dev {dev}"))?;
            }
            configure_gateway(gw, &ruleset)?;
        }
        Ok(Gateway {
            lab,
            client,
            a,
            b,
            server,
            switch,
        })
    }

    /// The public VIP (client side), [`VIP_PUBLIC`].
    pub fn vip_public() -> Ipv4Addr {
        VIP_PUBLIC
    }

    /// The internal VIP (server side, source NAT address), [`VIP_INTERNAL`].
    pub fn vip_internal() -> Ipv4Addr {
        VIP_INTERNAL
    }

    /// The two gateways, for loops that configure both.
    pub fn gateways(&self) -> [&Netns; 2] {
        [&self.a, &self.b]
    }

    /// Adds both VIPs to gateway `gw` by hand (what the VRRP daemon does on
    /// becoming master), for tests that run without it.
    pub fn add_vips(gw: &Netns) -> anyhow::Result<()> {
        gw.ip(&format!(
            "addr add {VIP_PUBLIC}/{PREFIX_LEN} dev {GW_PUBLIC_DEV}"
        ))?;
        gw.ip(&format!(
            "addr add {VIP_INTERNAL}/{PREFIX_LEN} dev {GW_INTERNAL_DEV}"
        ))
        .map(drop)
    }

    /// Removes both VIPs from gateway `gw`.
    pub fn del_vips(gw: &Netns) -> anyhow::Result<()> {
        gw.ip(&format!(
            "addr del {VIP_PUBLIC}/{PREFIX_LEN} dev {GW_PUBLIC_DEV}"
        ))?;
        gw.ip(&format!(
            "addr del {VIP_INTERNAL}/{PREFIX_LEN} dev {GW_INTERNAL_DEV}"
        ))
        .map(drop)
    }

    /// Flushes the neighbour caches of client and server, so their next
    /// packet to a VIP resolves it afresh (as a gratuitous ARP would make
    /// them do).
    pub fn flush_neighbours(&self) -> anyhow::Result<()> {
        for ns in [&self.client, &self.server] {
            ns.ip(&format!("neigh flush dev {HOST_DEV}"))?;
        }
        Ok(())
    }
}

/// Sysctls and nftables of one gateway.
fn configure_gateway(gw: &Netns, ruleset: &std::path::Path) -> anyhow::Result<()> {
    gw.sysctl("net.ipv4.ip_forward", "1")?;
    for scope in [
        "all",
        "default",
        GW_PUBLIC_DEV,
        GW_INTERNAL_DEV,
        GW_SYNC_DEV,
    ] {
        gw.sysctl(&format!("net.ipv4.conf.{scope}.rp_filter"), "0")?;
        gw.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
        gw.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
        gw.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
    }
    let path = ruleset.to_str().context("ruleset path is not UTF-8")?;
    let out = gw.exec(&["nft", "-f", path])?;
    anyhow::ensure!(
        out.status.success(),
        "loading the gateway ruleset in {} failed ({}): {}",
        gw.name(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    // The ruleset's ct expressions load nf_conntrack, which creates the key.
    gw.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
    Ok(())
}
