//! The parser must answer every input with a `Config` or diagnostics, never a panic.

use std::path::{Path, PathBuf};

use tandem_config::parse_str;

/// A tiny deterministic generator (xorshift64*), so failures reproduce without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Where random inputs pretend to live: a directory that does not exist, so any
/// `include` they happen to contain finds nothing.
fn fake_path() -> PathBuf {
    PathBuf::from("/nonexistent-tandem-fuzz/keepalived.conf")
}

fn fixtures() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in [
        "good",
        "bad",
        "good/include_glob",
        "good/include_glob/conf.d",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "conf") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p, text));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_str(&text, &fake_path());
    }
}

#[test]
fn random_keyword_soup_never_panics() {
    const WORDS: &[&str] = &[
        "vrrp_instance",
        "vrrp_script",
        "vrrp_sync_group",
        "global_defs",
        "virtual_server",
        "group",
        "interface",
        "eth0",
        "virtual_router_id",
        "priority",
        "advert_int",
        "version",
        "3",
        "2",
        "0.1",
        "300",
        "-5",
        "authentication",
        "auth_type",
        "PASS",
        "AH",
        "auth_pass",
        "virtual_ipaddress",
        "10.0.0.1/24",
        "fd00::1/64",
        "dev",
        "brd",
        "+",
        "scope",
        "label",
        "unicast_peer",
        "track_script",
        "track_interface",
        "weight",
        "reverse",
        "notify_master",
        "\"/bin/x a\"",
        "nopreempt",
        "preempt_delay",
        "{",
        "}",
        "{",
        "}",
        "\n",
        "\n",
        "\n",
        "#",
        "!",
        "\"",
        "\\",
        "include",
        "nothing-*.conf",
        "{a,b}",
        "@",
        "$X=1",
        "VI_1",
        "VI_2",
        "script",
        "state",
        "MASTER",
        "",
    ];
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let n = rng.below(80);
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(WORDS[rng.below(WORDS.len())]);
            text.push(if rng.below(4) == 0 { '\n' } else { ' ' });
        }
        let _ = parse_str(&text, &fake_path());
    }
}

#[test]
fn truncated_and_mutated_fixtures_never_panic() {
    let mut rng = Rng(7);
    for (path, text) in fixtures() {
        let chars: Vec<char> = text.chars().collect();
        for cut in 0..=chars.len() {
            let prefix: String = chars[..cut].iter().collect();
            let _ = parse_str(&prefix, &path);
        }
        for _ in 0..200 {
            let mut c = chars.clone();
            for _ in 0..1 + rng.below(4) {
                if c.is_empty() {
                    break;
                }
                let at = rng.below(c.len());
                match rng.below(3) {
                    0 => {
                        c.remove(at);
                    }
                    1 => c.insert(at, ['{', '}', '"', '\n', '#', '\\', ' '][rng.below(7)]),
                    _ => c[at] = (b' ' + rng.below(95) as u8) as char,
                }
            }
            let mutated: String = c.into_iter().collect();
            let _ = parse_str(&mutated, &path);
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let text = format!("{}{}", "x {".repeat(100_000), "}".repeat(100_000));
    let err = parse_str(&text, &fake_path()).expect_err("too deep");
    assert!(err.to_string().contains("nested deeper"), "{err}");
}
