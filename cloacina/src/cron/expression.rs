//! Cron expressions read in an IANA time zone, with explicit daylight-saving rules.
//!
//! Pattern matching is croner's; this module owns the mapping from wall-clock times to instants,
//! so the rules are ours and tested:
//! - A schedule is a set of wall-clock times in its zone. Each matching wall-clock time fires once.
//! - A wall-clock time that occurs twice (the repeated hour when clocks go back) fires once, at
//!   its first occurrence. The second pass of that hour fires nothing.
//! - A wall-clock time that does not exist (the skipped hour when clocks go forward) fires at the
//!   first instant after the jump (03:00 for 02:30 when 02:00 jumps to 03:00). Several such times
//!   collapse into that one run. Nothing is silently skipped.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

/// A cron expression or time zone that was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression does not parse.
    #[error("invalid cron expression `{expression}`: {reason} (use 5 fields `min hour day month weekday`, or 6 with seconds first)")]
    InvalidExpression {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The expression parses but never matches a date (such as 30 February).
    #[error("cron expression `{0}` never fires")]
    NeverFires(String),
    /// The time zone is not an IANA name.
    #[error("unknown time zone `{0}`: use an IANA name such as `UTC` or `Europe/Berlin`")]
    UnknownTimeZone(String),
    /// `end_at` is before `start_at`.
    #[error("the schedule ends ({end}) before it starts ({start})")]
    EndsBeforeStart {
        /// `start_at`.
        start: DateTime<Utc>,
        /// `end_at`.
        end: DateTime<Utc>,
    },
    /// A setting that is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// A parsed cron expression and the time zone it is read in.
#[derive(Debug, Clone)]
pub struct CronExpression {
    text: String,
    cron: croner::Cron,
    tz: Tz,
}

/// Most candidate wall-clock times looked at for one next fire time: enough to step over a
/// repeated hour of a per-second schedule (3,600 candidates that already fired).
const MAX_CANDIDATES: usize = 10_000;

impl CronExpression {
    /// Parses `expression` (5 fields, or 6 with seconds first; names like `MON` and `JAN`, lists,
    /// ranges and steps) in the IANA time zone `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz = Tz::from_str(timezone).map_err(|_| ScheduleError::UnknownTimeZone(timezone.to_owned()))?;
        let cron =
            CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build().parse(expression).map_err(
                |e| ScheduleError::InvalidExpression { expression: expression.to_owned(), reason: e.to_string() },
            )?;
        let parsed = Self { text: expression.to_owned(), cron, tz };
        // A pattern like `0 0 30 2 *` parses but never matches: refuse it now, not at run time.
        if parsed.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::NeverFires(expression.to_owned()));
        }
        Ok(parsed)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The time zone it is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, following the daylight-saving rules above.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = after.with_timezone(&self.tz).naive_local();
        for _ in 0..MAX_CANDIDATES {
            // croner matches wall-clock times; a zone without transitions (UTC) keeps them as written.
            let candidate = self.cron.find_next_occurrence(&Utc.from_utc_datetime(&wall), false).ok()?.naive_utc();
            let instant = match self.tz.from_local_datetime(&candidate) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
                LocalResult::None => self.first_instant_after_gap(candidate),
            };
            // Candidates that map to or before `after` already fired (second pass of a repeated
            // hour, or skipped times collapsed into the jump).
            if instant > after {
                return Some(instant);
            }
            wall = candidate;
        }
        None
    }

    /// The first instant whose wall-clock time is after `missing`, a time inside a forward jump.
    fn first_instant_after_gap(&self, missing: NaiveDateTime) -> DateTime<Utc> {
        // UTC offsets are within ±15 h, so the jump lies in this window, through which wall time
        // rises. Search whole seconds (fire times are whole seconds).
        let wall = |secs: i64| DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&self.tz).naive_local());
        let centre = missing.and_utc().timestamp();
        let (mut lo, mut hi) = (centre - 15 * 3600, centre + 15 * 3600);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if wall(mid).is_some_and(|w| w > missing) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0).unwrap_or_else(|| missing.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn fire_times(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let cron = CronExpression::parse(expr, tz).expect("parse");
        let mut t = utc(after);
        (0..n)
            .map(|_| {
                t = cron.next_after(t).expect("next");
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn five_and_six_field_expressions_in_utc() {
        assert_eq!(
            fire_times("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", 3),
            ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00"]
        );
        assert_eq!(
            fire_times("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00"]
        );
        assert_eq!(fire_times("0 9 * * MON", "UTC", "2026-11-24T00:00:00Z", 1), ["2026-11-30T09:00:00+00:00"]);
    }

    #[test]
    fn wall_clock_times_follow_the_zone() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            fire_times("0 9 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
            ["2026-03-28T08:00:00+00:00", "2026-03-29T07:00:00+00:00", "2026-03-30T07:00:00+00:00"]
        );
    }

    #[test]
    fn a_time_in_the_skipped_hour_fires_when_the_clock_jumps() {
        // New York, 8 March 2026: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        assert_eq!(
            fire_times("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3),
            ["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00", "2026-03-10T06:30:00+00:00"]
        );
        // Every 30 minutes: 02:00 and 02:30 do not exist; they collapse into 03:00, which also matches.
        assert_eq!(
            fire_times("*/30 * * * *", "America/New_York", "2026-03-08T06:00:00Z", 4),
            [
                "2026-03-08T06:30:00+00:00", // 01:30 EST
                "2026-03-08T07:00:00+00:00", // the jump: 03:00 EDT
                "2026-03-08T07:30:00+00:00", // 03:30 EDT
                "2026-03-08T08:00:00+00:00",
            ]
        );
    }

    #[test]
    fn a_time_in_the_repeated_hour_fires_once() {
        // New York, 1 November 2026: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
        assert_eq!(
            fire_times("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
        );
        assert_eq!(
            fire_times("*/30 * * * *", "America/New_York", "2026-11-01T04:45:00Z", 4),
            [
                "2026-11-01T05:00:00+00:00", // 01:00 EDT
                "2026-11-01T05:30:00+00:00", // 01:30 EDT
                "2026-11-01T07:00:00+00:00", // 02:00 EST: the second pass of 01:xx fires nothing
                "2026-11-01T07:30:00+00:00",
            ]
        );
        // Asked from inside the second pass, the next time is still after it.
        let cron = CronExpression::parse("*/30 * * * *", "America/New_York").expect("parse");
        assert_eq!(cron.next_after(utc("2026-11-01T06:10:00Z")), Some(utc("2026-11-01T07:00:00Z")));
    }

    #[test]
    fn bad_input_is_rejected_with_a_clear_error() {
        let err = CronExpression::parse("61 * * * *", "UTC").expect_err("minute 61");
        assert!(matches!(err, ScheduleError::InvalidExpression { .. }), "{err}");
        assert!(err.to_string().contains("`61 * * * *`"), "{err}");
        assert!(CronExpression::parse("* * *", "UTC").is_err());
        assert!(CronExpression::parse("0 0 0 1 1 * 2027", "UTC").is_err(), "no year field");
        assert_eq!(
            CronExpression::parse("0 0 30 2 *", "UTC").expect_err("never"),
            ScheduleError::NeverFires("0 0 30 2 *".into())
        );
        assert_eq!(
            CronExpression::parse("0 * * * *", "Mars/Olympus").expect_err("zone"),
            ScheduleError::UnknownTimeZone("Mars/Olympus".into())
        );
    }
}
