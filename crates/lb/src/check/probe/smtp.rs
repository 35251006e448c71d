//! SMTP_CHECK, keepalived's flow: connect, read the greeting (status 220),
//! send `HELO name`, read status 250, send `QUIT`, read one more line. Each
//! step must finish within `connect_timeout`. The exchange is four short
//! lines, so it is written here rather than pulled from an SMTP client crate.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use super::tcp::connect;
use crate::check::action::Outcome;
use crate::check::spec::{CheckerSpec, SmtpSpec};

/// keepalived's line buffer (`SMTP_BUFF_MAX`): a longer line is an error.
const LINE_MAX: u64 = 512;

/// A prepared SMTP_CHECK.
#[derive(Debug)]
pub struct SmtpProbe {
    spec: CheckerSpec,
    helo_name: String,
}

impl SmtpProbe {
    pub(super) fn new(spec: &CheckerSpec, smtp: &SmtpSpec) -> SmtpProbe {
        SmtpProbe {
            spec: spec.clone(),
            helo_name: smtp.helo_name.clone(),
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match self.exchange().await {
            Ok(()) => Outcome::Healthy,
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn exchange(&self) -> Result<(), String> {
        let to = self.spec.connect.to;
        let timeout = self.spec.timing.connect_timeout;
        let stream = connect(to, self.spec.connect.bind, timeout).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let greeting = line(&mut read, timeout).await?;
        if status(&greeting) != Some(220) {
            return Err(format!("bad greeting from {to}: {greeting:?}"));
        }
        send(&mut write, &format!("HELO {}\r\n", self.helo_name), timeout).await?;
        let helo = line(&mut read, timeout).await?;
        if status(&helo) != Some(250) {
            return Err(format!("bad HELO response from {to}: {helo:?}"));
        }
        send(&mut write, "QUIT\r\n", timeout).await?;
        line(&mut read, timeout).await?;
        Ok(())
    }
}

/// The status code at the start of a reply line (`220 ...`, `220-...`).
fn status(line: &str) -> Option<u16> {
    line.get(..3)?.parse().ok()
}

async fn line<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
    timeout: Duration,
) -> Result<String, String> {
    let mut text = String::new();
    let mut limited = AsyncReadExt::take(read, LINE_MAX);
    match tokio::time::timeout(timeout, limited.read_line(&mut text)).await {
        Err(_) => Err(format!("no SMTP reply within {timeout:?}")),
        Ok(Err(e)) => Err(format!("reading the SMTP reply: {e}")),
        Ok(Ok(0)) => Err("the SMTP server closed the connection".into()),
        Ok(Ok(_)) if !text.ends_with('\n') => Err("SMTP reply line too long or cut".into()),
        Ok(Ok(_)) => Ok(text.trim_end().to_string()),
    }
}

async fn send(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    text: &str,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, write.write_all(text.as_bytes())).await {
        Err(_) => Err(format!("sending {:?} timed out", text.trim_end())),
        Ok(Err(e)) => Err(format!("sending {:?}: {e}", text.trim_end())),
        Ok(Ok(())) => Ok(()),
    }
}
