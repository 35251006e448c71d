//! The link watcher against real link changes in a lab namespace.

mod common;

use std::time::Duration;

use tandem_sys::{watch_links, LinkEvent};
use tokio::sync::mpsc::Receiver;

async fn next(rx: &mut Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no link event within 5s")
        .expect("watcher stopped")
}

async fn quiet(rx: &mut Receiver<LinkEvent>) {
    let got = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await;
    assert!(got.is_err(), "unexpected link event: {got:?}");
}

fn down(index: u32, name: &str) -> LinkEvent {
    LinkEvent::Down {
        index,
        name: name.into(),
    }
}

fn up(index: u32, name: &str) -> LinkEvent {
    LinkEvent::Up {
        index,
        name: name.into(),
    }
}

/// Events of two links arrive in either order.
fn sorted(mut events: Vec<LinkEvent>) -> Vec<LinkEvent> {
    events.sort_by_key(|e| format!("{e:?}"));
    events
}

#[test]
fn reports_down_then_up_once_per_change() {
    tandem_lab::require_root!();
    let p = common::pair("syslink").unwrap();
    let eth0 = common::index_of(&p.a, "eth0").unwrap();
    let (a, b) = (p.a.clone(), p.b.clone());
    p.a.enter(move || {
        common::runtime().block_on(async {
            let mut rx = watch_links().await.unwrap();
            quiet(&mut rx).await; // links that are already up are not news

            a.link_set("eth0", false).unwrap();
            assert_eq!(next(&mut rx).await, down(eth0, "eth0"));
            a.ip("link set dev eth0 mtu 1400").unwrap();
            quiet(&mut rx).await; // still down: nothing to report

            a.link_set("eth0", true).unwrap();
            assert_eq!(next(&mut rx).await, up(eth0, "eth0"));
            a.ip("link set dev eth0 mtu 1500").unwrap();
            quiet(&mut rx).await; // still up

            // Losing carrier (the veth peer goes down) is down too.
            b.link_set("eth0", false).unwrap();
            assert_eq!(next(&mut rx).await, down(eth0, "eth0"));
            b.link_set("eth0", true).unwrap();
            assert_eq!(next(&mut rx).await, up(eth0, "eth0"));
            quiet(&mut rx).await;
        })
    })
    .unwrap();
}

#[test]
fn new_and_deleted_links() {
    tandem_lab::require_root!();
    let mut lab = tandem_lab::Lab::new("syslinkn").unwrap();
    let a = lab.netns("a").unwrap();
    let ns = a.clone();
    a.enter(move || {
        common::runtime().block_on(async {
            let mut rx = watch_links().await.unwrap();
            ns.ip("link add tdl0 type veth peer name tdl1").unwrap();
            quiet(&mut rx).await; // created down
            ns.link_set("tdl0", true).unwrap();
            quiet(&mut rx).await; // up but no carrier until the peer is up
            ns.link_set("tdl1", true).unwrap();
            let i0 = common::index_of(&ns, "tdl0").unwrap();
            let i1 = common::index_of(&ns, "tdl1").unwrap();
            let got = sorted(vec![next(&mut rx).await, next(&mut rx).await]);
            assert_eq!(got, sorted(vec![up(i0, "tdl0"), up(i1, "tdl1")]));
            quiet(&mut rx).await;

            ns.ip("link del tdl0").unwrap();
            let got = sorted(vec![next(&mut rx).await, next(&mut rx).await]);
            assert_eq!(got, sorted(vec![down(i0, "tdl0"), down(i1, "tdl1")]));
            quiet(&mut rx).await;
        })
    })
    .unwrap();
}
