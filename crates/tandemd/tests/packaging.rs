//! systemd/tandemd.service: systemd accepts it without a complaint, its sandbox scores below
//! 4.0 in `systemd-analyze security`, and it says what the operations guide promises
//! (default paths, runtime directory, reload, conflicts, capabilities).
//!
//! systemd need not be running: `verify` and `security --offline=yes` read the file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd/tandemd.service")
}

fn unit_text() -> String {
    std::fs::read_to_string(unit_path()).unwrap()
}

/// Runs `systemd-analyze ARGS`, returning (success, stdout, stderr).
fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("running systemd-analyze (package systemd; scripts/test installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The unit with /usr/sbin/tandemd pointing at the binary just built (verify checks that
/// every command exists), in a directory of its own (per test) under its own name.
fn unit_for_this_build(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tandem-unit-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = unit_text().replace("/usr/sbin/tandemd", env!("CARGO_BIN_EXE_tandemd"));
    let unit = dir.join("tandemd.service");
    std::fs::write(&unit, text).unwrap();
    (dir, unit)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_a_word() {
    let (dir, unit) = unit_for_this_build("verify");
    // --man=no: the man pages are checked where they are installed (the package test).
    let (ok, stdout, stderr) = analyze(&["verify", "--man=no", unit.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    // verify exits 0 on unknown keys and bad values too: only silence is a pass.
    assert!(
        ok && stdout.is_empty() && stderr.is_empty(),
        "{stdout}{stderr}"
    );
}

#[test]
fn verify_would_catch_a_mistake() {
    // The test above can fail: a bad value is reported.
    let (dir, unit) = unit_for_this_build("broken");
    let text = std::fs::read_to_string(&unit).unwrap();
    let broken = text.replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe");
    std::fs::write(&unit, broken).unwrap();
    let (_, stdout, stderr) = analyze(&["verify", "--man=no", unit.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stderr.contains("Failed to parse boolean value, ignoring: maybe"),
        "{stdout}{stderr}"
    );
}

#[test]
fn security_exposure_is_below_4() {
    let (ok, stdout, stderr) = analyze(&[
        "security",
        "--offline=yes",
        "--no-pager",
        unit_path().to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    // "→ Overall exposure level for tandemd.service: 3.2 OK"
    let level: f64 = all
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tandemd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{all}"));
    println!("systemd-analyze security: exposure {level}");
    assert!(level < 4.0, "exposure {level}:\n{all}");
}

/// The values of every `KEY=` line, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn unit_uses_default_paths_runtime_directory_and_reload() {
    let unit = unit_text();
    // No -f: tandemd reads /etc/keepalived/keepalived.conf and /etc/tandem/tandem.toml.
    let start = values(&unit, "ExecStart");
    assert_eq!(
        start,
        ["/usr/sbin/tandemd --pid-file /run/tandem/tandemd.pid $TANDEMD_OPTS"]
    );
    assert_eq!(
        values(&unit, "ExecStartPre"),
        ["/usr/sbin/tandemd --check $TANDEMD_OPTS"]
    );
    assert_eq!(
        tandemd_cli::DEFAULT_CONTROL,
        "/run/tandem/tandemd.sock",
        "the socket must be inside RuntimeDirectory=tandem"
    );
    assert_eq!(values(&unit, "RuntimeDirectory"), ["tandem"]);
    assert_eq!(values(&unit, "EnvironmentFile"), ["-/etc/default/tandem"]);
    assert_eq!(
        values(&unit, "ExecReload"),
        [
            "/usr/sbin/tandemd --check $TANDEMD_OPTS",
            "/bin/kill -HUP $MAINPID"
        ]
    );
    assert_eq!(
        values(&unit, "Conflicts"),
        ["keepalived.service conntrackd.service"]
    );
    assert_eq!(
        values(&unit, "RestrictAddressFamilies"),
        ["AF_INET AF_INET6 AF_NETLINK AF_PACKET AF_UNIX"]
    );
    assert_eq!(
        values(&unit, "CapabilityBoundingSet"),
        ["CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_SETUID CAP_SETGID CAP_KILL"]
    );
    assert_eq!(values(&unit, "SystemCallFilter"), ["@system-service"]);
    assert!(
        !unit.contains("/run/tandemd."),
        "old paths left in the unit"
    );
}
