//! `virtual_server`, `real_server`, `sorry_server` and `virtual_server_group` as keepalived
//! 2.2 reads them: what its parser reports is an error here (so `tandemd --check` refuses what
//! `keepalived -t` refuses), what it silently ignores is a warning.

mod finish;
mod groups;
mod real_server;
mod sorry_server;
mod virtual_server;
mod words;

use std::time::Duration;

pub(crate) use finish::finish;
pub(crate) use groups::parse as virtual_server_group;
pub(crate) use virtual_server::parse as virtual_server;

/// keepalived's persistence timeout when persistence is implied (`persistence_timeout` with
/// no value, a granularity, a zero port).
const DEFAULT_PERSISTENCE: Duration = Duration::from_secs(360);
/// The longest persistence_timeout keepalived accepts: 31 days.
const MAX_PERSISTENCE_SECS: u32 = 31 * 86400;
/// IPVS weights are signed 32-bit.
const MAX_WEIGHT: u32 = i32::MAX as u32;
