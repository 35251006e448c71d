//! A sync group of two instances on two LANs: cutting one link of the master moves both VIPs,
//! and the notify hooks see keepalived's arguments.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use tandem_lab::{require_root, wait_until, Pair};

fn config(pair: &Pair, node: &str, priority: u8) -> Result<String> {
    let log = pair.lab.log_dir().join(format!("notify-{node}.log"));
    let script = pair.lab.log_dir().join(format!("notify-{node}.sh"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()?;
    let vi = |name, interface, vrid, vip| {
        Vi {
            name,
            interface,
            vrid,
            priority,
            advert_int: "1",
            version: 3,
            vips: &[vip],
            extra: "",
        }
        .render()
    };
    Ok(format!(
        "vrrp_sync_group G1 {{\n    group {{\n        VI_0\n        VI_1\n    }}\n    notify {}\n}}\n{}{}",
        script.display(),
        vi("VI_0", "eth0", 10, "10.0.0.254/24"),
        vi("VI_1", "eth1", 11, "10.0.1.254/24"),
    ))
}

fn notify_log(pair: &Pair, node: &str) -> String {
    std::fs::read_to_string(pair.lab.log_dir().join(format!("notify-{node}.log")))
        .unwrap_or_default()
}

#[test]
fn link_down_on_one_member_moves_the_whole_group() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("sync", 2)?;
    let a = start_tandemd(&pair, &pair.a, &config(&pair, "a", 150)?)?;
    let _b = start_tandemd(&pair, &pair.b, &config(&pair, "b", 100)?)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    pair.a.link_set("eth1", false)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        let took = wait_holder(&pair, vip, "b", Duration::from_secs(10))
            .map_err(|e| e.context(a.child.log()))?;
        println!(
            "{vip} moved to b within {} ms of the link cut",
            took.as_millis()
        );
    }
    let log = a.child.log();
    assert!(log.contains("(VI_1) Entering FAULT STATE"), "{log}");
    assert!(log.contains("(VI_0) Entering FAULT STATE"), "{log}");
    wait_until("group notify on a", Duration::from_secs(5), ms(20), || {
        notify_log(&pair, "a")
            .contains("GROUP G1 FAULT")
            .then_some(())
    })?;
    wait_until("group notify on b", Duration::from_secs(5), ms(20), || {
        notify_log(&pair, "b")
            .contains("GROUP G1 MASTER")
            .then_some(())
    })?;

    pair.a.link_set("eth1", true)?;
    for vip in ["10.0.0.254", "10.0.1.254"] {
        wait_holder(&pair, vip, "a", Duration::from_secs(15))?;
    }
    Ok(())
}
