//! Interoperability: our sockets hear real keepalived adverts, v4 and v6.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use tandem_sys::{VrrpSocket, VRRP_GROUP_V4, VRRP_GROUP_V6};

#[test]
fn receives_keepalived_adverts() {
    tandem_lab::require_root!();
    if std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: keepalived not installed");
        return;
    }
    let p = common::pair("syska").unwrap();
    let ll_a = common::link_local(&p.a, "eth0").unwrap();
    let ll_b = common::link_local(&p.b, "eth0").unwrap();
    let dir = p.lab.log_dir().to_path_buf();
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        "global_defs {\n  vrrp_version 3\n  enable_script_security\n}\n\
         vrrp_instance V4 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 200\n  advert_int 1\n  virtual_ipaddress {\n    10.0.0.100/24\n  }\n}\n\
         vrrp_instance V6 {\n  state MASTER\n  interface eth0\n  virtual_router_id 52\n  priority 200\n  advert_int 1\n  virtual_ipaddress {\n    fd00::100/64\n  }\n}\n",
    )
    .unwrap();

    let rt = common::runtime();
    let index = common::index_of(&p.b, "eth0").unwrap();
    let handle = rt.handle().clone();
    let (v4, v6) =
        p.b.enter(move || {
            let _guard = handle.enter();
            (
                VrrpSocket::open_v4(
                    "eth0",
                    index,
                    "10.0.0.2".parse().unwrap(),
                    Some(VRRP_GROUP_V4),
                )
                .unwrap(),
                VrrpSocket::open_v6("eth0", index, ll_b, Some(VRRP_GROUP_V6)).unwrap(),
            )
        })
        .unwrap();

    let pid = dir.join("keepalived.pid");
    let vrrp_pid = dir.join("vrrp.pid");
    let ka =
        p.a.spawn(&[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "-f",
            conf.to_str().unwrap(),
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vrrp_pid.to_str().unwrap(),
        ])
        .unwrap();

    rt.block_on(async {
        let deadline = Duration::from_secs(15);
        let (mut saw4, mut saw6) = (false, false);
        let result = tokio::time::timeout(deadline, async {
            while !(saw4 && saw6) {
                tokio::select! {
                    r = v4.recv() => {
                        let r = r.unwrap();
                        assert_eq!(r.src, "10.0.0.1".parse::<IpAddr>().unwrap());
                        assert_eq!(r.dst, IpAddr::V4(VRRP_GROUP_V4));
                        assert_eq!(r.ttl, 255);
                        assert_eq!(r.payload[0], 0x31, "VRRPv3 advertisement");
                        assert_eq!(r.payload[1], 51);
                        assert_eq!(r.payload[2], 200);
                        saw4 = true;
                    }
                    r = v6.recv() => {
                        let r = r.unwrap();
                        assert_eq!(r.src, IpAddr::V6(ll_a));
                        assert_eq!(r.dst, IpAddr::V6(VRRP_GROUP_V6));
                        assert_eq!(r.ttl, 255);
                        assert_eq!(r.payload[0], 0x31, "VRRPv3 advertisement");
                        assert_eq!(r.payload[1], 52);
                        saw6 = true;
                    }
                }
            }
        })
        .await;
        assert!(
            result.is_ok(),
            "adverts seen: v4 {saw4}, v6 {saw6}\nkeepalived:\n{}",
            ka.log()
        );
    });
}
