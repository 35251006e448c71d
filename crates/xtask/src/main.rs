//! `cargo run -p xtask -- dist [DIR]`: writes the man pages and shell completions (default
//! target/dist), which `scripts/package` puts into the Debian package.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Build chores that are not compiling.
#[derive(Parser)]
#[command(name = "xtask")]
enum Task {
    /// Write man pages and bash / zsh completions.
    Dist {
        /// Output directory (default: target/dist in the repository).
        dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Task::parse() {
        Task::Dist { dir } => {
            let dir = dir.unwrap_or_else(|| xtask::repo_root().join("target/dist"));
            for path in xtask::write_all(&dir)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}
