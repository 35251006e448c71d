//! Forged adverts on the LAN: an address owner keeps its addresses (RFC 5798 7.1), and a flood
//! of lower-priority or priority-0 adverts gets at most one answer per advert interval.

mod sim;

use std::time::{Duration, Instant};

use tandem_vrrp::{Advertisement, Auth, DecodeError, Instance, InstanceAction, State, Version};

fn forged(priority: u8) -> Advertisement {
    Advertisement {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 100,
        addresses: vec!["10.0.0.254".parse().unwrap()],
        auth: Auth::None,
    }
}

/// An instance driven to MASTER; returns it and the time it got there.
fn master(priority: u8) -> (Instance, Instant) {
    let mut a = Instance::new(sim::config(0, priority));
    let mut now = Instant::now();
    a.start(now);
    while a.state() != State::Master {
        now = a.next_deadline().expect("a backup has a timer");
        a.handle_timers(now);
    }
    (a, now)
}

#[test]
fn an_owner_discards_priority_255_adverts_from_a_higher_address_and_keeps_its_addresses() {
    let (mut owner, now) = master(255);
    // From 10.0.0.200: higher than the owner's 10.0.0.1, so 6.4.3 alone would make it yield.
    let src = "10.0.0.200".parse().unwrap();
    let bytes = forged(255).encode(src, "224.0.0.18".parse().unwrap());
    for i in 0..100u32 {
        let at = now + Duration::from_millis(10 * u64::from(i));
        let result = owner.accept_packet(src, "224.0.0.18".parse().unwrap(), 255, &bytes);
        assert!(
            matches!(result, Err(DecodeError::Owner { priority: 255 })),
            "{result:?}"
        );
        owner.handle_timers(at);
    }
    assert_eq!(owner.state(), State::Master);
    assert_eq!(owner.stats().drops(tandem_vrrp::DropReason::Owner), 100);
}

#[test]
fn a_flood_of_lower_priority_adverts_gets_one_answer_per_interval() {
    let (mut a, start) = master(200);
    let src = sim::address(0, 7);
    let mut answers = Vec::new();
    let mut gratuitous = 0;
    // 5,000 forged adverts over 5 s: one a millisecond.
    for i in 0..5_000u64 {
        let now = start + Duration::from_millis(i);
        let mut actions = a.process_advert(now, src, &forged(if i % 2 == 0 { 100 } else { 0 }));
        if a.next_deadline().is_some_and(|d| d <= now) {
            actions.extend(a.handle_timers(now));
        }
        for action in actions {
            match action {
                InstanceAction::Send { .. } => answers.push(now),
                InstanceAction::SendGratuitous => gratuitous += 1,
                _ => {}
            }
        }
    }
    assert_eq!(a.state(), State::Master);
    // Regular adverts (one a second) plus at most one answer a second.
    println!(
        "{} adverts, {gratuitous} gratuitous bursts for 5,000 forged adverts",
        answers.len()
    );
    assert!(answers.len() <= 10, "{} adverts sent", answers.len());
    assert!(gratuitous <= 5, "{gratuitous} gratuitous bursts");
    for pair in answers.windows(3) {
        assert!(
            pair[2] - pair[0] >= Duration::from_millis(999),
            "{answers:?}"
        );
    }
}
