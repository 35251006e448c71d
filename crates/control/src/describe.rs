//! Flows as `conntrack -L` prints them, so scripts written for conntrackd's `-i` / `-e`
//! output (or for `conntrack -L`) read tandem's dumps unchanged.

use std::fmt::Write as _;

use tandem_ctnetlink::{Flow, Status, Tuple, L4};

/// One line per flow, in `conntrack -L`'s layout:
/// `tcp      6 431999 ESTABLISHED src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0`.
/// `use=` (the kernel's reference count) has no meaning for a cache entry and is left out.
pub fn describe(f: &Flow) -> String {
    let proto = f.orig.proto;
    let mut line = format!("{:<8} {proto} {} ", protocol_name(proto), f.timeout);
    if let Some(tcp) = f.tcp {
        let _ = write!(line, "{} ", tcp_state_name(tcp.state));
    }
    tuple(&mut line, &f.orig);
    if f.status.0 & Status::SEEN_REPLY == 0 {
        line.push_str("[UNREPLIED] ");
    }
    tuple(&mut line, &f.reply);
    if f.status.0 & Status::ASSURED != 0 {
        line.push_str("[ASSURED] ");
    }
    let _ = write!(line, "mark={}", f.mark);
    if f.zone != 0 {
        let _ = write!(line, " zone={}", f.zone);
    }
    line
}

fn tuple(line: &mut String, t: &Tuple) {
    let _ = write!(line, "src={} dst={} ", t.src, t.dst);
    match t.l4 {
        L4::Ports { src, dst } => {
            let _ = write!(line, "sport={src} dport={dst} ");
        }
        L4::Icmp { id, kind, code } => {
            let _ = write!(line, "type={kind} code={code} id={id} ");
        }
        L4::None => {}
    }
}

/// The names conntrack prints for layer-4 protocols.
fn protocol_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

/// The kernel's `TCP_CONNTRACK_*` states by the names conntrack prints.
fn tcp_state_name(state: u8) -> &'static str {
    match state {
        0 => "NONE",
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_ctnetlink::TcpInfo;

    fn tcp(src: &str, sport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: "10.60.0.1".parse().unwrap(),
            proto: 6,
            l4: L4::Ports {
                src: sport,
                dst: 80,
            },
        }
    }

    /// Lines `conntrack -L` (conntrack-tools 1.4.7) printed for the same entries, with its
    /// trailing `use=1` cut.
    #[test]
    fn lines_match_conntrack_list_output() {
        let established = Flow::tcp_established(tcp("10.50.0.1", 40000), 3599);
        assert_eq!(
            describe(&established),
            "tcp      6 3599 ESTABLISHED src=10.50.0.1 dst=10.60.0.1 sport=40000 dport=80 \
             src=10.60.0.1 dst=10.50.0.1 sport=80 dport=40000 [ASSURED] mark=0"
        );
        let mut syn = Flow::new(tcp("10.50.0.4", 40001), 99);
        syn.tcp = Some(TcpInfo {
            state: 1,
            ..TcpInfo::default()
        });
        syn.mark = 5;
        syn.zone = 3;
        assert_eq!(
            describe(&syn),
            "tcp      6 99 SYN_SENT src=10.50.0.4 dst=10.60.0.1 sport=40001 dport=80 [UNREPLIED] \
             src=10.60.0.1 dst=10.50.0.4 sport=80 dport=40001 mark=5 zone=3"
        );
        let icmp = Flow::new(
            Tuple {
                src: "10.50.0.3".parse().unwrap(),
                dst: "10.60.0.1".parse().unwrap(),
                proto: 1,
                l4: L4::Icmp {
                    id: 77,
                    kind: 8,
                    code: 0,
                },
            },
            29,
        );
        let mut icmp = icmp;
        icmp.reply.l4 = L4::Icmp {
            id: 77,
            kind: 0,
            code: 0,
        };
        assert_eq!(
            describe(&icmp),
            "icmp     1 29 src=10.50.0.3 dst=10.60.0.1 type=8 code=0 id=77 [UNREPLIED] \
             src=10.60.0.1 dst=10.50.0.3 type=0 code=0 id=77 mark=0"
        );
    }
}
