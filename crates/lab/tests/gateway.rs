//! The gateway topology forwards, NATs and filters as the failover tests
//! expect; needs root.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use tandem_lab::gateway::{
    CLIENT_ADDR, GW_A_INTERNAL, GW_A_PUBLIC, GW_A_SYNC, GW_B_INTERNAL, GW_B_PUBLIC, GW_B_SYNC,
    SERVER_ADDR, VIP_INTERNAL, VIP_PUBLIC,
};
use tandem_lab::{require_root, EchoServer, Gateway};

const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn forwards_client_to_server_with_snat_and_blocks_the_reverse() {
    require_root!();
    let gw = Gateway::new("gw").unwrap();
    assert_eq!(Gateway::vip_public(), VIP_PUBLIC);
    assert_eq!(Gateway::vip_internal(), VIP_INTERNAL);

    // Plain links: both gateways reach each other on all three networks.
    for (from, to) in [
        (&gw.a, GW_B_PUBLIC),
        (&gw.a, GW_B_INTERNAL),
        (&gw.a, GW_B_SYNC),
        (&gw.b, GW_A_SYNC),
        (&gw.client, GW_A_PUBLIC),
        (&gw.server, GW_B_INTERNAL),
    ] {
        from.wait_ping(&to.to_string(), DEADLINE).unwrap();
    }
    for g in gw.gateways() {
        assert_eq!(
            g.run("sysctl -n net.netfilter.nf_conntrack_tcp_loose")
                .unwrap()
                .trim(),
            "0"
        );
        assert!(!g.has_address(&VIP_PUBLIC.to_string()).unwrap());
    }
    // Without VIPs nothing routes the client's traffic.
    assert!(!gw.client.ping(&SERVER_ADDR.to_string()).unwrap());

    Gateway::add_vips(&gw.a).unwrap();
    gw.client
        .wait_ping(&VIP_PUBLIC.to_string(), DEADLINE)
        .unwrap();

    let echo = EchoServer::start(&gw.server, 7000).unwrap();
    let server: SocketAddr = (SERVER_ADDR, 7000).into();
    let mut conn = gw
        .client
        .enter(move || TcpStream::connect_timeout(&server, Duration::from_secs(5)))
        .unwrap()
        .expect("client connects to the server through gw-a");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    let peers = echo.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].ip(),
        IpAddr::V4(VIP_INTERNAL),
        "server sees the SNAT address"
    );

    // The other way: the client listens, the server's SYN is dropped.
    let listener = gw
        .client
        .enter(|| TcpListener::bind((CLIENT_ADDR, 7001)))
        .unwrap()
        .unwrap();
    let client: SocketAddr = (CLIENT_ADDR, 7001).into();
    let reverse = gw
        .server
        .enter(move || TcpStream::connect_timeout(&client, Duration::from_secs(1)))
        .unwrap();
    let err = reverse.expect_err("connection from the server side must be dropped");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing reached the client");
    // The server can still reach the gateway itself (input is not filtered).
    assert!(gw.server.ping(&GW_A_INTERNAL.to_string()).unwrap());
}

#[test]
fn cutting_a_gateway_link_keeps_the_lan_connected() {
    require_root!();
    let gw = Gateway::new("gwcut").unwrap();
    gw.client
        .wait_ping(&GW_B_PUBLIC.to_string(), DEADLINE)
        .unwrap();
    gw.a.link_set("pub0", false).unwrap();
    assert!(!gw.client.ping(&GW_A_PUBLIC.to_string()).unwrap());
    assert!(gw.client.ping(&GW_B_PUBLIC.to_string()).unwrap());
    let names = gw.lab.namespaces().to_vec();
    drop(gw);
    for n in names {
        assert!(!std::path::Path::new("/run/netns").join(&n).exists(), "{n}");
    }
}
