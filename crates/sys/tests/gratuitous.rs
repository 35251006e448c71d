//! Gratuitous ARP and unsolicited NA, captured by tcpdump on the veth peer.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_lab::{Child, Netns};
use tandem_sys::{send_gratuitous_arp, send_unsolicited_na, ArpSender};

/// Starts `tcpdump -c count -w file filter` on eth0 in `ns` and waits until it captures.
fn capture(ns: &Netns, dir: &Path, name: &str, count: u32, filter: &str) -> (Child, PathBuf) {
    let file = dir.join(format!("{name}.pcap"));
    let count = count.to_string();
    let mut argv = vec!["tcpdump", "-i", "eth0", "-n", "-U", "-c", &count, "-w"];
    let file_str = file.to_str().unwrap().to_string();
    argv.push(&file_str);
    argv.extend(filter.split_whitespace());
    let child = ns.spawn(&argv).unwrap();
    tandem_lab::wait_until(
        "tcpdump to start listening",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || child.log().contains("listening on").then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", child.log()));
    (child, file)
}

fn finish(mut child: Child) {
    let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        status.is_some(),
        "tcpdump captured too little:\n{}",
        child.log()
    );
}

/// The frames of a classic pcap file (Ethernet link type).
fn pcap_frames(file: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(file).unwrap();
    assert!(data.len() >= 24, "pcap file too short");
    let le = data[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type is not Ethernet");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32_at(at + 8) as usize;
        frames.push(data[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    frames
}

#[test]
fn gratuitous_arp_reaches_the_peer_with_our_ip_and_mac() {
    tandem_lab::require_root!();
    let p = common::pair("sysgarp").unwrap();
    let mac = common::mac_of(&p.a, "eth0").unwrap();
    let index = common::index_of(&p.a, "eth0").unwrap();
    let vip: Ipv4Addr = "10.0.0.100".parse().unwrap();

    let (child, file) = capture(&p.b, p.lab.log_dir(), "garp", 1, "arp");
    p.a.enter(|| send_gratuitous_arp(index, mac, vip))
        .unwrap()
        .unwrap();
    finish(child);

    let frames = pcap_frames(&file);
    let f = &frames[0];
    assert_eq!(&f[0..6], &[0xff; 6], "Ethernet destination");
    assert_eq!(&f[6..12], &mac, "Ethernet source");
    assert_eq!(&f[12..14], &[0x08, 0x06], "EtherType");
    assert_eq!(&f[20..22], &[0, 1], "ARP request");
    assert_eq!(&f[22..28], &mac, "sender MAC");
    assert_eq!(&f[28..32], &vip.octets(), "sender IP");
    assert_eq!(&f[32..38], &[0; 6], "target MAC");
    assert_eq!(&f[38..42], &vip.octets(), "target IP");

    // tcpdump's own reading agrees.
    let text =
        p.b.run(&format!("tcpdump -r {} -nn -e", file.display()))
            .unwrap();
    assert!(text.contains(&common::fmt_mac(&mac)), "{text}");
    assert!(
        text.contains("Request who-has 10.0.0.100 tell 10.0.0.100"),
        "{text}"
    );
}

#[test]
fn arp_sender_is_reusable_for_bursts() {
    tandem_lab::require_root!();
    let p = common::pair("sysgarpb").unwrap();
    let mac = common::mac_of(&p.a, "eth0").unwrap();
    let index = common::index_of(&p.a, "eth0").unwrap();

    let (child, file) = capture(&p.b, p.lab.log_dir(), "burst", 5, "arp");
    p.a.enter(|| {
        let sender = ArpSender::new(index, mac).unwrap();
        for i in 0..5u8 {
            sender.send(Ipv4Addr::new(10, 0, 0, 100 + i)).unwrap();
        }
    })
    .unwrap();
    finish(child);
    let frames = pcap_frames(&file);
    let senders: Vec<u8> = frames.iter().map(|f| f[31]).collect();
    assert_eq!(senders, vec![100, 101, 102, 103, 104]);
}

#[test]
fn arp_sender_on_missing_interface_is_an_error() {
    tandem_lab::require_root!();
    let p = common::pair("sysgarpe").unwrap();
    let err =
        p.a.enter(|| send_gratuitous_arp(4242, [2, 0, 0, 0, 0, 1], Ipv4Addr::LOCALHOST))
            .unwrap()
            .unwrap_err();
    assert!(err.to_string().contains("4242"), "{err}");
}

/// RFC 4443 checksum over the IPv6 pseudo-header and the ICMPv6 message.
fn icmpv6_checksum(src: &[u8], dst: &[u8], msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
        }
    };
    add(src);
    add(dst);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn unsolicited_na_reaches_the_peer_with_override_and_our_mac() {
    tandem_lab::require_root!();
    let p = common::pair("sysna").unwrap();
    let mac = common::mac_of(&p.a, "eth0").unwrap();
    let index = common::index_of(&p.a, "eth0").unwrap();
    let ll = common::link_local(&p.a, "eth0").unwrap();
    let vip: Ipv6Addr = "fd00::100".parse().unwrap();

    let (child, file) = capture(&p.b, p.lab.log_dir(), "na", 2, "icmp6 and ip6[40] == 136");
    p.a.enter(|| send_unsolicited_na("eth0", index, mac, ll, vip))
        .unwrap()
        .unwrap();
    // A forwarding interface is a router: the R flag must then be set.
    p.a.sysctl("net.ipv6.conf.eth0.forwarding", "1").unwrap();
    p.a.enter(|| send_unsolicited_na("eth0", index, mac, ll, vip))
        .unwrap()
        .unwrap();
    finish(child);

    let frames = pcap_frames(&file);
    for (f, flags) in frames.iter().zip([0x20u8, 0xa0]) {
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1], "Ethernet destination");
        assert_eq!(&f[6..12], &mac, "Ethernet source");
        assert_eq!(&f[12..14], &[0x86, 0xdd], "EtherType");
        let ip = &f[14..];
        assert_eq!(ip[6], 58, "next header ICMPv6");
        assert_eq!(ip[7], 255, "hop limit");
        assert_eq!(&ip[8..24], &ll.octets(), "source");
        assert_eq!(
            &ip[24..40],
            &"ff02::1".parse::<Ipv6Addr>().unwrap().octets(),
            "destination"
        );
        let icmp = &ip[40..];
        assert_eq!(icmp.len(), 32);
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], flags, "flags");
        assert_eq!(&icmp[8..24], &vip.octets(), "target");
        assert_eq!(&icmp[24..26], &[2, 1], "target link-layer address option");
        assert_eq!(&icmp[26..32], &mac);
        assert_eq!(
            icmpv6_checksum(&ip[8..24], &ip[24..40], icmp),
            0,
            "checksum"
        );
    }

    let text =
        p.b.run(&format!("tcpdump -r {} -nn -vv", file.display()))
            .unwrap();
    assert!(text.contains("neighbor advertisement"), "{text}");
    assert!(text.contains("tgt is fd00::100"), "{text}");
    assert!(text.contains(&common::fmt_mac(&mac)), "{text}");
    assert!(!text.contains("bad"), "{text}");
}
