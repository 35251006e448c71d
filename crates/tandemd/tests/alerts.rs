//! keepalived's notify FIFOs and mail alerts, end to end: a reader on the FIFO sees a
//! failover's lines in order, the FIFO's reader script runs as its user, and a small SMTP
//! server (aiosmtpd, Debian's python3-aiosmtpd) receives keepalived's letters.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Child, Pair};

/// uid of `nobody` on Debian.
const NOBODY: u32 = 65534;

/// A sync group G1 of VI_0 (eth0) and VI_1 (eth1) at `priority`, with `global` lines.
fn group_config(priority: u8, global: &str) -> String {
    group_g1(priority, global, "")
}

/// Reads everything a FIFO has so far, without blocking.
struct FifoReader {
    file: std::fs::File,
    text: String,
}

impl FifoReader {
    fn open(path: &Path) -> Result<FifoReader> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(FifoReader {
            file,
            text: String::new(),
        })
    }

    fn lines(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        self.text.lines().map(str::to_string).collect()
    }

    fn wait_for(&mut self, line: &str, deadline: Duration) -> Result<Vec<String>> {
        wait_until(&format!("FIFO line `{line}`"), deadline, ms(20), || {
            let lines = self.lines();
            lines.iter().any(|l| l == line).then_some(lines)
        })
        .with_context(|| format!("FIFO so far:\n{}", self.text))
    }
}

/// Where in `lines` each of `wanted` appears, in order (each after the previous one).
fn in_order(lines: &[String], wanted: &[&str]) -> Result<()> {
    let mut from = 0;
    for w in wanted {
        let at = lines[from..]
            .iter()
            .position(|l| l == w)
            .with_context(|| format!("`{w}` missing after line {from} of {lines:#?}"))?;
        from += at + 1;
    }
    Ok(())
}

#[test]
fn a_fifo_reader_sees_a_failover_in_order() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("fifo", 2)?;
    let dir = pair.lab.log_dir();
    let vrrp_fifo = dir.join("vrrp.fifo");
    let fifo = dir.join("notify.fifo");
    let copy = dir.join("fifo-script.out");
    // The reader script runs as nobody: it can write only this file.
    std::fs::write(&copy, "")?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o666))?;
    let script = dir.join("fifo-reader.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"uid $(id -u) fifo $1\" >> {out}\nexec cat \"$1\" >> {out}\n",
            out = copy.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let global_b = format!(
        "    vrrp_notify_fifo {}\n    notify_fifo {} nobody\n    notify_fifo_script {} nobody\n",
        vrrp_fifo.display(),
        fifo.display(),
        script.display()
    );
    let a_config = group_config(150, "");
    let mut a = start_tandemd(&pair, &pair.a, &a_config)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    let mut b = start_tandemd(&pair, &pair.b, &group_config(100, &global_b))?;
    wait_until("b's FIFO", Duration::from_secs(5), ms(10), || {
        vrrp_fifo.exists().then_some(())
    })?;
    // Created as keepalived creates it: a FIFO, 0644 under the umask, owned by its user.
    let meta = std::fs::metadata(&fifo)?;
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.uid(), NOBODY, "notify_fifo's owner");
    assert_eq!(meta.mode() & 0o022, 0, "no write for group or others");
    let mut reader = FifoReader::open(&vrrp_fifo)?;
    reader.wait_for("GROUP \"G1\" BACKUP 0", Duration::from_secs(10))?;

    // a stops: b takes over; a comes back with its higher priority: b backs off.
    a.child.signal(Signal::SIGTERM)?;
    a.child.wait_timeout(Duration::from_secs(10))?;
    reader.wait_for("GROUP \"G1\" MASTER 0", Duration::from_secs(10))?;
    let _a = start_tandemd(&pair, &pair.a, &a_config)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    let _ = reader.wait_for("GROUP \"G1\" BACKUP 0", Duration::from_secs(5))?;
    wait_until("b back to BACKUP", Duration::from_secs(10), ms(20), || {
        let lines = reader.lines();
        (lines
            .iter()
            .filter(|l| *l == "GROUP \"G1\" BACKUP 0")
            .count()
            == 2)
            .then_some(())
    })
    .with_context(|| reader.text.clone())?;
    // keepalived's STOP lines at shutdown, then the FIFO it created is gone.
    b.child.signal(Signal::SIGTERM)?;
    b.child.wait_timeout(Duration::from_secs(10))?;
    let lines = reader.wait_for("GROUP \"G1\" STOP 0", Duration::from_secs(5))?;
    println!("b's FIFO:\n{}", lines.join("\n"));
    for vi in ["VI_0", "VI_1"] {
        let mine: Vec<&String> = (lines.iter())
            .filter(|l| l.starts_with(&format!("INSTANCE \"{vi}\" ")))
            .collect();
        assert_eq!(
            mine,
            [
                &format!("INSTANCE \"{vi}\" BACKUP 100"),
                &format!("INSTANCE \"{vi}\" MASTER 100"),
                &format!("INSTANCE \"{vi}\" BACKUP 100"),
                &format!("INSTANCE \"{vi}\" STOP 100"),
            ],
            "{lines:#?}"
        );
        // Each group line comes after its members' lines of that state.
        for state in ["BACKUP", "MASTER"] {
            in_order(
                &lines,
                &[
                    &format!("INSTANCE \"{vi}\" {state} 100"),
                    &format!("GROUP \"G1\" {state} 0"),
                ],
            )?;
        }
    }
    in_order(
        &lines,
        &[
            "GROUP \"G1\" BACKUP 0",
            "GROUP \"G1\" MASTER 0",
            "GROUP \"G1\" BACKUP 0",
            "GROUP \"G1\" STOP 0",
        ],
    )?;
    assert_eq!(lines.len(), 12, "{lines:#?}");
    assert!(
        !fifo.exists() && !vrrp_fifo.exists(),
        "created FIFOs removed at stop"
    );

    // The reader script ran as nobody with the FIFO's path, and read the same lines.
    let copied = std::fs::read_to_string(&copy)?;
    assert!(
        copied.starts_with(&format!("uid {NOBODY} fifo {}\n", fifo.display())),
        "{copied}"
    );
    assert_eq!(
        copied.lines().skip(1).collect::<Vec<_>>(),
        lines,
        "{copied}"
    );
    let log = b.child.log();
    assert!(log.contains("notify_fifo_script"), "{log}");
    Ok(())
}

/// aiosmtpd storing what it receives in a maildir.
struct SmtpServer {
    _child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(ns: &tandem_lab::Netns, listen: &str, maildir: PathBuf) -> Result<SmtpServer> {
        let child = ns.spawn(&[
            "aiosmtpd",
            "-n",
            "-l",
            listen,
            "-c",
            "aiosmtpd.handlers.Mailbox",
            &maildir.display().to_string(),
        ])?;
        let (host, port) = listen.rsplit_once(':').context("HOST:PORT")?;
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        wait_until(
            "aiosmtpd listening",
            Duration::from_secs(10),
            ms(50),
            || {
                ns.exec(&["bash", "-c", &probe])
                    .ok()
                    .filter(|o| o.status.success())
                    .map(drop)
            },
        )
        .with_context(|| child.log())?;
        Ok(SmtpServer {
            _child: child,
            maildir,
        })
    }

    /// The letters received so far, as text.
    fn letters(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    fn wait_letter(&self, subject: &str, deadline: Duration) -> Result<String> {
        wait_until(&format!("letter `{subject}`"), deadline, ms(50), || {
            (self.letters().into_iter()).find(|l| l.contains(&format!("Subject: {subject}\n")))
        })
        .with_context(|| format!("letters so far: {:#?}", self.letters()))
    }
}

#[test]
fn transitions_are_mailed_as_keepalived_mails_them() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("mail")?;
    let server = SmtpServer::start(
        &pair.client,
        "10.0.0.100:2525",
        pair.lab.log_dir().join("maildir"),
    )?;
    let config = format!(
        "global_defs {{\n    router_id lb-a\n    notification_email {{\n        ops@example.net\n        noc@example.net\n    }}\n    notification_email_from tandem@example.net\n    smtp_server 10.0.0.100 2525\n    smtp_helo_name lb-a.example.net\n    smtp_connect_timeout 5\n    smtp_alert_vrrp on\n}}\n{}",
        vi_1(3, 51, 150, "")
    );
    let mut a = start_tandemd(&pair, &pair.a, &config)?;
    let master = server.wait_letter(
        "[lb-a] VRRP Instance VI_1 - Entering MASTER state",
        Duration::from_secs(15),
    )?;
    println!("{master}");
    for header in [
        "From: tandem@example.net\n",
        "To: ops@example.net, noc@example.net\n",
        "X-Mailer: tandem\n",
        "X-MailFrom: tandem@example.net\n",
        "X-RcptTo: ops@example.net, noc@example.net\n",
    ] {
        assert!(master.contains(header), "{header:?} in:\n{master}");
    }
    assert!(master.contains("\nDate: "), "{master}");
    assert!(
        master.contains("\n\n=> VRRP Instance is now owning VRRP VIPs <=\n"),
        "{master}"
    );
    let backup = server.wait_letter(
        "[lb-a] VRRP Instance VI_1 - Entering BACKUP state",
        Duration::from_secs(5),
    )?;
    assert!(backup.contains("=> VRRP Instance is no longer owning VRRP VIPs <="));
    // Shutdown mails STOP before the daemon exits.
    a.child.signal(Signal::SIGTERM)?;
    a.child.wait_timeout(Duration::from_secs(10))?;
    let stop = server.wait_letter(
        "[lb-a] VRRP Instance VI_1 - Stopping",
        Duration::from_secs(2),
    )?;
    assert!(stop.contains("=> VRRP Instance stopping <="), "{stop}");
    assert_eq!(server.letters().len(), 3, "{:#?}", server.letters());
    Ok(())
}

#[test]
fn an_unreachable_mail_server_never_delays_a_takeover() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("mailx")?;
    // Nothing answers ARP for .200: every connection attempt hangs until its timeout.
    let config = format!(
        "global_defs {{\n    script_user root\n    notification_email {{\n        ops@example.net\n    }}\n    smtp_server 10.0.0.200\n    smtp_connect_timeout 30\n    smtp_alert on\n}}\n{}",
        vi_1(3, 52, 150, "")
    );
    let started = Instant::now();
    let a = start_tandemd(&pair, &pair.a, &config)?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(10))?;
    let took = started.elapsed();
    println!(
        "takeover {} ms after start with a dead mail server",
        took.as_millis()
    );
    // Master_Down_Interval plus start-up, far below the 30 s connection timeout.
    assert!(
        took < master_down(150, 1.0) + Duration::from_secs(3),
        "{took:?}\n{}",
        a.child.log()
    );
    Ok(())
}

#[test]
fn failed_sends_are_logged_once_per_period() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("mailr")?;
    // The client answers, but nothing listens on the port: each send is refused at once.
    let config = format!(
        "global_defs {{\n    script_user root\n    notification_email {{\n        ops@example.net\n    }}\n    smtp_server 10.0.0.100 2526\n    smtp_alert on\n}}\n{}",
        vi_1(3, 53, 150, "")
    );
    let a = start_tandemd(&pair, &pair.a, &config)?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(10))?;
    // BACKUP and MASTER were both mailed (and refused): one line, the second held back.
    wait_until("the failure line", Duration::from_secs(5), ms(20), || {
        a.child
            .log()
            .contains("SMTP alert to 10.0.0.100:2526 failed")
            .then_some(())
    })
    .with_context(|| a.child.log())?;
    wait_until(
        "the MASTER letter tried",
        Duration::from_secs(5),
        ms(20),
        || {
            (a.child.log())
                .contains("VRRP Instance VI_1 - Entering MASTER state` not sent")
                .then_some(())
        },
    )
    .with_context(|| a.child.log())?;
    let log = a.child.log();
    assert_eq!(
        log.matches("SMTP alert to 10.0.0.100:2526 failed").count(),
        1,
        "{log}"
    );
    assert!(log.contains("(VI_1) Entering MASTER STATE"), "{log}");
    Ok(())
}
