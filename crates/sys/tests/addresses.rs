//! Virtual addresses and interface lookups over rtnetlink, inside a lab namespace.

mod common;

use std::net::IpAddr;

use tandem_sys::{connect, interface, interface_exists, AddressSpec, Addresses, SysError};

fn spec(address: &str, prefix_len: u8, ifindex: u32) -> AddressSpec {
    AddressSpec {
        address: address.parse().unwrap(),
        prefix_len,
        ifindex,
        label: None,
        broadcast: None,
        scope: None,
    }
}

#[test]
fn ipv4_add_present_remove_is_idempotent_and_keeps_label_and_broadcast() {
    tandem_lab::require_root!();
    let p = common::pair("sysaddr4").unwrap();
    let ns = p.a.clone();
    p.a.enter(move || {
        common::runtime().block_on(async {
            let (handle, _conn) = connect().await.unwrap();
            let eth0 = interface(&handle, "eth0").await.unwrap();
            let addrs = Addresses::new(handle);
            let vip = AddressSpec {
                label: Some("eth0:vip".into()),
                broadcast: Some("10.0.0.127".parse().unwrap()),
                ..spec("10.0.0.100", 24, eth0.index)
            };

            assert!(!addrs.present(&vip).await.unwrap());
            addrs.add(&vip).await.unwrap();
            addrs.add(&vip).await.unwrap(); // already there: still fine
            assert!(addrs.present(&vip).await.unwrap());

            let shown = ns.ip("-4 -o addr show dev eth0").unwrap();
            let line = shown
                .lines()
                .find(|l| l.contains("10.0.0.100/24"))
                .unwrap_or_else(|| panic!("VIP missing from {shown}"));
            assert!(line.contains("brd 10.0.0.127"), "{line}");
            assert!(line.contains("eth0:vip"), "{line}");

            // Same address, other prefix: a different address to the kernel.
            assert!(!addrs
                .present(&spec("10.0.0.100", 32, eth0.index))
                .await
                .unwrap());

            addrs.remove(&vip).await.unwrap();
            addrs.remove(&vip).await.unwrap(); // already gone: still fine
            assert!(!addrs.present(&vip).await.unwrap());
            assert!(!ns.has_address("10.0.0.100").unwrap());
            // The interface's own address is untouched.
            assert!(ns.has_address("10.0.0.1").unwrap());
        })
    })
    .unwrap();
}

#[test]
fn host_scope_and_slash_32() {
    tandem_lab::require_root!();
    let p = common::pair("sysaddrs").unwrap();
    let ns = p.a.clone();
    p.a.enter(move || {
        common::runtime().block_on(async {
            let (handle, _conn) = connect().await.unwrap();
            let index = interface(&handle, "eth0").await.unwrap().index;
            let addrs = Addresses::new(handle);
            let vip = AddressSpec {
                scope: Some(254),
                ..spec("192.168.77.1", 32, index)
            };
            addrs.add(&vip).await.unwrap();
            assert!(addrs.present(&vip).await.unwrap());
            let shown = ns.ip("-4 -o addr show dev eth0").unwrap();
            let line = shown
                .lines()
                .find(|l| l.contains("192.168.77.1/32"))
                .unwrap();
            assert!(line.contains("scope host"), "{line}");
            addrs.remove(&vip).await.unwrap();
            assert!(!addrs.present(&vip).await.unwrap());
        })
    })
    .unwrap();
}

#[test]
fn ipv6_add_is_usable_at_once_and_idempotent() {
    tandem_lab::require_root!();
    let mut lab = tandem_lab::Lab::new("sysaddr6").unwrap();
    let a = lab.netns("a").unwrap();
    let b = lab.netns("b").unwrap();
    lab.veth((&a, "eth0"), (&b, "eth0")).unwrap();
    // The lab turns DAD off; turn it back on so NODAD is what makes the
    // address usable at once.
    a.sysctl("net.ipv6.conf.eth0.accept_dad", "1").unwrap();
    let ns = a.clone();
    a.enter(move || {
        common::runtime().block_on(async {
            let (handle, _conn) = connect().await.unwrap();
            let index = interface(&handle, "eth0").await.unwrap().index;
            let addrs = Addresses::new(handle);
            let vip = spec("fd00::100", 64, index);
            addrs.add(&vip).await.unwrap();
            addrs.add(&vip).await.unwrap();
            assert!(addrs.present(&vip).await.unwrap());
            let v = ns
                .addresses()
                .unwrap()
                .into_iter()
                .find(|x| x.addr == "fd00::100".parse::<IpAddr>().unwrap())
                .expect("fd00::100 configured");
            assert!(!v.tentative, "added with NODAD, yet tentative");
            // A DAD-subject address for comparison: it does start tentative.
            ns.ip("addr add fd00::200/64 dev eth0").unwrap();
            let w = ns
                .addresses()
                .unwrap()
                .into_iter()
                .find(|x| x.addr == "fd00::200".parse::<IpAddr>().unwrap())
                .unwrap();
            assert!(w.tentative, "control address should be tentative");

            addrs.remove(&vip).await.unwrap();
            addrs.remove(&vip).await.unwrap();
            assert!(!addrs.present(&vip).await.unwrap());
            assert!(!ns.has_address("fd00::100").unwrap());
        })
    })
    .unwrap();
}

#[test]
fn errors_name_operation_address_and_interface() {
    tandem_lab::require_root!();
    let p = common::pair("sysaerr").unwrap();
    p.a.enter(|| {
        common::runtime().block_on(async {
            let (handle, _conn) = connect().await.unwrap();
            let addrs = Addresses::new(handle.clone());
            let err = addrs.add(&spec("10.9.9.9", 24, 999)).await.unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("adding 10.9.9.9/24 to index 999: "),
                "{msg}"
            );
            assert_eq!(err.errno(), Some(libc::ENODEV));

            // Down interfaces still take addresses; a bogus prefix does not.
            let index = interface(&handle, "eth0").await.unwrap().index;
            let err = addrs.add(&spec("10.9.9.9", 40, index)).await.unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("adding 10.9.9.9/40 to eth0 (index {index}): ")),
                "{msg}"
            );

            let err = interface(&handle, "nosuch0").await.unwrap_err();
            assert!(matches!(err, SysError::NoSuchInterface { .. }), "{err:?}");
            assert!(err.to_string().contains("nosuch0"), "{err}");
        })
    })
    .unwrap();
}

#[test]
fn interface_reports_index_mac_state_and_addresses() {
    tandem_lab::require_root!();
    let p = common::pair("sysif").unwrap();
    let mac = common::mac_of(&p.a, "eth0").unwrap();
    let index = common::index_of(&p.a, "eth0").unwrap();
    let ll = common::link_local(&p.a, "eth0").unwrap();
    p.a.ip("addr add 10.0.0.9/24 dev eth0").unwrap();
    let ns = p.a.clone();
    p.a.enter(move || {
        common::runtime().block_on(async {
            let (handle, _conn) = connect().await.unwrap();
            let info = interface(&handle, "eth0").await.unwrap();
            assert_eq!(info.name, "eth0");
            assert_eq!(info.index, index);
            assert_eq!(info.mac, mac);
            assert!(info.up);
            assert_eq!(
                info.ipv4,
                vec![
                    ("10.0.0.1".parse().unwrap(), 24),
                    ("10.0.0.9".parse().unwrap(), 24)
                ]
            );
            assert_eq!(info.ipv6_link_local, Some(ll));
            assert!(
                info.ipv6.contains(&("fd00::1".parse().unwrap(), 64)),
                "{:?}",
                info.ipv6
            );
            assert!(info.ipv6.contains(&(ll, 64)), "{:?}", info.ipv6);

            ns.link_set("eth0", false).unwrap();
            assert!(!interface(&handle, "eth0").await.unwrap().up);
            ns.link_set("eth0", true).unwrap();
        })
    })
    .unwrap();

    // The peer going down takes the carrier away: running is cleared.
    p.b.link_set("eth0", false).unwrap();
    let up =
        p.a.enter(|| {
            common::runtime().block_on(async {
                let (handle, _conn) = connect().await.unwrap();
                interface(&handle, "eth0").await.unwrap().up
            })
        })
        .unwrap();
    assert!(!up, "eth0 reported up although its veth peer is down");
}

#[test]
fn interface_exists_looks_in_the_callers_namespace() {
    tandem_lab::require_root!();
    let mut lab = tandem_lab::Lab::new("sysexist").unwrap();
    let a = lab.netns("a").unwrap();
    a.ip("link add tdsysdummy0 type veth peer name tdsysdummy1")
        .unwrap();
    assert!(a.enter(|| interface_exists("tdsysdummy0")).unwrap());
    assert!(!a.enter(|| interface_exists("tdsysnothere0")).unwrap());
    assert!(
        !interface_exists("tdsysdummy0"),
        "the host must not see the lab's interface"
    );
    assert!(interface_exists("lo"));
}

#[test]
fn add_all_and_remove_all_answer_per_address_in_order() {
    batches_answer_per_address_in_order("sysaddrb", true);
}

#[test]
fn without_the_batch_connection_changes_answer_the_same() {
    batches_answer_per_address_in_order("sysaddro", false);
}

/// `in_runtime`: whether `Addresses` is made inside the runtime (its own batch connection)
/// or outside one (requests through the shared connection).
fn batches_answer_per_address_in_order(tag: &str, in_runtime: bool) {
    tandem_lab::require_root!();
    let p = common::pair(tag).unwrap();
    let ns = p.a.clone();
    p.a.ip("link add tdb0 type veth peer name tdb1").unwrap();
    p.a.ip("addr add 10.1.0.5/24 dev tdb0").unwrap();
    let eth0 = common::index_of(&p.a, "eth0").unwrap();
    let tdb0 = common::index_of(&p.a, "tdb0").unwrap();
    p.a.enter(move || {
        let runtime = common::runtime();
        let (handle, _conn) = runtime.block_on(connect()).unwrap();
        let addrs = if in_runtime {
            runtime.block_on(async { Addresses::new(handle) })
        } else {
            Addresses::new(handle)
        };
        runtime.block_on(async {
            let batch = vec![
                spec("10.0.0.100", 24, eth0),
                spec("10.9.9.9", 24, 999), // no such interface
                spec("10.1.0.100", 24, tdb0),
                spec("10.1.0.5", 24, tdb0),   // already there: success
                spec("10.0.0.101", 40, eth0), // bogus prefix
                spec("fd00::100", 64, eth0),
                spec("10.0.0.102", 32, eth0),
            ];
            let results = addrs.add_all(&batch).await;
            assert_eq!(results.len(), batch.len());
            let failed: Vec<(usize, String)> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.to_string())))
                .collect();
            assert_eq!(failed.len(), 2, "{failed:?}");
            assert_eq!(failed[0].0, 1, "{failed:?}");
            assert!(
                failed[0].1.starts_with("adding 10.9.9.9/24 to index 999: "),
                "{failed:?}"
            );
            assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::ENODEV));
            assert_eq!(failed[1].0, 4, "{failed:?}");
            assert!(
                failed[1]
                    .1
                    .starts_with(&format!("adding 10.0.0.101/40 to eth0 (index {eth0}): ")),
                "{failed:?}"
            );
            // The failures in the middle did not stop the requests after them.
            for (i, s) in batch.iter().enumerate() {
                if i != 1 && i != 4 {
                    assert!(addrs.present(s).await.unwrap(), "{s} missing");
                }
            }
            let v6 = ns
                .addresses()
                .unwrap()
                .into_iter()
                .find(|x| x.addr == "fd00::100".parse::<IpAddr>().unwrap())
                .expect("fd00::100 configured");
            assert!(!v6.tentative, "added with NODAD, yet tentative");

            // Adding the same batch again: every address already there is success.
            let again = addrs.add_all(&batch).await;
            assert!(again[0].is_ok() && again[2].is_ok() && again[6].is_ok());

            // Removing, with one address already gone, one never there and one on an
            // interface that does not exist: all success, since none of them is there now
            // (an interface deleted with its addresses is how the last one happens).
            addrs.remove(&batch[5]).await.unwrap();
            let gone = addrs.remove_all(&batch).await;
            assert!(gone.iter().all(Result::is_ok), "{gone:?}");
            for s in &batch {
                assert!(!addrs.present(s).await.unwrap_or(false), "{s} left behind");
            }
            assert!(ns.has_address("10.0.0.1").unwrap());

            // An empty batch asks the kernel nothing.
            assert!(addrs.add_all(&[]).await.is_empty());
            assert!(addrs.remove_all(&[]).await.is_empty());
        })
    })
    .unwrap();
}
