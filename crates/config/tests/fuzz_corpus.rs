//! Inputs the fuzzer found or that exercise edges, replayed as ordinary tests.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let (mut n, mut failed) = (0, Vec::new());
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            failed.push(entry.path());
        }
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
    assert!(failed.is_empty(), "inputs that still fail: {failed:?}");
}

#[test]
fn config_parse_corpus_replays() {
    replay("config_parse", tandem_config::fuzzing::fuzz_keepalived);
}

#[test]
fn sync_config_parse_corpus_replays() {
    replay("sync_config_parse", tandem_config::fuzzing::fuzz_sync);
}
