//! Virtual addresses: adding, removing and checking them over rtnetlink.
//!
//! Both directions are idempotent, because the daemon re-runs them after
//! restarts and link flaps: adding an address that is already there and
//! removing one that is already gone both succeed.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::AddressFamily;

use crate::error::{netlink_errno, SysError};
use crate::interfaces::{describe_index, message_address};

/// One address on one interface, as keepalived's `virtual_ipaddress` lines describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSpec {
    /// The address itself.
    pub address: IpAddr,
    /// Prefix length (32 / 128 for a host address).
    pub prefix_len: u8,
    /// Interface index the address lives on.
    pub ifindex: u32,
    /// IPv4 label such as `eth0:vip` (ignored for IPv6, which has no labels).
    pub label: Option<String>,
    /// IPv4 broadcast address; when `None` one is derived for prefixes shorter than /31.
    pub broadcast: Option<Ipv4Addr>,
    /// Raw `rtm_scope` value (0 global, 253 link, 254 host); `None` means global.
    pub scope: Option<u8>,
}

impl std::fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// Adds and removes addresses through one rtnetlink connection.
#[derive(Clone)]
pub struct Addresses {
    handle: rtnetlink::Handle,
}

/// Opens an rtnetlink connection and spawns its driver task on the current
/// tokio runtime; the handle is what [`Addresses`] and [`crate::interface`] use.
pub async fn connect() -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>), SysError> {
    let (conn, handle, _messages) = rtnetlink::new_connection()
        .map_err(|e| SysError::socket("opening rtnetlink connection", e))?;
    Ok((handle, tokio::spawn(conn)))
}

impl Addresses {
    /// Wraps a handle from [`connect`].
    pub fn new(handle: rtnetlink::Handle) -> Self {
        Addresses { handle }
    }

    /// Adds the address; an address that is already there is success. IPv6
    /// addresses are added without duplicate address detection so they can
    /// be used (and announced) at once.
    pub async fn add(&self, spec: &AddressSpec) -> Result<(), SysError> {
        let mut req = self
            .handle
            .address()
            .add(spec.ifindex, spec.address, spec.prefix_len);
        fill_message(req.message_mut(), spec);
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(self.error("adding", "to", spec, e).await),
        }
    }

    /// Removes the address; an address that is already gone is success.
    pub async fn remove(&self, spec: &AddressSpec) -> Result<(), SysError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(spec.address);
        msg.header.prefix_len = spec.prefix_len;
        msg.header.index = spec.ifindex;
        msg.attributes.push(AddressAttribute::Local(spec.address));
        if spec.address.is_ipv4() {
            msg.attributes.push(AddressAttribute::Address(spec.address));
        }
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if netlink_errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(self.error("removing", "from", spec, e).await),
        }
    }

    /// Whether the address (same prefix length) is configured on the interface.
    pub async fn present(&self, spec: &AddressSpec) -> Result<bool, SysError> {
        let mut req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(spec.ifindex);
        req.message_mut().header.family = family(spec.address);
        let mut stream = req.execute();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => {
                    if msg.header.prefix_len == spec.prefix_len
                        && message_address(&msg) == Some(spec.address)
                    {
                        return Ok(true);
                    }
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(self.error("looking for", "on", spec, e).await),
            }
        }
    }

    async fn error(
        &self,
        verb: &str,
        prep: &str,
        spec: &AddressSpec,
        e: rtnetlink::Error,
    ) -> SysError {
        let dev = describe_index(&self.handle, spec.ifindex).await;
        SysError::netlink(format!("{verb} {spec} {prep} {dev}"), e)
    }
}

fn family(a: IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Applies label, broadcast, scope and (for IPv6) NODAD to a new-address message.
fn fill_message(msg: &mut AddressMessage, spec: &AddressSpec) {
    if let Some(scope) = spec.scope {
        msg.header.scope = AddressScope::from(scope);
    }
    match spec.address {
        IpAddr::V4(_) => {
            if let Some(brd) = spec.broadcast {
                msg.attributes
                    .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
                msg.attributes.push(AddressAttribute::Broadcast(brd));
            }
            if let Some(label) = &spec.label {
                msg.attributes.push(AddressAttribute::Label(label.clone()));
            }
        }
        IpAddr::V6(_) => {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
}
