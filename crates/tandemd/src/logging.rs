//! Where log lines go and in which form: plain text on stderr for a person or a pipe, with
//! syslog priority prefixes when systemd collects stderr (so journald files warnings as
//! warnings), journald's native protocol, syslog, or one JSON object per line for collectors.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use tandemd_cli::{LogFormat, LogTarget};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// journald's socket is not there.
    #[error("--log-target journald: cannot reach journald: {0}")]
    Journald(std::io::Error),
    /// The syslog connection failed.
    #[error("--log-target syslog: cannot open syslog")]
    Syslog,
    /// JSON lines only make sense on stderr: journald and syslog carry their own fields.
    #[error("--log-format json writes to stderr; it cannot be combined with --log-target {0}")]
    JsonElsewhere(&'static str),
}

/// Installs the process-wide logger.
pub fn init(filter: &str, format: LogFormat, target: LogTarget) -> Result<(), LogError> {
    match (format, target) {
        (LogFormat::Json, LogTarget::Journald) => return Err(LogError::JsonElsewhere("journald")),
        (LogFormat::Json, LogTarget::Syslog) => return Err(LogError::JsonElsewhere("syslog")),
        _ => {}
    }
    let filter = EnvFilter::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match target {
        LogTarget::Journald => {
            let layer = tracing_journald::layer()
                .map_err(LogError::Journald)?
                .with_syslog_identifier("tandemd".into());
            registry.with(layer).init();
        }
        LogTarget::Syslog => {
            let identity = c"tandemd";
            let writer = syslog_tracing::Syslog::new(
                identity,
                syslog_tracing::Options::LOG_PID,
                syslog_tracing::Facility::Daemon,
            )
            .ok_or(LogError::Syslog)?;
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .with_level(false);
            registry.with(layer).init();
        }
        LogTarget::Auto | LogTarget::Stderr => {
            let prefixes = target == LogTarget::Auto && stderr_is_journal();
            let base = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                // Colour escapes only for a person at a terminal, never into a file or pipe.
                .with_ansi(std::io::stderr().is_terminal());
            match (format, prefixes) {
                (LogFormat::Json, _) => registry.with(base.json().flatten_event(true)).init(),
                // journald stamps each line itself: the prefix carries the level, not time.
                (LogFormat::Text, true) => registry
                    .with(base.event_format(Prefixed(Format::default().without_time())))
                    .init(),
                (LogFormat::Text, false) => registry.with(base).init(),
            }
        }
    }
    Ok(())
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` holds its
/// `device:inode`, which stops matching once stderr is redirected elsewhere.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(&value, stat.st_dev, stat.st_ino)
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|(d, i)| d == dev && i == ino)
}

/// syslog priority of a tracing level (RFC 5424 severities).
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A line format with `<N>` in front of every line, which journald reads as its priority.
struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // journald splits on newlines: each line of a multi-line message (a diagnostic
        // with its source excerpt) gets the prefix, or its tail would be filed as info.
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let priority = syslog_priority(event.metadata().level());
        for part in line.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{priority}>{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_very_stream() {
        assert!(journal_stream_matches("8:1234", 8, 1234));
        assert!(!journal_stream_matches("8:1234", 8, 1235));
        assert!(!journal_stream_matches("8:1234", 9, 1234));
        assert!(!journal_stream_matches("garbage", 8, 1234));
        assert!(!journal_stream_matches("", 0, 0));
    }

    #[test]
    fn levels_map_to_syslog_severities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
    }
}
