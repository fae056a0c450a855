//! Whether a [`Schedule`] is open at an instant, and why, in the schedule's
//! time zone.
//!
//! Evaluated in local wall-clock time, which gives the DST rules the product
//! wants without special cases: on a spring-forward day a window that starts
//! in the skipped hour starts at the first instant after it (that is the
//! first local time at or past its start), and on a fall-back day both
//! instants of a repeated local time inside a window are inside it (they
//! read the same on the wall).

use directory::{Schedule, Window};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Open or closed at an instant, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Openness {
    pub open: bool,
    pub reason: OpenReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenReason {
    /// No hours are set: always open.
    AlwaysOpen,
    /// Inside this window, which starts on `day` (a special day's window
    /// when `special`).
    Window {
        day: Date,
        window: Window,
        special: bool,
    },
    /// `day` is in this closed range (a holiday or a closure).
    Closed { from: Date, to: Date },
    /// An ordinary day, outside every window.
    OutsideWindows,
}

impl Openness {
    pub const ALWAYS: Openness = Openness {
        open: true,
        reason: OpenReason::AlwaysOpen,
    };
}

/// The state of `schedule` (none: always open) at `at`.
pub fn state(schedule: Option<&Schedule>, tz: &TimeZone, at: Timestamp) -> Openness {
    match schedule {
        None => Openness::ALWAYS,
        Some(schedule) => state_at(schedule, tz.to_datetime(at)),
    }
}

fn state_at(schedule: &Schedule, local: DateTime) -> Openness {
    let date = local.date();
    let minute = (local.hour() as u16) * 60 + local.minute() as u16;
    let open = |day: Date, window: Window| Openness {
        open: true,
        reason: OpenReason::Window {
            day,
            window,
            special: schedule.special.contains_key(&day),
        },
    };
    for &w in schedule.windows_on(date) {
        let (start, end) = w.same_day();
        if start <= minute && minute < end {
            return open(date, w);
        }
    }
    // A window past midnight belongs to the day it started on.
    if let Ok(yesterday) = date.yesterday() {
        for &w in schedule.windows_on(yesterday) {
            if w.next_day().is_some_and(|(_, end)| minute < end) {
                return open(yesterday, w);
            }
        }
    }
    let reason = match schedule.closure(date) {
        Some((from, to)) => OpenReason::Closed { from, to },
        None => OpenReason::OutsideWindows,
    };
    Openness {
        open: false,
        reason,
    }
}

/// The next instant after `at` when the schedule opens or closes, looking a
/// month ahead (`None`: it does not change in that time).
pub fn next_change(schedule: Option<&Schedule>, tz: &TimeZone, at: Timestamp) -> Option<Timestamp> {
    let schedule = schedule?;
    let now = state_at(schedule, tz.to_datetime(at)).open;
    let today = tz.to_datetime(at).date();
    let mut boundaries: Vec<DateTime> = Vec::new();
    let mut day = today.yesterday().ok()?;
    for _ in 0..32 {
        boundaries.push(day.at(0, 0, 0, 0));
        for w in schedule.windows_on(day) {
            boundaries.push(civil(day, w.start));
            let end_day = if w.overnight() || w.end == 1440 {
                day.tomorrow().ok()?
            } else {
                day
            };
            boundaries.push(civil(end_day, if w.end == 1440 { 0 } else { w.end }));
        }
        day = day.tomorrow().ok()?;
    }
    let horizon = tz
        .to_ambiguous_timestamp(day.at(0, 0, 0, 0))
        .compatible()
        .ok()?;
    let mut instants: Vec<Timestamp> = boundaries
        .into_iter()
        // A boundary in a repeated hour happens twice: both are candidates.
        .flat_map(|dt| {
            let amb = tz.to_ambiguous_timestamp(dt);
            [amb.compatible().ok(), amb.later().ok()]
        })
        .flatten()
        // A window that starts in a skipped hour opens when the hour ends:
        // the time zone's own transitions are candidates too.
        .chain(
            tz.following(at)
                .map(|t| t.timestamp())
                .take_while(|&t| t < horizon),
        )
        .filter(|&t| t > at)
        .collect();
    instants.sort();
    instants.dedup();
    instants
        .into_iter()
        .find(|&t| state_at(schedule, tz.to_datetime(t)).open != now)
}

fn civil(day: Date, minute: u16) -> DateTime {
    day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use directory::hours::{closed_range, window};

    fn at(zone: &str, local: &str) -> (TimeZone, Timestamp) {
        let tz = TimeZone::get(zone).unwrap();
        let dt: DateTime = local.parse().unwrap();
        let ts = tz.to_ambiguous_timestamp(dt).compatible().unwrap();
        (tz, ts)
    }

    fn schedule(
        days: &[(usize, &[&str])],
        closed: &[&str],
        special: &[(&str, &[&str])],
    ) -> Schedule {
        let mut s = Schedule::default();
        for &(day, windows) in days {
            s.weekly[day] = windows.iter().map(|w| window(w).unwrap()).collect();
        }
        s.closed = closed.iter().map(|c| closed_range(c).unwrap()).collect();
        for &(date, windows) in special {
            s.special.insert(
                date.parse().unwrap(),
                windows.iter().map(|w| window(w).unwrap()).collect(),
            );
        }
        s
    }

    fn open(s: &Schedule, zone: &str, local: &str) -> bool {
        let (tz, ts) = at(zone, local);
        state(Some(s), &tz, ts).open
    }

    // 2026-12-07 is a Monday; 2026-12-11 a Friday.
    const MON: usize = 0;
    const FRI: usize = 4;
    const SAT: usize = 5;
    const SUN: usize = 6;

    #[test]
    fn split_shifts_and_24_00() {
        let s = schedule(
            &[
                (MON, &["09:00-12:00", "13:00-18:00"]),
                (FRI, &["18:00-24:00"]),
            ],
            &[],
            &[],
        );
        for (local, expected) in [
            ("2026-12-07T08:59", false),
            ("2026-12-07T09:00", true),
            ("2026-12-07T11:59", true),
            ("2026-12-07T12:00", false),
            ("2026-12-07T12:30", false),
            ("2026-12-07T13:00", true),
            ("2026-12-07T17:59", true),
            ("2026-12-07T18:00", false),
            ("2026-12-08T10:00", false),
            ("2026-12-11T23:59", true),
            ("2026-12-12T00:00", false),
        ] {
            assert_eq!(open(&s, "Europe/Paris", local), expected, "{local}");
        }
        let (tz, ts) = at("Europe/Paris", "2026-12-07T10:00");
        assert!(matches!(
            state(Some(&s), &tz, ts).reason,
            OpenReason::Window { special: false, .. }
        ));
        assert_eq!(state(None, &tz, ts), Openness::ALWAYS);
    }

    #[test]
    fn overnight_windows_cross_midnight_and_the_end_of_the_week() {
        let s = schedule(
            &[(FRI, &["22:00-06:00"]), (SUN, &["23:00-02:00"])],
            &[],
            &[],
        );
        for (local, expected) in [
            ("2026-12-11T21:59", false),
            ("2026-12-11T22:00", true),
            ("2026-12-12T05:59", true), // Saturday morning, Friday's window
            ("2026-12-12T06:00", false),
            ("2026-12-13T23:30", true), // Sunday night ...
            ("2026-12-14T01:59", true), // ... into Monday: the week wraps
            ("2026-12-14T02:00", false),
        ] {
            assert_eq!(open(&s, "America/New_York", local), expected, "{local}");
        }
        let (tz, ts) = at("America/New_York", "2026-12-12T03:00");
        match state(Some(&s), &tz, ts).reason {
            OpenReason::Window { day, .. } => assert_eq!(day.to_string(), "2026-12-11"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closed_dates_win_and_special_days_replace_the_week() {
        let s = schedule(
            &[(FRI, &["09:00-17:00"]), (SAT, &[])],
            &["2026-12-25", "2026-12-31..2027-01-01"],
            &[
                ("2026-12-19", &["10:00-14:00"]),
                ("2026-12-18", &["12:00-13:00"]),
            ],
        );
        assert!(
            !open(&s, "Europe/Paris", "2026-12-25T10:00"),
            "Christmas, a Friday"
        );
        assert!(
            !open(&s, "Europe/Paris", "2027-01-01T10:00"),
            "in the range"
        );
        assert!(
            open(&s, "Europe/Paris", "2027-01-08T10:00"),
            "an ordinary Friday"
        );
        assert!(
            open(&s, "Europe/Paris", "2026-12-19T11:00"),
            "a special Saturday"
        );
        assert!(!open(&s, "Europe/Paris", "2026-12-19T15:00"));
        assert!(
            !open(&s, "Europe/Paris", "2026-12-18T10:00"),
            "special replaces the week"
        );
        assert!(open(&s, "Europe/Paris", "2026-12-18T12:30"));
        let (tz, ts) = at("Europe/Paris", "2026-12-25T10:00");
        assert!(matches!(
            state(Some(&s), &tz, ts).reason,
            OpenReason::Closed { .. }
        ));
        let (tz, ts) = at("Europe/Paris", "2026-12-19T11:00");
        assert!(matches!(
            state(Some(&s), &tz, ts).reason,
            OpenReason::Window { special: true, .. }
        ));
    }

    #[test]
    fn daylight_saving_changes_in_paris_and_new_york() {
        // Europe/Paris: 2026-03-29 02:00 -> 03:00 (Sunday); 2026-10-25 03:00 -> 02:00.
        let spring = schedule(&[(SUN, &["02:30-04:00"])], &[], &[]);
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let first_after = tz
            .to_ambiguous_timestamp("2026-03-29T03:00".parse().unwrap())
            .compatible()
            .unwrap();
        assert_eq!(
            first_after.to_string(),
            "2026-03-29T01:00:00Z",
            "the end of the gap"
        );
        assert!(
            state(Some(&spring), &tz, first_after).open,
            "starts at the first instant after the gap"
        );
        assert!(
            !state(
                Some(&spring),
                &tz,
                first_after - jiff::SignedDuration::from_secs(1)
            )
            .open
        );
        // Its opening, by next_change, is that instant too.
        let before = at("Europe/Paris", "2026-03-29T01:00").1;
        assert_eq!(next_change(Some(&spring), &tz, before), Some(first_after));

        let fall = schedule(&[(SUN, &["02:00-02:45"])], &[], &[]);
        let amb = tz.to_ambiguous_timestamp("2026-10-25T02:30".parse().unwrap());
        let (first, second) = (amb.earlier().unwrap(), amb.later().unwrap());
        assert_ne!(first, second, "02:30 happens twice");
        assert!(state(Some(&fall), &tz, first).open);
        assert!(
            state(Some(&fall), &tz, second).open,
            "both instants are inside"
        );

        // America/New_York: 2026-03-08 02:00 -> 03:00; 2026-11-01 02:00 -> 01:00.
        let ny = TimeZone::get("America/New_York").unwrap();
        let spring = schedule(&[(SUN, &["02:15-03:30"])], &[], &[]);
        let three = ny
            .to_ambiguous_timestamp("2026-03-08T03:00".parse().unwrap())
            .compatible()
            .unwrap();
        assert!(state(Some(&spring), &ny, three).open);
        let fall = schedule(&[(SUN, &["01:00-01:30"])], &[], &[]);
        let amb = ny.to_ambiguous_timestamp("2026-11-01T01:15".parse().unwrap());
        assert!(state(Some(&fall), &ny, amb.earlier().unwrap()).open);
        assert!(state(Some(&fall), &ny, amb.later().unwrap()).open);
        // Between the two 01:30s (the second 01:00-01:29), it is open again.
        let second_0100 = ny
            .to_ambiguous_timestamp("2026-11-01T01:00".parse().unwrap())
            .later()
            .unwrap();
        assert!(state(Some(&fall), &ny, second_0100).open);
    }

    #[test]
    fn next_change_finds_the_next_opening_and_closing() {
        let s = schedule(
            &[(MON, &["09:00-12:00", "13:00-18:00"])],
            &["2026-12-14"],
            &[],
        );
        let (tz, ts) = at("Europe/Paris", "2026-12-07T10:00");
        let close = next_change(Some(&s), &tz, ts).unwrap();
        assert_eq!(tz.to_datetime(close).to_string(), "2026-12-07T12:00:00");
        let reopen = next_change(Some(&s), &tz, close).unwrap();
        assert_eq!(tz.to_datetime(reopen).to_string(), "2026-12-07T13:00:00");
        // After Monday's shift the next Monday is a holiday: a week and more.
        let (tz, ts) = at("Europe/Paris", "2026-12-07T19:00");
        let next = next_change(Some(&s), &tz, ts).unwrap();
        assert_eq!(tz.to_datetime(next).to_string(), "2026-12-21T09:00:00");
        assert_eq!(next_change(None, &tz, ts), None);
    }

    #[test]
    fn next_change_sees_the_second_pass_of_a_repeated_hour() {
        // New York falls back on 2026-11-01: 01:00-01:59 happens twice.
        let s = schedule(&[(SUN, &["00:00-01:30"])], &[], &[]);
        let ny = TimeZone::get("America/New_York").unwrap();
        let amb = ny.to_ambiguous_timestamp("2026-11-01T01:30".parse().unwrap());
        let (first, second) = (amb.earlier().unwrap(), amb.later().unwrap());
        let at_0100 = ny.to_ambiguous_timestamp("2026-11-01T01:00".parse().unwrap());
        // Open until the first 01:30, closed at the change (back to 01:00,
        // inside the window again), and closed for good at the second 01:30.
        let start = at("America/New_York", "2026-11-01T00:30").1;
        assert_eq!(next_change(Some(&s), &ny, start), Some(first));
        assert_eq!(
            next_change(Some(&s), &ny, first),
            Some(at_0100.later().unwrap())
        );
        assert_eq!(
            next_change(Some(&s), &ny, at_0100.later().unwrap()),
            Some(second)
        );
    }
}
