//! Inputs the fuzzer found or that exercise edges, replayed as ordinary tests.

#[test]
fn saved_fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/control_parse");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let (mut n, mut failed) = (0, Vec::new());
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        if std::panic::catch_unwind(|| tandem_control::fuzzing::fuzz_line(&bytes)).is_err() {
            failed.push(entry.path());
        }
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
    assert!(failed.is_empty(), "inputs that still fail: {failed:?}");
}
