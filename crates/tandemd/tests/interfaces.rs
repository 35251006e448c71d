//! Interfaces that go away and come back, as ifupdown (`ifdown`/`ifup` of a VLAN), netplan
//! or an operator re-creating a bond or VLAN make them do: the new interface has the same
//! name but a new index, and the instance on it must run again on it. (This kernel has no
//! 802.1Q module; a macvlan on the pair's link stands in for the VLAN.)

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use tandem_lab::{require_root, wait_until, Netns, Pair};

const VIP: &str = "10.5.0.254";

fn add_lan(ns: &Netns, address: &str) -> Result<()> {
    ns.ip("link add link eth0 name lan5 type macvlan mode bridge")?;
    ns.ip(&format!("addr add {address}/24 dev lan5"))?;
    ns.ip("link set lan5 up")?;
    Ok(())
}

fn vi_lan(priority: u8) -> String {
    Vi {
        name: "VI_5",
        interface: "lan5",
        vrid: 55,
        priority,
        advert_int: "1",
        version: 2,
        vips: &["10.5.0.254/24"],
        extra: "",
    }
    .render()
}

#[test]
fn an_instance_on_an_interface_that_is_deleted_and_recreated_runs_again_on_the_new_one(
) -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("ifrec")?;
    add_lan(&pair.a, "10.5.0.1")?;
    add_lan(&pair.b, "10.5.0.2")?;
    let a = start_tandemd(&pair, &pair.a, &vi_lan(150))?;
    let b = start_tandemd(&pair, &pair.b, &vi_lan(100))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10)).with_context(|| a.child.log())?;

    pair.a.ip("link del lan5")?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))
        .with_context(|| format!("{}\n{}", a.child.log(), b.child.log()))?;
    println!("lan5 deleted on a: b held the VIP after {took:?}");

    add_lan(&pair.a, "10.5.0.1")?;
    let took = wait_holder(&pair, VIP, "a", Duration::from_secs(10))
        .with_context(|| format!("{}\n{}", a.child.log(), b.child.log()))?;
    println!("lan5 re-created on a: a preempted after {took:?}");
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(50))?;
    Ok(())
}

/// When the files changed since they were loaded, a re-created interface does not apply the
/// edit behind the operator's back: its instances wait, and the next reload runs them.
#[test]
fn a_recreated_interface_waits_for_a_reload_when_the_files_were_edited_meanwhile() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("ifedit")?;
    add_lan(&pair.a, "10.5.0.1")?;
    add_lan(&pair.b, "10.5.0.2")?;
    let a = start_tandemd(&pair, &pair.a, &vi_lan(150))?;
    let _b = start_tandemd(&pair, &pair.b, &vi_lan(100))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    pair.a.ip("link del lan5")?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    std::fs::write(&a.config, vi_lan(160))?;
    add_lan(&pair.a, "10.5.0.1")?;
    wait_until("a's refusal", Duration::from_secs(5), ms(20), || {
        a.child
            .log()
            .contains("lan5: the configuration files changed since they were loaded")
            .then_some(())
    })
    .with_context(|| a.child.log())?;
    // a stays out of the election: b keeps the address past a's Master_Down_Interval.
    hold_steady(&pair, VIP, "b", master_down(150, 1.0), ms(50))?;
    let reply = a.query("reload")?;
    assert!(reply.contains("reload:"), "{reply}");
    let took =
        wait_holder(&pair, VIP, "a", Duration::from_secs(10)).with_context(|| a.child.log())?;
    println!("after the reload a preempted in {took:?}");
    Ok(())
}
