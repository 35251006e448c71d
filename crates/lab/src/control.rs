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

/// How many TCP connections to `port` the daemon's external cache holds in ESTABLISHED
/// state. A count of entries alone can be reached while a connection's last update is still
/// on its way, and an entry committed in SYN_SENT state rightly drops mid-stream packets.
pub fn established_in_external(control: &Path, port: u16) -> usize {
    let dump = ask(control, "dump external", Duration::from_secs(5)).unwrap_or_default();
    let orig = format!("dport={port} ");
    dump.lines()
        .filter(|l| l.starts_with("tcp ") && l.contains(" ESTABLISHED ") && l.contains(&orig))
        .count()
}
