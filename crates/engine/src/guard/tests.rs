#![allow(clippy::unwrap_used)]
use super::*;

#[test]
#[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
fn failures_ban_for_longer_each_time_and_a_lift_clears() {
    let rules = Security::default();
    let mut guard = Guard::default();
    let t0 = Instant::now();
    let ip: IpAddr = [127, 0, 0, 2].into();
    for i in 0..4 {
        assert_eq!(guard.failure(t0 + Duration::from_secs(i), ip, &rules), None);
    }
    let ban = guard
        .failure(t0 + Duration::from_secs(4), ip, &rules)
        .unwrap();
    assert_eq!((ban.length, ban.count), (Duration::from_secs(60), 1));
    assert!(guard.is_banned(t0 + Duration::from_secs(5), ip));
    assert!(
        !guard.is_banned(t0 + Duration::from_secs(65), ip),
        "a ban ends"
    );
    // Again: ten minutes.
    let t1 = t0 + Duration::from_secs(100);
    for i in 0..4 {
        guard.failure(t1 + Duration::from_secs(i), ip, &rules);
    }
    let ban = guard
        .failure(t1 + Duration::from_secs(4), ip, &rules)
        .unwrap();
    assert_eq!((ban.length, ban.count), (Duration::from_secs(600), 2));
    assert_eq!(guard.list(t1 + Duration::from_secs(5)).len(), 1);
    // IPv6 sources count by their /64.
    let a: IpAddr = "2001:db8::1".parse().unwrap();
    let b: IpAddr = "2001:db8::2".parse().unwrap();
    for _ in 0..5 {
        guard.failure(t1, a, &rules);
    }
    assert!(guard.is_banned(t1, b));
    assert!(guard.lift(t1 + Duration::from_secs(5), ip));
    assert!(!guard.is_banned(t1 + Duration::from_secs(6), ip));
    let left = guard.list(t1 + Duration::from_secs(6));
    assert_eq!(left.len(), 1, "only the IPv6 /64: {left:?}");
    assert_eq!(left[0].source, "2001:db8::".parse::<IpAddr>().unwrap());
}

#[test]
#[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
fn failures_outside_the_window_do_not_add_up_and_floods_are_dropped() {
    let rules = Security {
        max_requests_per_second: 10,
        ..Security::default()
    };
    let mut guard = Guard::default();
    let t0 = Instant::now();
    let ip: IpAddr = [127, 0, 0, 9].into();
    for i in 0..10 {
        assert_eq!(
            guard.failure(t0 + Duration::from_secs(30 * i), ip, &rules),
            None
        );
    }
    for _ in 0..10 {
        assert!(!guard.over_rate(t0, ip, &rules));
    }
    // Past the rate, requests are dropped, but a flood bans nobody (its
    // source could be forged).
    assert!(guard.over_rate(t0, ip, &rules));
    assert!(!guard.is_banned(t0, ip));
    assert!(!guard.over_rate(t0 + Duration::from_secs(1), ip, &rules));
}

#[test]
#[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
fn the_ladder_starts_again_after_a_quiet_spell() {
    let rules = Security::default();
    let mut guard = Guard::default();
    let t0 = Instant::now();
    let ip: IpAddr = [127, 0, 0, 2].into();
    let ban_at = |guard: &mut Guard, at: Instant| {
        for _ in 0..4 {
            guard.failure(at, ip, &rules);
        }
        guard.failure(at, ip, &rules).unwrap()
    };
    assert_eq!(ban_at(&mut guard, t0).length, Duration::from_secs(60));
    // The ban ends and a datagram notices it.
    assert!(!guard.is_banned(t0 + Duration::from_secs(61), ip));
    // Quiet for more than the longest step (an hour): back to a minute.
    let later = t0 + Duration::from_secs(61 + 3601);
    assert_eq!(ban_at(&mut guard, later).length, Duration::from_secs(60));
}
