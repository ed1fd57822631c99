//! Measuring helpers for the engine benchmark: a median with its spread, the process's peak
//! resident memory, and the database's single-row commit rate (the yardstick the throughput
//! targets are stated against, measured in the same run because this machine's speed drifts).

use std::time::{Duration, Instant};

use cloacina::database::{establish, ConnectOptions, DatabaseUrl};
use diesel::connection::SimpleConnection;

/// Median, min and max of a set of measurements.
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<f64>) -> Spread {
        assert!(!v.is_empty(), "no measurements");
        v.sort_by(f64::total_cmp);
        Spread { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1], n: v.len() }
    }

    /// "median (min–max, n runs)" with `decimals` digits.
    pub(crate) fn show(&self, decimals: usize) -> String {
        format!("{:.d$} (min {:.d$}, max {:.d$}, median of {})", self.median, self.min, self.max, self.n, d = decimals)
    }
}

/// The value at quantile `p` of sorted durations, in milliseconds.
pub(crate) fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// Resets the peak resident set size (Linux `clear_refs`), so [`peak_rss_mb`] reports the peak
/// from now on.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size in MB since the last [`reset_peak_rss`] (Linux `VmHWM`).
pub(crate) fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

const PROBE: Duration = Duration::from_secs(2);

/// Single-row commits per second the database sustains, measured for two seconds.
///
/// PostgreSQL: four clients, each updating its own row of a small table in autocommit (a
/// pgbench-style simple update). SQLite: one connection with Cloacina's settings (WAL) in a
/// `BEGIN IMMEDIATE; UPDATE; COMMIT` loop.
pub(crate) fn commit_rate(url: &str, schema: Option<&str>) -> f64 {
    let parsed = DatabaseUrl::parse(url).expect("url");
    let options = ConnectOptions { schema: schema.map(str::to_owned), ..Default::default() };
    let mut setup = establish(&parsed, &options).expect("connect");
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS commit_probe; \
             CREATE TABLE commit_probe (id INTEGER PRIMARY KEY, n BIGINT NOT NULL); \
             INSERT INTO commit_probe (id, n) VALUES (1, 0), (2, 0), (3, 0), (4, 0)",
        )
        .expect("probe table");
    let postgres = parsed.backend().name() == "postgres";
    let clients = if postgres { 4 } else { 1 };
    let commits: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (1..=clients)
            .map(|id| {
                let (parsed, options) = (&parsed, &options);
                s.spawn(move || {
                    let mut c = establish(parsed, options).expect("connect");
                    let sql = if postgres {
                        format!("UPDATE commit_probe SET n = n + 1 WHERE id = {id}")
                    } else {
                        format!("BEGIN IMMEDIATE; UPDATE commit_probe SET n = n + 1 WHERE id = {id}; COMMIT")
                    };
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < PROBE {
                        c.batch_execute(&sql).expect("probe update");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("probe client")).sum()
    });
    setup.batch_execute("DROP TABLE commit_probe").expect("drop probe table");
    commits as f64 / PROBE.as_secs_f64()
}
