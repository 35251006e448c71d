//! tandem's control protocol, shared by the daemon, `tandemctl` and the fuzzer: one request
//! line in, text out. An operator's words are read once, by [`parse`], into a
//! [`ControlCommand`]; the replication service answers a [`Request`] with a [`Reply`] or a
//! [`Refusal`], whose text is what the socket writes back; [`access`] says who may ask.
//!
//! ```
//! use tandem_control::{access, parse, Access, ControlCommand, Request};
//!
//! assert_eq!(parse("commit").unwrap(), ControlCommand::Replication(Request::Commit));
//! assert!(parse("flush bogus").is_err());
//! assert_eq!(access("flush"), Access::Root);
//! ```

mod access;
mod describe;
#[doc(hidden)]
pub mod fuzzing;
mod request;

pub use access::{access, Access};
pub use describe::describe;
pub use request::{
    parse, render, Caches, Committed, ControlCommand, KeepalivedDump, ParseError, Refusal, Reply,
    Request, StatsSection,
};
