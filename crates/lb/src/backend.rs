//! The [`Backend`] trait and its two implementations.

use crate::netlink::{NetlinkError, NfTables};
use crate::objects::Ruleset;
use crate::plan::{diff, plan, Op, PlanError};
use crate::service::Service;

/// Why services could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The services cannot be expressed (nothing was changed).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The kernel refused or did not answer (nothing was changed).
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// This backend cannot run on this kernel.
    #[error("{0}")]
    Unavailable(String),
}

/// A forwarding backend: makes the kernel balance exactly `services`.
///
/// Every call is one atomic change: after an error the previous services
/// are still in force.
pub trait Backend {
    /// Replaces the balanced services with `services`.
    fn apply(&mut self, services: &[Service]) -> Result<(), Error>;
    /// Removes everything this backend created (and nothing else).
    fn clear(&mut self) -> Result<(), Error>;
}

/// nftables: tables `inet tandem_lb` (NAT) and `netdev tandem_lb_dr` (direct
/// routing), applied through netlink.
pub struct Nftables {
    nl: NfTables,
    applied: Option<Ruleset>,
}

impl Nftables {
    /// Opens the netlink socket (in the calling thread's namespace).
    /// Nothing is changed until the first [`Backend::apply`], which also
    /// replaces a table left by an earlier run.
    pub fn open() -> Result<Nftables, Error> {
        Ok(Nftables {
            nl: NfTables::open()?,
            applied: None,
        })
    }

    /// What was last applied.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// The netlink port of the socket changes are made through (see [`crate::TableWatch`]).
    pub fn port(&self) -> u32 {
        self.nl.port()
    }

    /// Whether the table `family`/`name` is one this backend made.
    pub fn owns(&self, family: u8, name: &str) -> bool {
        (family == NFPROTO_INET && name == crate::TABLE)
            || (family == NFPROTO_NETDEV && name == crate::DR_TABLE)
    }

    /// Forgets what was applied, so the next [`Backend::apply`] replaces the whole table:
    /// after another program changed or removed it, a difference from the last plan would
    /// not put it back.
    pub fn forget(&mut self) {
        self.applied = None;
    }
}

/// The `inet` family's number in nf_tables messages (NFPROTO_INET).
const NFPROTO_INET: u8 = 1;
/// The `netdev` family's number (NFPROTO_NETDEV).
const NFPROTO_NETDEV: u8 = 5;

impl Backend for Nftables {
    fn apply(&mut self, services: &[Service]) -> Result<(), Error> {
        let next = plan(services)?;
        let ops = diff(self.applied.as_ref(), &next);
        if let Err(e) = self.nl.apply(&ops) {
            return Err(e.into());
        }
        self.applied = Some(next);
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Error> {
        self.nl.apply(&[Op::DeleteTable, Op::DeleteDrTable])?;
        self.applied = None;
        Ok(())
    }
}

/// Where the kernel shows IPVS when the `ip_vs` module is loaded.
pub const IPVS_PROC: &str = "/proc/net/ip_vs";

/// IPVS through generic netlink: not built yet; this kernel has no `ip_vs`
/// (the nftables backend is the one built and tested here).
pub struct Ipvs;

impl Ipvs {
    /// Fails with a clear reason: no `ip_vs` here, or not implemented yet.
    pub fn open() -> Result<Ipvs, Error> {
        if !std::path::Path::new(IPVS_PROC).exists() {
            return Err(Error::Unavailable(format!(
                "IPVS is not available: {IPVS_PROC} does not exist (no ip_vs module); \
                 use the nftables backend"
            )));
        }
        Err(Error::Unavailable(
            "the IPVS backend is not implemented yet; use the nftables backend".to_string(),
        ))
    }
}

impl Backend for Ipvs {
    fn apply(&mut self, _services: &[Service]) -> Result<(), Error> {
        Err(Error::Unavailable("ip_vs not available".to_string()))
    }

    fn clear(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
