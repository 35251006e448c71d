//! tandemctl: asks a running tandemd for its state and steers conntrack replication.
//!
//! It speaks conntrackd's verbs too (`-c`, `-f`, `-R`, `-B`, `-n`, `-t`, `-s`, `-i`, `-e`), and
//! when installed or linked under the name `conntrackd` it behaves as that command line, so a
//! `primary-backup.sh` written for conntrackd keeps working while people migrate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::FromArgMatches;
use serde_json::Value;
use tandemctl_cli::{Args, DEFAULT_CONTROL, LEGACY_CONTROL};

mod status_table;

/// The socket to ask: the one `-C FILE` names when it exists, else `--control` (see
/// [`moved_default`] for a daemon started before the default moved).
fn control_socket(args: &Args, control_is_default: bool) -> Result<PathBuf> {
    let control = moved_default(&args.control, control_is_default);
    let Some(file) = &args.config else {
        return Ok(control);
    };
    match tandem_config::conntrackd_control_path(file)? {
        Some(path) if path.exists() => Ok(path),
        Some(path) => {
            eprintln!(
                "tandemctl: {} names the control socket {}, which does not exist; asking {}",
                file.display(),
                path.display(),
                control.display()
            );
            Ok(control)
        }
        None => Ok(control),
    }
}

fn main() -> Result<()> {
    // Usage errors exit 1, as conntrackd's do (clap's 2 means "unhealthy" for `status`).
    let matches = tandemctl_cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| exit_usage(e));
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| exit_usage(e));
    let control_is_default = matches.value_source("control") == Some(ValueSource::DefaultValue);
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
    let control = control_socket(&args, control_is_default)?;
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
        // Read once, for the table and for the verdict.
        let document = serde_json::from_str::<Value>(&reply).ok();
        match &document {
            Some(status) if table => print!("{}", status_table::render(status)),
            _ => print!("{reply}"),
        }
        if reply.starts_with("error:") {
            std::process::exit(1);
        }
        unhealthy |= reports_failure(&reply, document.as_ref());
    }
    if unhealthy {
        // Monitoring checks read the exit status: 2 is "critical" to Nagios-style checks.
        std::process::exit(2);
    }
    Ok(())
}

/// Prints a usage error (or `--help`, `--version`) and exits: 1 for errors, as conntrackd.
fn exit_usage(e: clap::Error) -> ! {
    let code = if e.use_stderr() { 1 } else { 0 };
    let _ = e.print();
    std::process::exit(code);
}

/// The socket to talk to. tandemd's default moved from `/run/tandemd.sock` into the unit's
/// runtime directory; when neither `-S` nor TANDEM_CONTROL names one and only the old socket
/// exists (a daemon started before the upgrade), that daemon is the one to ask.
fn moved_default(given: &Path, is_default: bool) -> PathBuf {
    let (new, old) = (Path::new(DEFAULT_CONTROL), Path::new(LEGACY_CONTROL));
    if is_default && !new.exists() && old.exists() {
        return old.to_path_buf();
    }
    given.to_path_buf()
}

/// Whether a status reply says the node is failing (an instance in FAULT, a silent sync
/// peer): its verdict line is `health=failing ...`, or, for a reply that is the JSON
/// `document`, its `health.ok` is false.
fn reports_failure(reply: &str, document: Option<&Value>) -> bool {
    reply.lines().any(|l| l.starts_with("health=failing"))
        || document.is_some_and(|v| v["health"]["ok"] == Value::Bool(false))
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

fn ask(control: &Path, command: &str) -> Result<String> {
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
    /// [`super::reports_failure`] as `main` calls it.
    fn reports_failure(reply: &str) -> bool {
        let document = serde_json::from_str(reply).ok();
        super::reports_failure(reply, document.as_ref())
    }

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
