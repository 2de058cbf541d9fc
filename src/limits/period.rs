//! Budget periods on the UTC calendar: a day from 00:00, an ISO week from Monday 00:00, a month
//! from the 1st, and `total`, which never resets. Spend is kept per UTC day, so every period
//! is a run of whole days and a period change needs no migration of what was spent.

use serde::Serialize;

use crate::time::{civil_from_days, days_from_civil};

pub const DAY_MS: u64 = 86_400_000;

// Read by `Period::parse` only (limits are read through `parse_patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
    Total,
}

/// Days since 1970-01-01 (UTC) of a unix time in milliseconds.
pub fn day_of(ms: u64) -> u64 {
    ms / DAY_MS
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "total" => Some(Period::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// First day of the period holding `today`; None for `total` (it has no start).
    pub fn start_day(self, today: u64) -> Option<u64> {
        match self {
            Period::Day => Some(today),
            // 1970-01-01 was a Thursday: (day + 3) % 7 counts from Monday.
            Period::Week => Some(today.saturating_sub((today + 3) % 7)),
            Period::Month => {
                let (y, m, _) = civil_from_days(today);
                days_from_civil(y, m, 1)
            }
            Period::Total => None,
        }
    }

    /// First day of the next period: when the budget resets. None for `total`.
    pub fn reset_day(self, today: u64) -> Option<u64> {
        match self {
            Period::Day => Some(today + 1),
            Period::Week => self.start_day(today).map(|d| d + 7),
            Period::Month => {
                let (y, m, _) = civil_from_days(today);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1)
            }
            Period::Total => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, rfc3339};

    fn day(s: &str) -> u64 {
        day_of(parse_rfc3339(s).unwrap())
    }

    fn at(d: Option<u64>) -> String {
        rfc3339(d.unwrap() * DAY_MS)
    }

    #[test]
    fn day_boundaries_are_utc_midnight() {
        assert_eq!(day("2026-12-01T23:59:59.999Z"), day("2026-12-01T00:00:00Z"));
        assert_eq!(day("2026-12-02T00:00:00Z"), day("2026-12-01T00:00:00Z") + 1);
        let today = day("2026-12-01T13:00:00Z");
        assert_eq!(at(Period::Day.start_day(today)), "2026-12-01T00:00:00.000Z");
        assert_eq!(at(Period::Day.reset_day(today)), "2026-12-02T00:00:00.000Z");
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-12-02 is a Wednesday; 2026-11-30 the Monday before.
        for d in ["2026-11-30", "2026-12-02", "2026-12-06T23:59:59Z"] {
            let today = day(d);
            assert_eq!(
                at(Period::Week.start_day(today)),
                "2026-11-30T00:00:00.000Z",
                "{d}"
            );
            assert_eq!(
                at(Period::Week.reset_day(today)),
                "2026-12-07T00:00:00.000Z",
                "{d}"
            );
        }
        // The epoch was a Thursday: its Sunday the 11th is in the week of Monday the 5th.
        assert_eq!(at(Period::Week.start_day(10)), "1970-01-05T00:00:00.000Z");
    }

    #[test]
    fn months_end_right_including_leap_years() {
        let cases = [
            ("2026-12-31T23:59:59Z", "2026-12-01", "2027-01-01"),
            ("2028-02-29T12:00:00Z", "2028-02-01", "2028-03-01"),
            ("2027-02-28T12:00:00Z", "2027-02-01", "2027-03-01"),
            ("2100-02-28T00:00:00Z", "2100-02-01", "2100-03-01"),
            ("2026-04-30", "2026-04-01", "2026-05-01"),
            ("2026-01-01", "2026-01-01", "2026-02-01"),
        ];
        for (now, start, reset) in cases {
            let today = day(now);
            assert_eq!(
                at(Period::Month.start_day(today)),
                format!("{start}T00:00:00.000Z"),
                "{now}"
            );
            assert_eq!(
                at(Period::Month.reset_day(today)),
                format!("{reset}T00:00:00.000Z"),
                "{now}"
            );
        }
    }

    #[test]
    fn total_never_resets() {
        assert_eq!(Period::Total.start_day(20_000), None);
        assert_eq!(Period::Total.reset_day(20_000), None);
        assert_eq!(Period::parse("total"), Some(Period::Total));
        assert_eq!(Period::parse("Month"), None);
    }
}
