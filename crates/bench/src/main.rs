//! `tandem-bench`: tandemd against keepalived in network namespaces. `failover` measures
//! takeover times, `instances` CPU and memory with 1,000 VRRP instances. Needs root.

mod ctbench;
mod daemons;
mod failover;
mod failover_flows;
mod instances;
mod summary;
mod sync;
mod watch;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::daemons::Kind;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "tandem-bench",
    about = "tandemd vs keepalived in network namespaces"
)]
struct Args {
    /// Which benchmark.
    #[command(subcommand)]
    which: Which,
    /// The tandemd binary to measure.
    #[arg(long, global = true, default_value = "target/release/tandemd")]
    tandemd: PathBuf,
    /// Daemons to measure (default: both).
    #[arg(long, global = true, value_delimiter = ',')]
    only: Vec<Daemon>,
}

#[derive(Subcommand, Debug)]
enum Which {
    /// Median takeover time, hard (link cut) and graceful (SIGTERM), v2 at 1 s and v3 at 0.1 s.
    Failover {
        /// Runs per cell (default 7 at advert_int 1 s, 15 at 0.1 s).
        #[arg(long)]
        runs: Option<usize>,
        /// Only the cells whose name contains one of these words (e.g. `group`, `graceful`).
        #[arg(long, value_delimiter = ',')]
        cells: Vec<String>,
    },
    /// CPU and memory with many instances at advert_int 1.
    Instances {
        /// Bridges (VRIDs are reused on each).
        #[arg(long, default_value_t = 4)]
        lans: usize,
        /// Instances per bridge.
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u8).range(1..))]
        per_lan: u8,
        /// Seconds of steady state before measuring.
        #[arg(long, default_value_t = 5)]
        settle: u64,
        /// Seconds to measure CPU over.
        #[arg(long, default_value_t = 25)]
        duration: u64,
    },
    /// 50 connections across the master's death: tandem against keepalived + conntrackd.
    FailoverFlows {
        /// Also 1,000,000 other entries (raises the global nf_conntrack_max while it runs).
        #[arg(long)]
        big: bool,
        /// Counts of other replicated entries instead of 0 and 100,000 (and 1,000,000).
        #[arg(long, value_delimiter = ',')]
        others: Vec<usize>,
        /// Skip the tandemd run with `warm_standby = false`.
        #[arg(long)]
        no_cold: bool,
        /// Skip keepalived + conntrackd.
        #[arg(long)]
        no_conntrackd: bool,
    },
    /// Conntrack replication against conntrackd: rate, CPU, memory, bytes, bulk, commit.
    Sync {
        /// Also 1,000,000 entries (raises the global nf_conntrack_max while it runs).
        #[arg(long)]
        big: bool,
        /// Entry counts instead of 100,000 (and 1,000,000 with --big).
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Generator rate in entries/s (0: as fast as the kernel takes them).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Skip conntrackd (or tandemd, with --no-tandem).
        #[arg(long)]
        no_conntrackd: bool,
        /// Skip tandemd.
        #[arg(long)]
        no_tandem: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Tandemd,
    Keepalived,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let daemons: Vec<Kind> = if args.only.is_empty() {
        vec![Kind::Tandemd, Kind::Keepalived]
    } else {
        args.only
            .iter()
            .map(|d| match d {
                Daemon::Tandemd => Kind::Tandemd,
                Daemon::Keepalived => Kind::Keepalived,
            })
            .collect()
    };
    if daemons.contains(&Kind::Tandemd) {
        anyhow::ensure!(
            args.tandemd.exists(),
            "{} does not exist (build it: cargo build --release -p tandemd, or pass --tandemd)",
            args.tandemd.display()
        );
    }
    let tandemd = std::fs::canonicalize(&args.tandemd).unwrap_or(args.tandemd.clone());
    match args.which {
        Which::FailoverFlows {
            big,
            others,
            no_cold,
            no_conntrackd,
        } => {
            let others = match (others.is_empty(), big) {
                (false, _) => others,
                (true, false) => vec![0, 100_000],
                (true, true) => vec![0, 100_000, 1_000_000],
            };
            let mut setups = vec![failover_flows::Setup::Tandem];
            if !no_cold {
                setups.push(failover_flows::Setup::TandemCold);
            }
            if !no_conntrackd {
                setups.push(failover_flows::Setup::KeepalivedConntrackd);
            }
            failover_flows::run(&tandemd, &setups, &others)
        }
        Which::Sync {
            big,
            sizes,
            rate,
            no_conntrackd,
            no_tandem,
        } => {
            let sizes = match (sizes.is_empty(), big) {
                (false, _) => sizes,
                (true, false) => vec![100_000],
                (true, true) => vec![100_000, 1_000_000],
            };
            let opts = sync::Opts {
                sizes,
                rate,
                tandem: !no_tandem,
                conntrackd: !no_conntrackd,
            };
            sync::run(&tandemd, &opts)
        }
        Which::Failover { runs, cells } => failover::run(&tandemd, runs, &daemons, &cells),
        Which::Instances {
            lans,
            per_lan,
            settle,
            duration,
        } => instances::run(
            &tandemd,
            instances::Shape {
                lans,
                per_lan,
                settle,
                duration,
            },
            &daemons,
        ),
    }
}
