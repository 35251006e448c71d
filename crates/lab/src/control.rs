//! Asking a tandemd in the lab something over its control socket, as `tandemctl` does.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

/// The daemon's reply to one command line, waiting at most `timeout` for it.
pub fn ask(control: &Path, command: &str, timeout: Duration) -> Result<String> {
    let mut s = UnixStream::connect(control)
        .with_context(|| format!("connecting to {}", control.display()))?;
    s.set_read_timeout(Some(timeout))?;
    writeln!(s, "{command}")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .with_context(|| format!("reading the reply to `{command}`"))?;
    Ok(reply)
}

/// One `key=value` counter of a reply (the `stats` output), 0 when it is missing.
pub fn counter(reply: &str, key: &str) -> u64 {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
        .unwrap_or(0)
}
