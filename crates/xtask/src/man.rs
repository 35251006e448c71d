//! The man pages: clap_mangen renders the synopsis and every option from the clap
//! definitions; the sections clap knows nothing of (files, signals, environment, exit status)
//! follow, written here.

use std::path::PathBuf;

use anyhow::Result;
use roff::{bold, roman, Roff};

use crate::markdown;
use crate::Artifact;

/// A section of `.TP` items: a tag (file, signal, variable) and what it means.
type Section = (&'static str, &'static [(&'static str, &'static str)]);

const TANDEMD_SECTIONS: &[Section] = &[
    (
        "FILES",
        &[
            ("/etc/keepalived/keepalived.conf", "VRRP configuration, read when no -f is given."),
            ("/etc/tandem/tandem.toml", "Replication settings (tandem.toml(5)), read when no -f is given and the file exists."),
            ("/etc/default/tandem", "Per-node settings for the systemd unit: TANDEMD_OPTS (extra options) and TANDEM_SYNC__* overrides."),
            ("/run/tandem/tandemd.sock", "The control socket (--control), with its lock tandemd.sock.lock."),
            ("/run/tandem/tandemd.pid", "The pid file the systemd unit asks for (--pid-file)."),
            ("/tmp/keepalived.data, /tmp/keepalived.stats, /tmp/keepalived.json", "keepalived's dumps, written on SIGUSR1, SIGUSR2 and SIGRTMIN+2."),
        ],
    ),
    (
        "SIGNALS",
        &[
            ("SIGHUP", "Reload: the files are read again; an invalid configuration is refused with its errors and the running one stays; unchanged instances keep their state."),
            ("SIGUSR1, SIGUSR2", "Write the data dump and the statistics dump."),
            ("SIGTERM, SIGINT", "Stop: every master sends a priority-0 advert and removes its addresses; exit status 0."),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            ("TANDEM_LOG", "Log filter; overrides --log."),
            ("TANDEM_SYNC__KEY", "Overrides the [sync] key KEY of tandem.toml (TANDEM_SYNC__PEER=192.168.2.2): one file serves both nodes."),
            ("TANDEM_CONTROL", "Set by tandemd for notify scripts to its control socket, so a tandemctl they run finds this daemon."),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            ("0", "Stopped by a signal, or --check found the configuration usable."),
            ("1", "The configuration was refused, or the daemon could not start (another tandemd runs, a socket could not be bound)."),
            ("70", "A fault inside tandemd, after the virtual addresses were removed."),
        ],
    ),
];

const TANDEMCTL_SECTIONS: &[Section] = &[
    (
        "EXIT STATUS",
        &[
            ("0", "Done."),
            ("1", "tandemd could not be reached, or refused the request."),
            ("2", "status: an instance is in FAULT or the sync peer is silent (a monitoring check's \"critical\")."),
        ],
    ),
    (
        "ENVIRONMENT",
        &[("TANDEM_CONTROL", "The control socket, as -S.")],
    ),
    (
        "FILES",
        &[
            ("/run/tandem/tandemd.sock", "tandemd's control socket."),
            ("/run/tandemd.sock", "Where tandemd put it before; asked when neither -S nor TANDEM_CONTROL is given and only this one exists."),
            ("/etc/tandem/sync.key", "Where keygen writes a key when given no path."),
        ],
    ),
];

/// tandemd(8).
pub fn tandemd() -> Result<Artifact> {
    page(
        tandemd_cli::command(),
        TANDEMD_SECTIONS,
        "tandemctl(8), tandem.toml(5), keepalived.conf(5), systemd.exec(5); /usr/share/doc/tandem/",
    )
}

/// tandemctl(8).
pub fn tandemctl() -> Result<Artifact> {
    page(
        tandemctl_cli::command(),
        TANDEMCTL_SECTIONS,
        "tandemd(8), tandem.toml(5), conntrackd(8); /usr/share/doc/tandem/control-and-health.md",
    )
}

/// tandem.toml(5), from docs/tandem-toml.md.
pub fn tandem_toml(markdown: &str) -> Artifact {
    let converted = markdown::to_roff(markdown, "DESCRIPTION");
    let mut roff = Roff::new();
    roff.control(
        "TH",
        ["TANDEM.TOML", "5", EMPTY_DATE, &source(), "File Formats"],
    )
    // No hyphenation: key names and paths would be split.
    .control("nh", [])
    .control("SH", ["NAME"])
    .text([roman("tandem.toml - tandem's replication settings")])
    .control("SH", ["SYNOPSIS"])
    .text([bold("/etc/tandem/tandem.toml")]);
    roff.extend([converted.body]);
    see_also(
        &mut roff,
        "tandemd(8), tandemctl(8), keepalived.conf(5), conntrackd.conf(5); /usr/share/doc/tandem/",
    );
    Artifact {
        path: PathBuf::from("man/tandem.toml.5"),
        text: roff.render(),
    }
}

/// No date in `.TH` (the pages come out the same from the same sources), as an empty
/// argument so the source and manual fields stay in their places.
const EMPTY_DATE: &str = "\"\"";

fn source() -> String {
    format!("tandem {}", env!("CARGO_PKG_VERSION"))
}

fn page(command: clap::Command, sections: &[Section], see: &str) -> Result<Artifact> {
    let man = clap_mangen::Man::new(command)
        .section("8")
        .date(EMPTY_DATE)
        .source(source())
        .manual("System Administration");
    let mut text = Vec::new();
    man.render(&mut text)?;
    let mut roff = Roff::new();
    for (title, items) in sections {
        roff.control("SH", [*title]);
        for (tag, meaning) in *items {
            roff.control("TP", [])
                .text([bold(*tag)])
                .text([roman(*meaning)]);
        }
    }
    see_also(&mut roff, see);
    // clap_mangen's page ends with its VERSION section: ours follow it.
    text.extend(roff.render().into_bytes());
    Ok(Artifact {
        path: PathBuf::from(format!("man/{}", man.get_filename())),
        text: String::from_utf8(text)?,
    })
}

fn see_also(roff: &mut Roff, text: &str) {
    roff.control("SH", ["SEE ALSO"]).text([roman(text)]);
}
