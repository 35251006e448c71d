//! What the daemon needs to know about an interface before it can run VRRP
//! on it: index, MAC, whether it is up, and its own addresses (the VRRP
//! source address is the primary IPv4 address or the IPv6 link-local one).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

use crate::error::{netlink_errno, SysError};

/// A snapshot of one interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Hardware address (zeros when the link has none, e.g. a tunnel).
    pub mac: [u8; 6],
    /// Administratively up and operationally running (operstate up or unknown).
    pub up: bool,
    /// IPv4 addresses with prefix lengths, primary first as the kernel lists them.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// The first IPv6 link-local address (fe80::/10), the usual VRRPv3 source.
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// All IPv6 addresses with prefix lengths, link-local included.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
}

/// Looks up `name` and its addresses over rtnetlink.
pub async fn interface(handle: &rtnetlink::Handle, name: &str) -> Result<InterfaceInfo, SysError> {
    let op = format!("looking up interface {name}");
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let link = match links.try_next().await {
        Ok(Some(link)) => link,
        Ok(None) => return Err(SysError::NoSuchInterface { name: name.into() }),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => {
            return Err(SysError::NoSuchInterface { name: name.into() })
        }
        Err(e) => return Err(SysError::netlink(op, e)),
    };
    let index = link.header.index;
    let mac = link_mac(&link);
    let up = link_is_up(&link);

    let op = format!("listing addresses of {name} (index {index})");
    let addrs: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| SysError::netlink(op, e))?;

    let mut ipv4 = Vec::new();
    let mut ipv6 = Vec::new();
    for msg in &addrs {
        match message_address(msg) {
            Some(IpAddr::V4(a)) => ipv4.push((a, msg.header.prefix_len)),
            Some(IpAddr::V6(a)) => ipv6.push((a, msg.header.prefix_len)),
            None => {}
        }
    }
    let ipv6_link_local = ipv6.iter().map(|(a, _)| *a).find(is_link_local_v6);

    Ok(InterfaceInfo {
        name: name.to_string(),
        index,
        mac,
        up,
        ipv4,
        ipv6_link_local,
        ipv6,
    })
}

/// Whether an interface called `name` exists in the calling thread's network
/// namespace. Uses `if_nametoindex` rather than `/sys/class/net`, because
/// sysfs shows the namespace it was mounted in, not the one a thread entered.
pub fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// True for fe80::/10.
pub(crate) fn is_link_local_v6(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// The interface's own address in an address message: IFA_LOCAL when present
/// (it differs from IFA_ADDRESS only on point-to-point links), else IFA_ADDRESS.
pub(crate) fn message_address(msg: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => return Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

/// The link's MAC address, zeros when it has no 6-byte hardware address.
fn link_mac(link: &LinkMessage) -> [u8; 6] {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
        .unwrap_or([0; 6])
}

/// Up for VRRP purposes: IFF_UP and IFF_RUNNING, and an operstate that is
/// neither down nor waiting on a lower layer (`unknown` counts as up, as on
/// dummy interfaces and many tunnels).
pub(crate) fn link_is_up(link: &LinkMessage) -> bool {
    let flags = link.header.flags;
    if !flags.contains(LinkFlags::Up) || !flags.contains(LinkFlags::Running) {
        return false;
    }
    let oper = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    });
    !matches!(
        oper,
        Some(State::Down | State::LowerLayerDown | State::NotPresent)
    )
}

/// The link's name from its IFLA_IFNAME attribute.
pub(crate) fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// Best-effort name for an interface index, for error messages:
/// `eth2 (index 3)`, or `index 3` when the lookup fails.
pub(crate) async fn describe_index(handle: &rtnetlink::Handle, index: u32) -> String {
    let mut links = handle.link().get().match_index(index).execute();
    match links.try_next().await {
        Ok(Some(link)) => match link_name(&link) {
            Some(name) => format!("{name} (index {index})"),
            None => format!("index {index}"),
        },
        _ => format!("index {index}"),
    }
}
