//! keepalived's configuration language: `@ID` conditional lines, `$NAME` parameters and
//! `~SEQ` sequences, with the semantics of keepalived 2.2 (`lib/parser.c`, keepalived.conf(5)
//! "ADVANCED CONFIGURATION").

use std::path::{Path, PathBuf};

use tandem_config::{
    load_files_with, parse_str_with, Config, ConfigError, InitialState, LoadOptions,
};

fn with_id(id: &str) -> LoadOptions {
    LoadOptions {
        config_id: Some(id.into()),
    }
}

fn parse(text: &str, id: &str) -> Result<Config, ConfigError> {
    parse_str_with(text, Path::new("k.conf"), &with_id(id))
}

fn ok(text: &str, id: &str) -> Config {
    parse(text, id).unwrap_or_else(|e| panic!("should parse as {id}:\n{text}\n{e}"))
}

fn errors(text: &str, id: &str) -> Vec<String> {
    match parse(text, id) {
        Ok(_) => panic!("should fail as {id}:\n{text}"),
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("unexpected {e}"),
    }
}

fn warnings(c: &Config) -> Vec<String> {
    c.warnings.iter().map(|d| d.to_string()).collect()
}

/// An instance whose priority line is `priority`.
fn instance(priority: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n {priority}\n \
         virtual_ipaddress {{\n  10.0.0.1/24\n }}\n}}\n"
    )
}

fn priorities(c: &Config) -> Vec<(String, u8)> {
    c.instances
        .iter()
        .map(|i| (i.name.clone(), i.priority))
        .collect()
}

fn pair_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pair/keepalived.conf")
}

#[test]
fn one_file_drives_both_nodes_of_a_pair() {
    for (id, prio, router, state, nopreempt) in [
        ("gw-a", 150, "GW_A", InitialState::Master, false),
        ("gw-b", 100, "GW_B", InitialState::Backup, true),
    ] {
        let c = load_files_with(&[pair_fixture()], &with_id(id))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(c.warnings.is_empty(), "{id}: {:?}", warnings(&c));
        assert_eq!(c.global.router_id.as_deref(), Some(router));
        assert_eq!(
            priorities(&c),
            [
                ("VI_1".into(), prio),
                ("VI_10".into(), prio),
                ("VI_20".into(), prio),
                ("VI_30".into(), prio)
            ]
        );
        let vi1 = &c.instances[0];
        assert_eq!(vi1.initial_state, Some(state));
        assert_eq!(vi1.nopreempt, nopreempt);
        assert_eq!(vi1.interface, "eth0");
        assert_eq!(vi1.virtual_addresses[0].address.to_string(), "10.0.0.254");
        assert_eq!(vi1.virtual_addresses[0].prefix_len, 24);
        let vrids: Vec<u8> = c.instances.iter().map(|i| i.virtual_router_id).collect();
        assert_eq!(vrids, [51, 10, 20, 30]);
        assert_eq!(
            c.instances[2].virtual_addresses[0].address.to_string(),
            "10.20.0.254"
        );
    }
}

#[test]
fn a_node_the_file_does_not_name_is_refused_where_the_parameter_is_used() {
    let e = load_files_with(&[pair_fixture()], &with_id("gw-c")).unwrap_err();
    let ConfigError::Invalid { errors, warnings } = e else {
        panic!("{e}")
    };
    let first = errors[0].to_string();
    assert!(
        first.ends_with(
            "pair/keepalived.conf:16:14: `priority` expects a number 1..=255, found `$PRIO`"
        ) || first.contains("pair/keepalived.conf:16:14:"),
        "{first}"
    );
    // The lines of the multi-line parameter point into its definition.
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("pair/keepalived.conf:31:")),
        "{errors:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("`$PRIO` is not defined above this line")),
        "{warnings:?}"
    );
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = format!(
        "@a $P=10\n@b $P=20\n@^a $Q=1\n{}",
        instance("priority $P\n @^b nopreempt")
    );
    let a = ok(&text, "a");
    assert_eq!(a.instances[0].priority, 10);
    assert!(a.instances[0].nopreempt);
    let b = ok(&text, "b");
    assert_eq!(b.instances[0].priority, 20);
    assert!(!b.instances[0].nopreempt);
    // Only the whole word is compared, and `@ID` with nothing after it is dropped.
    let c = ok(&instance("priority 7\n @a\n @ab priority 8"), "a");
    assert_eq!(c.instances[0].priority, 7);
}

#[test]
fn parameters_in_both_forms_and_their_terminators() {
    // `$NAME` must be followed by a blank, `,`, `)` or the end of the line; `${NAME}` by
    // anything.
    let c = ok(
        &format!("$NET=10.1\n$P=42\n{}", instance("priority $P"))
            .replace("10.0.0.1/24", "${NET}.0.1/24\n  ${NET}.0.2/24"),
        "x",
    );
    assert_eq!(c.instances[0].priority, 42);
    let vips: Vec<String> = (c.instances[0].virtual_addresses.iter())
        .map(|v| v.address.to_string())
        .collect();
    assert_eq!(vips, ["10.1.0.1", "10.1.0.2"]);
    // `$NET.0.1` is not a reference: left as written, so the address is refused.
    let e = errors(
        &format!("$NET=10.1\n{}", instance("priority 1")).replace("10.0.0.1/24", "$NET.0.1/24"),
        "x",
    );
    assert!(e[0].starts_with("k.conf:7:3:"), "{e:?}");
}

#[test]
fn substitution_is_recursive_and_done_when_used() {
    // keepalived.conf(5)'s own example: the value is expanded where it is used.
    let text = format!(
        "$BASE=10.2.${{SUB}}\n$SUB=0\n{}",
        instance("priority 1").replace("10.0.0.1/24", "${BASE}.100/32\n$SUB=10\n  ${BASE}.100/32")
    );
    let c = ok(&text, "x");
    let vips: Vec<String> = (c.instances[0].virtual_addresses.iter())
        .map(|v| v.address.to_string())
        .collect();
    assert_eq!(vips, ["10.2.0.100", "10.2.10.100"]);
    // A value may itself be a conditional line.
    let c = ok(
        &format!("$IF_A=@a\n{}", instance("priority 5\n $IF_A priority 240")),
        "a",
    );
    assert_eq!(c.instances[0].priority, 240);
    let c = ok(
        &format!("$IF_A=@a\n{}", instance("priority 5\n $IF_A priority 240")),
        "b",
    );
    assert_eq!(c.instances[0].priority, 5);
}

#[test]
fn empty_values_and_redefinition() {
    let c = ok(
        &format!("$X=\n$P=1\n$P=2\n{}", instance("priority $P $X")),
        "x",
    );
    assert_eq!(c.instances[0].priority, 2);
    // `$NAME =` (a space before `=`) is not a definition.
    let e = errors("$P =3\n", "x");
    assert!(
        e[0].starts_with("k.conf:1:1: unknown keyword `$P`"),
        "{e:?}"
    );
}

#[test]
fn undefined_parameters_stay_as_written_with_a_warning_outside_quotes() {
    let text = instance("priority 9\n notify_master \"/bin/x ${HOME}\"\n notify_backup /bin/y");
    let c = ok(&text, "x");
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    assert_eq!(
        c.instances[0].notify.master.as_deref(),
        Some("/bin/x ${HOME}")
    );
    let e = load_err(&instance("priority $NOPE"));
    assert_eq!(
        e.0[0],
        "k.conf:4:11: `priority` expects 1..=255, found `$NOPE`"
    );
    assert_eq!(
        e.1,
        ["k.conf:4:11: `$NOPE` is not defined above this line: it is left as written, as keepalived does"]
    );
}

fn load_err(text: &str) -> (Vec<String>, Vec<String>) {
    match parse(text, "x") {
        Err(ConfigError::Invalid { errors, warnings }) => (
            errors.iter().map(|d| d.to_string()).collect(),
            warnings.iter().map(|d| d.to_string()).collect(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_in_substituted_text_point_at_the_reference() {
    let (e, _) = load_err(&format!("$P=300\n{}", instance("priority   $P")));
    assert_eq!(e, ["k.conf:5:13: `priority` expects 1..=255, found `300`"]);
    let (e, _) = load_err(&format!("$P=300\n{}", instance("priority   ${P}")));
    assert_eq!(e, ["k.conf:5:13: `priority` expects 1..=255, found `300`"]);
}

#[test]
fn multi_line_parameters() {
    let text = "$INST= \\\nvrrp_instance VI_${N} { \\\n  interface eth0 \\\n  # a comment line is skipped\n  @hi priority 130 \\\n  @lo priority 120 \\\n  virtual_router_id ${N} \\\n  virtual_ipaddress { \\\n    10.0.${N}.254/24 \\\n  } \\\n}\n$N=1\n$INST\n$N=2\n$INST\n";
    let hi = ok(text, "hi");
    assert_eq!(
        priorities(&hi),
        [("VI_1".into(), 130), ("VI_2".into(), 130)]
    );
    assert_eq!(priorities(&ok(text, "lo"))[1], ("VI_2".into(), 120));
    // A multi-line parameter is substituted only at the end of a line.
    let (_, w) = load_err(&format!("{text}$INST x\n"));
    assert!(
        w.iter().any(|w| w.contains(
            "is a multi-line parameter, which keepalived substitutes only at the end of a line"
        )),
        "{w:?}"
    );
    // An error inside it points at the line of the definition.
    let bad = text.replace("virtual_router_id ${N}", "virtual_router_id ${N}999");
    let (e, _) = load_err(&bad);
    assert!(e[0].starts_with("k.conf:7:21:"), "{e:?}");
    // An empty line ends the definition.
    let c = ok(&format!("$P=7 \\\n\n{}", instance("priority $P")), "x");
    assert_eq!(c.instances[0].priority, 7);
}

#[test]
fn parameters_cross_include_boundaries_and_pwd_is_the_file_directory() {
    let dir = std::env::temp_dir().join(format!("tandem-conflang-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/vars.conf"),
        "$P=77\n$HERE=${_PWD}\n@gw-a $VIP=10.9.9.9/24\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/inst.conf"),
        instance("priority $P\n notify_master \"${_PWD}/up.sh ${_INSTANCE}\"")
            .replace("10.0.0.1/24", "$VIP"),
    )
    .unwrap();
    let main = dir.join("keepalived.conf");
    std::fs::write(&main, "include conf.d/vars.conf\n$D=conf.d\ninclude ${D}/inst.conf\nglobal_defs {\n router_id ${HERE}\n}\n").unwrap();
    let c = load_files_with(std::slice::from_ref(&main), &with_id("gw-a"))
        .unwrap_or_else(|e| panic!("{e}"));
    let conf_d = dir.join("conf.d").canonicalize().unwrap();
    let conf_d = conf_d.display();
    assert_eq!(c.instances[0].priority, 77);
    assert_eq!(
        c.instances[0].notify.master.as_deref(),
        Some(format!("{conf_d}/up.sh gw-a").as_str())
    );
    assert_eq!(
        c.instances[0].virtual_addresses[0].address.to_string(),
        "10.9.9.9"
    );
    // `${_PWD}` in a value is expanded where the value is used: here, the main file.
    let top = dir.canonicalize().unwrap();
    assert_eq!(c.global.router_id, Some(top.display().to_string()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn builtin_parameters() {
    let c = ok(
        &instance("priority ${_RANDOM 20 30}\n notify_master \"/bin/echo ${_HASH}${_BANG} ${_INSTANCE} $_INSTANCE\""),
        "node7",
    );
    assert!((20..=30).contains(&c.instances[0].priority));
    assert_eq!(
        c.instances[0].notify.master.as_deref(),
        Some("/bin/echo #! node7 $_INSTANCE")
    );
    // `$NAME` followed by `"` is not a reference (keepalived needs a blank, `,`, `)` or the
    // end of the line after it).
    // Arguments only for `_RANDOM`: a user parameter with arguments is left as written.
    let (e, w) = load_err(&format!("$P=5\n{}", instance("priority ${P 1}")));
    assert!(e[0].starts_with("k.conf:5:"), "{e:?}");
    assert!(w[0].contains("`${P 1}` takes no arguments"), "{w:?}");
}

#[test]
fn sequences() {
    let vips = |spec: &str| -> Vec<String> {
        let c = ok(
            &instance("priority 1\n version 3").replace("10.0.0.1/24", spec),
            "x",
        );
        c.instances[0]
            .virtual_addresses
            .iter()
            .map(|v| v.address.to_string())
            .collect()
    };
    assert_eq!(
        vips("~SEQ(S, 0, 3) 10.0.${S}.1"),
        ["10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.3.1"]
    );
    assert_eq!(
        vips("~SEQ(S, 3) 10.0.0.$S"),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
    assert_eq!(
        vips("~SEQ(S, 5, 3) 10.0.0.${S}"),
        ["10.0.0.5", "10.0.0.4", "10.0.0.3"]
    );
    assert_eq!(
        vips("~SEQx(A, 0x90, 0x10, 0xb0) fe80::20:${A}:1"),
        ["fe80::20:90:1", "fe80::20:a0:1", "fe80::20:b0:1"]
    );
    assert_eq!(
        vips("~SEQ(A, 1, 2) ~SEQ(B, 1, 2) 10.0.${A}.${B}"),
        ["10.0.1.1", "10.0.1.2", "10.0.2.1", "10.0.2.2"]
    );
    // keepalived.conf(5)'s list examples.
    assert_eq!(
        vips("~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) 192.${IP2}.${IP}.${IP1}"),
        [
            "192.168.10.1",
            "192.170.10.1",
            "192.168.20.4",
            "192.170.20.4"
        ]
    );
    assert_eq!(
        vips("~LST(A, 1, 2) ~LST(B, 5,6) 192.169.${A}.${B}"),
        ["192.169.1.5", "192.169.1.6", "192.169.2.5", "192.169.2.6"]
    );
    // Parameters in the numbers.
    let c = ok(
        &format!(
            "$LAST=3\n{}",
            instance("priority 1").replace("10.0.0.1/24", "~SEQ(I, 2, $LAST) 10.0.0.${I}")
        ),
        "x",
    );
    assert_eq!(c.instances[0].virtual_addresses.len(), 2);
}

#[test]
fn bad_sequences_are_located_errors() {
    for (spec, needle) in [
        ("~SEQ(S, 1, 0, 3) x", "STEP must be non-zero"),
        ("~SEQ(S, 1, -1, 3) x", "STEP must be non-zero"),
        ("~SEQ(S) x", "invalid `~SEQ` line"),
        ("~SEQ(S, a) x", "invalid `~SEQ` line"),
        (
            "~SEQx(S, -1, 3) x",
            "`~SEQx` takes only non-negative numbers",
        ),
        ("~LST(S) x", "invalid `~LST` line"),
        ("~LST(S, {1, 2}) x", "invalid `~LST` line"),
    ] {
        let text = format!("vrrp_script s {{\n script /bin/true\n}}\n{spec}\n");
        let e = errors(&text, "x");
        assert!(
            e[0].starts_with("k.conf:4:1:") && e[0].contains(needle),
            "{spec}: {e:?}"
        );
    }
}

#[test]
fn runaway_expansion_is_bounded() {
    let e = errors("$A=x$A\n$A y\n", "x");
    assert!(e[0].contains("does not end"), "{e:?}");
    let e = errors("$M= \\\na \\\n$M\n$M\n", "x");
    assert!(e.iter().any(|e| e.contains("nest deeper than")), "{e:?}");
    let e = errors("~SEQ(A, 1, 1000) ~SEQ(B, 1, 1000) x\n", "x");
    assert!(e.iter().any(|e| e.contains("produce more than")), "{e:?}");
}

/// keepalived itself, where installed, accepts and refuses the fixture for the same ids.
#[test]
fn keepalived_agrees_on_the_pair_fixture() {
    let have = std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    if !have || !Path::new("/sys/class/net/eth0").exists() {
        println!("skipped: needs keepalived and an eth0 interface");
        return;
    }
    // keepalived -t does not read files under every path: give it a copy.
    let dir = std::env::temp_dir().join(format!("tandem-conflang-ka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keepalived.conf");
    std::fs::copy(pair_fixture(), &file).unwrap();
    for id in ["gw-a", "gw-b", "gw-c"] {
        let out = std::process::Command::new("keepalived")
            .args(["-t", "-f"])
            .arg(&file)
            .args(["-i", id])
            .output()
            .unwrap();
        let keepalived_ok = out.status.success();
        let tandem_ok = load_files_with(std::slice::from_ref(&file), &with_id(id)).is_ok();
        println!(
            "{id}: keepalived {} tandem {}\n{}",
            keepalived_ok,
            tandem_ok,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(keepalived_ok, tandem_ok, "config id {id}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `tests/fixtures/conflang/*.conf`, each with the config ids it is `# accepted with:` and
/// `# refused with:`. Checked against tandem always, and against `keepalived -t` where it is
/// installed (and eth0 exists, which the files use).
#[test]
fn conflang_fixtures_are_accepted_and_refused_as_keepalived_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conflang");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let keepalived = std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok()
        && Path::new("/sys/class/net/eth0").exists();
    if !keepalived {
        println!("keepalived or eth0 missing: checking tandem against the files' headers only");
    }
    // keepalived -t does not read files under every path: it gets copies.
    let scratch = std::env::temp_dir().join(format!("tandem-conflang-cmp-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let ids = |header: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(header))
                .flat_map(|l| l.split_whitespace().map(str::to_owned))
                .collect()
        };
        let cases = (ids("# accepted with:").into_iter().map(|id| (id, true)))
            .chain(ids("# refused with:").into_iter().map(|id| (id, false)));
        let copy = scratch.join(file.file_name().unwrap());
        std::fs::write(&copy, &text).unwrap();
        for (id, accepted) in cases {
            let tandem = load_files_with(std::slice::from_ref(file), &with_id(&id));
            assert_eq!(
                tandem.is_ok(),
                accepted,
                "{} with -i {id}: {:?}",
                file.display(),
                tandem.err().map(|e| e.to_string())
            );
            if keepalived {
                let out = std::process::Command::new("keepalived")
                    .args(["-t", "-f"])
                    .arg(&copy)
                    .args(["-i", &id])
                    .output()
                    .unwrap();
                assert_eq!(
                    out.status.success(),
                    accepted,
                    "keepalived -t -i {id} on {}: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            checked += 1;
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    println!("{checked} file/config-id cases agree");
}

#[test]
fn the_default_config_id_is_the_host_name_up_to_its_first_dot() {
    let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        println!("skipped: no /proc/sys/kernel/hostname");
        return;
    };
    let short = host.trim().split('.').next().unwrap_or("").to_string();
    assert_eq!(
        tandem_config::host_config_id().as_deref(),
        Some(short.as_str())
    );
    let text = format!(
        "@{short} $P=61\n@^{short} $P=62\n{}",
        instance("priority $P")
    );
    let c = tandem_config::parse_str(&text, Path::new("k.conf")).unwrap();
    assert_eq!(c.instances[0].priority, 61);
}

#[test]
fn constructs_right_after_a_brace_are_read_as_keepalived_reads_them() {
    let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n \
                unicast_peer { @^a 10.0.0.1\n  10.0.0.2\n }\n \
                virtual_ipaddress { ~SEQ(I, 1, 2) 10.0.0.1${I}/24\n }\n}\n";
    let peers = |id: &str| -> Vec<String> {
        let c = ok(text, id);
        assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
        let vips: Vec<String> = (c.instances[0].virtual_addresses.iter())
            .map(|v| v.address.to_string())
            .collect();
        assert_eq!(vips, ["10.0.0.11", "10.0.0.12"]);
        c.instances[0]
            .unicast_peers
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(peers("a"), ["10.0.0.2"]);
    assert_eq!(peers("b"), ["10.0.0.1", "10.0.0.2"]);
    // One-line blocks without such constructs stay one line.
    let c = ok(&instance("priority 1\n unicast_peer { 10.0.0.5 }"), "a");
    assert_eq!(c.instances[0].unicast_peers.len(), 1);
}
