//! Network-namespace lab for tests, the demo and benchmarks.
//!
//! A [`Lab`] owns a set of network namespaces that share a unique prefix
//! (`td-{tag}-{pid}-{counter}`). Dropping the lab kills every process still
//! running in those namespaces and deletes them, also while a panic unwinds.
//! Namespaces left behind by a test run that was SIGKILLed are removed by
//! [`remove_stale`] the next time a lab is created. Nothing is ever created
//! in the host's own network namespace.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! tandem_lab::require_root!(Ok(()));
//! let pair = tandem_lab::Pair::new("doc")?;
//! assert!(pair.client.ping("10.0.0.1")?);
//! # Ok(()) }
//! ```

mod child;
pub mod control;
pub mod example;
pub mod flows;
pub mod gateway;
mod http;
mod lab;
mod netns;
mod pair;
pub mod peers;
mod ping;
pub mod vm;

use std::time::{Duration, Instant};

pub use child::Child;
pub use example::{example_config, Side, SIDE_A, SIDE_B};
pub use flows::{EchoServer, FlowOptions, FlowReport, FlowStat, TcpFlows, UdpFlow, UdpReport};
pub use gateway::Gateway;
pub use http::{http_get, serve_http};
pub use lab::{remove_stale, Lab};
pub use netns::{Addr, Netns};
pub use pair::{Pair, HOST_A, HOST_B, HOST_CLIENT};

/// Polls `f` every `every` until it returns `Some`, so tests wait for a
/// condition instead of sleeping a guessed amount of time.
///
/// `f` is always called at least once, and once more when the deadline has
/// passed; the error names `what` and the deadline.
pub fn wait_until<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(every.min(deadline - elapsed));
    }
}

/// True when we are root and `ip netns` works, i.e. lab tests can run here.
pub fn can_run() -> bool {
    nix::unistd::geteuid().is_root()
        && std::process::Command::new("ip")
            .args(["netns", "list"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Decides whether a root-only test should skip; used by [`require_root!`].
///
/// Returns true (skip) when [`can_run`] is false, after printing
/// "skipped: needs root". With `TANDEM_LAB_REQUIRE=1` in the environment it
/// panics instead, so CI cannot silently skip the lab tests.
#[doc(hidden)]
pub fn skip_without_root() -> bool {
    if can_run() {
        return false;
    }
    if std::env::var_os("TANDEM_LAB_REQUIRE").is_some_and(|v| v == "1") {
        panic!("TANDEM_LAB_REQUIRE=1 but lab tests cannot run: need root and a working `ip netns`");
    }
    eprintln!("skipped: needs root");
    true
}

/// Returns early from a test that needs root and network namespaces.
///
/// `require_root!()` returns `()`; in a test returning a value, pass it:
/// `require_root!(Ok(()))`.
#[macro_export]
macro_rules! require_root {
    () => {
        if $crate::skip_without_root() {
            return;
        }
    };
    ($ret:expr) => {
        if $crate::skip_without_root() {
            return $ret;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_value() {
        let mut n = 0;
        let v = wait_until(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                (n >= 3).then_some(n)
            },
        )
        .unwrap();
        assert_eq!(v, 3);
    }

    #[test]
    fn wait_until_times_out_with_message() {
        let err = wait_until::<()>(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("the impossible"), "{err}");
    }
}
