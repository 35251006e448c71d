//! The Debian package from `scripts/package`, installed on this machine with dpkg: every
//! file in place, the installed unit verified by systemd (not started: systemd need not be
//! PID 1), the binaries and man pages usable; then purged, leaving nothing behind.
//!
//! It installs into the host's /usr, so it runs only when asked: as root with
//! TANDEM_TEST_DEB=1 (scripts/test sets it). It packs the debug build, which the test run has
//! already made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", "tandem"])
        .stdout
        .starts_with(b"install ok installed")
}

fn group_exists() -> bool {
    run("getent", &["group", "tandem"]).status.success()
}

/// Purges the package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "tandem"]);
    }
}

/// What the package must install.
const FILES: &[&str] = &[
    "/usr/sbin/tandemd",
    "/usr/sbin/tandemctl",
    "/lib/systemd/system/tandemd.service",
    "/etc/default/tandem",
    "/usr/share/man/man8/tandemd.8.gz",
    "/usr/share/man/man8/tandemctl.8.gz",
    "/usr/share/man/man5/tandem.toml.5.gz",
    "/usr/share/bash-completion/completions/tandemd",
    "/usr/share/bash-completion/completions/tandemctl",
    "/usr/share/zsh/vendor-completions/_tandemd",
    "/usr/share/zsh/vendor-completions/_tandemctl",
    "/usr/share/doc/tandem/README.md",
    "/usr/share/doc/tandem/operations.md",
    "/usr/share/doc/tandem/tandem-toml.md",
    "/usr/share/doc/tandem/examples/keepalived.conf",
    "/usr/share/doc/tandem/examples/tandem.toml",
    "/usr/share/doc/tandem/examples/primary-backup.sh",
];

/// Where dpkg's and systemd's helpers keep state about the unit.
const STATE: &[&str] = &[
    "/etc/systemd/system/tandemd.service",
    "/etc/systemd/system/multi-user.target.wants/tandemd.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/tandemd.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-masked/tandemd.service",
];

#[test]
fn package_installs_verifies_and_purges_cleanly() {
    if std::env::var_os("TANDEM_TEST_DEB").is_none() || !nix_is_root() {
        println!("skipped: installs a package on this machine; run as root with TANDEM_TEST_DEB=1");
        return;
    }
    assert!(
        !installed(),
        "a tandem package is already installed here: not touching it"
    );
    let group_before = group_exists();
    let root = xtask::repo_root();
    let out = Command::new(root.join("scripts/package"))
        .arg("--debug")
        .current_dir(&root)
        .output()
        .expect("running scripts/package");
    assert!(out.status.success(), "scripts/package: {}", text(&out));
    let deb = find_deb(&root.join("target/debian"));

    let _purge = Purge;
    let out = run("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(out.status.success(), "dpkg -i: {}", text(&out));
    assert!(installed());

    for file in FILES {
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }
    assert!(group_exists(), "postinst did not create the tandem group");
    // Installed, not enabled: the package never takes over from keepalived unasked.
    assert!(
        !Path::new(STATE[1]).exists(),
        "the package enabled the unit"
    );

    // With the man pages installed, verify checks Documentation= too.
    let out = run(
        "systemd-analyze",
        &["verify", "/lib/systemd/system/tandemd.service"],
    );
    assert!(
        out.status.success() && text(&out).is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
    let out = run("/usr/sbin/tandemd", &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tandemd {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run("/usr/sbin/tandemctl", &["--version"]);
    assert!(out.status.success(), "{}", text(&out));
    for (page, path) in [
        ("tandemd", "/usr/share/man/man8/tandemd.8.gz"),
        ("tandem.toml", "/usr/share/man/man5/tandem.toml.5.gz"),
    ] {
        let out = run("man", &["-w", page]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            path,
            "{}",
            text(&out)
        );
    }

    let listed = run("dpkg", &["-L", "tandem"]);
    let owned: Vec<PathBuf> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    assert!(owned.len() >= FILES.len(), "dpkg -L: {owned:?}");

    let out = run("dpkg", &["--purge", "tandem"]);
    assert!(out.status.success(), "dpkg --purge: {}", text(&out));
    assert!(!installed());
    for path in owned
        .iter()
        .map(PathBuf::as_path)
        .chain(STATE.iter().map(Path::new))
    {
        assert!(!path.exists(), "{} is left after the purge", path.display());
    }
    for dir in ["/usr/share/doc/tandem", "/run/tandem"] {
        assert!(!Path::new(dir).exists(), "{dir} is left after the purge");
    }
    assert_eq!(
        group_exists(),
        group_before,
        "the tandem group after the purge"
    );
}

fn find_deb(dir: &Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("tandem_{version}-")) && n.ends_with(".deb")
            })
        })
        .unwrap_or_else(|| panic!("no tandem_{version}-*.deb in {}", dir.display()))
}

fn nix_is_root() -> bool {
    run("id", &["-u"]).stdout.trim_ascii() == b"0"
}
