//! Business hours as configured: weekly windows per day, closed dates and
//! ranges, and special days with their own windows. This module parses and
//! checks them into a [`Schedule`]; deciding whether a schedule is open at an
//! instant is routing's job (`routing::hours`).
//!
//! A window is `[start, end)` in minutes of local wall-clock time, `24:00`
//! allowed as an end. A start after the end means the window runs past
//! midnight and belongs to the day it starts on.

use std::collections::BTreeMap;

use jiff::civil::Date;

use crate::directory::Errors;

/// Hours as written: `"09:00-12:00"` windows per day, `"2026-12-25"` or
/// `"2026-12-31..2027-01-01"` closures, special days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoursSpec {
    /// Monday first. A day absent or empty is closed.
    pub days: [Vec<String>; 7],
    pub closed: Vec<String>,
    /// Date (`YYYY-MM-DD`) to windows, replacing the weekly ones that day.
    pub special: BTreeMap<String, Vec<String>>,
}

/// The names of the days in the file, Monday first (`jiff`'s weekday order
/// from Monday).
pub const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One opening window, in minutes since local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: u16,
    /// Up to 1440 (`24:00`); below `start` for a window past midnight.
    pub end: u16,
}

impl Window {
    /// Whether the window runs into the next day.
    pub fn overnight(self) -> bool {
        self.end < self.start
    }

    /// The minutes it covers on the day it starts: `[start, end)` or
    /// `[start, 1440)`.
    pub fn same_day(self) -> (u16, u16) {
        if self.overnight() {
            (self.start, 1440)
        } else {
            (self.start, self.end)
        }
    }

    /// The minutes it covers on the next day, if any: `[0, end)`.
    pub fn next_day(self) -> Option<(u16, u16)> {
        (self.overnight() && self.end > 0).then_some((0, self.end))
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Checked business hours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Monday first, each sorted by start.
    pub weekly: [Vec<Window>; 7],
    /// Closed dates, as inclusive ranges (a single day is `d..=d`).
    pub closed: Vec<(Date, Date)>,
    /// Special days and their windows (sorted by start).
    pub special: BTreeMap<Date, Vec<Window>>,
}

impl Schedule {
    /// The windows that start on `date`: none when it is closed, the
    /// special ones on a special day, else the weekly ones of its weekday.
    pub fn windows_on(&self, date: Date) -> &[Window] {
        if self.closure(date).is_some() {
            return &[];
        }
        if let Some(windows) = self.special.get(&date) {
            return windows;
        }
        let day = date.weekday().to_monday_zero_offset() as usize;
        &self.weekly[day]
    }

    /// The closed range `date` falls in, if any.
    pub fn closure(&self, date: Date) -> Option<(Date, Date)> {
        self.closed
            .iter()
            .copied()
            .find(|&(from, to)| from <= date && date <= to)
    }
}

/// Parses and checks `spec`, reporting under `key` (such as
/// `numbers[0].hours`). `None` when something was wrong.
pub(crate) fn compile_hours(
    spec: &HoursSpec,
    key: &str,
    errors: &mut Errors<'_>,
) -> Option<Schedule> {
    let mut ok = true;
    let mut schedule = Schedule::default();
    for (day, texts) in spec.days.iter().enumerate() {
        match windows(texts, &format!("{key}.{}", DAY_KEYS[day]), errors) {
            Some(list) => schedule.weekly[day] = list,
            None => ok = false,
        }
    }
    // A window past midnight must not overlap the next day's first ones.
    for (day, key_name) in DAY_KEYS.iter().enumerate() {
        let next = (day + 1) % 7;
        for spill in schedule.weekly[day].iter().filter_map(|w| w.next_day()) {
            if let Some(clash) = schedule.weekly[next]
                .iter()
                .find(|w| w.same_day().0 < spill.1)
            {
                errors.push(
                    format!("{key}.{key_name}"),
                    format!(
                        "a window past midnight runs into {}'s window {clash}",
                        DAY_KEYS[next]
                    ),
                );
                ok = false;
            }
        }
    }
    for (i, text) in spec.closed.iter().enumerate() {
        match closed_range(text) {
            Ok(range) => schedule.closed.push(range),
            Err(reason) => {
                errors.push(format!("{key}.closed[{i}]"), reason);
                ok = false;
            }
        }
    }
    for (date_text, texts) in &spec.special {
        let special_key = format!("{key}.special.\"{date_text}\"");
        let Ok(date) = date_text.parse::<Date>() else {
            errors.push(
                special_key,
                format!("`{date_text}` is not a date (expected YYYY-MM-DD)"),
            );
            ok = false;
            continue;
        };
        match windows(texts, &special_key, errors) {
            Some(list) => {
                schedule.special.insert(date, list);
            }
            None => ok = false,
        }
    }
    // A day both closed and special: which one was meant is not clear.
    for date in schedule.special.keys() {
        if schedule.closure(*date).is_some() {
            errors.push(
                format!("{key}.special.\"{date}\""),
                format!("{date} is also closed (in {key}.closed): keep one of the two"),
            );
            ok = false;
        }
    }
    ok.then_some(schedule)
}

/// One day's windows, sorted, refusing malformed, empty and overlapping ones.
fn windows(texts: &[String], key: &str, errors: &mut Errors<'_>) -> Option<Vec<Window>> {
    let mut list = Vec::with_capacity(texts.len());
    let mut ok = true;
    for (i, text) in texts.iter().enumerate() {
        match window(text) {
            Ok(w) => list.push((w, i)),
            Err(reason) => {
                errors.push(format!("{key}[{i}]"), reason);
                ok = false;
            }
        }
    }
    list.sort();
    for pair in list.windows(2) {
        let ((a, _), (b, j)) = (pair[0], pair[1]);
        if b.start < a.same_day().1 {
            errors.push(
                format!("{key}[{j}]"),
                format!("`{b}` overlaps `{a}` on the same day"),
            );
            ok = false;
        }
    }
    ok.then(|| list.into_iter().map(|(w, _)| w).collect())
}

/// `"HH:MM-HH:MM"`.
pub fn window(text: &str) -> Result<Window, String> {
    let malformed =
        || format!("`{text}` is not a window (expected HH:MM-HH:MM, such as 09:00-12:30)");
    let (start, end) = text.split_once('-').ok_or_else(malformed)?;
    let start = minutes(start.trim(), false).ok_or_else(malformed)?;
    let end = minutes(end.trim(), true).ok_or_else(malformed)?;
    if start == end {
        return Err(format!(
            "`{text}` is empty (its start and end are the same time)"
        ));
    }
    Ok(Window { start, end })
}

/// `HH:MM` as minutes since midnight; `24:00` only as an end.
fn minutes(text: &str, is_end: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if is_end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `"YYYY-MM-DD"` or `"YYYY-MM-DD..YYYY-MM-DD"` (inclusive).
pub fn closed_range(text: &str) -> Result<(Date, Date), String> {
    let date = |s: &str| {
        s.trim().parse::<Date>().map_err(|_| {
            format!(
                "`{text}` is not a date or a range (expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)"
            )
        })
    };
    match text.split_once("..") {
        None => {
            let d = date(text)?;
            Ok((d, d))
        }
        Some((from, to)) => {
            let (from, to) = (date(from)?, date(to)?);
            if to < from {
                return Err(format!("`{text}` ends before it starts"));
            }
            Ok((from, to))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn windows_parse_with_24_00_and_past_midnight() {
        assert_eq!(
            window("09:00-12:30"),
            Ok(Window {
                start: 540,
                end: 750
            })
        );
        assert_eq!(window("18:00-24:00").unwrap().end, 1440);
        let night = window("22:00-06:00").unwrap();
        assert!(night.overnight());
        assert_eq!(night.same_day(), (1320, 1440));
        assert_eq!(night.next_day(), Some((0, 360)));
        assert_eq!(window("22:00-00:00").unwrap().next_day(), None);
        for bad in [
            "9:00-12:00",
            "+9:00-12:00",
            "09:00",
            "09:60-10:00",
            "24:00-01:00",
            "x",
            "10:00-10:00",
            "25:00-26:00",
        ] {
            assert!(window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closed_dates_and_ranges() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(
            closed_range("2026-12-25"),
            Ok((d("2026-12-25"), d("2026-12-25")))
        );
        assert_eq!(
            closed_range("2026-12-31..2027-01-01"),
            Ok((d("2026-12-31"), d("2027-01-01")))
        );
        assert!(closed_range("2027-01-02..2027-01-01")
            .unwrap_err()
            .contains("ends before"));
        assert!(closed_range("2026-13-01").is_err());
        assert!(closed_range("Christmas").is_err());
    }
}
