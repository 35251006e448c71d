//! The check the fuzzer runs on arbitrary request lines, shared with the corpus replay test so
//! both exercise exactly the same code.

use crate::{access, parse, Access, ControlCommand, Request};

/// Whether a command changes the caches, the kernel table or the configuration.
fn changes_state(command: ControlCommand) -> bool {
    match command {
        ControlCommand::Status | ControlCommand::StatusJson | ControlCommand::Metrics => false,
        ControlCommand::Reload => true,
        ControlCommand::KeepalivedDump(_) => false,
        ControlCommand::Replication(Request::Stats | Request::Section(_) | Request::Dump(_)) => {
            false
        }
        ControlCommand::Replication(_) => true,
    }
}

/// `parse` and `access` never panic on the bytes (as UTF-8 when they are, and lossily
/// converted); a line that parses to a changing command needs root; errors render; and the
/// answer depends only on the words, not on the whitespace between them.
pub fn fuzz_line(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    check(&String::from_utf8_lossy(data));
}

fn check(line: &str) {
    let parsed = parse(line);
    let needs = access(line);
    match &parsed {
        Ok(command) if changes_state(*command) => {
            assert_eq!(needs, Access::Root, "{line:?} parses to {command:?}");
        }
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty(), "{line:?}: empty error"),
    }
    let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(parse(&words), parsed, "{line:?} and {words:?} parse alike");
    assert_eq!(
        access(&words),
        needs,
        "{line:?} and {words:?} need the same access"
    );
}
