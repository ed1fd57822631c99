//! Output for people (aligned tables, short times) and shared argument parsing.

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Utc};

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// A time for people: `2026-11-24 10:00:00`, in UTC.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An optional time, `-` when absent.
pub(crate) fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// Seconds between two times, `-` unless both are known.
pub(crate) fn duration(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format!("{:.3}s", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => "-".to_owned(),
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses `--since`: an RFC 3339 time (`2026-11-24T10:00:00Z`), a date (`2026-11-24`, midnight
/// UTC), or an age such as `90s`, `30m`, `2h`, `7d` (before now).
pub(crate) fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).context("midnight")?.and_utc());
    }
    let unit_at = s.len().saturating_sub(1);
    let invalid = || {
        anyhow::anyhow!("invalid --since `{s}`: use an RFC 3339 time, a date (YYYY-MM-DD) or an age like 30m, 2h, 7d")
    };
    let n = s.get(..unit_at).and_then(|n| n.parse::<i64>().ok()).filter(|n| *n >= 0).ok_or_else(invalid)?;
    let unit_seconds = match s.get(unit_at..) {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3_600,
        Some("d") => 86_400,
        _ => return Err(invalid()),
    };
    let out_of_range = || anyhow::anyhow!("--since `{s}` reaches before the year 1; give a shorter age or a date");
    let age = n.checked_mul(unit_seconds).and_then(chrono::Duration::try_seconds).ok_or_else(out_of_range)?;
    Utc::now().checked_sub_signed(age).filter(|t| t.year() >= 1).ok_or_else(out_of_range)
}

/// Parses an id argument, naming what it should have been.
pub(crate) fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> anyhow::Result<T> {
    s.parse().map_err(|_| anyhow::anyhow!("invalid {what} id `{s}`: expected a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_dates_and_ages() {
        assert_eq!(parse_since("2026-11-24T10:00:00Z").expect("rfc3339").to_rfc3339(), "2026-11-24T10:00:00+00:00");
        assert_eq!(parse_since("2026-11-24").expect("date").to_rfc3339(), "2026-11-24T00:00:00+00:00");
        let age = Utc::now() - parse_since("2h").expect("age");
        assert!((age.num_seconds() - 7200).abs() < 5);
        for bad in ["", "h", "2w", "yesterday", "-", "-5d"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
        for huge in ["9999999999999d", "9223372036854775807s", "99999999999h"] {
            let err = parse_since(huge).expect_err(huge).to_string();
            assert!(err.contains("before the year 1"), "{huge}: {err}");
        }
    }
}
