//! What the daemon asks of the replication service and what it answers, as types: the
//! failover sequence and the control socket use the same requests, and every request gets a
//! reply or a refusal. Text appears only at the edge: [`parse`] reads an operator's words
//! once, and the `Display` of a reply or refusal is what the control socket writes back.

use std::fmt;

use tandem_ctnetlink::Flow;
use tandem_ctsync::CacheKind;

use crate::describe::describe;

/// Which caches a flush clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caches {
    /// One of them.
    One(CacheKind),
    /// Both (conntrackd's `-f` without an argument).
    Both,
}

impl Caches {
    /// The caches, internal first.
    pub fn kinds(self) -> &'static [CacheKind] {
        match self {
            Caches::One(CacheKind::Internal) => &[CacheKind::Internal],
            Caches::One(CacheKind::External) => &[CacheKind::External],
            Caches::Both => &[CacheKind::Internal, CacheKind::External],
        }
    }
}

/// A request to the replication service (conntrackd's verbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// `RequestResync` keeps conntrackd's name for `-n`.
#[allow(clippy::enum_variant_names)]
pub enum Request {
    /// Put the peer's flows (the external cache) into the kernel table.
    Commit,
    /// Empty caches.
    Flush(Caches),
    /// Rebuild the internal cache from a kernel dump.
    Resync,
    /// Send the internal cache to the peer.
    Bulk,
    /// Ask the peer for its whole internal cache.
    RequestResync,
    /// Shorten the kernel timers of this node's flows.
    Shorten,
    /// The replication counters.
    Stats,
    /// One of conntrackd's `-s` sections, in conntrackd's layout.
    Section(StatsSection),
    /// Every flow of a cache.
    Dump(CacheKind),
}

/// conntrackd's `-s` sections (`-s` alone is [`StatsSection::General`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsSection {
    /// Caches, sync traffic, message tracking (`-s`, `-s ct`).
    General,
    /// Wire errors and sequence tracking (`-s network`).
    Network,
    /// Cache details (`-s cache`).
    Cache,
    /// Uptime and kernel event counters (`-s runtime`).
    Runtime,
    /// The sync link (`-s link`).
    Link,
    /// The retransmission queue (`-s rsqueue`).
    Rsqueue,
    /// Child processes (`-s process`): tandemd runs none.
    Process,
    /// Internal queues (`-s queue`).
    Queue,
    /// Expectation cache (`-s expect`): tandem does not replicate expectations.
    Expect,
}

impl StatsSection {
    /// The section conntrackd names `word`.
    pub fn from_word(word: &str) -> Option<StatsSection> {
        Some(match word {
            "general" | "ct" => StatsSection::General,
            "network" => StatsSection::Network,
            "cache" => StatsSection::Cache,
            "runtime" => StatsSection::Runtime,
            "link" => StatsSection::Link,
            "rsqueue" => StatsSection::Rsqueue,
            "process" => StatsSection::Process,
            "queue" => StatsSection::Queue,
            "expect" => StatsSection::Expect,
            _ => return None,
        })
    }
}

impl Request {
    /// The request that carries out a step of the failover sequence.
    pub fn for_step(step: tandem_failover::Step) -> Request {
        use tandem_failover::Step;
        match step {
            Step::Commit => Request::Commit,
            Step::FlushExternal => Request::Flush(Caches::One(CacheKind::External)),
            Step::Bulk => Request::Bulk,
            Step::Shorten => Request::Shorten,
            Step::RequestResync => Request::RequestResync,
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    /// Flows handed to the kernel.
    pub entries: usize,
    /// How long it took.
    pub ms: f64,
    /// Created in the kernel.
    pub created: usize,
    /// Already there, updated instead.
    pub updated: usize,
    /// Refused by the kernel.
    pub refused: usize,
    /// With warm standby: the peer's flows that were in the kernel already.
    pub already_warm: Option<usize>,
}

/// The service's answer to a request it carried out.
#[derive(Debug, Clone)]
pub enum Reply {
    /// [`Request::Commit`].
    Committed(Committed),
    /// [`Request::Flush`].
    Flushed,
    /// [`Request::Resync`].
    Resynced {
        /// Flows now in the internal cache.
        entries: usize,
        /// How long the dump took.
        ms: f64,
    },
    /// [`Request::Bulk`]: the bulk is on its way.
    BulkSending {
        /// Flows sent.
        entries: usize,
    },
    /// [`Request::RequestResync`].
    ResyncRequested,
    /// [`Request::Shorten`].
    Shortened {
        /// Flows whose timer the kernel shortened.
        shortened: usize,
        /// Flows asked for.
        of: usize,
        /// The new timeout.
        seconds: u32,
    },
    /// [`Request::Stats`]: counters by name.
    Stats(Vec<(&'static str, u64)>),
    /// [`Request::Section`]: the section's text, laid out.
    Section(String),
    /// [`Request::Dump`].
    Dump(Vec<Flow>),
}

/// Why a request was not carried out (or failed half-way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The service's queue is full.
    #[error("conntrack replication is busy, try again")]
    Busy,
    /// The service's thread has ended.
    #[error("conntrack replication has stopped")]
    Stopped,
    /// The kernel refused the commit.
    #[error("commit failed: {error}{}", warm_suffix(*already_warm))]
    CommitFailed {
        /// The kernel's error.
        error: String,
        /// With warm standby: flows that were in the kernel already.
        already_warm: Option<usize>,
    },
    /// The kernel dump failed.
    #[error("dumping the conntrack table: {0}")]
    DumpFailed(String),
    /// The kernel refused to shorten timers.
    #[error("shortening timers: {0}")]
    ShortenFailed(String),
}

fn warm_suffix(already_warm: Option<usize>) -> String {
    already_warm.map_or_else(String::new, |n| format!(" ({n} already warm)"))
}

/// The control socket's text: one or more lines, each ending in a newline.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Committed(c) => writeln!(
                f,
                "commit: {} entries in {:.1} ms, {} created, {} updated, {} refused{}",
                c.entries,
                c.ms,
                c.created,
                c.updated,
                c.refused,
                warm_suffix(c.already_warm)
            ),
            Reply::Flushed => writeln!(f, "flush: done"),
            Reply::Resynced { entries, ms } => {
                writeln!(f, "resync: {entries} entries in {ms:.1} ms")
            }
            Reply::BulkSending { entries } => writeln!(f, "bulk: sending {entries} entries"),
            Reply::ResyncRequested => writeln!(f, "request-resync: sent"),
            Reply::Shortened {
                shortened,
                of,
                seconds,
            } => writeln!(f, "shorten: {shortened} of {of} entries to {seconds} s"),
            Reply::Stats(counters) => counters
                .iter()
                .try_for_each(|(name, value)| writeln!(f, "{name}={value}")),
            Reply::Section(text) => f.write_str(text),
            Reply::Dump(flows) => flows
                .iter()
                .try_for_each(|flow| writeln!(f, "{}", describe(flow))),
        }
    }
}

/// The control socket's text for an answer: the reply, or `error: ...`.
pub fn render(answer: &Result<Reply, Refusal>) -> String {
    match answer {
        Ok(reply) => reply.to_string(),
        Err(refusal) => format!("error: {refusal}\n"),
    }
}

/// An operator's command, read from the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlCommand {
    /// The VRRP status lines (`status`, `stats vrrp`, an empty line).
    Status,
    /// The status as one JSON document (`status json`).
    StatusJson,
    /// Counters and gauges in Prometheus' text format (`metrics`), as the metrics listener
    /// serves them.
    Metrics,
    /// Re-read the configuration, as SIGHUP does.
    Reload,
    /// One of keepalived's dumps (`dump data|stats|json`), as its signals write them.
    KeepalivedDump(KeepalivedDump),
    /// A request for the replication service.
    Replication(Request),
}

/// keepalived's dumps: what SIGUSR1, SIGUSR2 and its JSON signal write to /tmp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepalivedDump {
    /// `/tmp/keepalived.data`.
    Data,
    /// `/tmp/keepalived.stats`.
    Stats,
    /// `/tmp/keepalived.json`.
    Json,
}

/// Why an operator's words are not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a verb tandem knows.
    #[error("unknown command `{0}` (try `status`)")]
    UnknownCommand(String),
    /// A cache name other than `internal` or `external`.
    #[error("unknown cache `{0}`: internal or external")]
    UnknownCache(String),
    /// `dump` without a cache.
    #[error(
        "`dump` needs a cache (internal or external) or a keepalived dump (data, stats, json)"
    )]
    MissingCache,
    /// `commit internal`.
    #[error("committing the internal cache is not supported (it came from this kernel)")]
    CommitInternal,
    /// `stats` with a section conntrackd does not have (its own wording).
    #[error("unknown parameter `{0}' for option `-s'")]
    UnknownSection(String),
    /// A word after a verb that takes none (or one too many).
    #[error("`{verb}` does not take `{word}`")]
    Unexpected {
        /// The verb.
        verb: String,
        /// The word too many.
        word: String,
    },
}

/// Reads a control-socket line (`commit`, `flush external`, `dump internal`, `stats`, ...).
pub fn parse(line: &str) -> Result<ControlCommand, ParseError> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    let arg = words.next();
    if let (Some(arg), Some(extra)) = (arg, words.next()) {
        return Err(ParseError::Unexpected {
            verb: format!("{verb} {arg}"),
            word: extra.into(),
        });
    }
    let no_arg = |request: Request| match arg {
        None => Ok(ControlCommand::Replication(request)),
        Some(word) => Err(ParseError::Unexpected {
            verb: verb.into(),
            word: word.into(),
        }),
    };
    let cache = |word: &str| match word {
        "internal" => Ok(CacheKind::Internal),
        "external" => Ok(CacheKind::External),
        other => Err(ParseError::UnknownCache(other.into())),
    };
    let request = match verb {
        "" | "status" if arg.is_none() => return Ok(ControlCommand::Status),
        "status" if arg == Some("json") => return Ok(ControlCommand::StatusJson),
        "status" => {
            return Err(ParseError::Unexpected {
                verb: verb.into(),
                word: arg.unwrap_or_default().into(),
            })
        }
        "metrics" => {
            return match arg {
                None => Ok(ControlCommand::Metrics),
                Some(word) => Err(ParseError::Unexpected {
                    verb: verb.into(),
                    word: word.into(),
                }),
            }
        }
        "reload" => {
            return match arg {
                None => Ok(ControlCommand::Reload),
                Some(word) => Err(ParseError::Unexpected {
                    verb: verb.into(),
                    word: word.into(),
                }),
            }
        }
        "stats" if arg == Some("vrrp") => return Ok(ControlCommand::Status),
        // `stats` alone: every counter as name=value; with a word, conntrackd's section.
        "stats" | "sync-stats" => match arg {
            None | Some("all") => Request::Stats,
            Some(word) => Request::Section(
                StatsSection::from_word(word)
                    .ok_or_else(|| ParseError::UnknownSection(word.into()))?,
            ),
        },
        "commit" => match arg.map(cache).transpose()? {
            None | Some(CacheKind::External) => Request::Commit,
            Some(CacheKind::Internal) => return Err(ParseError::CommitInternal),
        },
        "flush" => match arg {
            None | Some("all") => Request::Flush(Caches::Both),
            Some(word) => Request::Flush(Caches::One(cache(word)?)),
        },
        "dump" => match arg.ok_or(ParseError::MissingCache)? {
            "data" => return Ok(ControlCommand::KeepalivedDump(KeepalivedDump::Data)),
            "stats" => return Ok(ControlCommand::KeepalivedDump(KeepalivedDump::Stats)),
            "json" => return Ok(ControlCommand::KeepalivedDump(KeepalivedDump::Json)),
            word => Request::Dump(cache(word)?),
        },
        "resync" => return no_arg(Request::Resync),
        "bulk" => return no_arg(Request::Bulk),
        "request-resync" => return no_arg(Request::RequestResync),
        "shorten" => return no_arg(Request::Shorten),
        other => return Err(ParseError::UnknownCommand(other.into())),
    };
    Ok(ControlCommand::Replication(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replication(line: &str) -> Request {
        match parse(line) {
            Ok(ControlCommand::Replication(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn conntrackd_verbs_as_tandemctl_sends_them() {
        use CacheKind::*;
        assert_eq!(replication("commit"), Request::Commit);
        assert_eq!(replication("commit external"), Request::Commit);
        assert_eq!(replication("flush"), Request::Flush(Caches::Both));
        assert_eq!(replication("flush all"), Request::Flush(Caches::Both));
        assert_eq!(
            replication("flush internal"),
            Request::Flush(Caches::One(Internal))
        );
        assert_eq!(
            replication(" flush   external "),
            Request::Flush(Caches::One(External))
        );
        assert_eq!(replication("resync"), Request::Resync);
        assert_eq!(replication("bulk"), Request::Bulk);
        assert_eq!(replication("request-resync"), Request::RequestResync);
        assert_eq!(replication("shorten"), Request::Shorten);
        assert_eq!(replication("stats"), Request::Stats);
        assert_eq!(replication("stats all"), Request::Stats);
        assert_eq!(parse("status json"), Ok(ControlCommand::StatusJson));
        assert_eq!(parse("metrics"), Ok(ControlCommand::Metrics));
        assert!(parse("metrics now").is_err());
        assert!(parse("status bogus").is_err());
        for (line, which) in [
            ("dump data", KeepalivedDump::Data),
            ("dump stats", KeepalivedDump::Stats),
            ("dump json", KeepalivedDump::Json),
        ] {
            assert_eq!(parse(line), Ok(ControlCommand::KeepalivedDump(which)));
        }
        assert_eq!(replication("sync-stats"), Request::Stats);
        assert_eq!(
            replication("stats ct"),
            Request::Section(StatsSection::General)
        );
        assert_eq!(
            replication("stats rsqueue"),
            Request::Section(StatsSection::Rsqueue)
        );
        assert_eq!(
            parse("stats bogus").unwrap_err().to_string(),
            "unknown parameter `bogus' for option `-s'"
        );
        assert_eq!(replication("dump internal"), Request::Dump(Internal));
        assert_eq!(replication("dump external"), Request::Dump(External));
    }

    #[test]
    fn status_words() {
        for line in ["", "status", "stats vrrp"] {
            assert_eq!(parse(line), Ok(ControlCommand::Status), "{line:?}");
        }
    }

    #[test]
    fn an_unknown_cache_is_an_error_not_both() {
        for line in ["flush bogus", "dump bogus", "commit bogus"] {
            let e = parse(line).unwrap_err();
            assert_eq!(e, ParseError::UnknownCache("bogus".into()));
            assert_eq!(e.to_string(), "unknown cache `bogus`: internal or external");
        }
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        assert_eq!(
            parse("frobnicate").unwrap_err().to_string(),
            "unknown command `frobnicate` (try `status`)"
        );
        assert_eq!(parse("dump"), Err(ParseError::MissingCache));
        assert_eq!(parse("commit internal"), Err(ParseError::CommitInternal));
        assert_eq!(
            parse("bulk now").unwrap_err().to_string(),
            "`bulk` does not take `now`"
        );
        assert_eq!(
            parse("flush internal external").unwrap_err().to_string(),
            "`flush internal` does not take `external`"
        );
    }

    #[test]
    fn replies_keep_the_control_socket_text() {
        let c = Committed {
            entries: 10,
            ms: 1.25,
            created: 8,
            updated: 2,
            refused: 0,
            already_warm: None,
        };
        assert_eq!(
            render(&Ok(Reply::Committed(c.clone()))),
            "commit: 10 entries in 1.2 ms, 8 created, 2 updated, 0 refused\n"
        );
        let warm = Committed {
            already_warm: Some(990),
            ..c
        };
        assert!(render(&Ok(Reply::Committed(warm))).ends_with(" refused (990 already warm)\n"));
        assert_eq!(
            render(&Ok(Reply::Stats(vec![("a", 1), ("b", 2)]))),
            "a=1\nb=2\n"
        );
        assert_eq!(render(&Ok(Reply::Flushed)), "flush: done\n");
        assert_eq!(
            render(&Err(Refusal::Busy)),
            "error: conntrack replication is busy, try again\n"
        );
        assert_eq!(
            render(&Err(Refusal::CommitFailed {
                error: "EPERM".into(),
                already_warm: Some(3)
            })),
            "error: commit failed: EPERM (3 already warm)\n"
        );
    }
}
