//! The checks the fuzzer runs on arbitrary configuration text, shared with the corpus replay
//! tests so both exercise exactly the same code.

use std::path::{Component, Path, PathBuf};

use crate::{lexer, native, parse_keepalived, tree, values, ConfigError, Diagnostic};

/// Where fuzzed keepalived.conf text pretends to live: a directory of small fixed files in
/// the repository, so `include` lines have something to read, to nest and to loop over.
fn sandbox_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/fuzz.conf")
}

/// The config id fuzzed text is read with, so `@gw-a` lines are taken and others left out.
const FUZZ_CONFIG_ID: Option<&str> = Some("gw-a");

/// Whether every `include` of `text` stays inside the sandbox directory: relative, with no
/// `..`. Text whose includes could reach other files is parsed without following them.
fn includes_stay_inside(text: &str, file: &Path) -> bool {
    lexer::include_paths(text, file, FUZZ_CONFIG_ID)
        .iter()
        .all(|p| {
            let p = Path::new(p);
            p.is_relative() && !p.components().any(|c| c == Component::ParentDir)
        })
}

/// Whether the `key_file` a TOML text names, if any, is relative with no `..` (a file of the
/// working directory, which the key-file checks refuse or read as any other).
fn key_file_stays_inside(text: &str) -> bool {
    use figment2::providers::{Format, Toml};
    match figment2::Figment::from(Toml::string(text)).find_value("sync.key_file") {
        Err(_) => true,
        Ok(value) => value.as_str().is_some_and(|p| {
            let p = Path::new(p);
            p.is_relative() && !p.components().any(|c| c == Component::ParentDir)
        }),
    }
}

fn render_all(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        let text = d.render();
        assert!(text.contains(&d.message), "{text:?} shows its message");
    }
}

/// `parse_str` never panics on the text (lossily converted from the bytes), a failure has at
/// least one error, and every error and warning renders.
pub fn fuzz_keepalived(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let file = sandbox_file();
    let result = if includes_stay_inside(&text, &file) {
        crate::parse_with_id(&text, &file, FUZZ_CONFIG_ID)
    } else {
        let lexed = lexer::lex_alone(&text, &file, FUZZ_CONFIG_ID);
        let mut tree_errors = Vec::new();
        let stmts = tree::build(&lexed.tokens, &mut tree_errors);
        parse_keepalived(lexed, &stmts, tree_errors)
    };
    match result {
        Ok(config) => render_all(&config.warnings),
        Err(ConfigError::Invalid { errors, warnings }) => {
            assert!(!errors.is_empty(), "a failure names an error");
            render_all(&errors);
            render_all(&warnings);
        }
        Err(e @ ConfigError::Io { .. }) => panic!("parsing text read no file, yet: {e}"),
    }
}

/// The replication parsers never panic on the text: as a tandem.toml `[sync]` section (unless
/// its `key_file` could name any file on the host) and as a conntrackd.conf (never following
/// includes); their diagnostics render.
pub fn fuzz_sync(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if key_file_stays_inside(&text) {
        if let Err(errors) = native::parse(&text, Path::new("fuzz.toml")) {
            assert!(!errors.is_empty(), "a failure names an error");
            render_all(&errors);
        }
    }
    let file = Path::new("conntrackd.conf");
    let lexed = lexer::lex_alone(&text, file, FUZZ_CONFIG_ID);
    let mut ctx = values::Ctx::default();
    let stmts = tree::build(&lexed.tokens, &mut ctx.errors);
    let _ = crate::conntrackd::parse(&stmts, crate::Location::default(), &mut ctx);
    lexed.sources.attach(&mut ctx.errors);
    lexed.sources.attach(&mut ctx.warnings);
    render_all(&ctx.errors);
    render_all(&ctx.warnings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_that_could_leave_the_sandbox_are_not_followed() {
        let file = sandbox_file();
        for text in [
            "include /dev/zero\n",
            "include {a,/dev/zero}\n",
            "include ../../../../../../dev/zero\n",
            "include nested/{x,../../..}/etc/passwd\n",
            "vrrp_instance A {\n}\ninclude a.conf /etc/*\n",
            "$D=/dev\ninclude ${D}/zero\n",
            "@gw-a include /dev/zero\n",
            "include ${_PWD}/x.conf\n",
        ] {
            assert!(!includes_stay_inside(text, &file), "{text:?}");
        }
        for text in [
            "include nested/*.conf\ninclude *.conf\n",
            "\"include\" /dev/zero\n",
            "notify /dev/zero\n",
        ] {
            assert!(includes_stay_inside(text, &file), "{text:?}");
        }
        fuzz_keepalived(b"include nested/*.conf\ninclude {instance,bad,loop}.conf\n");
    }

    #[test]
    fn key_files_that_could_be_any_host_file_are_not_read() {
        for text in [
            "[sync]\nkey_file = \"/dev/zero\"\n",
            "[sync]\n\"key\\u005ffile\" = \"/dev/zero\"\n",
            "sync.key_file = \"../../x\"\n",
            "[sync]\nkey_file = 3\n",
        ] {
            assert!(!key_file_stays_inside(text), "{text:?}");
        }
        for text in [
            "[sync]\nkey_file = \"sync.key\"\n",
            "[sync]\n",
            "not toml [",
        ] {
            assert!(key_file_stays_inside(text), "{text:?}");
        }
    }
}
