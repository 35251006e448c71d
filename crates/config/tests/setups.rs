//! The example setups under etc/setups (shown in docs/setups.md): each file loads for every
//! node it names, without a warning, and gives each node its own priority and peers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tandem_config::{load_files_with, Config, LoadOptions};

fn setup(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../etc/setups")
        .join(name)
}

fn load(name: &str, id: &str) -> Config {
    let options = LoadOptions {
        config_id: Some(id.into()),
    };
    let config =
        load_files_with(&[setup(name)], &options).unwrap_or_else(|e| panic!("{name} as {id}: {e}"));
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert!(warnings.is_empty(), "{name} as {id}: {warnings:#?}");
    config
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

#[test]
fn gateway_pair_and_directors_differ_only_in_priority() {
    for (name, ids) in [
        ("nat-gateway-pair.conf", ["gw-a", "gw-b"]),
        ("dual-homed-directors.conf", ["d1", "d2"]),
    ] {
        let [a, b] = ids.map(|id| load(name, id));
        assert_eq!(a.sync_groups.len(), 1, "{name}");
        assert_eq!(a.instances.len(), 2, "{name}");
        for (x, y) in a.instances.iter().zip(&b.instances) {
            assert_eq!((x.priority, y.priority), (150, 100), "{name} {}", x.name);
            assert_eq!(x.virtual_router_id, y.virtual_router_id);
        }
        assert_eq!(a.global.router_id.as_deref(), Some(ids[0]), "{name}");
    }
    // The directors balance one service over three checked web servers, on both nodes.
    for id in ["d1", "d2"] {
        let c = load("dual-homed-directors.conf", id);
        assert_eq!(c.virtual_servers.len(), 1, "{id}");
        assert_eq!(c.virtual_servers[0].real_servers.len(), 3, "{id}");
    }
}

#[test]
fn unicast_pair_points_each_node_at_the_other() {
    let a = load("unicast-pair.conf", "gw-a");
    let b = load("unicast-pair.conf", "gw-b");
    let (a, b) = (&a.instances[0], &b.instances[0]);
    assert_eq!(a.unicast_src_ip, Some(ip("10.0.0.11")));
    assert_eq!(a.unicast_peers, [ip("10.0.0.12")]);
    assert_eq!(b.unicast_src_ip, Some(ip("10.0.0.12")));
    assert_eq!(b.unicast_peers, [ip("10.0.0.11")]);
    assert!(a.priority > b.priority);
}

#[test]
fn three_nodes_each_list_the_other_two_and_track_haproxy() {
    let all = [
        ("n1", 150, "10.0.0.21"),
        ("n2", 140, "10.0.0.22"),
        ("n3", 130, "10.0.0.23"),
    ];
    for (id, priority, own) in all {
        let c = load("three-nodes.conf", id);
        let vi = &c.instances[0];
        assert_eq!(vi.priority, priority, "{id}");
        assert_eq!(vi.unicast_src_ip, Some(ip(own)), "{id}");
        let others: Vec<IpAddr> = (all.iter())
            .filter(|(other, _, _)| *other != id)
            .map(|(_, _, a)| ip(a))
            .collect();
        assert_eq!(vi.unicast_peers, others, "{id}");
        assert_eq!(vi.track_scripts.len(), 1, "{id}");
        assert_eq!(c.scripts[0].weight, -60, "{id}");
    }
}
