//! The example configuration from `etc/`, adapted to one gateway of the [`crate::Gateway`]
//! lab: what the demo, the end-to-end tests and the benchmarks run, so the files an operator
//! copies are the files that are tested.

use std::path::Path;

use anyhow::{Context, Result};

/// One gateway's settings that differ from the other's.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// VRRP priority of both instances.
    pub priority: u8,
    /// This gateway's address on the sync link.
    pub local: &'static str,
    /// The other gateway's address on the sync link.
    pub peer: &'static str,
}

/// gw-a: the preferred master.
pub const SIDE_A: Side = Side {
    priority: 150,
    local: "10.3.0.1",
    peer: "10.3.0.2",
};
/// gw-b: the backup.
pub const SIDE_B: Side = Side {
    priority: 100,
    local: "10.3.0.2",
    peer: "10.3.0.1",
};

/// `etc/keepalived.conf` and `etc/tandem.toml` for `side` (read from `etc`).
pub fn example_config(etc: &Path, side: Side) -> Result<(String, String)> {
    let read = |f: &str| {
        std::fs::read_to_string(etc.join(f))
            .with_context(|| format!("reading {}", etc.join(f).display()))
    };
    let keepalived =
        read("keepalived.conf")?.replace("priority 150", &format!("priority {}", side.priority));
    let toml = read("tandem.toml")?
        .replace(
            "local = \"10.3.0.1\"",
            &format!("local = \"{}\"", side.local),
        )
        .replace("peer = \"10.3.0.2\"", &format!("peer = \"{}\"", side.peer));
    Ok((keepalived, toml))
}
