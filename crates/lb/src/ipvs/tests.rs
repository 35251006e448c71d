//! Byte-for-byte encoding of IPVS requests against buffers laid out by
//! hand from uapi `linux/ip_vs.h` and `linux/genetlink.h`, and decoding of
//! dump replies laid out as the kernel's `ip_vs_ctl.c` writes them.
//! Native-endian fields are written little-endian: these tests run on
//! little-endian hosts only.
#![cfg(target_endian = "little")]

use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_generic::GenlMessage;

use super::message::{CmdAttr, Command, DaemonAttr, IpvsMessage};
use super::model::{key_attrs, netmask, DaemonState, RunningDaemon, SyncDaemon};
use super::{frame_request, RealServer, VirtualService};
use crate::service::{Forwarding, Persistence, Protocol, ServiceKey};

const FAMILY: u16 = 0x1c;
const SEQ: u32 = 7;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn web_key() -> ServiceKey {
    ServiceKey::Addr {
        vip: ip("10.0.0.1"),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

/// `struct nlmsghdr` (16 bytes) + `struct genlmsghdr` (4 bytes).
fn headers(total_len: u32, flags: u16, cmd: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(total_len.to_le_bytes()); // nlmsg_len
    b.extend(FAMILY.to_le_bytes()); // nlmsg_type: the resolved family id
    b.extend(flags.to_le_bytes()); // nlmsg_flags
    b.extend(SEQ.to_le_bytes()); // nlmsg_seq
    b.extend(0u32.to_le_bytes()); // nlmsg_pid: the kernel fills it
    b.extend([cmd, 1, 0, 0]); // cmd, version IPVS_GENL_VERSION, reserved
    b
}

/// `struct nlattr { u16 nla_len; u16 nla_type; }` + value, padded to 4.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((4 + value.len() as u16).to_le_bytes());
    b.extend(kind.to_le_bytes());
    b.extend(value);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

const NESTED: u16 = 0x8000; // NLA_F_NESTED

fn addr16(octets: &[u8]) -> Vec<u8> {
    let mut a = octets.to_vec();
    a.resize(16, 0); // union nf_inet_addr
    a
}

/// IPVS_SVC_ATTR_{AF, PROTOCOL, ADDR, PORT} of TCP 10.0.0.1:80.
fn web_key_bytes() -> Vec<u8> {
    [
        nla(1, &2u16.to_le_bytes()),     // AF: AF_INET
        nla(2, &6u16.to_le_bytes()),     // PROTOCOL: IPPROTO_TCP
        nla(3, &addr16(&[10, 0, 0, 1])), // ADDR
        nla(4, &80u16.to_be_bytes()),    // PORT, network order
    ]
    .concat()
}

#[test]
fn new_service_with_persistence_matches_the_uapi_layout() {
    let svc = VirtualService {
        key: web_key(),
        scheduler: "wrr".into(),
        persistence: Some(Persistence {
            timeout: Duration::from_secs(300),
            prefix_len: 24,
        }),
    };
    let got = frame_request(
        IpvsMessage::new(Command::NewService, vec![CmdAttr::Service(svc.attrs())]),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let nested = [
        web_key_bytes(),
        nla(6, b"wrr\0"), // SCHED_NAME, NUL-terminated
        // FLAGS: struct ip_vs_flags { flags = IP_VS_SVC_F_PERSISTENT, mask = ~0 }
        nla(7, &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        nla(8, &300u32.to_le_bytes()), // TIMEOUT, seconds
        nla(9, &[255, 255, 255, 0]),   // NETMASK, __be32 255.255.255.0
    ]
    .concat();
    let attrs = nla(1 | NESTED, &nested); // IPVS_CMD_ATTR_SERVICE
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 1); // REQUEST|ACK, NEW_SERVICE
    want.extend(attrs);
    assert_eq!(want.len(), 104);
    assert_eq!(got, want);
}

#[test]
fn new_service_by_ipv6_fwmark_without_persistence_matches_the_uapi_layout() {
    let svc = VirtualService {
        key: ServiceKey::Fwmark {
            mark: 5,
            ipv6: true,
        },
        scheduler: "rr".into(),
        persistence: None,
    };
    let got = frame_request(
        IpvsMessage::new(Command::NewService, vec![CmdAttr::Service(svc.attrs())]),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let nested = [
        nla(1, &10u16.to_le_bytes()),                  // AF: AF_INET6
        nla(5, &5u32.to_le_bytes()),                   // FWMARK
        nla(6, b"rr\0"),                               // SCHED_NAME (7 bytes, padded to 8)
        nla(7, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), // FLAGS: none, mask ~0
        nla(8, &0u32.to_le_bytes()),                   // TIMEOUT
        nla(9, &128u32.to_le_bytes()),                 // NETMASK: IPv6 prefix length
    ]
    .concat();
    let attrs = nla(1 | NESTED, &nested);
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 1);
    want.extend(attrs);
    assert_eq!(want.len(), 76);
    assert_eq!(got, want);
}

#[test]
fn new_dest_and_del_service_match_the_uapi_layout() {
    let rs = RealServer {
        addr: ip("10.0.1.1"),
        port: 8080,
        forwarding: Forwarding::Nat,
        weight: 3,
    };
    let got = frame_request(
        IpvsMessage::new(
            Command::NewDest,
            vec![
                CmdAttr::Service(key_attrs(&web_key())),
                CmdAttr::Dest(rs.attrs()),
            ],
        ),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let dest = [
        nla(1, &addr16(&[10, 0, 1, 1])), // DEST_ATTR_ADDR
        nla(2, &8080u16.to_be_bytes()),  // DEST_ATTR_PORT, network order
        nla(11, &2u16.to_le_bytes()),    // DEST_ATTR_ADDR_FAMILY
        nla(3, &0u32.to_le_bytes()),     // FWD_METHOD: IP_VS_CONN_F_MASQ
        nla(4, &3u32.to_le_bytes()),     // WEIGHT
        nla(5, &0u32.to_le_bytes()),     // U_THRESH
        nla(6, &0u32.to_le_bytes()),     // L_THRESH
    ]
    .concat();
    let attrs = [nla(1 | NESTED, &web_key_bytes()), nla(2 | NESTED, &dest)].concat();
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 5); // NEW_DEST
    want.extend(attrs);
    assert_eq!(want.len(), 140);
    assert_eq!(got, want);

    // DEL_SERVICE names the service only.
    let got = frame_request(
        IpvsMessage::new(
            Command::DelService,
            vec![CmdAttr::Service(key_attrs(&web_key()))],
        ),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let attrs = nla(1 | NESTED, &web_key_bytes());
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 3);
    want.extend(attrs);
    assert_eq!(got, want);
}

#[test]
fn sync_daemon_start_and_stop_match_the_uapi_layout() {
    let d = SyncDaemon {
        interface: "eth1".into(),
        sync_id: 7,
        maxlen: Some(1400),
        port: Some(8848),
        ttl: Some(2),
        group: Some(ip("239.0.0.81")),
    };
    let got = frame_request(
        IpvsMessage::new(
            Command::NewDaemon,
            vec![CmdAttr::Daemon(d.attrs(DaemonState::Master))],
        ),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let nested = [
        nla(1, &1u32.to_le_bytes()),    // STATE: IP_VS_STATE_MASTER
        nla(2, b"eth1\0"),              // MCAST_IFN (9 bytes, padded to 12)
        nla(3, &7u32.to_le_bytes()),    // SYNC_ID
        nla(4, &1400u16.to_le_bytes()), // SYNC_MAXLEN
        nla(5, &[239, 0, 0, 81]),       // MCAST_GROUP, struct in_addr
        nla(7, &8848u16.to_le_bytes()), // MCAST_PORT
        nla(8, &[2]),                   // MCAST_TTL (5 bytes, padded to 8)
    ]
    .concat();
    let attrs = nla(3 | NESTED, &nested); // IPVS_CMD_ATTR_DAEMON
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 9); // NEW_DAEMON
    want.extend(attrs);
    assert_eq!(want.len(), 84);
    assert_eq!(got, want);

    let got = frame_request(
        IpvsMessage::new(
            Command::DelDaemon,
            vec![CmdAttr::Daemon(vec![DaemonAttr::State(2)])],
        ),
        FAMILY,
        NLM_F_REQUEST | NLM_F_ACK,
        SEQ,
    );
    let attrs = nla(3 | NESTED, &nla(1, &2u32.to_le_bytes())); // STATE: BACKUP
    let mut want = headers(20 + attrs.len() as u32, 0x0005, 10); // DEL_DAEMON
    want.extend(attrs);
    assert_eq!(got, want);
}

#[test]
fn netmask_is_a_big_endian_mask_for_ipv4_and_a_prefix_length_for_ipv6() {
    assert_eq!(netmask(false, 32), [255, 255, 255, 255]);
    assert_eq!(netmask(false, 20), [255, 255, 240, 0]);
    assert_eq!(netmask(false, 0), [0, 0, 0, 0]);
    assert_eq!(netmask(true, 64), 64u32.to_ne_bytes());
}

fn parse(bytes: &[u8]) -> IpvsMessage {
    let msg = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(bytes).unwrap();
    match msg.payload {
        NetlinkPayload::InnerMessage(m) => m.payload,
        other => panic!("not a family message: {other:?}"),
    }
}

/// One message of a dump as the kernel writes it: NLM_F_MULTI, no
/// NLA_F_NESTED on the nests (nla_nest_start_noflag), statistics nested.
fn dump_message(cmd: u8, attrs: Vec<u8>) -> Vec<u8> {
    let mut b = headers(20 + attrs.len() as u32, 0x0002, cmd);
    b.extend(attrs);
    b
}

#[test]
fn decodes_a_service_dump_reply() {
    let stats = [nla(1, &12u32.to_le_bytes()), nla(2, &40u32.to_le_bytes())].concat();
    let service = [
        nla(1, &2u16.to_le_bytes()),
        nla(2, &6u16.to_le_bytes()),
        nla(3, &addr16(&[192, 168, 0, 1])),
        nla(4, &443u16.to_be_bytes()),
        nla(6, b"wlc\0"),
        // flags: IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED, mask ~0
        nla(7, &[3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        nla(8, &600u32.to_le_bytes()),
        nla(9, &[255, 255, 255, 255]),
        nla(10, &stats), // IPVS_SVC_ATTR_STATS
    ]
    .concat();
    let bytes = dump_message(1, nla(1, &service)); // IPVS_CMD_NEW_SERVICE
    let msg = parse(&bytes);
    assert_eq!(msg.cmd, Command::NewService);
    let svc = VirtualService::from_attrs(msg.service().unwrap()).unwrap();
    assert_eq!(
        svc,
        VirtualService {
            key: ServiceKey::Addr {
                vip: ip("192.168.0.1"),
                port: 443,
                protocol: Protocol::Tcp
            },
            scheduler: "wlc".into(),
            persistence: Some(Persistence {
                timeout: Duration::from_secs(600),
                prefix_len: 32
            }),
        }
    );
}

#[test]
fn decodes_dest_and_daemon_dump_replies() {
    let dest = [
        nla(1, &addr16(&[10, 0, 1, 2])),
        nla(11, &2u16.to_le_bytes()),
        nla(2, &8080u16.to_be_bytes()),
        nla(3, &3u32.to_le_bytes()), // IP_VS_CONN_F_DROUTE
        nla(4, &5u32.to_le_bytes()),
        nla(13, &[0]), // TUN_TYPE
        nla(5, &0u32.to_le_bytes()),
        nla(6, &0u32.to_le_bytes()),
        nla(7, &2u32.to_le_bytes()), // ACTIVE_CONNS
    ]
    .concat();
    let msg = parse(&dump_message(5, nla(2, &dest)));
    assert_eq!(
        RealServer::from_attrs(false, msg.dest().unwrap()),
        Some(RealServer {
            addr: ip("10.0.1.2"),
            port: 8080,
            forwarding: Forwarding::DirectRouting,
            weight: 5
        })
    );

    let daemon = [
        nla(1, &2u32.to_le_bytes()),
        nla(2, b"eth1\0"),
        nla(3, &9u32.to_le_bytes()),
        nla(4, &1472u16.to_le_bytes()),
        nla(7, &8848u16.to_le_bytes()),
        nla(8, &[1]),
    ]
    .concat();
    let msg = parse(&dump_message(9, nla(3, &daemon)));
    assert_eq!(
        RunningDaemon::from_attrs(msg.daemon().unwrap()),
        Some(RunningDaemon {
            state: DaemonState::Backup,
            interface: "eth1".into(),
            sync_id: 9
        })
    );
}

/// Replies captured from Debian's 6.1 kernel in the ipvs_kernel VM test
/// (the first message of each dump, family id 0x20).
const CAPTURED_SERVICE: &[&str] = &[
    "400100002000020009d005005d000000010100002c01010006000100020000000600020006000000140003000a000001",
    "000000000000000000000000060004000050000008000600777272000c00070002000000ffffffff0800080000000000",
    "08000900ffffffff5c000a000800010000000000080002000000000008000300000000000c0004000000000000000000",
    "0c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00",
    "000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c000400",
    "00000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c000800",
    "00000000000000000c00090000000000000000000c000a000000000000000000",
];
const CAPTURED_DEST: &[&str] = &[
    "64010000200002000ad005005d0000000501000050010200140001000a00010200000000000000000000000006000200",
    "1f9000000800030000000000080004000200000005000d000000000006000e000000000006000f000000000008000500",
    "00000000080006000000000008000700000000000800080000000000080009000000000006000b00020000005c000a00",
    "0800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000",
    "080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c000100",
    "00000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c000500",
    "00000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c000900",
    "00000000000000000c000a000000000000000000",
];
const CAPTURED_DAEMON: &[&str] = &[
    "500000002000020017d005005d000000090100003c0003000800010001000000070002006c6f00000800030033000000",
    "06000400c00500000600070090220000050008000100000008000500e0000051",
];

fn unhex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn decodes_dump_replies_captured_from_a_real_kernel() {
    let msg = parse(&unhex(CAPTURED_SERVICE));
    assert_eq!(msg.cmd, Command::NewService);
    assert_eq!(
        VirtualService::from_attrs(msg.service().unwrap()),
        Some(VirtualService {
            key: web_key(),
            scheduler: "wrr".into(),
            persistence: None,
        })
    );
    let msg = parse(&unhex(CAPTURED_DEST));
    assert_eq!(msg.cmd, Command::NewDest);
    assert_eq!(
        RealServer::from_attrs(false, msg.dest().unwrap()),
        Some(RealServer {
            addr: ip("10.0.1.2"),
            port: 8080,
            forwarding: Forwarding::Nat,
            weight: 2
        })
    );
    let msg = parse(&unhex(CAPTURED_DAEMON));
    assert_eq!(msg.cmd, Command::NewDaemon);
    assert_eq!(
        RunningDaemon::from_attrs(msg.daemon().unwrap()),
        Some(RunningDaemon {
            state: DaemonState::Master,
            interface: "lo".into(),
            sync_id: 51
        })
    );
    // The kernel's defaults, reported back: maxlen 1472, port 8848, TTL 1, 224.0.0.81.
    let daemon = msg.daemon().unwrap();
    assert!(daemon.contains(&DaemonAttr::SyncMaxlen(1472)));
    assert!(daemon.contains(&DaemonAttr::McastPort(8848)));
    assert!(daemon.contains(&DaemonAttr::McastTtl(1)));
    assert!(daemon.contains(&DaemonAttr::McastGroup([224, 0, 0, 81])));
}
