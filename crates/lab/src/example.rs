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

/// Where `etc/tandem.toml` expects the pair's key.
const EXAMPLE_KEY_FILE: &str = "/etc/tandem/sync.key";

/// `etc/keepalived.conf` and `etc/tandem.toml` for `side` (read from `etc`); the sync key is
/// written to `key_dir` (mode 0600, the same for both gateways) instead of `/etc/tandem`.
pub fn example_config(etc: &Path, side: Side, key_dir: &Path) -> Result<(String, String)> {
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
    anyhow::ensure!(
        toml.contains(EXAMPLE_KEY_FILE),
        "etc/tandem.toml no longer names {EXAMPLE_KEY_FILE}"
    );
    let key = write_key(key_dir)?;
    let toml = toml.replace(EXAMPLE_KEY_FILE, &key.display().to_string());
    Ok((keepalived, toml))
}

/// A private key file for a lab pair: 64 hex digits, mode 0600.
fn write_key(dir: &Path) -> Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("sync.key");
    if path.exists() {
        return Ok(path);
    }
    let key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{key}"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
