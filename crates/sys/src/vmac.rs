//! keepalived's `use_vmac`: a private-mode macvlan on the instance's interface carrying the
//! VRRP virtual MAC (00:00:5e:00:01:VRID, or 00:00:5e:00:02:VRID for IPv6), so the virtual
//! addresses answer with the RFC's MAC and neighbours need no new ARP entry on failover.
//!
//! Created over rtnetlink; the interface settings keepalived makes for it are written under
//! `/proc/sys` (the network namespace of the daemon), and the base interface's are put back
//! as they were when the macvlan goes.

use std::path::PathBuf;

use futures::TryStreamExt;
use netlink_packet_route::link::MacVlanMode;
use rtnetlink::{LinkMacVlan, LinkMessageBuilder, LinkUnspec};

use crate::error::{netlink_errno, SysError};

/// The VRRP virtual MAC of `vrid` (RFC 5798 7.3).
pub fn virtual_mac(vrid: u8, ipv6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if ipv6 { 0x02 } else { 0x01 }, vrid]
}

/// One `/proc/sys` setting changed, with the value to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Changed {
    path: PathBuf,
    before: String,
}

/// A macvlan this daemon created, and the base interface settings it changed.
#[derive(Debug)]
pub struct Vmac {
    /// Its name (`vrrp.51`).
    pub name: String,
    /// Its index.
    pub index: u32,
    restore: Vec<Changed>,
}

fn conf(family: &str, ifname: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/{family}/conf/{ifname}/{key}"))
}

/// Writes `value` to `path`, returning what was there.
fn write_sysctl(path: &PathBuf, value: &str) -> Result<String, SysError> {
    let before = std::fs::read_to_string(path)
        .map_err(|e| SysError::socket(format!("reading {}", path.display()), e))?;
    std::fs::write(path, value)
        .map_err(|e| SysError::socket(format!("writing {value} to {}", path.display()), e))?;
    Ok(before.trim().to_string())
}

/// Creates (or re-creates) the macvlan `name` on `base` with `mac`, in private mode, up,
/// with keepalived's settings: on it `arp_ignore=1`, and for IPv4 `accept_local=1`,
/// `rp_filter=0`, `promote_secondaries=1` and IPv6 off; on the base interface
/// `arp_ignore=1` and `arp_filter=1` so only the macvlan answers ARP for the virtual
/// addresses, and `arp_announce=2` (all three put back by [`remove`]).
pub async fn create(
    handle: &rtnetlink::Handle,
    name: &str,
    base: &crate::InterfaceInfo,
    mac: [u8; 6],
    ipv6: bool,
) -> Result<Vmac, SysError> {
    // A leftover of a killed run (or of another program) is replaced: its MAC, mode or base
    // may be wrong.
    if let Some(index) = index_of(handle, name).await? {
        handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| SysError::netlink(format!("removing old macvlan {name}"), e))?;
    }
    let message = LinkMessageBuilder::<LinkMacVlan>::new(name)
        .link(base.index)
        .mode(MacVlanMode::Private)
        .address(mac.to_vec())
        .build();
    handle
        .link()
        .add(message)
        .execute()
        .await
        .map_err(|e| SysError::netlink(format!("creating macvlan {name} on {}", base.name), e))?;
    let index = index_of(handle, name)
        .await?
        .ok_or_else(|| SysError::NoSuchInterface { name: name.into() })?;
    let mut restore = Vec::new();
    let mut set = |family: &str, ifname: &str, key: &str, value: &str, keep: bool| {
        let path = conf(family, ifname, key);
        match write_sysctl(&path, value) {
            Ok(before) => {
                if keep && before != value {
                    restore.push(Changed { path, before });
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    };
    set("ipv4", name, "arp_ignore", "1", false);
    if !ipv6 {
        set("ipv4", name, "accept_local", "1", false);
        set("ipv4", name, "rp_filter", "0", false);
        set("ipv4", name, "promote_secondaries", "1", false);
        set("ipv6", name, "disable_ipv6", "1", false);
        set("ipv4", &base.name, "arp_ignore", "1", true);
        set("ipv4", &base.name, "arp_filter", "1", true);
        // Not keepalived's: the base interface's own ARP requests carry its own address,
        // not a virtual one, so a reply sent from a virtual address over the base interface
        // does not point the neighbour's entry for it at the base MAC.
        set("ipv4", &base.name, "arp_announce", "2", true);
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| SysError::netlink(format!("setting macvlan {name} up"), e))?;
    Ok(Vmac {
        name: name.into(),
        index,
        restore,
    })
}

/// Removes the macvlan and puts back the base interface settings it changed. Several
/// macvlans on one base: the first one created keeps the old values, so remove them in the
/// reverse order.
pub async fn remove(handle: &rtnetlink::Handle, vmac: &Vmac) -> Result<(), SysError> {
    for c in &vmac.restore {
        if let Err(e) = write_sysctl(&c.path, &c.before) {
            tracing::warn!("{e}");
        }
    }
    match handle.link().del(vmac.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(SysError::netlink(
            format!("removing macvlan {}", vmac.name),
            e,
        )),
    }
}

/// Whether `name` is an interface, and its index.
async fn index_of(handle: &rtnetlink::Handle, name: &str) -> Result<Option<u32>, SysError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(SysError::netlink(format!("looking up {name}"), e)),
    }
}
