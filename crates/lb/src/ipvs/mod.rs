//! IPVS through the kernel's `IPVS` generic netlink family: the messages
//! ([`message`]), IPVS's view of services, real servers and sync daemons
//! ([`model`]), the socket ([`IpvsSocket`]) and the [`Ipvs`] backend that
//! keeps the kernel's services equal to tandem's.

mod backend;
pub mod message;
pub mod model;
mod socket;

pub use backend::{describe, Ipvs, IPVS_PROC};
pub use model::{DaemonState, RealServer, RunningDaemon, SyncDaemon, VirtualService};
pub use socket::{frame_request, IpvsError, IpvsSocket};

#[cfg(test)]
mod tests;
