//! What the [`Monitor`](super::Monitor) asks the daemon to do, and what a
//! probe reports back.

use std::net::SocketAddr;

use super::spec::Script;

/// Identifies a checker: virtual server, real server and checker index in
/// the order of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckerId {
    /// Index of the virtual server.
    pub vs: usize,
    /// Index of the real server within it.
    pub rs: usize,
    /// Index of the checker within the real server.
    pub check: usize,
}

/// A probe's result, as the decision logic needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Healthy,
    /// MISC_CHECK with `misc_dynamic` passed with this exit status
    /// (0, or 2..=255 which sets the weight to status - 2).
    HealthyWithStatus(u8),
    /// The check failed; the reason is for logs.
    Failed(String),
}

impl Outcome {
    /// Whether the check passed.
    pub fn is_healthy(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// One destination of a virtual service's pool as the forwarding backend
/// should program it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Real (or sorry) server.
    pub addr: SocketAddr,
    /// Weight; 0 keeps an inhibited server in place without new connections.
    pub weight: u32,
}

/// Which notification fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    /// A real server became alive (`notify_up`).
    RealServerUp,
    /// A real server left (`notify_down`).
    RealServerDown,
    /// The service gained its quorum (`quorum_up`).
    QuorumUp,
    /// The service lost its quorum (`quorum_down`).
    QuorumDown,
}

/// A notification: the configured script (run with the configured
/// arguments, keepalived appends none) and the notify FIFO line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub kind: NotifyKind,
    /// Virtual server index.
    pub vs: usize,
    /// Real server index, for the real-server kinds.
    pub rs: Option<usize>,
    /// Script to run, if configured.
    pub script: Option<Script>,
    /// The line keepalived writes to its notify FIFO
    /// (`RS [10.0.0.2]:tcp:80 10.0.0.1:80 UP`, `VS 10.0.0.1:80 DOWN`).
    pub fifo_line: String,
    /// True while stopping (omega): keepalived waits for these scripts.
    pub stopping: bool,
}

/// What the daemon must do after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Program this virtual service's pool, replacing the previous one in
    /// one atomic change.
    SetPool {
        /// Virtual server index.
        vs: usize,
        /// The whole pool.
        destinations: Vec<Destination>,
    },
    /// Run a notification.
    Notify(Notification),
    /// A log line in keepalived's words.
    Log(String),
}
