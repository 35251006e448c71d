//! tandemctl's command line, a library of its own so that the man page and the shell
//! completions (`cargo run -p xtask -- dist`) come from the definition tandemctl parses.

use std::path::PathBuf;

use std::ffi::OsStr;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::CommandFactory;

/// tandemd's control socket when neither `-S` nor TANDEM_CONTROL says otherwise.
pub const DEFAULT_CONTROL: &str = "/run/tandem/tandemd.sock";
/// Where tandemd put its socket before it moved into `/run/tandem`: asked when only it exists.
pub const LEGACY_CONTROL: &str = "/run/tandemd.sock";

/// Command line (conntrackd's single-letter verbs plus tandem's words).
#[derive(clap::Parser, Debug)]
#[command(
    name = "tandemctl",
    version,
    about = "Query and steer a running tandemd"
)]
pub struct Args {
    /// tandemd's control socket (also TANDEM_CONTROL).
    #[arg(
        long,
        short = 'S',
        value_name = "PATH",
        env = "TANDEM_CONTROL",
        default_value = DEFAULT_CONTROL
    )]
    pub control: PathBuf,
    /// conntrackd's configuration file: its `UNIX { Path }` names the control socket when a
    /// socket is there (tandemd started with `--control` on that path), else the default.
    #[arg(short = 'C', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Commit the external cache (or `internal`) to the kernel table.
    #[arg(short = 'c', num_args = 0..=1, default_missing_value = "external", value_name = "CACHE")]
    pub commit: Option<String>,
    /// Flush the caches (`internal`, `external`, or both).
    #[arg(short = 'f', num_args = 0..=1, default_missing_value = "all", value_name = "CACHE")]
    pub flush: Option<String>,
    /// Resynchronise the internal cache from the kernel table.
    #[arg(short = 'R')]
    pub resync: bool,
    /// Send a bulk update of the internal cache to the peer.
    #[arg(short = 'B')]
    pub bulk: bool,
    /// Ask the peer for a full resynchronisation.
    #[arg(short = 'n')]
    pub request_resync: bool,
    /// Shorten the kernel timers of the flows this node was forwarding.
    #[arg(short = 't')]
    pub shorten: bool,
    /// Statistics in conntrackd's layout: the general section, or `network`, `cache`,
    /// `runtime`, `link`, `rsqueue`, `process`, `queue`, `ct`, `expect`.
    #[arg(short = 's', num_args = 0..=1, default_missing_value = "general", value_name = "WHAT")]
    pub stats: Option<String>,
    /// Dump the internal cache.
    #[arg(short = 'i')]
    pub internal: bool,
    /// Dump the external cache.
    #[arg(short = 'e')]
    pub external: bool,
    /// `status` as one JSON document (see docs/control-and-health.md for its fields).
    #[arg(long)]
    pub json: bool,
    /// conntrackd's daemon mode: tandemd is the daemon, so this is refused with a pointer.
    #[arg(short = 'd')]
    pub daemon: bool,
    /// A tandem command and its argument (default `status`). `status` exits 2 when an
    /// instance is in FAULT or the sync peer is silent.
    #[arg(value_name = "COMMAND", value_parser = CommandWords)]
    pub command: Vec<String>,
}

/// The command words tandemd's control socket understands, with what each does: listed by
/// `--help`, the man page and the shell completions.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "status",
        "VRRP states, counters, drops, sync peer health (`status json`: one JSON document)",
    ),
    ("stats", "replication statistics"),
    (
        "metrics",
        "the counters in Prometheus' text exposition format",
    ),
    (
        "reload",
        "re-read the configuration files, as SIGHUP; a broken one is refused with its errors",
    ),
    ("commit", "commit the external cache to the kernel table"),
    ("flush", "flush the caches: `internal`, `external` or `all`"),
    (
        "resync",
        "resynchronise the internal cache from the kernel table",
    ),
    (
        "bulk",
        "send a bulk update of the internal cache to the peer",
    ),
    (
        "request-resync",
        "ask the peer for a full resynchronisation",
    ),
    (
        "shorten",
        "shorten the kernel timers of the flows this node was forwarding",
    ),
    (
        "dump",
        "print a cache (`internal`, `external`) or keepalived's dump (`data`, `stats`, `json`)",
    ),
    (
        "keygen",
        "write a new sync key to PATH (default /etc/tandem/sync.key), mode 0600",
    ),
];

/// Accepts any word (commands take arguments such as a cache name or a path) while offering
/// [`COMMANDS`] to help, the man page and completions.
#[derive(Clone, Copy, Debug)]
struct CommandWords;

impl TypedValueParser for CommandWords {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            COMMANDS
                .iter()
                .map(|(word, help)| PossibleValue::new(*word).help(*help)),
        ))
    }
}

/// The clap command, for parsing and for the man page and completion generators.
pub fn command() -> clap::Command {
    Args::command()
}
