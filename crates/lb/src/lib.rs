//! Load balancing on the directors, keepalived's LVS half.
//!
//! [`check`] holds the health checkers: a sans-IO [`check::Monitor`] that
//! decides, with keepalived's rules, which real servers are in each virtual
//! service's pool, and async probes (TCP, HTTP, TLS, scripts) that feed it.

pub mod check;
