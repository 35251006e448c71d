//! What the Debian package carries besides the binaries, made from the sources it describes:
//! man pages from the clap definitions (tandemd(8), tandemctl(8)) and from
//! docs/tandem-toml.md (tandem.toml(5)), and bash and zsh completions from the clap
//! definitions. `cargo run -p xtask -- dist` writes them to target/dist for `scripts/package`.

pub mod man;
pub mod markdown;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

/// One generated file: where it goes under the output directory, and its text.
pub struct Artifact {
    /// Path relative to the output directory (`man/tandemd.8`, `completions/zsh/_tandemd`).
    pub path: PathBuf,
    /// The file's content.
    pub text: String,
}

/// The repository's root (for docs/ and the default output directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every man page and completion script.
pub fn artifacts() -> Result<Vec<Artifact>> {
    let toml_doc = repo_root().join("docs/tandem-toml.md");
    let markdown = std::fs::read_to_string(&toml_doc)
        .with_context(|| format!("reading {}", toml_doc.display()))?;
    let mut out = vec![
        man::tandemd()?,
        man::tandemctl()?,
        man::tandem_toml(&markdown),
    ];
    for (name, command) in commands() {
        for shell in [Shell::Bash, Shell::Zsh] {
            out.push(completion(shell, name, command.clone()));
        }
    }
    Ok(out)
}

/// The two command lines, by binary name.
pub fn commands() -> [(&'static str, clap::Command); 2] {
    [
        ("tandemd", tandemd_cli::command()),
        ("tandemctl", tandemctl_cli::command()),
    ]
}

/// A completion script, named as bash-completion and zsh look it up (`tandemd`, `_tandemd`).
fn completion(shell: Shell, name: &str, mut command: clap::Command) -> Artifact {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut text);
    let file = match shell {
        Shell::Zsh => format!("_{name}"),
        _ => name.to_string(),
    };
    Artifact {
        path: Path::new("completions").join(shell.to_string()).join(file),
        text: String::from_utf8_lossy(&text).into_owned(),
    }
}

/// Writes every artifact under `dir`, replacing what was there.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for artifact in artifacts()? {
        let path = dir.join(&artifact.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &artifact.text)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
