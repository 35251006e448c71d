//! Binding AF_PACKET sockets to one interface, shared by the gratuitous ARP sender and the
//! VRRP frame sender.

use std::os::fd::AsRawFd;

use socket2::Socket;

use crate::error::SysError;

/// Binds `sock` to interface `ifindex`, keeping the protocol it was opened with. Binding
/// needs a `sockaddr_ll` for the interface; getifaddrs() returns exactly that for every link
/// (family AF_PACKET, `sll_ifindex` set, protocol 0), which spares building one by hand.
pub(crate) fn bind_to_link(
    sock: &Socket,
    ifindex: u32,
    op: &dyn Fn(&str) -> String,
) -> Result<(), SysError> {
    let link = nix::ifaddrs::getifaddrs()
        .map_err(|e| SysError::socket(op("listing interfaces for"), e))?
        .filter_map(|ifa| ifa.address)
        .find(|a| {
            a.as_link_addr()
                .is_some_and(|l| l.ifindex() == ifindex as usize)
        })
        .ok_or_else(|| {
            SysError::socket(
                op("finding the link of"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
    nix::sys::socket::bind(sock.as_raw_fd(), &link).map_err(|e| SysError::socket(op("binding"), e))
}
