//! Async probes: one attempt of a checker, reduced to an [`Outcome`].
//!
//! A [`Probe`] is built once per checker (regexes compiled, TLS set up) and
//! run at every check; each run ends within its timeout, so a probe never
//! holds the monitor up.

mod dns;
mod exchange;
mod http;
mod misc;
mod ping;
mod smtp;
mod tcp;
mod tls;
mod udp;

use std::time::Duration;

use super::action::Outcome;
use super::spec::{CheckKind, CheckerSpec};

pub use dns::response_verdict;
pub use misc::misc_outcome;
pub use udp::reply_matches;

/// Why a checker cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A checker kind tandem recognises but does not run yet; the daemon
    /// reports it as a located warning and treats the server as keepalived
    /// would treat a server without that checker.
    #[error("{kind} is not implemented yet: the real server is not checked by it")]
    NotImplemented {
        /// keepalived's keyword.
        kind: String,
    },
    /// `url { regex ... }` does not compile.
    #[error("url regex `{pattern}` is invalid: {source}")]
    BadRegex {
        /// The pattern.
        pattern: String,
        /// What the regex compiler said.
        source: regex::Error,
    },
    /// DNS_CHECK `type` or `name` that cannot make a query.
    #[error("DNS_CHECK query `{query_type} {name}` is invalid: {why}")]
    BadDnsQuery {
        /// `type`.
        query_type: String,
        /// `name`.
        name: String,
        /// What the DNS library said.
        why: String,
    },
    /// MISC_CHECK `user` names nobody on this system.
    #[error("MISC_CHECK user `{0}` does not exist")]
    UnknownUser(String),
}

/// A ready-to-run checker.
#[derive(Debug)]
pub enum Probe {
    /// TCP_CHECK.
    Tcp(tcp::TcpProbe),
    /// HTTP_GET or SSL_GET.
    Http(http::HttpProbe),
    /// MISC_CHECK.
    Misc(misc::MiscProbe),
    /// UDP_CHECK.
    Udp(udp::UdpProbe),
    /// PING_CHECK.
    Ping(ping::PingProbe),
    /// DNS_CHECK.
    Dns(dns::DnsProbe),
    /// SMTP_CHECK.
    Smtp(smtp::SmtpProbe),
}

impl Probe {
    /// Prepares `spec`; `vhost` is the real or virtual server's `virtualhost`
    /// used when the checker has none, and `misc_default_timeout` the
    /// virtual server's `delay_loop` (keepalived's default misc_timeout).
    pub fn new(
        spec: &CheckerSpec,
        vhost: Option<&str>,
        misc_default_timeout: Duration,
    ) -> Result<Probe, ProbeError> {
        match &spec.kind {
            CheckKind::Tcp => Ok(Probe::Tcp(tcp::TcpProbe::new(spec))),
            CheckKind::Http(http) => {
                Ok(Probe::Http(http::HttpProbe::new(spec, http, vhost, false)?))
            }
            CheckKind::Ssl(http) => Ok(Probe::Http(http::HttpProbe::new(spec, http, vhost, true)?)),
            CheckKind::Misc(misc) => Ok(Probe::Misc(misc::MiscProbe::new(
                misc,
                misc_default_timeout,
            )?)),
            CheckKind::Udp(udp) => Ok(Probe::Udp(udp::UdpProbe::new(spec, udp))),
            CheckKind::Ping => Ok(Probe::Ping(ping::PingProbe::new(spec))),
            CheckKind::Dns(dns) => Ok(Probe::Dns(dns::DnsProbe::new(spec, dns)?)),
            CheckKind::Smtp(smtp) => Ok(Probe::Smtp(smtp::SmtpProbe::new(spec, smtp))),
            other => Err(ProbeError::NotImplemented {
                kind: other.keyword().to_string(),
            }),
        }
    }

    /// Runs one attempt.
    pub async fn run(&self) -> Outcome {
        match self {
            Probe::Tcp(p) => p.run().await,
            Probe::Http(p) => p.run().await,
            Probe::Misc(p) => p.run().await,
            Probe::Udp(p) => p.run().await,
            Probe::Ping(p) => p.run().await,
            Probe::Dns(p) => p.run().await,
            Probe::Smtp(p) => p.run().await,
        }
    }
}
