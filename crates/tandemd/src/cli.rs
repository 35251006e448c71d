//! tandemd's command line. It is a library of its own so that the man page and the shell
//! completions (`cargo run -p xtask -- dist`) are generated from the very definition the
//! daemon parses, and cannot drift from it.

use std::path::PathBuf;

use clap::{CommandFactory, ValueEnum};

/// The control socket when `--control` is not given: inside the unit's `RuntimeDirectory=`.
pub const DEFAULT_CONTROL: &str = "/run/tandem/tandemd.sock";
/// Where keepalived writes its data dump (SIGUSR1).
pub const DATA_FILE: &str = "/tmp/keepalived.data";
/// Where keepalived writes its statistics dump (SIGUSR2).
pub const STATS_FILE: &str = "/tmp/keepalived.stats";
/// Where keepalived writes its JSON dump (signal `keepalived --signum=JSON`, SIGRTMIN+2).
pub const JSON_FILE: &str = "/tmp/keepalived.json";

/// Read when no `-f` is given: keepalived's own path (required), then tandem's replication
/// settings (only when the file exists).
pub const DEFAULT_FILES: &[(&str, bool)] = &[
    ("/etc/keepalived/keepalived.conf", true),
    ("/etc/tandem/tandem.toml", false),
];

/// Command line, with keepalived's spelling where one exists.
#[derive(clap::Parser, Debug)]
#[command(
    name = "tandemd",
    version,
    about = "VRRP failover and conntrack replication for Linux gateway pairs",
    long_about = "VRRP failover and conntrack replication for Linux gateway pairs.\n\n\
        tandemd reads keepalived.conf (and conntrackd.conf or tandem.toml), owns the virtual \
        addresses the way keepalived does and replicates the kernel's connection table to the \
        peer, so that a failover moves the addresses and the live connections together."
)]
pub struct Args {
    /// Configuration file: keepalived.conf, conntrackd.conf, or tandem's TOML (repeatable).
    /// Without any: /etc/keepalived/keepalived.conf, and /etc/tandem/tandem.toml when it exists.
    #[arg(short = 'f', long = "use-file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Validate the configuration and exit: 0 when usable, 1 with file:line:column errors.
    #[arg(long, short = 't', alias = "config-test")]
    pub check: bool,
    /// keepalived's config id: `@ID` lines are read only when ID is this, `@^ID` lines only
    /// when it is not; also `${_INSTANCE}`. Default: the host name up to its first dot.
    #[arg(short = 'i', long = "config-id", value_name = "ID")]
    pub config_id: Option<String>,
    /// Unix socket for tandemctl (its directory is created when missing).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// Group allowed to use the control socket (read-only verbs; changing verbs need root).
    /// Default: `tandem` when that group exists, else root's group.
    #[arg(long, value_name = "NAME")]
    pub control_group: Option<String>,
    /// Write the daemon's pid here (locked while it runs, removed on exit).
    #[arg(long, short = 'p', value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Where SIGUSR1 writes the data dump (keepalived's path by default).
    #[arg(long, value_name = "PATH", default_value = DATA_FILE)]
    pub data_file: PathBuf,
    /// Where SIGUSR2 writes the statistics dump.
    #[arg(long, value_name = "PATH", default_value = STATS_FILE)]
    pub stats_file: PathBuf,
    /// Where SIGRTMIN+2 (`keepalived --signum=JSON`) writes the JSON dump.
    #[arg(long, value_name = "PATH", default_value = JSON_FILE)]
    pub json_file: PathBuf,
    /// Log filter (tracing's env-filter syntax), also read from TANDEM_LOG.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Where logs go: `auto` is stderr, with syslog priority prefixes when systemd connected
    /// stderr to the journal (JOURNAL_STREAM).
    #[arg(long, value_enum, default_value = "auto")]
    pub log_target: LogTarget,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, ...).
    Json,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    /// stderr; with `<N>` priority prefixes when systemd connected stderr to the journal.
    Auto,
    /// stderr, never with prefixes.
    Stderr,
    /// journald's native protocol (structured fields, priorities).
    Journald,
    /// The local syslog daemon (/dev/log), facility daemon.
    Syslog,
}

/// The clap command, for the man page and completion generators.
pub fn command() -> clap::Command {
    Args::command()
}
