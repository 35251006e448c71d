//! The [`Backend`] trait and the nftables implementation (IPVS's is in
//! [`crate::ipvs`]).

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
    /// IPVS refused a request or did not answer (the services before it in
    /// the same apply did take effect).
    #[error(transparent)]
    Ipvs(#[from] crate::ipvs::IpvsError),
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
    /// What [`Backend::clear`] removes, in words for the log.
    fn holdings(&self) -> String;
    /// The netlink port changes are made through, when the backend keeps its state in
    /// nf_tables tables that another program could remove (see [`crate::TableWatch`]).
    fn nf_tables_port(&self) -> Option<u32> {
        None
    }
    /// Whether the nf_tables table `family`/`name` is one this backend made.
    fn owns_table(&self, _family: u8, _name: &str) -> bool {
        false
    }
    /// Forgets what was applied, so the next [`Backend::apply`] replaces everything: after
    /// another program changed or removed it, a difference from the last plan would not
    /// put it back.
    fn forget(&mut self) {}
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

    fn holdings(&self) -> String {
        format!("tables {} and {}", crate::TABLE, crate::DR_TABLE)
    }

    fn nf_tables_port(&self) -> Option<u32> {
        Some(self.nl.port())
    }

    fn owns_table(&self, family: u8, name: &str) -> bool {
        (family == NFPROTO_INET && name == crate::TABLE)
            || (family == NFPROTO_NETDEV && name == crate::DR_TABLE)
    }

    fn forget(&mut self) {
        self.applied = None;
    }
}
