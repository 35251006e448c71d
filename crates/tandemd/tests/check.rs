//! `tandemd --check -f FILE` on configurations written the way operators write them: the good
//! ones pass (missing interfaces are warnings), the malformed ones fail naming file:line:column.

use std::path::{Path, PathBuf};
use std::process::Command;

const TANDEMD: &str = env!("CARGO_BIN_EXE_tandemd");

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn check(file: &Path) -> (bool, String, String) {
    let out = Command::new(TANDEMD)
        .args(["--check", "-f"])
        .arg(file)
        .output()
        .expect("running tandemd --check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn operator_configs_pass() {
    let mut files = fixtures("good");
    files.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/tests/fixtures/good/include_glob/keepalived.conf"),
    );
    for file in files.iter().filter(|f| f.exists()) {
        let (ok, stdout, stderr) = check(file);
        assert!(ok, "{}: expected success\n{stderr}", file.display());
        assert!(stdout.contains("configuration OK"), "{stdout}");
        println!("{}: {}", file.display(), stdout.trim());
    }
}

#[test]
fn malformed_configs_fail_with_file_line_column() {
    for file in fixtures("bad") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()))
            .trim()
            .to_string();
        let (ok, _, stderr) = check(&file);
        assert!(!ok, "{}: expected failure", file.display());
        assert!(
            stderr.contains(&expect),
            "{}: stderr does not name {expect}:\n{stderr}",
            file.display()
        );
        assert!(stderr.contains("error"), "{stderr}");
    }
}

#[test]
fn missing_interface_is_a_warning_not_an_error() {
    let dir = std::env::temp_dir().join(format!("tandem-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keepalived.conf");
    std::fs::write(
        &file,
        "vrrp_instance VI_1 {\n    interface nosuchif0\n    virtual_router_id 1\n    priority 100\n    virtual_ipaddress {\n        10.9.9.9/24\n    }\n}\n",
    )
    .unwrap();
    let (ok, _, stderr) = check(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("nosuchif0") && stderr.contains("warning"),
        "{stderr}"
    );
    assert!(stderr.contains("keepalived.conf:1:"), "{stderr}");
}

/// `tandemd --check` on a keepalived.conf plus a sync file with `extra` in its `[sync]`.
fn check_sync(name: &str, extra: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("tandem-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("tandem.toml");
    std::fs::write(
        &toml,
        format!("[sync]\nlocal = \"192.168.2.1\"\npeer = \"192.168.2.2\"\n{extra}"),
    )
    .unwrap();
    let keepalived = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/good/unicast_pass.conf");
    let out = Command::new(TANDEMD)
        .args(["--check", "-f"])
        .arg(&keepalived)
        .arg("-f")
        .arg(&toml)
        .output()
        .expect("running tandemd --check");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_replication_without_a_key_and_names_insecure_runs() {
    let (ok, _, stderr) = check_sync("nokey", "");
    assert!(!ok);
    assert!(
        stderr.contains("tandem.toml:1:1") && stderr.contains("has no key"),
        "{stderr}"
    );
    let (ok, stdout, _) = check_sync("insecure", "insecure_no_key = true\n");
    assert!(ok);
    assert!(
        stdout.contains("conntrack replication configured, UNAUTHENTICATED"),
        "{stdout}"
    );
    let (ok, stdout, _) = check_sync("keyed", "key = \"0123456789abcdef0123456789abcdef\"\n");
    assert!(ok);
    assert!(stdout.contains("configured, authenticated"), "{stdout}");
    let (ok, _, stderr) = check_sync("short", "key = \"secret\"\n");
    assert!(!ok);
    assert!(stderr.contains("a key needs at least 32 bytes"), "{stderr}");
}

#[test]
fn the_systemd_unit_loads_replication_by_default() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd/tandemd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    // No -f in the unit: tandemd's defaults load keepalived.conf and tandem.toml.
    assert!(!text.contains(" -f "), "the unit pins files: {text}");
    assert!(text.contains("Conflicts=keepalived.service conntrackd.service"));
    assert!(text.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // systemd-analyze verify and security: tests/packaging.rs.
}

#[test]
fn one_file_checks_for_each_node_of_a_pair_by_config_id() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/pair/keepalived.conf");
    for (id, long) in [("gw-a", false), ("gw-b", true)] {
        let flag = if long { "--config-id" } else { "-i" };
        let out = Command::new(TANDEMD)
            .args(["--check", flag, id, "-f"])
            .arg(&file)
            .output()
            .expect("running tandemd --check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{id}: {stderr}");
        assert!(
            stdout.contains("configuration OK (0 warning(s)): 4 instance(s)"),
            "{id}: {stdout}"
        );
    }
    // A node the file has no `@` lines for lacks `$PRIO`: refused where it is used.
    let out = Command::new(TANDEMD)
        .args(["--check", "-i", "gw-c", "-f"])
        .arg(&file)
        .output()
        .expect("running tandemd --check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("pair/keepalived.conf:16:14: `priority` expects 1..=255, found `$PRIO`"),
        "{stderr}"
    );
    // The warning that explains it comes with the errors, and the summary counts both.
    assert!(
        stderr.contains("`$PRIO` is not defined above this line"),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 error(s), 2 warning(s): the configuration is refused"),
        "{stderr}"
    );
}

/// A refused configuration still shows its warnings (from every file given), and the summary
/// counts both.
#[test]
fn refused_check_prints_warnings_and_counts_both() {
    let dir = std::env::temp_dir().join(format!("tandem-check-both-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keepalived = dir.join("keepalived.conf");
    std::fs::write(
        &keepalived,
        "global_defs {\n    vrrp_no_swap\n}\nvrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n    priority 300\n    virtual_ipaddress {\n        10.9.9.9/24\n    }\n}\n",
    )
    .unwrap();
    let conntrackd = dir.join("conntrackd.conf");
    std::fs::write(
        &conntrackd,
        "Sync {\n    UDP {\n        IPv4_address 10.0.0.1\n        IPv4_Destination_Address 10.0.0.2\n    }\n}\nHelper {\n    Type ftp inet tcp {\n        QueueNum 0\n    }\n}\n",
    )
    .unwrap();
    let out = Command::new(TANDEMD)
        .arg("--check")
        .arg("-f")
        .arg(&keepalived)
        .arg("-f")
        .arg(&conntrackd)
        .output()
        .expect("running tandemd --check");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("keepalived.conf:7:14") && stderr.contains("`priority` expects 1..=255"),
        "{stderr}"
    );
    assert!(
        stderr.contains("keepalived.conf:2:5") && stderr.contains("`vrrp_no_swap`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("conntrackd.conf:8:5") && stderr.contains("`Helper` `ftp`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 error(s), 3 warning(s): the configuration is refused"),
        "{stderr}"
    );
}
