//! When a master announces its addresses (gratuitous ARP / unsolicited NA): at takeover, again
//! `garp_master_delay` later, and every `garp_master_refresh` with an advert, on a simulated
//! clock.

mod sim;

use std::time::{Duration, Instant};

use tandem_vrrp::{Instance, InstanceAction, State};

/// Drives `instance` for `span` from `start`, and returns every announcement as (time since
/// `start` in ms, what).
fn announcements(instance: &mut Instance, start: Instant, span: Duration) -> Vec<(u64, &str)> {
    let mut out = Vec::new();
    let mut note = |now: Instant, actions: Vec<InstanceAction>| {
        for a in actions {
            let what = match a {
                InstanceAction::SendGratuitous => "garp",
                InstanceAction::RefreshGratuitous => "refresh",
                InstanceAction::SendGratuitousLowerPriority => "lower",
                _ => continue,
            };
            out.push(((now - start).as_millis() as u64, what));
        }
    };
    let first = instance.force_master(start);
    note(start, first);
    while let Some(now) = instance.next_deadline().filter(|t| *t <= start + span) {
        let actions = instance.handle_timers(now);
        note(now, actions);
    }
    out
}

#[test]
fn a_master_announces_at_takeover_after_the_delay_and_with_every_refresh() {
    let mut config = sim::config(0, 200);
    config.garp_repeat_after = Some(Duration::from_secs(5));
    config.garp_refresh = Some(Duration::from_secs(2));
    let mut a = Instance::new(config);
    let t0 = Instant::now();
    a.start(t0);
    let seen = announcements(&mut a, t0, Duration::from_millis(8_500));
    // Adverts leave every second from the takeover; a refresh goes with the first advert at
    // least 2 s after the last one, the second burst 5 s after the takeover.
    assert_eq!(
        seen,
        vec![
            (0, "garp"),
            (2_000, "refresh"),
            (4_000, "refresh"),
            (5_000, "garp"),
            (6_000, "refresh"),
            (8_000, "refresh"),
        ]
    );
}

#[test]
fn a_refresh_period_between_adverts_waits_for_the_next_advert() {
    let mut config = sim::config(0, 200);
    config.garp_refresh = Some(Duration::from_millis(1_500));
    let mut a = Instance::new(config);
    let t0 = Instant::now();
    a.start(t0);
    let seen = announcements(&mut a, t0, Duration::from_millis(6_500));
    assert_eq!(
        seen,
        vec![
            (0, "garp"),
            (2_000, "refresh"),
            (4_000, "refresh"),
            (6_000, "refresh")
        ]
    );
}

#[test]
fn without_refresh_or_delay_a_master_announces_once() {
    let mut a = Instance::new(sim::config(0, 200));
    let t0 = Instant::now();
    a.start(t0);
    let seen = announcements(&mut a, t0, Duration::from_secs(20));
    assert_eq!(seen, vec![(0, "garp")]);
}

#[test]
fn leaving_master_stops_the_refreshes() {
    let mut config = sim::config(0, 200);
    config.garp_refresh = Some(Duration::from_secs(1));
    let mut a = Instance::new(config);
    let t0 = Instant::now();
    a.start(t0);
    a.force_master(t0);
    let stop = t0 + Duration::from_millis(2_500);
    a.shutdown(stop);
    assert_eq!(a.state(), State::Stop);
    assert_eq!(a.next_deadline(), None);
}
