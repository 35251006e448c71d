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
