//! Output: tables for people (comfy-table: terminal width, Unicode width), times in local time
//! (UTC with `--utc`), JSON for scripts in one versioned envelope, and exit codes by failure
//! class. Everything goes through [`line()`], so a closed standard output (`| head`) ends the
//! command quietly instead of panicking, and no text from the database (error messages, names,
//! contexts written by task code) can send the terminal a command: [`printable`] escapes control
//! characters on the way out.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Utc};

/// The version of the JSON documents `--json` prints (`{"version": 1, "data": …}`).
pub(crate) const JSON_VERSION: u32 = 1;

static UTC: AtomicBool = AtomicBool::new(false);

/// Shows times in UTC instead of local time (`--utc`).
pub(crate) fn use_utc(utc: bool) {
    UTC.store(utc, Ordering::Relaxed);
}

/// Writes one line to standard output (through [`printable`]); a closed pipe becomes an error
/// `main` ends quietly on.
pub(crate) fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let text = text.to_string();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", printable(&text))?;
    Ok(())
}

/// `text` safe to show on a terminal: control characters (ESC, BEL, CR, backspace, DEL, the C1
/// range) and the bidirectional overrides that reorder what is shown become visible escapes
/// (`\u{1b}`); newlines and tabs stay, so multi-line text (a traceback) reads as it was written.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `println!` through [`line()`], returning from the enclosing function on a closed pipe.
macro_rules! outln {
    () => {
        $crate::commands::output::line("")?
    };
    ($($arg:tt)*) => {
        $crate::commands::output::line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

/// Why a command failed, for its exit code: 2 bad input, 3 not found, 4 conflict (the thing is
/// already in another state), 5 the database is unreachable; anything else exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    BadInput = 2,
    NotFound = 3,
    Conflict = 4,
    Unreachable = 5,
}

/// An error with its exit class.
#[derive(Debug)]
pub(crate) struct Classified {
    pub(crate) failure: Failure,
    message: String,
}

impl std::fmt::Display for Classified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

/// An error that exits with `failure`'s code.
pub(crate) fn fail(failure: Failure, message: impl Into<String>) -> anyhow::Error {
    Classified { failure, message: message.into() }.into()
}

/// A refused operator action as a classified error.
pub(crate) fn refused(r: cloacina::ops::Refused) -> anyhow::Error {
    if r.is_not_found() {
        fail(Failure::NotFound, r.to_string())
    } else {
        fail(Failure::Conflict, r.to_string())
    }
}

/// The exit code for `error`: a classified error's, or the class of a library error.
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(c) = cause.downcast_ref::<Classified>() {
            return c.failure as u8;
        }
        if let Some(e) = cause.downcast_ref::<cloacina_server::ServeError>() {
            use cloacina_server::ServeError;
            if matches!(e, ServeError::NoTokenOffLoopback(_) | ServeError::BadToken(_) | ServeError::BadLimits(_)) {
                return Failure::BadInput as u8;
            }
        }
        if let Some(e) = cause.downcast_ref::<cloacina::database::Error>() {
            return match e.kind() {
                cloacina::database::ErrorKind::Configuration => Failure::BadInput as u8,
                cloacina::database::ErrorKind::Unavailable => Failure::Unreachable as u8,
                _ => 1,
            };
        }
        if let Some(e) = cause.downcast_ref::<cloacina::Error>() {
            if matches!(e, cloacina::Error::ScheduleNotFound(_) | cloacina::Error::ExecutionNotFound(_)) {
                return Failure::NotFound as u8;
            }
            return match e.kind() {
                cloacina::ErrorKind::InvalidInput => Failure::BadInput as u8,
                cloacina::ErrorKind::Unavailable => Failure::Unreachable as u8,
                _ => 1,
            };
        }
    }
    1
}

/// True when `error` comes from writing to a closed standard output.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Prints `rows` under `headers` as a table fitted to the terminal.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    for row in rows {
        // A cell is one line: its newlines too are shown as escapes.
        t.add_row(row.iter().map(|cell| printable(cell).replace('\n', "\\n")));
    }
    for l in t.lines() {
        // The preset pads every cell by one space on each side; the first column starts flush.
        line(l.strip_prefix(' ').unwrap_or(&l).trim_end())?;
    }
    Ok(())
}

/// A time for people: local time (`2026-11-24 11:00:00 +01:00`), or UTC with `--utc`.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    if UTC.load(Ordering::Relaxed) {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    } else {
        t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %:z").to_string()
    }
}

/// Milliseconds between two times, when both are known.
pub(crate) fn duration_ms(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<i64> {
    Some((to? - from?).num_milliseconds())
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

/// Prints `value` as pretty JSON in the versioned envelope `{"version": 1, "data": value}`.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let doc = serde_json::json!({ "version": JSON_VERSION, "data": value });
    line(serde_json::to_string_pretty(&doc)?)
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
    super::now().checked_sub_signed(age).filter(|t| t.year() >= 1).ok_or_else(out_of_range)
}

/// Reads a context argument: JSON text, or `@path` for a file holding it; it must be an object.
pub(crate) fn parse_context(arg: Option<&str>) -> anyhow::Result<cloacina::Context<serde_json::Value>> {
    let Some(arg) = arg else { return Ok(cloacina::Context::new()) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| fail(Failure::BadInput, format!("cannot read the context file `{path}`: {e}")))?,
        None => arg.to_owned(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(Failure::BadInput, format!("the context is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(fail(Failure::BadInput, "the context must be a JSON object, like {\"day\": \"2026-11-26\"}"));
    }
    cloacina::Context::from_value(value).map_err(|e| fail(Failure::BadInput, e.to_string()))
}

/// Parses an id argument, naming what it should have been.
pub(crate) fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> anyhow::Result<T> {
    s.parse().map_err(|_| fail(Failure::BadInput, format!("invalid {what} id `{s}`: expected a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_commands_in_data_are_shown_not_obeyed() {
        let hostile = "disk full\u{1b}]0;PWNED\u{7}\u{1b}[2J\r\u{9b}\u{202e}txt";
        let shown = printable(hostile);
        assert_eq!(shown, "disk full\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J\\u{d}\\u{9b}\\u{202e}txt");
        assert!(!shown.chars().any(|c| c.is_control()));
        assert_eq!(printable("two\nlines\tand a tab"), "two\nlines\tand a tab");
    }

    #[test]
    fn since_accepts_times_dates_and_ages() {
        assert_eq!(parse_since("2026-11-24T10:00:00Z").expect("rfc3339").to_rfc3339(), "2026-11-24T10:00:00+00:00");
        assert_eq!(parse_since("2026-11-24").expect("date").to_rfc3339(), "2026-11-24T00:00:00+00:00");
        let age = super::super::now() - parse_since("2h").expect("age");
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
