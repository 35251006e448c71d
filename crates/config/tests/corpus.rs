//! keepalived.conf files that deployments use (tests/corpus/, origins in ORIGINS.md): tandem
//! accepts or refuses each exactly as `keepalived -t` (2.2.7) does.
//!
//! keepalived's verdicts are in tests/corpus/VERDICTS.tsv, written by
//! tests/corpus/keepalived-verdicts.sh; `verdict_table_matches_keepalived` re-runs that script
//! when keepalived is installed and the test runs as root, so the table cannot drift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tandem_config::{load_files_with, ConfigError, LoadOptions};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// One row of VERDICTS.tsv.
struct Verdict {
    refused: bool,
    first_error: String,
}

fn verdicts() -> BTreeMap<String, Verdict> {
    let table = std::fs::read_to_string(corpus_dir().join("VERDICTS.tsv")).expect("VERDICTS.tsv");
    let mut out = BTreeMap::new();
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "VERDICTS.tsv row `{line}`");
        let refused = match cols[1] {
            "refused" => true,
            "accepted" => false,
            other => panic!("VERDICTS.tsv: verdict `{other}` in `{line}`"),
        };
        out.insert(
            cols[0].to_owned(),
            Verdict {
                refused,
                first_error: cols[4].to_owned(),
            },
        );
    }
    out
}

/// The corpus files: every `*.conf` in tests/corpus.
fn corpus_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    files.sort();
    files
}

/// tandem's verdict: `Err` with the errors when refused, `Ok` with the warnings when accepted.
fn tandem(file: &str) -> Result<Vec<String>, Vec<String>> {
    // keepalived -t ran with its default config id, the host name; so does tandem here.
    let options = LoadOptions::default();
    match load_files_with(&[corpus_dir().join(file)], &options) {
        Ok(c) => Ok(c.warnings.iter().map(|d| d.to_string()).collect()),
        Err(ConfigError::Invalid { errors, .. }) => {
            Err(errors.iter().map(|d| d.to_string()).collect())
        }
        Err(e) => panic!("{file}: {e}"),
    }
}

#[test]
fn corpus_is_large_and_every_file_has_an_origin_and_a_verdict() {
    let files = corpus_files();
    assert!(files.len() >= 40, "only {} corpus files", files.len());
    let origins = std::fs::read_to_string(corpus_dir().join("ORIGINS.md")).expect("ORIGINS.md");
    let table = verdicts();
    for f in &files {
        assert!(
            origins.contains(&format!("`{f}`")),
            "{f} has no line in ORIGINS.md"
        );
        assert!(table.contains_key(f), "{f} has no row in VERDICTS.tsv");
    }
    assert_eq!(
        table.len(),
        files.len(),
        "VERDICTS.tsv rows for missing files"
    );
}

/// Files where tandem deliberately differs from `keepalived -t`, and why. Each is a file that
/// keepalived refuses and tandem accepts with located warnings.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    // keepalived resolves `smtp_server smtp.163.com` through DNS while reading the file, so its
    // verdict depends on the resolver; tandem resolves the name only when it sends a letter.
    (
        "Chuyio+keepalived_nginx.conf",
        "smtp_server names a host (DNS at parse time)",
    ),
    // keepalived -t fails on its own warning that a route without `dev` cannot be tracked;
    // tandem does not watch routes, and installs it.
    (
        "keepalived-samples__track_interface.conf",
        "virtual_routes: untracked route warned by keepalived",
    ),
    (
        "keepalived-samples__vrrp.routes.conf",
        "virtual_routes: untracked route warned by keepalived",
    ),
    (
        "keepalived-samples__vrrp.static_ipaddress.conf",
        "virtual_routes: untracked route warned by keepalived",
    ),
    // An instance with no virtual address is keepalived's "No VIP specified" configuration
    // error, yet keepalived runs it, and cloud set-ups rely on it (the notify scripts move an
    // address through the provider's API). tandem runs it too, with a warning.
    (
        "paololiu+aliyun-eni.conf",
        "no virtual_ipaddress: warned, not refused",
    ),
];

/// Files both refuse, where tandem does not make keepalived's first complaint, and why:
/// tandem's first error is further down.
const FIRST_ERROR_ELSEWHERE: &[(&str, &str)] = &[
    (
        "keepalived-samples__vrrp.rules.conf",
        "inside static_rules, a block tandem skips whole",
    ),
    (
        "angeloyang+magic.conf",
        "`smtp_server **`: tandem resolves the mail server when it sends a letter",
    ),
];

#[test]
fn tandem_agrees_with_keepalived_on_every_corpus_file() {
    let table = verdicts();
    let mut disagreements = Vec::new();
    let mut known = 0;
    for (file, expected) in &table {
        if KNOWN_DIFFERENCES.iter().any(|(f, _)| f == file) {
            assert!(
                expected.refused && tandem(file).is_ok(),
                "{file} is listed as a known difference but tandem and keepalived agree on it"
            );
            known += 1;
            continue;
        }
        match (tandem(file), expected.refused) {
            (Ok(_), false) | (Err(_), true) => {}
            (Ok(warnings), true) => disagreements.push(format!(
                "{file}: keepalived refuses it ({}), tandem accepts it with {} warning(s):\n  {}",
                expected.first_error,
                warnings.len(),
                warnings.join("\n  ")
            )),
            (Err(errors), false) => disagreements.push(format!(
                "{file}: keepalived accepts it, tandem refuses it:\n  {}",
                errors.join("\n  ")
            )),
        }
    }
    eprintln!(
        "corpus: tandem agrees with keepalived -t on {} of {} files ({known} known differences)",
        table.len() - disagreements.len() - known,
        table.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Where keepalived names a line for its first error, tandem has an error there, or in the
/// lines just before it: keepalived reports a block's errors where the block ends.
#[test]
fn tandem_refuses_at_the_line_keepalived_names() {
    let mut missed = Vec::new();
    for (file, expected) in verdicts() {
        let Some(line) = expected
            .first_error
            .strip_prefix("(Line ")
            .and_then(|r| r.split(')').next())
        else {
            continue;
        };
        let line: usize = line.parse().expect("keepalived line number");
        if FIRST_ERROR_ELSEWHERE.iter().any(|(f, _)| *f == file) {
            continue;
        }
        if let Err(errors) = tandem(&file) {
            let near = |e: &String| {
                (line.saturating_sub(8)..=line).any(|l| e.contains(&format!("{file}:{l}:")))
            };
            if !errors.iter().any(near) {
                missed.push(format!(
                    "{file}: keepalived: {}; tandem:\n  {}",
                    expected.first_error,
                    errors.join("\n  ")
                ));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Root only, and only where keepalived is installed: the table is what keepalived says today.
#[test]
fn verdict_table_matches_keepalived() {
    let installed = Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("Keepalived v2.2.7"));
    if !installed || !is_root() {
        eprintln!("skipped: needs root and keepalived 2.2.7");
        return;
    }
    let out = Command::new(corpus_dir().join("keepalived-verdicts.sh"))
        .output()
        .expect("run keepalived-verdicts.sh");
    assert!(
        out.status.success(),
        "keepalived-verdicts.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8_lossy(&out.stdout);
    let table = std::fs::read_to_string(corpus_dir().join("VERDICTS.tsv")).expect("VERDICTS.tsv");
    assert_eq!(
        fresh, table,
        "VERDICTS.tsv is stale: run tests/corpus/keepalived-verdicts.sh > tests/corpus/VERDICTS.tsv"
    );
}
