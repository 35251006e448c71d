//! The kernel side of tandem's VRRP: everything that opens a socket or
//! speaks netlink, kept apart from the sans-IO protocol core in
//! `tandem-vrrp`. It sends and receives raw VRRP packets (protocol 112)
//! without parsing them, adds and removes virtual addresses over rtnetlink,
//! announces moved addresses with gratuitous ARP and unsolicited neighbour
//! advertisements, looks up interfaces and reports link up/down changes.
//! Every error names the operation and the object it failed on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tandem_sys::SysError> {
//! use tandem_sys::{connect, interface, VrrpSocket, VRRP_GROUP_V4};
//! let (handle, _conn) = connect().await?;
//! let eth0 = interface(&handle, "eth0").await?;
//! let source = eth0.ipv4[0].0;
//! let sock = VrrpSocket::open_v4(&eth0.name, eth0.index, source, Some(VRRP_GROUP_V4))?;
//! sock.send(VRRP_GROUP_V4.into(), &[0x31, 1, 100, 1, 0, 100, 0, 0]).await?;
//! let advert = sock.recv().await?; // hand advert.payload to the VRRP core
//! # let _ = advert; Ok(()) }
//! ```

pub mod address_events;
pub mod addresses;
pub mod error;
pub mod gratuitous;
pub mod interfaces;
mod link_frames;
pub mod links;
mod packet_socket;
pub mod proc_events;
pub mod routes;
pub mod vmac;
mod vrrp_receive;
pub mod vrrp_socket;

pub use address_events::{watch_address_removals, AddressRemoved};
pub use addresses::{connect, AddressSpec, Addresses};
pub use error::SysError;
pub use gratuitous::{send_gratuitous_arp, send_unsolicited_na, ArpSender, NaSender};
pub use interfaces::{interface, interface_exists, InterfaceInfo};
pub use links::{watch_links, LinkEvent};
pub use proc_events::{ProcEvent, ProcEvents};
pub use routes::{next_hop, route_type, NextHop, RouteSpec, RuleSpec};
pub use vmac::{virtual_mac, Vmac};
pub use vrrp_socket::{
    Burst, BurstBuffer, Received, VrrpSocket, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6,
};
