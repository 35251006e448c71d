//! keepalived's `track_interface` with a weight, against Debian's keepalived as the peer: a
//! tracked uplink going down lowers the master's priority below the peer's, the peer takes
//! over, and the master takes its addresses back when the uplink returns.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";

fn config(priority: u8, extra: &str) -> String {
    vi_1(2, 71, priority, extra)
}

#[test]
fn a_weighted_uplink_going_down_hands_over_to_keepalived_and_back() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("weight", 2)?;
    let a = start_tandemd(
        &pair,
        &pair.a,
        &config(150, "    track_interface {\n        eth1 weight -60\n    }"),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    let priority = |d: &Daemon| d.counter("VI_1", "priority");
    assert_eq!(priority(&a)?, 150);

    pair.a.link_set("eth1", false)?;
    wait_until("priority 90", Duration::from_secs(5), ms(10), || {
        (priority(&a).ok()? == 90).then_some(())
    })?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!(
        "uplink down: keepalived took over after {} ms",
        took.as_millis()
    );
    // Lower priority, not FAULT: a is a working backup.
    assert!(a.query("status")?.contains("instance=VI_1 state=BACKUP"));

    pair.a.link_set("eth1", true)?;
    let back = wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!(
        "uplink up: tandemd preempted back after {} ms",
        back.as_millis()
    );
    assert_eq!(priority(&a)?, 150);
    Ok(())
}
