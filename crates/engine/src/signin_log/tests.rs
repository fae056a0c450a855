use super::*;

#[test]
#[allow(clippy::disallowed_methods)] // a base instant; the test moves time by hand
fn each_source_has_its_budget_per_window() {
    let mut budget = Budget::new(Duration::from_secs(60), 2);
    let t0 = Instant::now();
    let a: IpAddr = [127, 0, 0, 2].into();
    let b: IpAddr = [127, 0, 0, 3].into();
    assert_eq!(budget.take(t0, a), Some(0));
    assert_eq!(budget.take(t0, a), Some(0));
    assert_eq!(budget.take(t0 + Duration::from_secs(1), a), None);
    assert_eq!(budget.take(t0 + Duration::from_secs(2), a), None);
    assert_eq!(budget.take(t0, b), Some(0), "another source has its own");
    assert_eq!(
        budget.take(t0 + Duration::from_secs(60), a),
        Some(2),
        "a new window, saying how many were left out"
    );
}
