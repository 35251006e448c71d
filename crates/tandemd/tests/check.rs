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
