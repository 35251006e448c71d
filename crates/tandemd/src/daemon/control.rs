//! Requests from outside the loop: control-socket verbs (status, metrics, dumps, reload and
//! the replication verbs) and the signal-triggered keepalived dumps.

use std::fmt::Write as _;
use std::time::Instant;

use tandem_vrrp::{DropReason, State};
use tracing::{info, warn};

use super::Daemon;
use crate::conntrack::{self, ControlCommand, Refusal};
use crate::control::Request;
use crate::signals::Signalled;

impl Daemon {
    /// Writes one of keepalived's dumps where the operator expects it.
    pub(super) fn write_dump(&mut self, which: Signalled) {
        let paths = &self.running.dumps;
        let (path, text) = match which {
            Signalled::DumpData => (&paths.data, crate::dump::data(&self.plan, Instant::now())),
            Signalled::DumpJson => (&paths.json, crate::dump::json(&self.plan)),
            Signalled::DumpStats | Signalled::DumpStatsAndClear => {
                (&paths.stats, crate::dump::stats(&self.plan))
            }
            Signalled::Stop(_) | Signalled::Reload => return,
        };
        match crate::dump::write(path, &text) {
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
            (ControlCommand::StatusJson, _) => self.status_json(),
            (ControlCommand::Metrics, _) => self.metrics_text(),
            (ControlCommand::KeepalivedDump(which), _) => match which {
                tandem_control::KeepalivedDump::Data => crate::dump::data(&self.plan, Instant::now()),
                tandem_control::KeepalivedDump::Stats => crate::dump::stats(&self.plan),
                tandem_control::KeepalivedDump::Json => crate::dump::json(&self.plan) + "\n",
            },
            (ControlCommand::Status, _)
            | (ControlCommand::Replication(conntrack::Request::Stats), None) => self.status(),
            (ControlCommand::Replication(_), None) => {
                "error: conntrack replication is not configured (add conntrackd.conf or a [sync] section)\n"
                    .into()
            }
        };
        let _ = request.reply.send(reply);
    }

    pub(super) fn status(&self) -> String {
        let mut out = String::new();
        for (id, instance) in self.plan.router.instances() {
            let s = instance.stats();
            let _ = write!(
                out,
                "instance={} state={} priority={} vrid={} master={} adverts_rx={} adverts_tx={} \
                 priority_zero_rx={} priority_zero_tx={} became_master={} drops={}",
                self.plan.instances[id].name,
                instance.state(),
                instance.priority(),
                instance.config().vrid,
                instance
                    .master()
                    .map_or_else(|| "-".to_string(), |m| m.to_string()),
                s.adverts_received,
                s.adverts_sent,
                s.priority_zero_received,
                s.priority_zero_sent,
                s.became_master,
                s.total_drops(),
            );
            for (name, n) in s.drop_counts() {
                let _ = write!(out, " drop_{name}={n}");
            }
            out.push('\n');
            self.tracker_lines(id, &mut out);
        }
        let u = self.plan.router.unclaimed_stats();
        let _ = write!(
            out,
            "unclaimed drops={} unknown_vrid={}",
            u.total_drops(),
            u.drops(DropReason::UnknownVrid)
        );
        for (name, n) in u.drop_counts() {
            let _ = write!(out, " drop_{name}={n}");
        }
        out.push('\n');
        if let Some(f) = &self.failover {
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            let _ = write!(
                out,
                "failover waiting_for_commit={} holding_preemption={} steps_pending={} warnings={}",
                yes_no(f.coordinator.waiting_for_commit()),
                yes_no(f.coordinator.holding_preemption()),
                f.steps.len(),
                f.warnings,
            );
            if let Some(w) = &f.last_warning {
                let _ = write!(out, " last_warning={w}");
            }
            out.push('\n');
        }
        self.health_lines(&mut out);
        out
    }

    /// What needs attention: `fault=NAME` per instance in FAULT, `sync=silent`.
    pub(super) fn failing(&self, now: Instant) -> Vec<String> {
        let mut failing: Vec<String> = (self.plan.router.instances())
            .filter(|(_, instance)| instance.state() == State::Fault)
            .map(|(id, _)| format!("fault={}", self.plan.instances[id].name))
            .collect();
        let health = self.replication.as_ref().and_then(|r| r.handle.health());
        if health.is_some_and(|h| h.is_silent(now)) {
            failing.push("sync=silent".into());
        }
        failing
    }

    /// The sync peer's line and a verdict line (`health=ok`, or `health=failing` with the
    /// reasons: an instance in FAULT, a silent sync peer), which makes `tandemctl status`
    /// usable as a monitoring check.
    fn health_lines(&self, out: &mut String) {
        let now = Instant::now();
        if let Some(health) = self.replication.as_ref().and_then(|r| r.handle.health()) {
            let _ = writeln!(out, "{}", health.describe(now));
        }
        let failing = self.failing(now);
        if failing.is_empty() {
            out.push_str("health=ok\n");
        } else {
            let _ = writeln!(out, "health=failing {}", failing.join(" "));
        }
    }
}
