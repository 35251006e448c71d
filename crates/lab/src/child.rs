//! [`Child`]: a background process inside a lab namespace.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Numbers log files so several processes with the same name do not clash.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A process started with [`Netns::spawn`](crate::Netns::spawn).
///
/// It runs in its own process group; dropping the handle SIGKILLs the group
/// and reaps the process, so a failing test never leaves daemons behind.
/// stdout and stderr are captured in a log file for post-mortems.
pub struct Child {
    inner: std::process::Child,
    status: Option<ExitStatus>,
    /// Read handle on the log; stays readable after the lab removes the file.
    log: File,
    log_path: PathBuf,
    what: String,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.inner.id())
            .field("what", &self.what)
            .field("status", &self.status)
            .field("log", &self.log_path)
            .finish()
    }
}

impl Child {
    /// Starts `cmd` inside namespace `ns`, output to a new file in `log_dir`.
    pub(crate) fn spawn(ns: &str, log_dir: &Path, cmd: &[&str]) -> anyhow::Result<Child> {
        let Some(program) = cmd.first() else {
            bail!("spawn: empty command");
        };
        let base = Path::new(program)
            .file_name()
            .and_then(|b| b.to_str())
            .unwrap_or("cmd");
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let short_ns = ns.rsplit('-').next().unwrap_or(ns);
        let log_path = log_dir.join(format!("{seq:03}-{short_ns}-{base}.log"));
        let out = File::create(&log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let err = out.try_clone()?;
        let log = File::open(&log_path)?;
        let what = format!("{cmd:?} in {ns}");
        let inner = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        Ok(Child {
            inner,
            status: None,
            log,
            log_path,
            what,
        })
    }

    /// Process id (`ip netns exec` execs the command, so this is its pid).
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `sig` to the process (e.g. SIGTERM to test a graceful stop).
    pub fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        if let Some(status) = self.try_wait()? {
            bail!("cannot signal {}: already exited ({status})", self.what);
        }
        kill(self.raw_pid(), sig).with_context(|| format!("sending {sig} to {}", self.what))
    }

    /// SIGKILLs the process group and reaps the process.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if self.status.is_none() {
            // The unreaped process keeps its pid (and thus the group id) reserved.
            let _ = killpg(self.raw_pid(), Signal::SIGKILL);
            self.status = Some(self.inner.wait().context("reaping killed child")?);
        }
        Ok(())
    }

    /// Exit status if the process has exited, without blocking.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.inner.try_wait().context("polling child")?;
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the process to exit; `None` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10).min(timeout - start.elapsed()));
        }
    }

    /// Everything the process wrote to stdout and stderr so far; tests print
    /// it when they fail.
    pub fn log(&self) -> String {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.log.read_at(&mut chunk, buf.len() as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Path of the log file (removed when the lab is dropped).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn raw_pid(&self) -> Pid {
        Pid::from_raw(self.inner.id() as i32)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
