//! The kernel's process events reach a subscriber in the initial network namespace and in a
//! lab namespace (whose socket is opened in the initial one).

mod common;

use std::process::Command;
use std::time::Duration;

use tandem_sys::proc_events::{ProcEvent, ProcEvents, Received};

/// Runs `/bin/true` and waits for its exec and exit events; returns whether both came.
async fn sees_a_short_process(events: &mut ProcEvents) -> bool {
    let child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    let (mut exec, mut exit) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(exec && exit) {
        let got = tokio::time::timeout_at(deadline, events.recv()).await;
        match got {
            Err(_) => break,
            Ok(Ok(Received::Event(ProcEvent::Exec { tgid, .. }))) if tgid == pid => exec = true,
            Ok(Ok(Received::Event(ProcEvent::Exit { pid: p, tgid })))
                if tgid == pid && p == pid =>
            {
                exit = true
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e}"),
        }
    }
    let mut child = child;
    let _ = child.wait();
    exec && exit
}

#[test]
fn exec_and_exit_are_seen_from_the_initial_namespace() {
    tandem_lab::require_root!();
    common::runtime().block_on(async {
        let mut events = ProcEvents::open().await.unwrap();
        assert!(sees_a_short_process(&mut events).await);
    });
}

#[test]
fn exec_and_exit_are_seen_from_a_lab_namespace() {
    tandem_lab::require_root!();
    let p = common::pair("procev").unwrap();
    p.a.enter(|| {
        common::runtime().block_on(async {
            let mut events = ProcEvents::open().await.unwrap();
            assert!(sees_a_short_process(&mut events).await);
        })
    })
    .unwrap();
}

/// Inputs the fuzzer found or that exercise edges, replayed as ordinary tests.
#[test]
fn saved_fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/proc_event_decode");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut decoded = 0;
    let mut n = 0;
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        decoded += usize::from(tandem_sys::proc_events::decode(&bytes).is_ok());
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
    assert!(decoded > 0, "no corpus entry decodes");
}
