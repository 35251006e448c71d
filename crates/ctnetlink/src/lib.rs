//! ctnetlink for tandem: the kernel side of conntrack replication.
//!
//! A conntrack entry becomes a [`Flow`], a small owned value (both tuples,
//! zone, status, timeout, mark, labels, TCP state) that the sync core
//! replicates. [`Conntrack`] dumps the table and creates, updates, deletes
//! and expires entries, packing many requests into each `sendmsg` and
//! collecting per-entry errors without a round trip per entry. [`Events`]
//! receives NEW / UPDATE / DESTROY events and reports a kernel overflow as
//! [`Event::Overflow`], so the caller resynchronises from a dump. NAT is
//! carried by the reply tuple and re-created as `CTA_NAT_SRC` /
//! `CTA_NAT_DST`; TCP sequence windows cannot be carried, so created TCP
//! entries get the be-liberal flag unless [`Conntrack::set_strict_tcp`].
//! The attribute layer is our own ([`codec`]); decoding never panics.
//!
//! ```no_run
//! use tandem_ctnetlink::{Conntrack, Family};
//! # fn main() -> Result<(), tandem_ctnetlink::Error> {
//! let mut ct = Conntrack::open()?;
//! let flows = ct.dump(Some(Family::Ipv4))?;
//! // ... on the peer, after a failover:
//! let report = ct.create_batch(&flows)?;
//! println!("{} created, {} refused", report.ok(), report.failed.len());
//! # Ok(()) }
//! ```

mod attr;
pub mod codec;
mod flow;
mod record;
mod socket;

pub use codec::{DecodeError, DumpFilter};
pub use flow::{Family, Flow, FlowKey, Status, TcpInfo, Tuple, L4};
#[doc(hidden)]
pub use record::fuzz_record;
pub use socket::{
    BatchReport, Conntrack, Error, Event, EventKind, Events, Groups, PauseHandle, BATCH_BYTES,
    EVENT_RCVBUF,
};
