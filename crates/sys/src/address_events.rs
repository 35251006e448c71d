//! Address removals made by other programs: an `ip addr flush`, a network manager
//! re-applying its configuration, or an operator's mistake can take a virtual address
//! off a master, which then goes on advertising while nobody answers for the address.
//! The daemon hears every removal here and decides whether it was one of its own.
//!
//! Uses its own rtnetlink connection subscribed to RTNLGRP_IPV4_IFADDR and
//! RTNLGRP_IPV6_IFADDR; additions are not reported.

use std::net::IpAddr;

use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::AsyncSocket;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

use crate::error::SysError;
use crate::interfaces::message_address;

/// An address left an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRemoved {
    /// Interface index it was on.
    pub ifindex: u32,
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// Receive buffer of the notification socket, in bytes: a flush of a busy interface
/// reports every address at once.
const EVENT_BUFFER: libc::c_int = 1 << 20;
/// How many removals may wait for the daemon before the watcher pauses.
const QUEUE: usize = 1024;

/// Starts watching address removals in the calling thread's network namespace. Removals
/// arrive on the returned channel; dropping it stops the watcher.
pub fn watch_address_removals() -> Result<mpsc::Receiver<AddressRemoved>, SysError> {
    let (mut conn, handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])
    .map_err(|e| SysError::socket("opening rtnetlink address-event connection", e))?;
    conn.socket_mut()
        .socket_mut()
        .set_rx_buf_sz(EVENT_BUFFER)
        .map_err(|e| SysError::socket("setting SO_RCVBUF on rtnetlink address-event socket", e))?;
    let conn = tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        // Keep the handle alive with the connection it belongs to.
        let _handle = handle;
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                () = tx.closed() => break,
            };
            let Some((message, _)) = message else {
                tracing::warn!("rtnetlink address-event connection closed");
                break;
            };
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(msg)) =
                message.payload
            else {
                continue;
            };
            let Some(address) = message_address(&msg) else {
                continue;
            };
            let removed = AddressRemoved {
                ifindex: msg.header.index,
                address,
                prefix_len: msg.header.prefix_len,
            };
            if tx.send(removed).await.is_err() {
                break;
            }
        }
        conn.abort();
    });
    Ok(rx)
}
