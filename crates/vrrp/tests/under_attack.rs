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

/// A master (priority 200 unless `tweak` says otherwise) with `tweak` applied to its
/// settings; returns it and the time it got there.
fn master_with(tweak: impl Fn(&mut tandem_vrrp::InstanceConfig)) -> (Instance, Instant) {
    let mut config = sim::config(0, 200);
    tweak(&mut config);
    let mut a = Instance::new(config);
    let mut now = Instant::now();
    a.start(now);
    while a.state() != State::Master {
        now = a.next_deadline().expect("a backup has a timer");
        a.handle_timers(now);
    }
    (a, now)
}

/// An instance of `priority` driven to MASTER; returns it and the time it got there.
fn master(priority: u8) -> (Instance, Instant) {
    master_with(|c| c.priority = priority)
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
                InstanceAction::SendGratuitous | InstanceAction::SendGratuitousLowerPriority => {
                    gratuitous += 1
                }
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

/// Short names of actions: `advert`, `garp`, `garp-lower`, `remove`, `BACKUP`, ...
fn words(actions: &[InstanceAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            InstanceAction::Send { .. } => "advert".to_string(),
            InstanceAction::SendGratuitous => "garp".into(),
            InstanceAction::SendGratuitousLowerPriority => "garp-lower".into(),
            InstanceAction::RefreshGratuitous => "garp-refresh".into(),
            InstanceAction::AddAddresses => "add".into(),
            InstanceAction::RemoveAddresses => "remove".into(),
            InstanceAction::Transition { to, .. } => to.keyword().into(),
        })
        .collect()
}

#[test]
fn keepalived_lower_priority_keywords_shape_the_answer() {
    let src = sim::address(0, 7);
    // Default: an advert and an announcement.
    let (mut a, now) = master_with(|_| {});
    assert_eq!(
        words(&a.process_advert(now, src, &forged(100))),
        ["advert", "garp-lower"]
    );
    // lower_prio_no_advert: the announcement only (the RFC's behaviour for the advert).
    let (mut a, now) = master_with(|c| c.lower_priority.advert = false);
    assert_eq!(
        words(&a.process_advert(now, src, &forged(100))),
        ["garp-lower"]
    );
    // garp_lower_prio_repeat 0: the advert only.
    let (mut a, now) = master_with(|c| c.lower_priority.announce = false);
    assert_eq!(words(&a.process_advert(now, src, &forged(100))), ["advert"]);
    // garp_lower_prio_delay 5: a second announcement five seconds later.
    let (mut a, now) =
        master_with(|c| c.lower_priority.announce_again_after = Some(Duration::from_secs(5)));
    a.process_advert(now, src, &forged(100));
    let mut later = Vec::new();
    let end = now + Duration::from_secs(6);
    while let Some(t) = a.next_deadline().filter(|t| *t <= end) {
        for w in words(&a.handle_timers(t)) {
            later.push((w, t - now));
        }
    }
    let second: Vec<_> = later.iter().filter(|(w, _)| w == "garp-lower").collect();
    assert_eq!(second.len(), 1, "{later:?}");
    assert_eq!(second[0].1, Duration::from_secs(5));
}

#[test]
fn higher_prio_send_advert_sends_one_advert_before_yielding() {
    let src = sim::address(0, 7);
    let (mut plain, now) = master_with(|_| {});
    assert_eq!(
        words(&plain.process_advert(now, src, &forged(250))),
        ["remove", "BACKUP"]
    );
    let (mut a, now) = master_with(|c| c.higher_prio_send_advert = true);
    assert_eq!(
        words(&a.process_advert(now, src, &forged(250))),
        ["advert", "remove", "BACKUP"]
    );
}
