//! conntrackd's `-s` sections, laid out as conntrackd 1.4 prints them (tabs, field widths and
//! counter names), so scripts that read `conntrackd -s` read `tandemctl -s`. Lines whose
//! figure tandem does not have are left out rather than printed as zero: see
//! docs/control-and-health.md for which.

use std::fmt::Write as _;
use std::time::Instant;

use tandem_control::StatsSection;
use tandem_ctsync::{CacheCounters, Stats};

/// What the sections are made of, gathered by the service at the time of the request.
pub struct SectionData {
    /// Counters of the sync channel.
    pub stats: Stats,
    /// The internal cache: counters and size.
    pub internal: (CacheCounters, usize),
    /// The external cache: counters and size.
    pub external: (CacheCounters, usize),
    /// The sync link: device name (`-` when not pinned), and whether it is multicast.
    pub device: String,
    /// Multicast rather than unicast UDP.
    pub multicast: bool,
    /// Failed sends on the sync socket.
    pub send_errors: u64,
    /// DATA datagrams waiting for an acknowledgement (conntrackd's resend queue).
    pub unacked: usize,
    /// Kernel events received, and the times the kernel dropped some (ENOBUFS).
    pub events: u64,
    /// See `events`.
    pub overruns: u64,
    /// Resyncs from a kernel dump.
    pub kernel_resyncs: u64,
    /// When the service started.
    pub started: Instant,
}

/// The text of `section`.
pub fn render(section: StatsSection, d: &SectionData, now: Instant) -> String {
    let mut out = String::new();
    match section {
        StatsSection::General => general(&mut out, d),
        StatsSection::Network => network(&mut out, d),
        StatsSection::Cache => {
            cache_detail(&mut out, "internal", d.internal);
            cache_detail(&mut out, "external", d.external);
        }
        StatsSection::Runtime => runtime(&mut out, d, now),
        StatsSection::Link => {
            let kind = traffic_kind(d);
            let _ = writeln!(
                out,
                "{kind} traffic device={} status=RUNNING role=ACTIVE:",
                d.device
            );
            traffic(&mut out, d);
        }
        StatsSection::Rsqueue => {
            let _ = writeln!(out, "resent queue (len={})", d.unacked);
        }
        // tandemd runs no child processes, has none of conntrackd's internal queues, and
        // does not replicate expectations: conntrackd prints nothing for these either when
        // it has none.
        StatsSection::Process | StatsSection::Queue | StatsSection::Expect => {}
    }
    out
}

fn traffic_kind(d: &SectionData) -> &'static str {
    if d.multicast {
        "multicast"
    } else {
        "UDP"
    }
}

fn general(out: &mut String, d: &SectionData) {
    for (name, (c, len)) in [("internal", d.internal), ("external", d.external)] {
        let _ = write!(
            out,
            "cache {name}:\n\
             current active connections:\t{len:>12}\n\
             connections created:\t\t{:>12}\tfailed:\t{:>12}\n\
             connections updated:\t\t{:>12}\tfailed:\t{:>12}\n\
             connections destroyed:\t\t{:>12}\tfailed:\t{:>12}\n\n",
            c.created, c.create_failed, c.updated, 0, c.destroyed, c.destroy_not_found
        );
    }
    let _ = writeln!(
        out,
        "{} traffic (active device={}):",
        traffic_kind(d),
        d.device
    );
    traffic(out, d);
    let s = &d.stats;
    let malformed = s.drops.malformed
        + s.drops.truncated
        + s.drops.bad_magic
        + s.drops.bad_version
        + s.drops.unknown_type;
    let _ = write!(
        out,
        "message tracking:\n{malformed:>20} Malformed msgs {:>20} Lost msgs\n\n",
        s.gaps_abandoned
    );
}

fn traffic(out: &mut String, d: &SectionData) {
    let s = &d.stats;
    let _ = write!(
        out,
        "{:>20} Bytes sent {:>20} Bytes recv\n\
         {:>20} Pckts sent {:>20} Pckts recv\n\
         {:>20} Error send {:>20} Error recv\n\n",
        s.bytes_sent, s.bytes_received, s.datagrams_sent, s.datagrams_received, d.send_errors, 0
    );
}

fn network(out: &mut String, d: &SectionData) {
    let s = &d.stats;
    let _ = write!(
        out,
        "network statistics:\n\
         \trecv:\n\
         \t\tMalformed messages:\t{:>20}\n\
         \t\tWrong protocol version:\t{:>20}\n\
         \t\tMalformed header:\t{:>20}\n\
         \t\tMalformed payload:\t{:>20}\n\
         \t\tBad message type:\t{:>20}\n\
         \t\tTruncated message:\t{:>20}\n\n\
         sequence tracking statistics:\n\
         \trecv:\n\
         \t\tPackets lost:\t\t{:>20}\n\
         \t\tPackets before:\t\t{:>20}\n\n",
        s.drops.malformed,
        s.drops.bad_version,
        s.drops.bad_magic,
        s.bad_records,
        s.drops.unknown_type,
        s.drops.truncated,
        s.gaps_abandoned,
        s.drops.duplicate,
    );
    let _ = writeln!(
        out,
        "{} traffic (active device={}):",
        traffic_kind(d),
        d.device
    );
    traffic(out, d);
}

fn cache_detail(out: &mut String, name: &str, (c, len): (CacheCounters, usize)) {
    let _ = write!(
        out,
        "cache:{name}\tactive objects:\t\t{len:>12}\n\
         \tcreation OK/failed:\t\t{:>12}/{:>12}\n\
         \t\tno space left in cache:\t{:>12}\n\
         \tupdate OK/failed:\t\t{:>12}/{:>12}\n\
         \tdeletion created/failed:\t{:>12}/{:>12}\n\
         \t\tentry not found:\t{:>12}\n\n",
        c.created,
        c.create_failed,
        c.create_failed,
        c.updated,
        0,
        c.destroyed,
        c.destroy_not_found,
        c.destroy_not_found,
    );
}

fn runtime(out: &mut String, d: &SectionData, now: Instant) {
    let minutes = now.saturating_duration_since(d.started).as_secs() / 60;
    let _ = write!(
        out,
        "daemon uptime: {minutes} min\n\n\
         netlink stats:\n\
         \tevents received:\t{:>20}\n\
         \tnetlink overrun:\t\t{:>12}\n\
         \tresync with kernel table:\t{:>12}\n\n",
        d.events, d.overruns, d.kernel_resyncs
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> SectionData {
        let mut stats = Stats {
            bytes_sent: 8,
            datagrams_sent: 1,
            ..Stats::default()
        };
        stats.drops.duplicate = 2;
        SectionData {
            stats,
            internal: (
                CacheCounters {
                    created: 4,
                    ..CacheCounters::default()
                },
                4,
            ),
            external: (CacheCounters::default(), 0),
            device: "eth9".into(),
            multicast: false,
            send_errors: 0,
            unacked: 0,
            events: 0,
            overruns: 0,
            kernel_resyncs: 0,
            started: Instant::now(),
        }
    }

    /// Byte for byte what conntrackd 1.4.7 printed for `-s` with the same figures (its
    /// "traffic processed" block, a figure tandem does not have, is left out).
    #[test]
    fn general_section_is_laid_out_as_conntrackd() {
        let text = render(StatsSection::General, &data(), Instant::now());
        let expected = [
            "cache internal:",
            "current active connections:\t           4",
            "connections created:\t\t           4\tfailed:\t           0",
            "connections updated:\t\t           0\tfailed:\t           0",
            "connections destroyed:\t\t           0\tfailed:\t           0",
            "",
            "cache external:",
            "current active connections:\t           0",
            "connections created:\t\t           0\tfailed:\t           0",
            "connections updated:\t\t           0\tfailed:\t           0",
            "connections destroyed:\t\t           0\tfailed:\t           0",
            "",
            "UDP traffic (active device=eth9):",
            "                   8 Bytes sent                    0 Bytes recv",
            "                   1 Pckts sent                    0 Pckts recv",
            "                   0 Error send                    0 Error recv",
            "",
            "message tracking:",
            "                   0 Malformed msgs                    0 Lost msgs",
            "",
            "",
        ]
        .join("\n");
        assert_eq!(text, expected);
    }

    #[test]
    fn rsqueue_and_link_sections() {
        let d = data();
        assert_eq!(
            render(StatsSection::Rsqueue, &d, Instant::now()),
            "resent queue (len=0)\n"
        );
        assert!(render(StatsSection::Link, &d, Instant::now())
            .starts_with("UDP traffic device=eth9 status=RUNNING role=ACTIVE:\n"));
        assert_eq!(render(StatsSection::Process, &d, Instant::now()), "");
    }
}
