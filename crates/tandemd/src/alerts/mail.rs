//! Mail alerts as keepalived writes them: subject `[router_id] VRRP Instance VI_1 - Entering
//! MASTER state`, a one-line body (`=> VRRP Instance is now owning VRRP VIPs <=`), sent to
//! every `notification_email` address through `smtp_server` in plain SMTP.
//!
//! Sending happens in a task of its own fed by a bounded queue: a transition only queues its
//! letter, so a slow or dead mail server never delays one. A failed send is logged at most
//! once per period, with how many failed since the last line.

use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tandem_vrrp::State;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::log_limit::LogLimiter;
use crate::notify::Subject;

/// keepalived's default `smtp_connect_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Letters waiting for the mail server at most; more are dropped (and counted in the log).
const QUEUE: usize = 64;

/// Where and how mail goes, from global_defs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailPlan {
    /// `router_id` (or the host name): the subject's `[...]`.
    pub router_id: String,
    /// `notification_email_from` (default `USER@HOSTNAME`, as keepalived).
    pub from: Address,
    /// `notification_email`.
    pub to: Vec<Address>,
    /// `smtp_server`'s host.
    pub server: String,
    /// `smtp_server`'s port.
    pub port: u16,
    /// `smtp_helo_name` (default the host name).
    pub helo: String,
    /// `smtp_connect_timeout`: for the connection and each reply.
    pub timeout: Duration,
}

/// One alert: subject and body as keepalived words them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The whole subject line.
    pub subject: String,
    /// The body's line.
    pub body: String,
}

impl Letter {
    /// The letter for `name` entering `state`; `None` for a state keepalived sends no mail
    /// for (INIT).
    pub fn for_transition(
        router_id: &str,
        subject: Subject,
        name: &str,
        state: State,
    ) -> Option<Letter> {
        let (what, body) = match (subject, state) {
            (_, State::Init) => return None,
            (Subject::Instance, State::Master) => (
                "Entering MASTER state",
                "=> VRRP Instance is now owning VRRP VIPs <=",
            ),
            (Subject::Instance, State::Backup) => (
                "Entering BACKUP state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (Subject::Instance, State::Fault) => (
                "Entering FAULT state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (Subject::Instance, State::Stop) => ("Stopping", "=> VRRP Instance stopping <="),
            (Subject::Group, State::Master) => (
                "Entering MASTER state",
                "=> All VRRP group instances are now in MASTER state <=",
            ),
            (Subject::Group, State::Backup) => (
                "Entering BACKUP state",
                "=> All VRRP group instances are now in BACKUP state <=",
            ),
            (Subject::Group, State::Fault) => (
                "Entering FAULT state",
                "=> All VRRP group instances are now in FAULT state <=",
            ),
            (Subject::Group, State::Stop) => (
                "Stopping",
                "=> All VRRP group instances are now stopping <=",
            ),
        };
        let kind = match subject {
            Subject::Instance => "Instance",
            Subject::Group => "Group",
        };
        Some(Letter {
            subject: format!("[{router_id}] VRRP {kind} {name} - {what}"),
            body: format!("{body}\r\n"),
        })
    }
}

/// The sending task's end of the queue.
pub struct Mailer {
    plan: MailPlan,
    queue: mpsc::Sender<Letter>,
    task: tokio::task::JoinHandle<()>,
    /// Letters dropped because the queue was full.
    dropped: LogLimiter,
}

impl Mailer {
    /// Starts the sending task.
    pub fn start(plan: MailPlan) -> Mailer {
        let (queue, letters) = mpsc::channel(QUEUE);
        let task = tokio::spawn(send_all(plan.clone(), letters));
        Mailer {
            plan,
            queue,
            task,
            dropped: LogLimiter::default(),
        }
    }

    /// The settings it sends with.
    pub fn plan(&self) -> &MailPlan {
        &self.plan
    }

    /// Queues a letter; never waits.
    pub fn send(&mut self, letter: Letter) {
        if self.queue.try_send(letter).is_err() {
            if let Some(n) = self.dropped.hit(Instant::now(), 1) {
                warn!(
                    "SMTP alert queue full ({QUEUE} letters waiting for {}): {n} alert(s) dropped",
                    self.plan.server
                );
            }
        }
    }

    /// Stops taking letters and gives the queued ones up to `grace` to leave.
    pub async fn finish(self, grace: Duration) {
        drop(self.queue);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            warn!("SMTP alerts still unsent after {grace:?} at shutdown: given up");
            task.abort();
        }
    }
}

/// The sending task: one letter after the other, each in its own SMTP session as keepalived
/// does it.
async fn send_all(plan: MailPlan, mut letters: mpsc::Receiver<Letter>) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(plan.server.clone())
        .port(plan.port)
        .hello_name(ClientId::Domain(plan.helo.clone()))
        .timeout(Some(plan.timeout))
        .build();
    let mut failures = LogLimiter::default();
    while let Some(letter) = letters.recv().await {
        let message = match message(&plan, &letter) {
            Ok(m) => m,
            Err(e) => {
                warn!("SMTP alert `{}` could not be written: {e}", letter.subject);
                continue;
            }
        };
        match transport.send(message).await {
            Ok(_) => debug!("SMTP alert successfully sent: {}", letter.subject),
            Err(e) => {
                debug!("SMTP alert `{}` not sent: {e}", letter.subject);
                if let Some(n) = failures.hit(Instant::now(), 1) {
                    let more = if n > 1 {
                        format!(" ({n} failed since the last line)")
                    } else {
                        String::new()
                    };
                    warn!(
                        "SMTP alert to {}:{} failed: {e}{more}",
                        plan.server, plan.port
                    );
                }
            }
        }
    }
}

/// keepalived's headers (Date, From, Subject, X-Mailer, To) and body.
fn message(plan: &MailPlan, letter: &Letter) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(Mailbox::new(None, plan.from.clone()))
        .subject(letter.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Mailer"),
            "tandem".into(),
        ));
    for to in &plan.to {
        builder = builder.to(Mailbox::new(None, to.clone()));
    }
    builder.body(letter.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_bodies_are_keepalived_s() {
        let l = Letter::for_transition("lb1", Subject::Instance, "VI_1", State::Master).unwrap();
        assert_eq!(
            l.subject,
            "[lb1] VRRP Instance VI_1 - Entering MASTER state"
        );
        assert_eq!(l.body, "=> VRRP Instance is now owning VRRP VIPs <=\r\n");
        let l = Letter::for_transition("lb1", Subject::Instance, "VI_1", State::Fault).unwrap();
        assert_eq!(l.subject, "[lb1] VRRP Instance VI_1 - Entering FAULT state");
        assert_eq!(
            l.body,
            "=> VRRP Instance is no longer owning VRRP VIPs <=\r\n"
        );
        let l = Letter::for_transition("lb1", Subject::Instance, "VI_1", State::Stop).unwrap();
        assert_eq!(l.subject, "[lb1] VRRP Instance VI_1 - Stopping");
        let l = Letter::for_transition("lb1", Subject::Group, "G1", State::Backup).unwrap();
        assert_eq!(l.subject, "[lb1] VRRP Group G1 - Entering BACKUP state");
        assert_eq!(
            l.body,
            "=> All VRRP group instances are now in BACKUP state <=\r\n"
        );
        assert!(Letter::for_transition("lb1", Subject::Group, "G1", State::Init).is_none());
    }

    #[test]
    fn the_message_carries_every_recipient_and_the_mailer_header() {
        let plan = MailPlan {
            router_id: "lb1".into(),
            from: "tandem@example.net".parse().unwrap(),
            to: vec![
                "ops@example.net".parse().unwrap(),
                "noc@example.net".parse().unwrap(),
            ],
            server: "192.0.2.25".into(),
            port: 25,
            helo: "lb1".into(),
            timeout: DEFAULT_TIMEOUT,
        };
        let letter =
            Letter::for_transition("lb1", Subject::Instance, "VI_1", State::Backup).unwrap();
        let text = String::from_utf8(message(&plan, &letter).unwrap().formatted()).unwrap();
        assert!(text.contains("From: tandem@example.net\r\n"), "{text}");
        assert!(
            text.contains("To: ops@example.net, noc@example.net\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: [lb1] VRRP Instance VI_1 - Entering BACKUP state\r\n"));
        assert!(text.contains("X-Mailer: tandem\r\n"));
        assert!(text.contains("Date: "));
        assert!(text.ends_with("=> VRRP Instance is no longer owning VRRP VIPs <=\r\n"));
    }
}
