//! Scripts written for conntrackd keep working against tandemd: `-s` sections read the way
//! such scripts read conntrackd's, `-i` / `-e` lines compare equal to `conntrack -L`'s for the
//! same entries, `-C conntrackd.conf` finds the socket that file names, and errors exit 1.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use tandem_ctnetlink::Flow;
use tandem_lab::{require_root, wait_until, Netns, Pair};

const KEY: &str = "compat-test-key-0123456789abcdef0123456789";
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FLOWS: usize = 20;

fn start(pair: &Pair, ns: &Netns, priority: u8, local: Ipv4Addr, peer: Ipv4Addr) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let text = format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nkey = \"{KEY}\"\n"
    );
    let toml = write_config(pair, &format!("compat-{tag}.toml"), &text)?;
    start_tandemd_with(pair, ns, &vi_1_v3(51, priority), &[toml])
}

/// The figure a script reading conntrackd's general section takes for `what` under the
/// `cache NAME:` heading: the last field of the line (`awk '/cache internal/,/^$/'`).
fn cache_figure(text: &str, cache: &str, what: &str) -> Option<u64> {
    text.lines()
        .skip_while(|l| *l != format!("cache {cache}:"))
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with(what))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// `conntrack -L`'s line with `use=` cut and the timeout (which moves each second) blanked.
fn comparable(line: &str) -> String {
    let line = line.trim_end().trim_end_matches(" use=1").trim_end();
    let mut fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() > 2 {
        fields[2] = "T";
    }
    fields.join(" ")
}

#[test]
fn conntrackd_scripts_read_tandemctl_as_they_read_conntrackd() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("compat")?;
    for ns in pair.routers() {
        ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0").ok();
    }
    let a = start(&pair, &pair.a, 150, A, B)?;
    let b = start(&pair, &pair.b, 100, B, A)?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(10))?;
    let flows: Vec<Flow> = (0..FLOWS).map(test_flow).collect();
    create_flows(&pair.a, flows)?;
    wait_external(&b, FLOWS as u64, Duration::from_secs(30))?;

    // -s: the general section, as `conntrackd -s | awk` reads it.
    let (code, general) = run_tandemctl(&a.control, None, &["-s"])?;
    assert_eq!(code, 0, "{general}");
    wait_until(
        "a's internal cache",
        Duration::from_secs(10),
        ms(50),
        || {
            let (_, text) = run_tandemctl(&a.control, None, &["-s"]).ok()?;
            (cache_figure(&text, "internal", "current active connections") == Some(FLOWS as u64))
                .then_some(())
        },
    )?;
    assert!(
        cache_figure(&general, "internal", "connections created").is_some(),
        "{general}"
    );
    let (_, b_general) = run_tandemctl(&b.control, None, &["-s", "ct"])?;
    assert_eq!(
        cache_figure(&b_general, "external", "current active connections"),
        Some(FLOWS as u64),
        "{b_general}"
    );
    let sent: u64 = general
        .lines()
        .skip_while(|l| !l.starts_with("UDP traffic (active device=eth0):"))
        .find(|l| l.contains("Bytes sent"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .context(general.clone())?;
    assert!(sent > 0, "{general}");
    // The other sections a monitoring script asks for.
    let (_, cache) = run_tandemctl(&b.control, None, &["-s", "cache"])?;
    let active = cache
        .lines()
        .find(|l| l.starts_with("cache:external\tactive objects:"))
        .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok());
    assert_eq!(active, Some(FLOWS as u64), "{cache}");
    let (_, link) = run_tandemctl(&a.control, None, &["-s", "link"])?;
    assert!(
        link.starts_with("UDP traffic device=eth0 status=RUNNING role=ACTIVE:\n"),
        "{link}"
    );
    let (_, rsqueue) = run_tandemctl(&a.control, None, &["-s", "rsqueue"])?;
    assert!(rsqueue.starts_with("resent queue (len="), "{rsqueue}");
    let (_, runtime) = run_tandemctl(&a.control, None, &["-s", "runtime"])?;
    assert!(runtime.starts_with("daemon uptime: 0 min\n"), "{runtime}");
    let (code, out) = run_tandemctl(&a.control, None, &["-s", "bogus"])?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("unknown parameter `bogus' for option `-s'"),
        "{out}"
    );

    // -i: the same lines `conntrack -L` prints for these entries (less `use=`).
    let listed = pair.a.run("conntrack -L -p tcp 2>/dev/null")?;
    let (code, internal) = run_tandemctl(&a.control, None, &["-i"])?;
    assert_eq!(code, 0, "{internal}");
    let ours: Vec<&str> = internal
        .lines()
        .filter(|l| l.contains("src=10.50."))
        .collect();
    assert_eq!(ours.len(), FLOWS, "{internal}");
    for line in ours {
        let orig = line
            .split_whitespace()
            .skip_while(|f| !f.starts_with("src="))
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        let kernel = listed
            .lines()
            .find(|l| l.contains(&format!("{orig} ")))
            .with_context(|| format!("{orig} not in conntrack -L:\n{listed}"))?;
        assert_eq!(comparable(line), comparable(kernel));
    }

    // -C: the socket a conntrackd.conf names is the one asked.
    let conf = write_config(
        &pair,
        "compat-conntrackd.conf",
        &format!(
            "General {{\n    UNIX {{\n        Path {}\n    }}\n}}\n",
            a.control.display()
        ),
    )?;
    let conf = conf.to_str().context("path")?;
    let nowhere = std::path::Path::new("/nonexistent/tandemd.sock");
    let (code, out) = run_tandemctl(nowhere, None, &["-C", conf, "-s"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("cache internal:"), "{out}");
    let (code, out) = run_tandemctl(nowhere, None, &["-s"])?;
    assert_eq!(code, 1, "without -C the default socket is asked: {out}");
    Ok(())
}
