//! Sans-IO failover coordinator: the order in which a gateway takes over (or hands back) the
//! addresses *and* the flows.
//!
//! The VRRP core decides who is master; the replication core keeps the flow tables in step.
//! Between them sits a sequence that must hold on every failover (docs/failover-sequence.md):
//!
//! - promotion: commit the peer's flows into the kernel first; addresses, announcements and
//!   scripts wait for the commit's answer (or `commit_wait`); then flush the peer's cache and
//!   send a bulk of this node's table. Adverts never wait;
//! - demotion (MASTER to BACKUP or FAULT): the effects, then shorten the timers of the flows
//!   this node forwarded and request a resync from the new master;
//! - start: preemption is held until the peer's full state arrived (or `preempt_wait`).
//!
//! [`Coordinator`] is that sequence as a value: it never reads a clock, opens a socket or
//! spawns a task. The daemon passes `now` and an [`Input`] and carries out the returned
//! [`Command`]s in order; every [`Step`] it runs is answered back, so a refusal becomes a
//! [`Warning`] instead of vanishing.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tandem_failover::{Command, Config, Coordinator, Effect, Input, Step, Transition};
//! use tandem_vrrp::State;
//!
//! /// A toy effect: adverts go at once, anything else waits for a promotion's commit.
//! #[derive(Debug, PartialEq)]
//! enum Fx { Advert, AddAddresses }
//! impl Effect for Fx {
//!     fn waits_for_commit(&self) -> bool { *self != Fx::Advert }
//! }
//!
//! let now = Instant::now();
//! let mut c = Coordinator::new(Config {
//!     commit_wait: Duration::from_secs(2),
//!     preempt_wait: Duration::from_secs(10),
//! });
//! let promotion = Transition { from: State::Backup, to: State::Master };
//! let out = c.handle(now, Input::Actions {
//!     transition: Some(promotion),
//!     actions: vec![Fx::AddAddresses, Fx::Advert],
//! });
//! // The commit leaves first, the advert at once; the address waits.
//! assert_eq!(out, [Command::Run(Step::Commit), Command::Effect(Fx::Advert)]);
//! let out = c.handle(now, Input::Answered { step: Step::Commit, result: Ok(()) });
//! assert_eq!(out, [
//!     Command::Effect(Fx::AddAddresses),
//!     Command::Run(Step::FlushExternal),
//!     Command::Run(Step::Bulk),
//! ]);
//! ```

mod coordinator;

pub use coordinator::{
    replicated_transition, Command, Config, Coordinator, Effect, Input, Step, Transition, Warning,
};
