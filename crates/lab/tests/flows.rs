//! The flow generator measures healthy flows and detects broken ones; needs
//! root.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tandem_lab::gateway::SERVER_ADDR;
use tandem_lab::{require_root, wait_until, EchoServer, FlowOptions, Gateway, TcpFlows, UdpFlow};

const FLOWS: usize = 50;
const PORT: u16 = 7100;

#[test]
fn flows_run_through_a_gateway_and_die_when_its_state_is_lost() {
    require_root!();
    let gw = Gateway::new("flows").unwrap();
    Gateway::add_vips(&gw.a).unwrap();
    gw.client
        .wait_ping(&SERVER_ADDR.to_string(), Duration::from_secs(10))
        .unwrap();
    let _echo = EchoServer::start(&gw.server, PORT).unwrap();
    let server: SocketAddr = (SERVER_ADDR, PORT).into();
    let opts = FlowOptions {
        interval: Duration::from_millis(20),
        dead_after: Duration::from_secs(2),
        ..FlowOptions::default()
    };
    let tcp = TcpFlows::start_with(&gw.client, server, FLOWS, opts).unwrap();
    let udp = UdpFlow::start_with(&gw.client, server, opts).unwrap();
    assert_eq!(tcp.len(), FLOWS);

    // Healthy: 2 s of traffic, every flow echoing, no stall.
    tcp.wait_all_progress(Duration::from_secs(5)).unwrap();
    udp.wait_progress(Duration::from_secs(5)).unwrap();
    tcp.mark();
    udp.mark();
    std::thread::sleep(Duration::from_secs(2));
    tcp.wait_all_progress(Duration::from_secs(1)).unwrap();
    let healthy = tcp.report();
    let healthy_udp = udp.report();
    eprintln!("healthy: {healthy}; udp: {healthy_udp:?}");
    assert_eq!(healthy.alive, FLOWS, "{healthy}");
    assert!(
        healthy.longest_stall < Duration::from_millis(200),
        "{healthy}"
    );
    let min_echoes = healthy.per_flow.iter().map(|f| f.echoes).min().unwrap();
    assert!(
        min_echoes >= 50,
        "every flow echoed ~100 times, min {min_echoes}"
    );
    assert!(healthy
        .per_flow
        .iter()
        .all(|f| f.bytes_sent >= f.bytes_received && f.bytes_received > 0));
    assert!(healthy_udp.alive);
    assert!(healthy_udp.received >= 50, "{healthy_udp:?}");
    assert!(
        healthy_udp.longest_gap < Duration::from_millis(200),
        "{healthy_udp:?}"
    );

    // Fail over without state: VIPs move to gw-b, gw-a forgets its entries.
    tcp.mark();
    udp.mark();
    let t0 = Instant::now();
    Gateway::del_vips(&gw.a).unwrap();
    gw.a.run("conntrack -F").unwrap();
    Gateway::add_vips(&gw.b).unwrap();
    gw.flush_neighbours().unwrap();
    let dead = wait_until(
        "all TCP flows to die",
        Duration::from_secs(8),
        Duration::from_millis(50),
        || {
            let r = tcp.report();
            (r.alive == 0).then_some(r)
        },
    )
    .unwrap();
    eprintln!("after failover without state ({:?}): {dead}", t0.elapsed());
    assert!(dead.longest_stall >= opts.dead_after, "{dead}");
    assert!(tcp.wait_all_progress(Duration::from_millis(100)).is_err());

    // UDP needs no state: gw-b creates a fresh entry from the client side.
    udp.wait_progress(Duration::from_secs(5)).unwrap();
    let after_udp = udp.report();
    eprintln!("udp after failover: {after_udp:?}");
    assert!(after_udp.alive, "{after_udp:?}");

    // Control: gw-b forwards TCP, only the lost state killed the old flows.
    let fresh = TcpFlows::start_with(&gw.client, server, 1, opts).unwrap();
    fresh.wait_all_progress(Duration::from_secs(5)).unwrap();
    assert_eq!(fresh.report().alive, 1);
}

#[test]
fn reset_is_reported_as_an_error() {
    require_root!();
    let gw = Gateway::new("flowrst").unwrap();
    Gateway::add_vips(&gw.a).unwrap();
    let echo = EchoServer::start(&gw.server, 0).unwrap();
    let server: SocketAddr = (SERVER_ADDR, echo.port()).into();
    let tcp = TcpFlows::start(&gw.client, server, 3, Duration::from_millis(20)).unwrap();
    tcp.wait_all_progress(Duration::from_secs(5)).unwrap();
    // Stopping the server closes its side of every connection.
    drop(echo);
    let r = wait_until(
        "flows to see the server go",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let r = tcp.report();
            (r.alive == 0).then_some(r)
        },
    )
    .unwrap();
    eprintln!("after server stop: {r}");
    for f in &r.per_flow {
        let e = f.error.as_deref().unwrap();
        assert!(
            e.contains("EOF") || e.contains("reset") || e.contains("write"),
            "{e}"
        );
    }
    let err = tcp.wait_all_progress(Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("3 of 3"), "{err}");
}
