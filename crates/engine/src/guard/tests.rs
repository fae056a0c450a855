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
    assert!(guard.lift(t1 + Duration::from_secs(5), ip));
    assert!(!guard.is_banned(t1 + Duration::from_secs(6), ip));
    assert!(guard.list(t1 + Duration::from_secs(6)).is_empty());
}

#[test]
#[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
fn failures_outside_the_window_do_not_add_up_and_floods_ban() {
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
        assert_eq!(guard.request(t0, ip, &rules), None);
    }
    let ban = guard.request(t0, ip, &rules).unwrap();
    assert_eq!(ban.why, "request flood");
}
