//! One keepalived.conf for both nodes of a pair: `@ID` lines and `$VARIABLES` give each node
//! its priority and unicast addresses, and `tandemd -i` picks the node. Both routers start
//! from the very same file; each runs with its own values (status JSON), and the pair elects
//! the right master, fails over and takes it back.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";

/// The shared file: node `gw-a` at 150, `gw-b` at 100, each sending its adverts by unicast
/// from its own address to the other's.
const PAIR_CONF: &str = "\
# One file for both routers: tandemd -i gw-a on the first, -i gw-b on the second.
$VIP=10.0.0.254/24
@gw-a $PRIO=150
@gw-a $SELF=10.0.0.1
@gw-a $PEER=10.0.0.2
@gw-b $PRIO=100
@gw-b $SELF=10.0.0.2
@gw-b $PEER=10.0.0.1

global_defs {
    @gw-a router_id GW_A
    @gw-b router_id GW_B
}

vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority $PRIO
    advert_int 1
    unicast_src_ip $SELF
    unicast_peer {
        $PEER
    }
    virtual_ipaddress {
        $VIP
    }
}
";

/// VI_1's entry in `d`'s status JSON.
fn vi_1_status(d: &Daemon) -> Result<Value> {
    let text = d.query("status json")?;
    let status: Value = serde_json::from_str(&text).with_context(|| text.clone())?;
    status["instances"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["name"] == "VI_1"))
        .cloned()
        .with_context(|| format!("no VI_1 in {text}"))
}

fn start_node(pair: &Pair, node: &str, file: &std::path::Path) -> Result<Daemon> {
    let ns = if node == "gw-a" { &pair.a } else { &pair.b };
    start_tandemd_file(&pair.lab, ns, file, &[], &[], &["-i", node])
}

#[test]
fn one_file_with_config_ids_drives_both_nodes_of_a_pair() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("confid")?;
    let file = write_config(&pair, "keepalived.conf", PAIR_CONF)?;
    let mut a = start_node(&pair, "gw-a", &file)?;
    let b = start_node(&pair, "gw-b", &file)?;
    assert_eq!(a.config, b.config, "both nodes read the same file");

    // Each node runs with its own values.
    for (d, priority, source, peer) in [
        (&a, 150, "10.0.0.1", "10.0.0.2"),
        (&b, 100, "10.0.0.2", "10.0.0.1"),
    ] {
        let vi = vi_1_status(d)?;
        assert_eq!(vi["base_priority"], priority, "{vi}");
        assert_eq!(vi["priority"], priority, "{vi}");
        assert_eq!(vi["source"], source, "{vi}");
        assert_eq!(vi["unicast_peers"], serde_json::json!([peer]), "{vi}");
        assert_eq!(
            vi["addresses"],
            serde_json::json!(["10.0.0.254/24"]),
            "{vi}"
        );
    }

    // The higher priority wins, and the backup hears it by unicast from its address.
    let took = wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    println!("gw-a master {} ms after the start", took.as_millis());
    wait_until("gw-b hears gw-a", Duration::from_secs(5), ms(20), || {
        let vi = vi_1_status(&b).ok()?;
        (vi["state"] == "BACKUP" && vi["master"] == "10.0.0.1").then_some(())
    })?;
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(50))?;

    // gw-a stops: gw-b takes over; gw-a back from the same file: it preempts.
    a.child.signal(Signal::SIGTERM)?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!("gw-b took over {} ms after gw-a's stop", took.as_millis());
    assert!(a.child.wait_timeout(Duration::from_secs(10))?.is_some());
    let a = start_node(&pair, "gw-a", &file)?;
    let took = wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    println!("gw-a preempted {} ms after its restart", took.as_millis());
    let vi = vi_1_status(&b)?;
    assert_eq!(vi["state"], "BACKUP", "{vi}");
    assert!(vi["adverts_received"].as_u64().unwrap_or(0) > 0, "{vi}");
    assert_eq!(vi_1_status(&a)?["state"], "MASTER");
    Ok(())
}
