//! keepalived's health checkers.
//!
//! - [`spec`]: the checkers' input (virtual servers, real servers, checkers)
//!   with keepalived's defaults and inheritance;
//! - [`Monitor`]: the sans-IO decisions of keepalived's `ipwrapper.c`
//!   (retries, alpha/omega, quorum with hysteresis, sorry server,
//!   inhibit_on_failure, misc_dynamic weights), tested with a simulated clock;
//! - [`probe`]: the async probes (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK);
//! - [`runner`]: a tokio task joining the two (and the `track_file` values of
//!   FILE_CHECK, which has no probe) and reporting [`Action`]s.

mod action;
pub mod digest;
mod monitor;
pub mod probe;
pub mod runner;
pub mod spec;

pub use action::{Action, CheckerId, Destination, Notification, NotifyKind, Outcome};
pub use monitor::Monitor;
pub use spec::{
    CheckKind, CheckerSpec, Connect, DnsSpec, FileCheckSpec, HttpProtocol, HttpSpec, MiscSpec,
    RealServerSpec, Script, SmtpSpec, SorryServer, Timing, TimingOverrides, UdpSpec, UrlSpec,
    VirtualServerSpec,
};

#[cfg(test)]
mod tests;
