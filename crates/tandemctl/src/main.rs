//! tandemctl: asks a running tandemd for its state and steers conntrack replication.
//!
//! It speaks conntrackd's verbs too (`-c`, `-f`, `-R`, `-B`, `-n`, `-t`, `-s`, `-i`, `-e`), and
//! when installed or linked under the name `conntrackd` it behaves as that command line, so a
//! `primary-backup.sh` written for conntrackd keeps working while people migrate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

mod status_table;

/// Command line (conntrackd's single-letter verbs plus tandem's words).
#[derive(Parser, Debug)]
#[command(
    name = "tandemctl",
    version,
    about = "Query and steer a running tandemd"
)]
struct Args {
    /// tandemd's control socket (also TANDEM_CONTROL).
    #[arg(
        long,
        short = 'S',
        value_name = "PATH",
        env = "TANDEM_CONTROL",
        default_value = "/run/tandemd.sock"
    )]
    control: PathBuf,
    /// conntrackd's configuration file: its `UNIX { Path }` names the control socket when a
    /// socket is there (tandemd started with `--control` on that path), else the default.
    #[arg(short = 'C', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Commit the external cache (or `internal`) to the kernel table.
    #[arg(short = 'c', num_args = 0..=1, default_missing_value = "external", value_name = "CACHE")]
    commit: Option<String>,
    /// Flush the caches (`internal`, `external`, or both).
    #[arg(short = 'f', num_args = 0..=1, default_missing_value = "all", value_name = "CACHE")]
    flush: Option<String>,
    /// Resynchronise the internal cache from the kernel table.
    #[arg(short = 'R')]
    resync: bool,
    /// Send a bulk update of the internal cache to the peer.
    #[arg(short = 'B')]
    bulk: bool,
    /// Ask the peer for a full resynchronisation.
    #[arg(short = 'n')]
    request_resync: bool,
    /// Shorten the kernel timers of the flows this node was forwarding.
    #[arg(short = 't')]
    shorten: bool,
    /// Statistics in conntrackd's layout: the general section, or `network`, `cache`,
    /// `runtime`, `link`, `rsqueue`, `process`, `queue`, `ct`, `expect`.
    #[arg(short = 's', num_args = 0..=1, default_missing_value = "general", value_name = "WHAT")]
    stats: Option<String>,
    /// Dump the internal cache.
    #[arg(short = 'i')]
    internal: bool,
    /// Dump the external cache.
    #[arg(short = 'e')]
    external: bool,
    /// `status` as one JSON document (see docs/control-and-health.md for its fields).
    #[arg(long)]
    json: bool,
    /// conntrackd's daemon mode: tandemd is the daemon, so this is refused with a pointer.
    #[arg(short = 'd')]
    daemon: bool,
    /// A tandem command word: `status`, `stats`, `commit`, ... (default `status`). `status`
    /// exits 2 when an instance is in FAULT or the sync peer is silent.
    command: Vec<String>,
}

/// The socket to ask: the one `-C FILE` names when it exists, else `--control`.
fn control_socket(args: &Args) -> Result<PathBuf> {
    let Some(file) = &args.config else {
        return Ok(args.control.clone());
    };
    match tandem_config::conntrackd_control_path(file)? {
        Some(path) if path.exists() => Ok(path),
        Some(path) => {
            eprintln!(
                "tandemctl: {} names the control socket {}, which does not exist; asking {}",
                file.display(),
                path.display(),
                args.control.display()
            );
            Ok(args.control.clone())
        }
        None => Ok(args.control.clone()),
    }
}

fn main() -> Result<()> {
    // Usage errors exit 1, as conntrackd's do (clap's 2 means "unhealthy" for `status`).
    let args = Args::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() { 1 } else { 0 };
        let _ = e.print();
        std::process::exit(code);
    });
    if args.daemon {
        bail!("tandemd is the daemon: run `tandemd -f keepalived.conf -f conntrackd.conf`");
    }
    if args.command.first().map(String::as_str) == Some("keygen") {
        let path = args.command.get(1).map_or(DEFAULT_KEY_FILE, String::as_str);
        if args.command.len() > 2 {
            bail!("keygen takes one path, found {:?}", &args.command[1..]);
        }
        keygen(std::path::Path::new(path))?;
        println!("wrote a new sync key to {path} (mode 0600): copy it to the other node");
        return Ok(());
    }
    let mut commands = Vec::new();
    if let Some(cache) = &args.commit {
        commands.push(format!("commit {cache}"));
    }
    if let Some(cache) = &args.flush {
        commands.push(format!("flush {cache}"));
    }
    if args.resync {
        commands.push("resync".into());
    }
    if args.bulk {
        commands.push("bulk".into());
    }
    if args.request_resync {
        commands.push("request-resync".into());
    }
    if args.shorten {
        commands.push("shorten".into());
    }
    if let Some(what) = &args.stats {
        commands.push(format!("stats {what}"));
    }
    if args.internal {
        commands.push("dump internal".into());
    }
    if args.external {
        commands.push("dump external".into());
    }
    if !args.command.is_empty() {
        commands.push(args.command.join(" "));
    }
    if commands.is_empty() {
        commands.push("status".into());
    }
    if args.json {
        match commands.as_mut_slice() {
            [only] if only == "status" => only.push_str(" json"),
            _ => bail!("--json goes with `status` only"),
        }
    }
    let control = control_socket(&args)?;
    let mut unhealthy = false;
    for command in commands {
        // `status` for a person: the JSON document, laid out as a table.
        let table = command == "status";
        let asked = if table {
            "status json"
        } else {
            command.as_str()
        };
        let reply = ask(&control, asked)?;
        match serde_json::from_str::<serde_json::Value>(&reply) {
            Ok(status) if table => print!("{}", status_table::render(&status)),
            _ => print!("{reply}"),
        }
        if reply.starts_with("error:") {
            std::process::exit(1);
        }
        unhealthy |= reports_failure(&reply);
    }
    if unhealthy {
        // Monitoring checks read the exit status: 2 is "critical" to Nagios-style checks.
        std::process::exit(2);
    }
    Ok(())
}

/// Whether a status reply says the node is failing (an instance in FAULT, a silent sync
/// peer): its verdict line is `health=failing ...`.
fn reports_failure(reply: &str) -> bool {
    reply.lines().any(|l| l.starts_with("health=failing"))
        || serde_json::from_str::<serde_json::Value>(reply)
            .is_ok_and(|v| v["health"]["ok"] == serde_json::Value::Bool(false))
}

/// Where `etc/tandem.toml` looks for the sync key.
const DEFAULT_KEY_FILE: &str = "/etc/tandem/sync.key";

/// Writes 32 random bytes as 64 hex digits to a new file only its owner can read; an
/// existing key is never overwritten (the other node would no longer match).
fn keygen(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        // create_new is O_CREAT|O_EXCL: it also refuses a symlink planted at the path.
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten: remove it first to replace it on both nodes)",
                path.display()
            )
        })?;
    writeln!(file, "{key}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn ask(control: &PathBuf, command: &str) -> Result<String> {
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to tandemd at {}", control.display()))?;
    // A commit of a million entries takes seconds; a dead daemon should not hang scripts.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    writeln!(stream, "{command}")?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .context("reading tandemd's reply")?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::reports_failure;

    #[test]
    fn only_a_failing_verdict_fails() {
        assert!(!reports_failure("instance=VI_1 state=MASTER\nhealth=ok\n"));
        assert!(reports_failure(
            "instance=VI_1 state=FAULT\nhealth=failing fault=VI_1\n"
        ));
        assert!(reports_failure("health=failing sync=silent\n"));
        assert!(reports_failure(
            r#"{"health":{"ok":false,"failing":["sync=silent"]}}"#
        ));
        assert!(!reports_failure(r#"{"health":{"ok":true,"failing":[]}}"#));
        assert!(!reports_failure("datagrams_sent=3\n"));
    }
}
