//! Replication settings from conntrackd.conf files as operators have them, and from tandem's
//! TOML with environment overrides.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tandem_config::{load_files, ConfigError, Policy, Transport};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn conntrackd_ftfw_udp_is_read_as_is() {
    let config = load_files(&[
        fixture("good/unicast_pass.conf"),
        fixture("sync/conntrackd-ftfw.conf"),
    ])
    .unwrap();
    assert!(!config.instances.is_empty(), "keepalived part kept");
    let sync = config.sync.expect("sync section");
    assert_eq!(
        sync.transport,
        Transport::Udp {
            local: ip("192.168.2.100"),
            peer: ip("192.168.2.101"),
            port: 3780
        }
    );
    assert_eq!(sync.interface.as_deref(), Some("eth3"));
    assert_eq!(sync.max_entries, 131072);
    assert_eq!(sync.resend_queue, 131072);
    assert!(!sync.tcp_window_tracking);
    let protocols = sync.filter.protocols.unwrap();
    assert_eq!(protocols.policy, Policy::Accept);
    assert_eq!(protocols.items, ["TCP", "SCTP", "UDP", "ICMP"]);
    let addresses = sync.filter.addresses.unwrap();
    assert_eq!(addresses.policy, Policy::Ignore);
    assert_eq!(addresses.items[2], (ip("192.168.2.0"), 24));
    assert_eq!(addresses.items[3], (ip("::1"), 128));
    let states = sync.filter.tcp_states.unwrap();
    assert_eq!(
        states.items,
        ["ESTABLISHED", "CLOSED", "TIME_WAIT", "CLOSE_WAIT"]
    );
    // Tuning knobs of conntrackd itself are reported, not dropped silently.
    assert!(config
        .warnings
        .iter()
        .any(|w| w.message.contains("SndSocketBuffer")));
}

#[test]
fn conntrackd_multicast_channel() {
    let config = load_files(&[fixture("sync/conntrackd-multicast.conf")]).unwrap();
    let sync = config.sync.unwrap();
    assert_eq!(
        sync.transport,
        Transport::Multicast {
            group: ip("225.0.0.50"),
            local: Some(ip("192.168.100.100")),
            port: 3780
        }
    );
    assert_eq!(sync.max_entries, 262144);
}

#[test]
fn native_toml_with_environment_override() {
    // Only this test touches TANDEM_SYNC__MTU, so parallel tests do not see it change.
    std::env::set_var("TANDEM_SYNC__MTU", "1200");
    // Variables for other purposes share the prefix and must not be read as settings.
    std::env::set_var("TANDEM_CONTROL", "/run/tandemd.sock");
    let path = fixture("sync/tandem.toml");
    let config = load_files(std::slice::from_ref(&path)).unwrap();
    let sync = config.sync.unwrap();
    assert_eq!(
        sync.transport,
        Transport::Udp {
            local: ip("192.168.2.1"),
            peer: ip("192.168.2.2"),
            port: 3790
        }
    );
    assert_eq!(
        sync.key.as_deref(),
        Some(&b"correct horse battery staple, and a long one"[..])
    );
    assert_eq!(sync.filter.protocols.unwrap().items, ["TCP", "UDP"]);
    assert!(sync.filter.ignore_own_addresses);
    assert_eq!(sync.mtu, 1200, "environment overrides the file");
}

fn first_error(e: ConfigError) -> String {
    e.diagnostics()
        .first()
        .map(|d| d.to_string())
        .unwrap_or_else(|| e.to_string())
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-config-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn errors_name_file_line_column() {
    let path = write("bad-conntrackd.conf", "Sync {\n    Mode FTFW {\n    }\n    UDP {\n        IPv4_address 192.168.2.100\n        IPv4_Destination_Address 192.168.2.101\n        Port seventy\n    }\n}\n");
    let e = first_error(load_files(&[path]).unwrap_err());
    assert!(e.contains("bad-conntrackd.conf:7:14"), "{e}");

    let path = write("unknown.conf", "Sync {\n    Bogus 1\n}\n");
    let e = first_error(load_files(&[path]).unwrap_err());
    assert!(e.contains("unknown.conf:2:5") && e.contains("Bogus"), "{e}");

    let path = write(
        "bad.toml",
        "[sync]\npeer = \"192.168.2.2\"\nlocal = \"192.168.2.1\"\nport = \"x\"\n",
    );
    let e = first_error(load_files(&[path]).unwrap_err());
    assert!(e.contains("bad.toml:4:1") && e.contains("port"), "{e}");

    let path = write("syntax.toml", "[sync]\npeer = \n");
    let e = first_error(load_files(&[path]).unwrap_err());
    assert!(e.contains("syntax.toml:2:"), "{e}");
}

#[test]
fn peer_silent_defaults_to_three_seconds_and_is_settable() {
    let base = "[sync]\npeer = \"192.168.2.2\"\nlocal = \"192.168.2.1\"\ninsecure_no_key = true\n";
    let path = write("silent-default.toml", base);
    let sync = load_files(&[path]).unwrap().sync.unwrap();
    assert_eq!(sync.peer_silent, std::time::Duration::from_secs(3));
    let path = write("silent-set.toml", &format!("{base}peer_silent = 1.5\n"));
    let sync = load_files(&[path]).unwrap().sync.unwrap();
    assert_eq!(sync.peer_silent, std::time::Duration::from_millis(1500));
    let path = write("silent-zero.toml", &format!("{base}peer_silent = 0\n"));
    let e = first_error(load_files(&[path]).unwrap_err());
    assert!(e.contains("peer_silent"), "{e}");
}

/// A `[sync]` section with `extra` lines after its transport.
fn sync_with(name: &str, extra: &str) -> PathBuf {
    write(
        name,
        &format!("[sync]\npeer = \"192.168.2.2\"\nlocal = \"192.168.2.1\"\n{extra}"),
    )
}

fn key_file(name: &str, bytes: &[u8], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = write(name, "");
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_sync_section_without_a_key_is_refused_unless_insecure_no_key_says_so() {
    let e = first_error(load_files(&[sync_with("nokey.toml", "")]).unwrap_err());
    assert!(
        e.contains("nokey.toml:1:1") && e.contains("has no key"),
        "{e}"
    );
    assert!(
        e.contains("tandemctl keygen") && e.contains("insecure_no_key"),
        "{e}"
    );
    let sync = load_files(&[sync_with("insecure.toml", "insecure_no_key = true\n")])
        .unwrap()
        .sync
        .unwrap();
    assert_eq!(sync.key, None);
    let both = sync_with(
        "both.toml",
        "insecure_no_key = true\nkey = \"0123456789abcdef0123456789abcdef\"\n",
    );
    let e = first_error(load_files(&[both]).unwrap_err());
    assert!(
        e.contains("both.toml:4:1") && e.contains("remove one"),
        "{e}"
    );
}

#[test]
fn key_files_must_be_private_and_long_enough() {
    let good = key_file("good.key", b"0123456789abcdef0123456789abcdef\n", 0o600);
    let config = sync_with("good.toml", &format!("key_file = \"{}\"\n", good.display()));
    let sync = load_files(&[config]).unwrap().sync.unwrap();
    assert_eq!(
        sync.key.as_deref(),
        Some(&b"0123456789abcdef0123456789abcdef"[..])
    );

    let cases: [(&str, &[u8], u32, &str); 3] = [
        ("empty.key", b"", 0o600, "is empty"),
        (
            "short.key",
            b"secret\n",
            0o600,
            "holds 6 bytes: a key needs at least 32",
        ),
        (
            "open.key",
            b"0123456789abcdef0123456789abcdef",
            0o644,
            "open to group or others (mode 0644)",
        ),
    ];
    for (name, bytes, mode, expected) in cases {
        let path = key_file(name, bytes, mode);
        let config = sync_with(
            &format!("{name}.toml"),
            &format!("key_file = \"{}\"\n", path.display()),
        );
        let e = first_error(load_files(&[config]).unwrap_err());
        assert!(e.contains(":4:1") && e.contains(expected), "{name}: {e}");
    }
    let short = sync_with("inline.toml", "key = \"short\"\n");
    let e = first_error(load_files(&[short]).unwrap_err());
    assert!(
        e.contains("inline.toml:4:1") && e.contains("holds 5 bytes"),
        "{e}"
    );
}

#[test]
fn a_conntrackd_conf_is_accepted_with_a_warning_that_it_is_unauthenticated() {
    let config = load_files(&[fixture("sync/conntrackd-ftfw.conf")]).unwrap();
    assert!(config.sync.is_some());
    let warning = (config.warnings.iter())
        .map(|w| w.to_string())
        .find(|w| w.contains("no authentication"))
        .expect("a warning about authentication");
    assert!(warning.contains("conntrackd-ftfw.conf:"), "{warning}");
}

#[test]
fn a_key_file_or_configuration_that_is_not_a_regular_file_is_refused() {
    let config = sync_with("devzero.toml", "key_file = \"/dev/zero\"\n");
    let e = first_error(load_files(&[config]).unwrap_err());
    assert!(e.contains("not a regular file"), "{e}");
    let e = load_files(&[PathBuf::from("/dev/null")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

/// conntrackd 1.4's older keyword names are read as it reads them: the obsolete filters filter,
/// the rest warn; the Helper section is checked and each helper warned about.
#[test]
fn conntrackd_old_names_and_helpers_are_read_with_warnings() {
    let config = load_files(&[
        fixture("good/unicast_pass.conf"),
        fixture("sync/conntrackd-1.4-old-names.conf"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let sync = config.sync.as_ref().expect("sync section");
    assert_eq!(
        sync.transport,
        Transport::Multicast {
            group: ip("225.0.0.50"),
            local: Some(ip("192.168.100.100")),
            port: 3780
        }
    );
    let protocols = sync.filter.protocols.as_ref().unwrap();
    assert_eq!(protocols.policy, Policy::Ignore);
    assert_eq!(protocols.items, ["VRRP", "IGMP"]);
    let addresses = sync.filter.addresses.as_ref().unwrap();
    assert_eq!(addresses.policy, Policy::Ignore);
    assert_eq!(
        addresses.items,
        [(ip("127.0.0.1"), 32), (ip("192.168.100.100"), 32)]
    );
    let warned_at = |line: u32, needle: &str| {
        config.warnings.iter().any(|w| {
            w.location.file.ends_with("conntrackd-1.4-old-names.conf")
                && w.location.line == line
                && w.message.contains(needle)
        })
    };
    for (line, needle) in [
        (2, "`IgnoreProtocol` is obsolete"),
        (6, "`IgnoreTrafficFor` is obsolete"),
        (10, "`StripNAT` is obsolete"),
        (13, "`ResendBufferSize` is not supported"),
        (20, "`IPv6_interface` is not needed"),
        (22, "`McastSndSocketBuffer` is not supported"),
        (24, "`Backlog` is not supported"),
        (25, "`Checksum` is not supported"),
        (27, "`RelaxTransitions` is not supported"),
        (30, "`DestroyTimeout` is not supported"),
        (35, "`SocketBufferSize` is not supported"),
        (36, "`SocketBufferSizeMaxGrown` is not supported"),
        (37, "`Family` is not supported"),
        (
            44,
            "`Helper` `ftp`: tandem does not run user-space conntrack helpers",
        ),
        (52, "`Helper` `tns`"),
    ] {
        assert!(
            warned_at(line, needle),
            "no warning `{needle}` at line {line}"
        );
    }
}

#[test]
fn conntrackd_misplaced_and_malformed_old_names_are_errors() {
    let dir = std::env::temp_dir().join(format!("tandem-ctd-old-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("conntrackd.conf");
    std::fs::write(
        &file,
        "Sync {\n UDP {\n  IPv4_address 10.0.0.1\n  IPv4_Destination_Address 10.0.0.2\n  IPv4_interface 10.0.0.1\n }\n}\nHelper {\n Type ftp inet sctp {\n  QueueNum x\n  Bogus 1\n }\n}\n",
    )
    .unwrap();
    let err = load_files(&[fixture("good/unicast_pass.conf"), file.clone()]).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let ConfigError::Invalid { errors, .. } = err else {
        panic!("{err}")
    };
    let at: Vec<(u32, &str)> = errors
        .iter()
        .map(|e| (e.location.line, e.message.as_str()))
        .collect();
    assert!(
        at[0].0 == 5 && at[0].1.contains("`IPv4_interface` belongs in `Multicast`"),
        "{at:?}"
    );
    assert!(
        at[1].0 == 9 && at[1].1.contains("expects tcp or udp, found `sctp`"),
        "{at:?}"
    );
    assert!(at[2].0 == 10 && at[2].1.contains("`QueueNum`"), "{at:?}");
    assert!(
        at[3].0 == 11 && at[3].1.contains("unknown keyword `Bogus` in Helper Type"),
        "{at:?}"
    );
}
