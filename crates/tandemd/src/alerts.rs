//! What tells the outside world about transitions besides the notify scripts: keepalived's
//! notify FIFOs and mail alerts, with keepalived's formats and rules.
//!
//! Both are fed at the same points as the notify scripts (each instance transition, each sync
//! group transition, the STOP transitions at shutdown) and neither can delay a transition: a
//! FIFO line is one non-blocking write, a letter goes to a queue a task empties.

mod fifo;
mod mail;

use std::collections::HashMap;
use std::time::Duration;

use tandem_config::{Config, FifoScript, NotifyFifo as FifoConfig};
use tandem_vrrp::State;
use tracing::{error, warn};

use crate::notify::Subject;
use crate::tracking::{located, Policy};

pub use fifo::FifoPlan;
pub use mail::{Letter, MailPlan};

/// Longest wait at shutdown for queued letters (the STOP alerts) to leave.
const MAIL_GRACE: Duration = Duration::from_secs(5);

/// The alerts a configuration asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsPlan {
    /// `notify_fifo`, then `vrrp_notify_fifo` (both get every line, as in keepalived).
    pub fifos: Vec<FifoPlan>,
    /// Mail, when `notification_email` and `smtp_server` are both set.
    pub mail: Option<MailPlan>,
    /// Instances and groups whose transitions are mailed (keepalived's `smtp_alert`
    /// precedence worked out).
    pub mailed: HashMap<(SubjectKind, String), bool>,
    /// `no_email_faults`.
    pub no_email_faults: bool,
}

/// [`Subject`] as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// A vrrp_instance.
    Instance,
    /// A vrrp_sync_group.
    Group,
}

impl From<Subject> for SubjectKind {
    fn from(s: Subject) -> SubjectKind {
        match s {
            Subject::Instance => SubjectKind::Instance,
            Subject::Group => SubjectKind::Group,
        }
    }
}

impl AlertsPlan {
    /// Reads global_defs and the instances' and groups' `smtp_alert`; what cannot work (a
    /// bad address, a refused script) is logged and left out.
    pub fn from_config(config: &Config, policy: &Policy, router_id: &str) -> AlertsPlan {
        let g = &config.global;
        let fifos = [
            ("notify_fifo", &g.notify_fifo, &g.notify_fifo_script),
            (
                "vrrp_notify_fifo",
                &g.vrrp_notify_fifo,
                &g.vrrp_notify_fifo_script,
            ),
        ]
        .into_iter()
        .filter_map(|(keyword, fifo, script)| {
            fifo_plan(keyword, fifo.as_ref()?, script.as_ref(), policy)
        })
        .collect();
        let mut mailed = HashMap::new();
        for i in &config.instances {
            mailed.insert(
                (SubjectKind::Instance, i.name.clone()),
                g.smtp_alert_for(i.smtp_alert),
            );
        }
        for s in &config.sync_groups {
            mailed.insert(
                (SubjectKind::Group, s.name.clone()),
                g.smtp_alert_for(s.smtp_alert),
            );
        }
        AlertsPlan {
            fifos,
            mail: mail_plan(config, router_id),
            mailed,
            no_email_faults: g.no_email_faults,
        }
    }

    /// Whether any script runs (for the default-user warning).
    pub fn runs_scripts(config: &Config) -> bool {
        let g = &config.global;
        (g.notify_fifo.is_some() && g.notify_fifo_script.is_some())
            || (g.vrrp_notify_fifo.is_some() && g.vrrp_notify_fifo_script.is_some())
    }
}

fn fifo_plan(
    keyword: &'static str,
    fifo: &FifoConfig,
    script: Option<&FifoScript>,
    policy: &Policy,
) -> Option<FifoPlan> {
    let owner = match policy.user_for(fifo.user.as_deref(), fifo.group.as_deref()) {
        Ok(user) => Some(user),
        // keepalived ignores the FIFO when its user does not exist.
        Err(e) if fifo.user.is_some() => {
            error!(
                "{}: {keyword} {} is not opened: {e}",
                located(&fifo.location),
                fifo.path.display()
            );
            return None;
        }
        Err(_) => None,
    };
    let script = script.and_then(|s| {
        let verdict = policy
            .user_for(s.user.as_deref(), s.group.as_deref())
            .and_then(|user| policy.check(&s.command, &user).map(|w| (user, w)));
        match verdict {
            Ok((user, warning)) => {
                if let Some(w) = warning {
                    warn!("{}: {keyword}_script: {w}", located(&s.location));
                }
                Some((s.command.clone(), user))
            }
            Err(e) => {
                error!(
                    "{}: {keyword}_script `{}` will not run: {e}",
                    located(&s.location),
                    s.command
                );
                None
            }
        }
    });
    Some(FifoPlan {
        keyword,
        path: fifo.path.clone(),
        owner,
        script,
    })
}

/// keepalived's mail settings with its defaults: sender `USER@HOSTNAME`, HELO the host name,
/// 30 s timeout; no mail without recipients and server.
fn mail_plan(config: &Config, router_id: &str) -> Option<MailPlan> {
    let g = &config.global;
    let server = g.smtp_server.clone()?;
    if g.notification_email.is_empty() {
        return None;
    }
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let to: Vec<lettre::Address> = (g.notification_email.iter())
        .filter_map(|a| match a.parse() {
            Ok(address) => Some(address),
            Err(e) => {
                error!("notification_email `{a}` is not an e-mail address ({e}): no mail to it");
                None
            }
        })
        .collect();
    let from_text = g.notification_email_from.clone().unwrap_or_else(|| {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| "root".into(), |u| u.name);
        format!("{user}@{host}")
    });
    let from = match from_text.parse() {
        Ok(from) => from,
        Err(e) => {
            error!("notification_email_from `{from_text}` is not an e-mail address ({e}): no mail is sent");
            return None;
        }
    };
    if to.is_empty() {
        return None;
    }
    Some(MailPlan {
        router_id: router_id.to_string(),
        from,
        to,
        server,
        port: g.smtp_port,
        helo: g.smtp_helo_name.clone().unwrap_or(host),
        timeout: g
            .smtp_connect_timeout
            .unwrap_or(mail::DEFAULT_TIMEOUT)
            .max(Duration::from_secs(1)),
    })
}

/// The FIFOs and the mailer while the daemon runs.
#[derive(Default)]
pub struct Alerts {
    plan: AlertsPlan,
    fifos: Vec<fifo::NotifyFifo>,
    mailer: Option<mail::Mailer>,
    /// The last state mailed per instance or group: keepalived mails a state once.
    last_mailed: HashMap<(SubjectKind, String), State>,
}

impl Alerts {
    /// Opens the FIFOs (starting their scripts) and starts the mailer.
    pub fn start(plan: AlertsPlan) -> Alerts {
        let mut alerts = Alerts::default();
        alerts.apply(plan);
        alerts
    }

    /// A reload: FIFOs and mail settings that did not change are kept (no reopen, no second
    /// reader script); the others are closed and opened anew.
    pub fn apply(&mut self, next: AlertsPlan) {
        let mut kept = Vec::new();
        for f in std::mem::take(&mut self.fifos) {
            if next.fifos.contains(f.plan()) {
                kept.push(f);
            } else {
                f.close();
            }
        }
        for p in &next.fifos {
            if !kept.iter().any(|f| f.plan() == p) {
                kept.extend(fifo::NotifyFifo::open(p.clone()));
            }
        }
        // Keep keepalived's order: notify_fifo first.
        kept.sort_by_key(|f| next.fifos.iter().position(|p| p == f.plan()));
        self.fifos = kept;
        if self.mailer.as_ref().map(|m| m.plan()) != next.mail.as_ref() {
            if let Some(old) = self.mailer.take() {
                // Its queue still drains; nothing waits for it.
                tokio::spawn(old.finish(MAIL_GRACE));
            }
            self.mailer = next.mail.clone().map(mail::Mailer::start);
        }
        self.plan = next;
    }

    /// `name` entered `state` (an instance with its effective priority; groups pass 0).
    pub fn transition(&mut self, subject: Subject, name: &str, state: State, priority: u8) {
        if !self.fifos.is_empty() {
            let line = fifo::line(subject, name, state, priority);
            for f in &mut self.fifos {
                f.write(&line);
            }
        }
        self.mail(subject, name, state);
    }

    /// keepalived's rule: mail when `smtp_alert` is on for it, the state is not FAULT under
    /// `no_email_faults`, and this state was not the last one mailed.
    fn mail(&mut self, subject: Subject, name: &str, state: State) {
        let Some(mailer) = self.mailer.as_mut() else {
            return;
        };
        let key = (SubjectKind::from(subject), name.to_string());
        let enabled = self.plan.mailed.get(&key).copied().unwrap_or(false);
        let last = self.last_mailed.get(&key).copied();
        if !mail_due(enabled, self.plan.no_email_faults, last, state) {
            return;
        }
        let router_id = mailer.plan().router_id.clone();
        if let Some(letter) = Letter::for_transition(&router_id, subject, name, state) {
            mailer.send(letter);
            self.last_mailed.insert(key, state);
        }
    }

    /// At shutdown, after the STOP transitions: closes the FIFOs and lets the queued letters
    /// leave (for a few seconds at most).
    pub async fn shutdown(&mut self) {
        for f in std::mem::take(&mut self.fifos) {
            f.close();
        }
        if let Some(mailer) = self.mailer.take() {
            mailer.finish(MAIL_GRACE).await;
        }
    }
}

/// keepalived's rule for one transition: `smtp_alert` on, not FAULT under `no_email_faults`,
/// and not the state mailed last (a FAULT left unmailed does not count as mailed).
fn mail_due(enabled: bool, no_email_faults: bool, last: Option<State>, state: State) -> bool {
    enabled && !(no_email_faults && state == State::Fault) && last != Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_mailed_once_and_faults_only_when_asked() {
        use State::*;
        assert!(mail_due(true, false, None, Backup));
        assert!(!mail_due(false, false, None, Master), "smtp_alert off");
        assert!(
            !mail_due(true, false, Some(Master), Master),
            "same state again"
        );
        assert!(mail_due(true, false, Some(Master), Fault));
        assert!(
            !mail_due(true, true, Some(Master), Fault),
            "no_email_faults"
        );
        // BACKUP, FAULT (not mailed), BACKUP: the second BACKUP is not news.
        assert!(!mail_due(true, true, Some(Backup), Backup));
    }
}
