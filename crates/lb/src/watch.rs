//! Changes other programs make to tandem's nf_tables tables. A firewall reload on a
//! director (`systemctl restart nftables` runs `flush ruleset`), an `nft delete table` typed
//! by mistake or a configuration-management run that flushes everything removes the
//! balancing with the rest; the director would go on holding the VIP while nothing is
//! forwarded. The kernel reports every nf_tables change to the NFNLGRP_NFTABLES group with the
//! port of the socket that made it, so changes not made by tandem's own socket are told
//! apart and the balancer puts its table back.

use std::io;

use netlink_packet_core::{NetlinkBuffer, NlasIterator};
use netlink_sys::{protocols::NETLINK_NETFILTER, AsyncSocket, AsyncSocketExt, TokioSocket};

/// nf_tables' netlink subsystem (NFNL_SUBSYS_NFTABLES).
const SUBSYS_NFTABLES: u16 = 10;
/// The multicast group nf_tables reports changes to (NFNLGRP_NFTABLES).
const GROUP_NFTABLES: u32 = 7;
/// NFT_MSG_NEWGEN: the end of a transaction, names no table.
const MSG_NEWGEN: u16 = 15;
/// Size of `struct nfgenmsg` (family, version, resource id).
const NFGENMSG_LEN: usize = 4;
/// The attribute that names the table in table, chain, rule, set, element, object and
/// flowtable messages alike (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, ...).
const ATTR_TABLE: u16 = 1;
/// Receive buffer: a `flush ruleset` of a big firewall reports every object at once.
const RECEIVE_BUFFER: usize = 4 << 20;

/// One change to a table, made by a socket other than ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignChange {
    /// Address family of the table (`NFPROTO_*`: 1 inet, 5 netdev, ...).
    pub family: u8,
    /// The table's name.
    pub table: String,
    /// What happened, in nft's words (`delete table`, `add rule`, ...).
    pub what: &'static str,
    /// Netlink port of the socket that made it (for nft, its process id).
    pub port: u32,
}

/// Listens to nf_tables changes in the calling thread's network namespace.
pub struct TableWatch {
    socket: TokioSocket,
    own_port: u32,
    buf: Vec<u8>,
}

impl TableWatch {
    /// Subscribes; changes made through the socket bound to `own_port` (the backend's own,
    /// [`crate::NfTables::port`]) are not reported.
    pub fn open(own_port: u32) -> io::Result<TableWatch> {
        let mut socket = TokioSocket::new(NETLINK_NETFILTER)?;
        let inner = socket.socket_mut();
        inner.bind_auto()?;
        inner.add_membership(GROUP_NFTABLES)?;
        inner.set_rx_buf_sz(RECEIVE_BUFFER)?;
        Ok(TableWatch {
            socket,
            own_port,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// Waits for the next datagram of changes and returns the foreign ones it holds (maybe
    /// none). An overrun receive buffer is reported as an error: changes were lost, and
    /// the caller should assume its tables were touched.
    pub async fn next(&mut self) -> io::Result<Vec<ForeignChange>> {
        self.buf.clear();
        self.socket.recv(&mut self.buf).await?;
        Ok(foreign_changes(&self.buf, self.own_port))
    }
}

/// The changes in one datagram of nf_tables notifications not made by `own_port`.
pub fn foreign_changes(datagram: &[u8], own_port: u32) -> Vec<ForeignChange> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= datagram.len() {
        let Ok(message) = NetlinkBuffer::new_checked(&datagram[at..]) else {
            break;
        };
        let len = message.length() as usize;
        let (kind, port) = (message.message_type(), message.port_number());
        let (subsys, op) = (kind >> 8, kind & 0xff);
        if subsys == SUBSYS_NFTABLES && op != MSG_NEWGEN && port != own_port {
            let payload = message.payload();
            if payload.len() >= NFGENMSG_LEN {
                if let Some(table) = table_name(&payload[NFGENMSG_LEN..]) {
                    out.push(ForeignChange {
                        family: payload[0],
                        table,
                        what: operation(op),
                        port,
                    });
                }
            }
        }
        if len == 0 {
            break;
        }
        at += (len + 3) & !3;
    }
    out
}

/// The table named by the first-level attributes of one message (None at the first
/// malformed attribute).
fn table_name(attrs: &[u8]) -> Option<String> {
    for nla in NlasIterator::new(attrs) {
        let nla = nla.ok()?;
        if nla.kind() == ATTR_TABLE {
            let value = nla.value();
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return String::from_utf8(value[..end].to_vec()).ok();
        }
    }
    None
}

/// nft's words for an nf_tables message type.
fn operation(op: u16) -> &'static str {
    match op {
        0 => "add table",
        2 => "delete table",
        3 => "add chain",
        5 => "delete chain",
        6 => "add rule",
        8 => "delete rule",
        9 => "add set",
        11 => "delete set",
        12 => "add element",
        14 => "delete element",
        _ => "change",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One notification as the kernel lays it out: nlmsghdr, nfgenmsg, attributes.
    fn notification(op: u16, port: u32, family: u8, table: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let name = [table.as_bytes(), &[0]].concat();
        attr.extend_from_slice(&((4 + name.len()) as u16).to_ne_bytes());
        attr.extend_from_slice(&ATTR_TABLE.to_ne_bytes());
        attr.extend_from_slice(&name);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = 16 + NFGENMSG_LEN + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&((SUBSYS_NFTABLES << 8) | op).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes()); // flags
        m.extend_from_slice(&7u32.to_ne_bytes()); // sequence
        m.extend_from_slice(&port.to_ne_bytes());
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn changes_by_other_sockets_are_reported_with_their_table() {
        let mut datagram = notification(2, 4242, 1, "tandem_lb");
        datagram.extend(notification(8, 99, 1, "tandem_lb")); // ours
        datagram.extend(notification(5, 4242, 5, "filter"));
        let changes = foreign_changes(&datagram, 99);
        assert_eq!(
            changes,
            vec![
                ForeignChange {
                    family: 1,
                    table: "tandem_lb".into(),
                    what: "delete table",
                    port: 4242
                },
                ForeignChange {
                    family: 5,
                    table: "filter".into(),
                    what: "delete chain",
                    port: 4242
                },
            ]
        );
    }

    #[test]
    fn the_table_attribute_is_found_past_others_and_not_past_a_malformed_one() {
        let table = [
            &8u16.to_ne_bytes()[..],
            &ATTR_TABLE.to_ne_bytes(),
            b"lb\0\0",
        ]
        .concat();
        let other = [&5u16.to_ne_bytes()[..], &3u16.to_ne_bytes(), &[9, 0, 0, 0]].concat();
        let too_long = [&64u16.to_ne_bytes()[..], &3u16.to_ne_bytes()].concat();
        assert_eq!(
            table_name(&[&other[..], &table].concat()),
            Some("lb".into())
        );
        assert_eq!(table_name(&[&too_long[..], &table].concat()), None);
        assert_eq!(table_name(&other), None);
    }

    #[test]
    fn truncated_or_empty_datagrams_report_nothing() {
        let whole = notification(2, 1, 1, "tandem_lb");
        assert!(foreign_changes(&whole[..whole.len() - 9], 0).is_empty());
        assert!(foreign_changes(&[], 0).is_empty());
        let mut generation = notification(MSG_NEWGEN, 1, 0, "x");
        generation.truncate(16 + NFGENMSG_LEN);
        generation[0..4].copy_from_slice(&((16 + NFGENMSG_LEN) as u32).to_ne_bytes());
        assert!(foreign_changes(&generation, 0).is_empty());
    }
}
