//! The daemons tandem is tested against, started the same way by every test and benchmark.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{Child, Netns};

/// Debian's keepalived in `ns`, VRRP only, in the foreground, logging to the child's log.
/// Its pid files go to `run_dir` (named by `tag`, stale ones removed first) so several can
/// run on one host; returns the child and the VRRP process's pid file.
pub fn spawn_keepalived(
    ns: &Netns,
    config: &Path,
    run_dir: &Path,
    tag: &str,
) -> Result<(Child, PathBuf)> {
    let pid = run_dir.join(format!("keepalived-{tag}.pid"));
    let vrrp_pid = run_dir.join(format!("keepalived-vrrp-{tag}.pid"));
    let _ = std::fs::remove_file(&pid);
    let _ = std::fs::remove_file(&vrrp_pid);
    let path = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
    let child = ns.spawn(&[
        "keepalived",
        "--dont-fork",
        "--log-console",
        "--log-detail",
        "--vrrp",
        "-f",
        &path(config)?,
        "-p",
        &path(&pid)?,
        "-r",
        &path(&vrrp_pid)?,
    ])?;
    Ok((child, vrrp_pid))
}
