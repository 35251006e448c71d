//! Raw VRRP sockets between two namespaces joined by a veth.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tandem_lab::Netns;
use tandem_sys::{BurstBuffer, Received, VrrpSocket, VRRP_GROUP_V4, VRRP_GROUP_V6};

/// Something shaped like a VRRPv3 advert; the socket layer does not look inside.
const PAYLOAD: [u8; 12] = [0x31, 7, 100, 1, 0, 100, 0xab, 0xcd, 10, 0, 0, 100];
const WAIT: Duration = Duration::from_secs(5);

fn open_v4(
    rt: &tokio::runtime::Runtime,
    ns: &Netns,
    source: Ipv4Addr,
    group: Option<Ipv4Addr>,
) -> VrrpSocket {
    let handle = rt.handle().clone();
    let index = common::index_of(ns, "eth0").unwrap();
    ns.enter(move || {
        let _guard = handle.enter();
        VrrpSocket::open_v4("eth0", index, source, group)
    })
    .unwrap()
    .unwrap()
}

fn open_v6(
    rt: &tokio::runtime::Runtime,
    ns: &Netns,
    source: Ipv6Addr,
    group: Option<Ipv6Addr>,
) -> VrrpSocket {
    let handle = rt.handle().clone();
    let index = common::index_of(ns, "eth0").unwrap();
    ns.enter(move || {
        let _guard = handle.enter();
        VrrpSocket::open_v6("eth0", index, source, group)
    })
    .unwrap()
    .unwrap()
}

async fn recv(sock: &VrrpSocket) -> Received {
    tokio::time::timeout(WAIT, sock.recv())
        .await
        .expect("no VRRP packet within 5s")
        .expect("recv failed")
}

#[test]
fn v4_multicast_arrives_with_ttl_255() {
    tandem_lab::require_root!();
    let p = common::pair("sysv4m").unwrap();
    let rt = common::runtime();
    let a = open_v4(&rt, &p.a, "10.0.0.1".parse().unwrap(), Some(VRRP_GROUP_V4));
    let b = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), Some(VRRP_GROUP_V4));
    rt.block_on(async {
        a.send(VRRP_GROUP_V4.into(), &PAYLOAD).await.unwrap();
        let r = recv(&b).await;
        assert_eq!(r.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.dst, IpAddr::V4(VRRP_GROUP_V4));
        assert_eq!(r.ttl, 255);
        assert_eq!(r.ifindex, b.ifindex());
        assert_eq!(r.payload, PAYLOAD);

        // Multicast loop is off: the sender does not hear itself.
        let echo = tokio::time::timeout(Duration::from_millis(300), a.recv()).await;
        assert!(echo.is_err(), "sender received its own advert: {echo:?}");

        // And the other way round.
        b.send(VRRP_GROUP_V4.into(), &PAYLOAD[..8]).await.unwrap();
        let r = recv(&a).await;
        assert_eq!(r.src, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.payload, PAYLOAD[..8]);
    });
}

#[test]
fn v4_unicast_uses_the_configured_source() {
    tandem_lab::require_root!();
    let p = common::pair("sysv4u").unwrap();
    // A secondary address: the kernel would pick 10.0.0.1 on its own.
    p.a.ip("addr add 10.0.0.3/24 dev eth0").unwrap();
    let rt = common::runtime();
    let a = open_v4(&rt, &p.a, "10.0.0.3".parse().unwrap(), None);
    let b = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), None);
    rt.block_on(async {
        a.send("10.0.0.2".parse().unwrap(), &PAYLOAD).await.unwrap();
        let r = recv(&b).await;
        assert_eq!(r.src, "10.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(r.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.ttl, 255);
        assert_eq!(r.payload, PAYLOAD);

        b.send("10.0.0.3".parse().unwrap(), &PAYLOAD).await.unwrap();
        let r = recv(&a).await;
        assert_eq!(r.src, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.dst, "10.0.0.3".parse::<IpAddr>().unwrap());
    });
}

#[test]
fn v4_socket_without_group_ignores_multicast() {
    tandem_lab::require_root!();
    let p = common::pair("sysv4n").unwrap();
    let rt = common::runtime();
    let a = open_v4(&rt, &p.a, "10.0.0.1".parse().unwrap(), Some(VRRP_GROUP_V4));
    // Both on b's eth0: only the one that joined the group may see the advert,
    // even though the other one's interface has joined it through the first.
    let joined = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), Some(VRRP_GROUP_V4));
    let plain = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), None);
    rt.block_on(async {
        a.send(VRRP_GROUP_V4.into(), &PAYLOAD).await.unwrap();
        assert_eq!(recv(&joined).await.payload, PAYLOAD);
        let got = tokio::time::timeout(Duration::from_millis(500), plain.recv()).await;
        assert!(got.is_err(), "unicast-only socket got multicast: {got:?}");
        // It still gets unicast.
        a.send("10.0.0.2".parse().unwrap(), &PAYLOAD).await.unwrap();
        assert_eq!(
            recv(&plain).await.dst,
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    });
}

#[test]
fn v4_socket_only_hears_its_own_interface() {
    tandem_lab::require_root!();
    let mut p = common::pair("sysv4d").unwrap();
    // A second link between the namespaces; b listens on eth0 only.
    p.lab.veth((&p.a, "eth1"), (&p.b, "eth1")).unwrap();
    p.a.ip("addr add 10.0.1.1/24 dev eth1").unwrap();
    p.b.ip("addr add 10.0.1.2/24 dev eth1").unwrap();
    let rt = common::runtime();
    let handle = rt.handle().clone();
    let index = common::index_of(&p.a, "eth1").unwrap();
    let a1 =
        p.a.enter(move || {
            let _guard = handle.enter();
            VrrpSocket::open_v4("eth1", index, "10.0.1.1".parse().unwrap(), None)
        })
        .unwrap()
        .unwrap();
    let b0 = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), Some(VRRP_GROUP_V4));
    let handle = rt.handle().clone();
    let index = common::index_of(&p.b, "eth1").unwrap();
    let b1 =
        p.b.enter(move || {
            let _guard = handle.enter();
            VrrpSocket::open_v4("eth1", index, "10.0.1.2".parse().unwrap(), None)
        })
        .unwrap()
        .unwrap();
    rt.block_on(async {
        // Sent over eth1 to b's eth0 address: arrives on b's eth1, so only
        // the eth1 socket may see it.
        a1.send("10.0.0.2".parse().unwrap(), &PAYLOAD)
            .await
            .unwrap();
        let r = recv(&b1).await;
        assert_eq!(r.ifindex, index);
        assert_eq!(r.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        let got = tokio::time::timeout(Duration::from_millis(500), b0.recv()).await;
        assert!(got.is_err(), "eth0 socket got a packet from eth1: {got:?}");
    });
}

#[test]
fn v6_multicast_from_link_local_arrives_with_hop_limit_255() {
    tandem_lab::require_root!();
    let p = common::pair("sysv6m").unwrap();
    let ll_a = common::link_local(&p.a, "eth0").unwrap();
    let ll_b = common::link_local(&p.b, "eth0").unwrap();
    let rt = common::runtime();
    let a = open_v6(&rt, &p.a, ll_a, Some(VRRP_GROUP_V6));
    let b = open_v6(&rt, &p.b, ll_b, Some(VRRP_GROUP_V6));
    rt.block_on(async {
        a.send(VRRP_GROUP_V6.into(), &PAYLOAD).await.unwrap();
        let r = recv(&b).await;
        assert_eq!(r.src, IpAddr::V6(ll_a));
        assert_eq!(r.dst, IpAddr::V6(VRRP_GROUP_V6));
        assert_eq!(r.ttl, 255);
        assert_eq!(r.ifindex, b.ifindex());
        assert_eq!(r.payload, PAYLOAD);

        let echo = tokio::time::timeout(Duration::from_millis(300), a.recv()).await;
        assert!(echo.is_err(), "sender received its own advert: {echo:?}");
    });
}

#[test]
fn v6_unicast_to_link_local_and_global() {
    tandem_lab::require_root!();
    let p = common::pair("sysv6u").unwrap();
    let ll_a = common::link_local(&p.a, "eth0").unwrap();
    let ll_b = common::link_local(&p.b, "eth0").unwrap();
    let rt = common::runtime();
    let a = open_v6(&rt, &p.a, ll_a, None);
    let b = open_v6(&rt, &p.b, ll_b, None);
    rt.block_on(async {
        a.send(IpAddr::V6(ll_b), &PAYLOAD).await.unwrap();
        let r = recv(&b).await;
        assert_eq!(r.src, IpAddr::V6(ll_a));
        assert_eq!(r.dst, IpAddr::V6(ll_b));
        assert_eq!(r.ttl, 255);
        assert_eq!(r.payload, PAYLOAD);

        a.send("fd00::2".parse().unwrap(), &PAYLOAD).await.unwrap();
        let r = recv(&b).await;
        assert_eq!(r.src, IpAddr::V6(ll_a));
        assert_eq!(r.dst, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(r.ttl, 255);
    });
}

#[test]
fn wrong_family_destination_is_an_error_naming_the_interface() {
    tandem_lab::require_root!();
    let p = common::pair("sysfam").unwrap();
    let rt = common::runtime();
    let a = open_v4(&rt, &p.a, "10.0.0.1".parse().unwrap(), None);
    let err = rt
        .block_on(a.send(IpAddr::V6(VRRP_GROUP_V6), &PAYLOAD))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("eth0") && msg.contains("ff02::12"), "{msg}");
}

#[test]
fn a_burst_leaves_in_order_and_is_read_in_slot_fulls() {
    tandem_lab::require_root!();
    let p = common::pair("sysburst").unwrap();
    let rt = common::runtime();
    let a = open_v4(&rt, &p.a, "10.0.0.1".parse().unwrap(), Some(VRRP_GROUP_V4));
    let b = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), Some(VRRP_GROUP_V4));
    // 40 adverts, told apart by their second byte (the VRID).
    let payloads: Vec<Vec<u8>> = (0..40u8)
        .map(|vrid| {
            let mut p = PAYLOAD.to_vec();
            p[1] = vrid;
            p
        })
        .collect();
    let mut burst: Vec<(IpAddr, &[u8])> = payloads
        .iter()
        .map(|p| (IpAddr::V4(VRRP_GROUP_V4), p.as_slice()))
        .collect();
    // One of another family: refused on its own, the others still go.
    burst.insert(5, ("fd00::1".parse().unwrap(), &PAYLOAD));
    rt.block_on(async {
        let failed = a.send_burst(&burst).await;
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 5);
        let mut buffer = BurstBuffer::new(16);
        let mut got = Vec::new();
        while got.len() < payloads.len() {
            let burst = tokio::time::timeout(WAIT, b.recv_burst(&mut buffer, 64))
                .await
                .expect("burst within 5 s")
                .expect("recv_burst");
            assert!(burst.malformed.is_empty(), "{:?}", burst.malformed);
            assert!(burst.packets.len() <= 64);
            got.extend(burst.packets);
        }
        let vrids: Vec<u8> = got.iter().map(|r| r.payload[1]).collect();
        assert_eq!(vrids, (0..40).collect::<Vec<u8>>());
        assert!(got
            .iter()
            .all(|r| r.ttl == 255 && r.dst == IpAddr::V4(VRRP_GROUP_V4)));
    });
}

#[test]
fn multicast_sent_as_frames_arrives_like_the_kernels_own() {
    tandem_lab::require_root!();
    let p = common::pair("sysframes").unwrap();
    let ll_a = common::link_local(&p.a, "eth0").unwrap();
    let ll_b = common::link_local(&p.b, "eth0").unwrap();
    let mac = common::mac_of(&p.a, "eth0").unwrap();
    let rt = common::runtime();
    let mut a4 = open_v4(&rt, &p.a, "10.0.0.1".parse().unwrap(), Some(VRRP_GROUP_V4));
    let mut a6 = open_v6(&rt, &p.a, ll_a, Some(VRRP_GROUP_V6));
    let b4 = open_v4(&rt, &p.b, "10.0.0.2".parse().unwrap(), Some(VRRP_GROUP_V4));
    let b6 = open_v6(&rt, &p.b, ll_b, Some(VRRP_GROUP_V6));
    // The packet sockets belong in a's namespace, like the raw ones.
    let handle = rt.handle().clone();
    p.a.enter(|| {
        let _guard = handle.enter();
        a4.send_multicast_as_frames(mac).unwrap();
        a6.send_multicast_as_frames(mac).unwrap();
    })
    .unwrap();
    rt.block_on(async {
        // Multicast as a frame, unicast through the IP stack, in one burst.
        let burst: Vec<(IpAddr, &[u8])> = vec![
            (IpAddr::V4(VRRP_GROUP_V4), &PAYLOAD),
            ("10.0.0.2".parse().unwrap(), &PAYLOAD[..8]),
        ];
        let failed = a4.send_burst(&burst).await;
        assert!(failed.is_empty(), "{failed:?}");
        let mut got = [recv(&b4).await, recv(&b4).await];
        got.sort_by_key(|r| r.payload.len());
        assert_eq!(got[0].dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(got[1].src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(got[1].dst, IpAddr::V4(VRRP_GROUP_V4));
        assert_eq!(got[1].ttl, 255);
        assert_eq!(got[1].payload, PAYLOAD);

        a6.send(VRRP_GROUP_V6.into(), &PAYLOAD).await.unwrap();
        let r = recv(&b6).await;
        assert_eq!(r.src, IpAddr::V6(ll_a));
        assert_eq!(r.dst, IpAddr::V6(VRRP_GROUP_V6));
        assert_eq!(r.ttl, 255);
        assert_eq!(r.payload, PAYLOAD);

        // The frames do not come back to the sender either.
        let echo = tokio::time::timeout(Duration::from_millis(300), a4.recv()).await;
        assert!(echo.is_err(), "sender received its own advert: {echo:?}");
    });
}
