//! `lvs_sync_daemon` in global_defs: read, checked against the VRRP instances, and the
//! sync id defaulted to the instance's virtual router id as keepalived does.

mod common;

use common::*;

const VI_1: &str = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n}\n";

fn with_global(line: &str) -> String {
    format!("global_defs {{\n {line}\n}}\n{VI_1}")
}

#[test]
fn sync_id_defaults_to_the_instance_vrid() {
    let c = ok(&with_global("lvs_sync_daemon eth1 VI_1"));
    let d = c.global.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (d.interface.as_str(), d.instance.as_str()),
        ("eth1", "VI_1")
    );
    assert_eq!(d.sync_id, Some(51));
    assert_eq!((d.maxlen, d.port, d.ttl, d.group), (None, None, None, None));
}

#[test]
fn every_option_is_read() {
    let c = ok(&with_global(
        "lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 8850 ttl 3 group 239.0.0.81",
    ));
    let d = c.global.lvs_sync_daemon.unwrap();
    assert_eq!(d.sync_id, Some(7));
    assert_eq!((d.maxlen, d.port, d.ttl), (Some(1400), Some(8850), Some(3)));
    assert_eq!(d.group, Some("239.0.0.81".parse().unwrap()));
}

#[test]
fn bad_lines_are_located_errors() {
    assert_eq!(
        errors(&with_global("lvs_sync_daemon eth1")),
        [
            "k.conf:2:2: `lvs_sync_daemon` expects INTERFACE VRRP_INSTANCE [id 0..255] [maxlen N] \
          [port N] [ttl N] [group IP]: the interface and the VRRP instance are required"
        ]
    );
    assert_eq!(
        errors(&with_global("lvs_sync_daemon eth1 VI_9")),
        ["k.conf:2:23: `lvs_sync_daemon` names vrrp_instance `VI_9`, which is not defined"]
    );
    assert_eq!(
        errors(&with_global("lvs_sync_daemon eth1 VI_1 id 300 group 10.0.0.1 speed 3")),
        [
            "k.conf:2:31: `lvs_sync_daemon id` expects 0..=255, found `300`",
            "k.conf:2:41: `lvs_sync_daemon group` expects a multicast address, found `10.0.0.1`",
            "k.conf:2:50: `lvs_sync_daemon` has no option `speed` (expects INTERFACE VRRP_INSTANCE \
             [id 0..255] [maxlen N] [port N] [ttl N] [group IP])",
        ]
    );
    assert_eq!(
        errors(&with_global("lvs_sync_daemon eth1 VI_1 ttl")),
        [
            "k.conf:2:28: `lvs_sync_daemon` option `ttl` needs a value (INTERFACE VRRP_INSTANCE \
          [id 0..255] [maxlen N] [port N] [ttl N] [group IP])"
        ]
    );
}

/// `[lb] backend` in tandem's TOML picks the forwarding backend; auto by default.
#[test]
fn lb_backend_is_read_from_tandem_toml() {
    use tandem_config::{load_files, LbBackend};
    let dir = std::env::temp_dir().join(format!("tandem-config-lb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, VI_1).unwrap();
    let toml = dir.join("tandem.toml");
    std::fs::write(&toml, "[lb]\nbackend = \"ipvs\"\n").unwrap();
    assert_eq!(
        load_files(std::slice::from_ref(&conf)).unwrap().lb_backend,
        LbBackend::Auto
    );
    // Either order: the TOML's choice survives the keepalived.conf read after it.
    assert_eq!(
        load_files(&[toml.clone(), conf.clone()])
            .unwrap()
            .lb_backend,
        LbBackend::Ipvs
    );
    assert_eq!(
        load_files(&[conf.clone(), toml.clone()])
            .unwrap()
            .lb_backend,
        LbBackend::Ipvs
    );
    std::fs::write(&toml, "[lb]\nbackend = \"lvs\"\n").unwrap();
    let e = load_files(&[conf, toml]).unwrap_err().to_string();
    assert!(e.contains("tandem.toml:2:1") && e.contains("lvs"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
