//! The generated man pages and completions say what the command lines and
//! docs/tandem-toml.md say, and are well-formed for man and bash.

use std::process::{Command, Stdio};

use xtask::{artifacts, commands, repo_root, Artifact};

fn artifact(path: &str) -> Artifact {
    artifacts()
        .expect("generating")
        .into_iter()
        .find(|a| a.path.to_str() == Some(path))
        .unwrap_or_else(|| panic!("{path} is not generated"))
}

/// The roff text with its escapes for `-` undone, as a reader sees it.
fn man_text(path: &str) -> String {
    artifact(path).text.replace("\\-", "-")
}

/// Every option of both command lines, as `--long` and `-s`.
fn options(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .flat_map(|arg| {
            let long = arg.get_long().map(|l| format!("--{l}"));
            let short = arg.get_short().map(|s| format!("-{s}"));
            long.into_iter().chain(short)
        })
        .collect()
}

#[test]
fn man_pages_mention_every_option() {
    for (name, command) in commands() {
        let page = man_text(&format!("man/{name}.8"));
        let all = options(&command);
        assert!(all.len() >= 10, "{name}: only {all:?}");
        for option in all {
            assert!(page.contains(&option), "{name}.8 lacks {option}");
        }
    }
    let tandemd = man_text("man/tandemd.8");
    for option in [
        "--log-format",
        "--log-target",
        "--config-id",
        "--control",
        "--pid-file",
    ] {
        assert!(tandemd.contains(option), "tandemd.8 lacks {option}");
    }
    assert!(tandemd.contains("/run/tandem/tandemd.sock"));
    let tandemctl = man_text("man/tandemctl.8");
    for (word, _) in tandemctl_cli::COMMANDS {
        assert!(
            tandemctl.contains(word),
            "tandemctl.8 lacks the command {word}"
        );
    }
}

#[test]
fn tandem_toml_page_has_every_key_of_the_reference() {
    let doc = std::fs::read_to_string(repo_root().join("docs/tandem-toml.md")).unwrap();
    // The keys are the backticked words of each table row's first cell.
    let keys: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split('|')
                .nth(1)
                .unwrap_or("")
                .split('`')
                .skip(1)
                .step_by(2)
        })
        .collect();
    assert!(keys.len() >= 20, "found only {keys:?}");
    let page = man_text("man/tandem.toml.5");
    for key in keys {
        assert!(
            page.contains(&format!("\\fB{key}\\fR")),
            "tandem.toml.5 lacks {key}"
        );
    }
    for section in [".SH [sync]", ".SH [sync.filter]", ".TH TANDEM.TOML 5"] {
        assert!(page.contains(section), "tandem.toml.5 lacks {section}");
    }
}

#[test]
fn man_renders_the_pages_without_warnings() {
    let dir = tempdir("man");
    xtask::write_all(&dir).unwrap();
    for page in ["tandemd.8", "tandemctl.8", "tandem.toml.5"] {
        let path = dir.join("man").join(page);
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .stdin(Stdio::null())
            .output()
            .expect("running man (man-db; scripts/test installs it)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("SEE ALSO"), "{page} rendered as:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_offer_the_options_and_tandemctl_commands() {
    for (name, command) in commands() {
        let bash = artifact(&format!("completions/bash/{name}")).text;
        let zsh = artifact(&format!("completions/zsh/_{name}")).text;
        assert!(zsh.starts_with(&format!("#compdef {name}")), "{zsh}");
        for option in options(&command) {
            assert!(
                bash.contains(&option),
                "bash completion of {name} lacks {option}"
            );
            assert!(
                zsh.contains(&option),
                "zsh completion of {name} lacks {option}"
            );
        }
    }
    let bash = artifact("completions/bash/tandemctl").text;
    let zsh = artifact("completions/zsh/_tandemctl").text;
    for (word, _) in tandemctl_cli::COMMANDS {
        assert!(bash.contains(&format!(" {word}")), "bash: no {word}");
        assert!(zsh.contains(&format!("{word}\\:")), "zsh: no {word}");
    }
    let values = ["text", "json", "auto", "journald", "syslog"];
    let bash = artifact("completions/bash/tandemd").text;
    assert!(values.iter().all(|v| bash.contains(v)), "{bash}");
}

#[test]
fn bash_accepts_the_completion_scripts() {
    let dir = tempdir("bash");
    xtask::write_all(&dir).unwrap();
    for name in ["tandemd", "tandemctl"] {
        let script = dir.join("completions/bash").join(name);
        // Sourcing defines the function and registers it with `complete`.
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(". '{}' && complete -p {name}", script.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(name),
            "{name}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn daemon_and_client_agree_on_the_control_socket() {
    assert_eq!(tandemd_cli::DEFAULT_CONTROL, tandemctl_cli::DEFAULT_CONTROL);
    assert!(tandemd_cli::DEFAULT_CONTROL.starts_with("/run/tandem/"));
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-xtask-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
