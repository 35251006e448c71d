//! Inputs the fuzzer found or that exercise edges, replayed as ordinary tests.

#[test]
fn saved_fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/control_parse");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries.flatten() {
        tandem_control::fuzzing::fuzz_line(&std::fs::read(entry.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
}
