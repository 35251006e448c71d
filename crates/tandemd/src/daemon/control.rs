//! Requests from outside the loop: control-socket verbs (status, metrics, dumps, reload and
//! the replication verbs) and the signal-triggered keepalived dumps.

use std::time::Instant;

use tandem_control::KeepalivedDump;
use tracing::{info, warn};

use super::Daemon;
use crate::conntrack::{self, ControlCommand, Refusal};
use crate::control::Request;
use crate::signals::Signalled;
use crate::snapshot::Snapshot;
use crate::{dump, metrics, status};

impl Daemon {
    /// Writes one of keepalived's dumps where the operator expects it.
    pub(super) fn write_dump(&mut self, which: Signalled) {
        let paths = &self.running.dumps;
        let (path, text) = match which {
            Signalled::DumpData => (&paths.data, dump::data(&self.snapshot())),
            Signalled::DumpJson => (&paths.json, dump::json(&self.snapshot())),
            Signalled::DumpStats | Signalled::DumpStatsAndClear => {
                (&paths.stats, dump::stats(&self.snapshot()))
            }
            Signalled::Stop(_) | Signalled::Reload => return,
        };
        match dump::write(path, &text) {
            Ok(()) => info!("Wrote {}", path.display()),
            Err(e) => warn!("writing {}: {e}", path.display()),
        }
        if which == Signalled::DumpStatsAndClear {
            self.plan.router.clear_stats();
        }
    }

    /// Answers a control-socket request; replication verbs go to that service, whose answer
    /// may take seconds (a commit), without holding up this loop; `reload` runs here, as
    /// SIGHUP does.
    pub(super) async fn on_control(&mut self, request: Request) {
        let command = match conntrack::parse(&request.command) {
            Ok(command) => command,
            Err(e) => {
                let _ = request.reply.send(format!("error: {e}\n"));
                return;
            }
        };
        let reply = match (command, &self.replication) {
            (ControlCommand::Replication(r), Some(replication)) => {
                let answer = replication.handle.forward(r);
                tokio::spawn(async move {
                    let answer = answer.await.unwrap_or(Err(Refusal::Stopped));
                    let _ = request.reply.send(conntrack::render(&answer));
                });
                return;
            }
            (ControlCommand::Reload, _) => self.reload().await,
            (ControlCommand::StatusJson, _) => status::json(&self.snapshot()),
            (ControlCommand::Metrics, _) => metrics::render(&self.snapshot(), &self.recorder),
            (ControlCommand::KeepalivedDump(which), _) => match which {
                KeepalivedDump::Data => dump::data(&self.snapshot()),
                KeepalivedDump::Stats => dump::stats(&self.snapshot()),
                KeepalivedDump::Json => dump::json(&self.snapshot()) + "\n",
            },
            (ControlCommand::Status, _)
            | (ControlCommand::Replication(conntrack::Request::Stats), None) => {
                status::text(&self.snapshot())
            }
            (ControlCommand::Replication(_), None) => {
                "error: conntrack replication is not configured (add conntrackd.conf or a [sync] section)\n"
                    .into()
            }
        };
        let _ = request.reply.send(reply);
    }

    /// The node as every status output shows it, read once.
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut snapshot =
            Snapshot::take(&self.plan, &self.recorder, &self.trackers, Instant::now());
        snapshot.sync = self.replication.as_ref().and_then(|r| r.handle.health());
        snapshot.failover = self.failover.as_ref().map(|f| f.snapshot());
        snapshot
    }
}
