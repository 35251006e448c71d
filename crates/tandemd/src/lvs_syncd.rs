//! IPVS's connection sync daemon (`lvs_sync_daemon` in global_defs), run as keepalived runs
//! it: in backup state from the start, switched to master state when the named VRRP
//! instance becomes MASTER (the backup daemon stopped first) and back to backup when it
//! leaves MASTER. At shutdown the running daemon is stopped before the instances release
//! their addresses, and not restarted in backup state by the instance leaving MASTER.

use tandem_config::LvsSyncDaemon;
use tandem_lb::ipvs::{DaemonState, SyncDaemon};
use tandem_lb::Ipvs;
use tandem_vrrp::State;
use tracing::{error, info, warn};

use crate::tracking::located;

/// One change to the kernel's sync daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Stop the daemon in this state.
    Stop(DaemonState),
    /// Start the daemon in this state.
    Start(DaemonState),
}

/// The daemon state an instance's VRRP state asks for: master only while MASTER, none once
/// the instance is stopped.
pub fn wanted(instance: State) -> Option<DaemonState> {
    match instance {
        State::Master => Some(DaemonState::Master),
        State::Stop => None,
        State::Init | State::Backup | State::Fault => Some(DaemonState::Backup),
    }
}

/// The steps from `running` to `want`: the other state's daemon stopped, then `want`'s
/// started (nothing when it already runs).
pub fn steps(running: Option<DaemonState>, want: Option<DaemonState>) -> Vec<Step> {
    match (running, want) {
        (Some(r), Some(w)) if r == w => vec![],
        (Some(r), Some(w)) => vec![Step::Stop(r), Step::Start(w)],
        (Some(r), None) => vec![Step::Stop(r)],
        (None, Some(w)) => vec![Step::Start(w)],
        (None, None) => vec![],
    }
}

/// The running sync daemon of one tandemd.
pub struct SyncDaemonDriver {
    ipvs: Ipvs,
    daemon: SyncDaemon,
    instance: String,
    running: Option<DaemonState>,
}

impl SyncDaemonDriver {
    /// Starts the daemon in backup state; `None` when none is configured, or (with a warning
    /// at the configuration line) when the kernel has no IPVS.
    pub fn start(config: Option<&LvsSyncDaemon>) -> Option<SyncDaemonDriver> {
        let c = config?;
        let daemon = SyncDaemon {
            interface: c.interface.clone(),
            sync_id: c.sync_id.unwrap_or(0).into(),
            maxlen: c.maxlen,
            port: c.port,
            ttl: c.ttl,
            group: c.group,
        };
        let ipvs = match Ipvs::open() {
            Ok(ipvs) => ipvs,
            Err(e) => {
                let at = located(&c.instance_location);
                warn!("{at}: lvs_sync_daemon: {e}; IPVS connections are not synchronised");
                return None;
            }
        };
        let mut driver = SyncDaemonDriver {
            ipvs,
            daemon,
            instance: c.instance.clone(),
            running: None,
        };
        driver.go(Some(DaemonState::Backup));
        Some(driver)
    }

    /// Follows a transition of a VRRP instance (others than the configured one are ignored).
    pub fn on_transition(&mut self, instance: &str, to: State) {
        if instance == self.instance {
            self.go(wanted(to));
        }
    }

    fn go(&mut self, want: Option<DaemonState>) {
        for step in steps(self.running, want) {
            let done = match step {
                Step::Stop(s) => self.ipvs.stop_daemon(s).map(|()| None),
                Step::Start(s) => self.ipvs.start_daemon(&self.daemon, s).map(|()| Some(s)),
            };
            match done {
                Ok(now) => {
                    self.running = now;
                    if let Some(s) = now {
                        info!(
                            "IPVS sync daemon: {} on {} (syncid {}) for ({})",
                            s.name(),
                            self.daemon.interface,
                            self.daemon.sync_id,
                            self.instance
                        );
                    }
                }
                Err(e) => {
                    error!("IPVS sync daemon: {e}");
                    return;
                }
            }
        }
    }

    /// Stops whichever daemon runs (at shutdown).
    pub fn stop(&mut self) {
        if let Some(s) = self.running.take() {
            match self.ipvs.stop_daemon(s) {
                Ok(()) => info!("IPVS sync daemon: {} stopped", s.name()),
                Err(e) => error!("IPVS sync daemon: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_only_while_the_instance_is_master_as_keepalived() {
        assert_eq!(wanted(State::Master), Some(DaemonState::Master));
        for s in [State::Backup, State::Fault, State::Init] {
            assert_eq!(wanted(s), Some(DaemonState::Backup));
        }
        assert_eq!(wanted(State::Stop), None, "keepalived stops it at shutdown");
    }

    #[test]
    fn switching_stops_the_other_daemon_before_starting() {
        use DaemonState::*;
        assert_eq!(steps(None, Some(Backup)), [Step::Start(Backup)]);
        assert_eq!(
            steps(Some(Backup), Some(Master)),
            [Step::Stop(Backup), Step::Start(Master)]
        );
        assert_eq!(
            steps(Some(Master), Some(Backup)),
            [Step::Stop(Master), Step::Start(Backup)]
        );
        assert!(steps(Some(Master), Some(Master)).is_empty());
        assert_eq!(steps(Some(Master), None), [Step::Stop(Master)]);
        assert!(steps(None, None).is_empty());
    }
}
