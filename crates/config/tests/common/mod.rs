//! What the configuration tests share: a text parsed as `k.conf`, expected to load or to be
//! refused, its diagnostics as the lines `--check` prints, and keepalived's keyword lists.
#![allow(dead_code)]

use std::path::Path;

use tandem_config::{parse_str, Config, ConfigError};

/// `text`, which must load.
pub fn ok(text: &str) -> Config {
    match parse_str(text, Path::new("k.conf")) {
        Ok(c) => c,
        Err(e) => panic!("should parse:\n{e}"),
    }
}

/// The errors of `text`, which must be refused.
pub fn errors(text: &str) -> Vec<String> {
    match parse_str(text, Path::new("k.conf")) {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Every warning of a loaded configuration.
pub fn warnings(c: &Config) -> Vec<String> {
    c.warnings.iter().map(|d| d.to_string()).collect()
}

/// The `BLOCK KEYWORD` pairs of tests/keywords/`name` (a list keepalived's parsers install).
pub fn keyword_list(name: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keywords")
        .join(name);
    std::fs::read_to_string(path)
        .expect("keyword list")
        .lines()
        .map(|l| {
            let (b, k) = l.split_once(' ').expect("`BLOCK KEYWORD`");
            (b.to_owned(), k.to_owned())
        })
        .collect()
}
