//! tandemctl: asks a running tandemd for its state over the control socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "tandemctl",
    version,
    about = "Query and steer a running tandemd"
)]
struct Args {
    /// tandemd's control socket.
    #[arg(
        long,
        short = 'S',
        value_name = "PATH",
        default_value = "/run/tandemd.sock"
    )]
    control: PathBuf,
    /// Command: `status` (instances, states, counters).
    #[arg(default_value = "status")]
    command: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut stream = UnixStream::connect(&args.control)
        .with_context(|| format!("connecting to {}", args.control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{}", args.command.join(" "))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .context("reading tandemd's reply")?;
    print!("{reply}");
    if reply.starts_with("error:") {
        std::process::exit(1);
    }
    Ok(())
}
