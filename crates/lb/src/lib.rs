//! Load balancing for tandem's directors, keepalived's LVS half: health checkers that decide
//! which real servers are in each pool ([`check`]), and virtual services forwarded by nftables.
//!
//! A [`Service`] (virtual address or firewall mark, scheduler, forwarding
//! method, persistence, real servers with weights, sorry server) is planned
//! without I/O into nftables objects in one table tandem owns,
//! `inet tandem_lb` ([`plan::plan`]); [`plan::diff`] turns the change from
//! the last applied plan into operations, and [`Nftables`] sends them as
//! one nf_tables netlink batch, so a checker's change (a server out, a new
//! weight) takes effect atomically. Balanced connections are DNAT entries
//! in conntrack, which tandem already replicates to the peer director.
//!
//! Direct-routing services (`lb_kind DR`) go to a second table,
//! `netdev tandem_lb_dr` ([`plan::dr`]): an ingress chain on the device the
//! VIP arrives on sends each flow, chosen by a hash of the packet that both
//! directors compute alike, unchanged to its real server's MAC (`fwd`).
//!
//! ```no_run
//! use tandem_lb::{Backend, Nftables, Protocol, Scheduler, Service};
//! # fn main() -> Result<(), tandem_lb::Error> {
//! let web = Service::nat("10.0.0.100".parse().unwrap(), 80, Protocol::Tcp, Scheduler::WeightedRoundRobin)
//!     .server("10.0.1.1".parse().unwrap(), 8080, 1)
//!     .server("10.0.1.2".parse().unwrap(), 8080, 2);
//! let mut lb = Nftables::open()?;
//! lb.apply(&[web])?;
//! // ... on stop:
//! lb.clear()?;
//! # Ok(()) }
//! ```

mod backend;
pub mod check;
pub mod encode;
pub mod ipvs;
mod netlink;
pub mod objects;
pub mod plan;
pub mod schedule;
mod service;
mod watch;

pub use backend::{Backend, Error, Nftables};
pub use ipvs::{Ipvs, IPVS_PROC};
pub use netlink::{NetlinkError, NfTables};
pub use plan::{PlanError, DR_TABLE, TABLE};
pub use service::{
    DrPaths, Forwarding, Link, Load, Persistence, Protocol, Scheduler, Server, Service, ServiceKey,
};
pub use watch::{foreign_changes, ForeignChange, TableWatch};
