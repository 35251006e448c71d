//! Conntrack replication inside the daemon: the sans-IO sync core (`tandem-ctsync`) wired to
//! the kernel (`tandem-ctnetlink`) and a UDP socket on the sync link.

mod filter;
mod health;
mod kernel;
mod sections;
mod service;
mod warm;

use std::net::IpAddr;

pub use health::PeerHealth;
pub use service::{start, Answer, Handle, Notice};
pub use tandem_control::{parse, render, ControlCommand, Refusal, Request};

/// Every address configured on this host right now, for the own-address filter.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}
