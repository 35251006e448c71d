//! Gratuitous ARPs and unsolicited NAs of one announcement, in keepalived's order (every
//! address once, then again, `repeat` rounds), paced by `vrrp_garp_interval` /
//! `vrrp_gna_interval` per interface: the first message of an interface leaves at once, the
//! next ones that interval apart, from a task of their own so the daemon loop never waits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tandem_sys::{ArpSender, NaSender};
use tracing::warn;

/// One message: which sender, and what it announces.
#[derive(Clone)]
pub enum Message {
    /// A gratuitous ARP for the address.
    Arp(Arc<ArpSender>, std::net::Ipv4Addr),
    /// An unsolicited NA for the address, from the link-local source.
    Na(Arc<NaSender>, Ipv6Addr, Ipv6Addr),
}

impl Message {
    fn send(&self) -> Result<(), tandem_sys::SysError> {
        match self {
            Message::Arp(s, ip) => s.send(*ip),
            Message::Na(s, source, ip) => s.send(*source, *ip),
        }
    }
}

/// When each message leaves, from the start of the announcement: messages of one
/// interface and kind (`(ifindex, ipv6)`) are `interval` apart, in order; the others do
/// not wait for them (keepalived keeps one clock per interface for ARP and one for NA).
pub fn pace(messages: &[((u32, bool), Duration)]) -> Vec<Duration> {
    let mut sent: HashMap<(u32, bool), u32> = HashMap::new();
    messages
        .iter()
        .map(|(key, interval)| {
            let n = sent.entry(*key).or_default();
            let at = *interval * *n;
            *n += 1;
            at
        })
        .collect()
}

/// Sends `rounds` of `messages` (each with its pacing key and interval): what is due at
/// once now, the rest from a task. `who` names the instance in warnings.
pub fn send(who: &str, messages: Vec<(Message, (u32, bool), Duration)>, rounds: u32) {
    let all: Vec<_> = (0..rounds).flat_map(|_| messages.iter().cloned()).collect();
    let keys: Vec<_> = all.iter().map(|(_, key, gap)| (*key, *gap)).collect();
    let mut timeline: Vec<(Duration, Message)> = pace(&keys)
        .into_iter()
        .zip(all.into_iter().map(|(m, _, _)| m))
        .collect();
    timeline.sort_by_key(|(at, _)| *at);
    let later = timeline.split_off(timeline.partition_point(|(at, _)| at.is_zero()));
    for (_, m) in &timeline {
        if let Err(e) = m.send() {
            warn!("({who}) {e}");
        }
    }
    if later.is_empty() {
        return;
    }
    let who = who.to_string();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for (at, m) in later {
            tokio::time::sleep_until(start + at).await;
            if let Err(e) = m.send() {
                warn!("({who}) {e}");
            }
        }
    });
}

/// The pacing key and interval of an address's messages.
pub fn key(
    ifindex: u32,
    address: IpAddr,
    garp: Duration,
    gna: Duration,
) -> ((u32, bool), Duration) {
    match address {
        IpAddr::V4(_) => ((ifindex, false), garp),
        IpAddr::V6(_) => ((ifindex, true), gna),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn messages_of_one_interface_are_an_interval_apart_and_others_do_not_wait() {
        let a = ((1, false), 10 * MS);
        let b = ((2, false), 10 * MS);
        let na = ((1, true), 30 * MS);
        // Two rounds of three addresses: two on interface 1 (one IPv4, one IPv6), one on 2.
        let offsets = pace(&[a, na, b, a, na, b]);
        assert_eq!(
            offsets,
            vec![
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                10 * MS,
                30 * MS,
                10 * MS
            ]
        );
    }

    #[test]
    fn without_an_interval_everything_leaves_at_once() {
        let a = ((1, false), Duration::ZERO);
        assert_eq!(pace(&[a, a, a]), vec![Duration::ZERO; 3]);
    }
}
