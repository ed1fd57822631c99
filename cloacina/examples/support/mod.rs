//! What every example does first: logs on stderr filtered by `RUST_LOG`, and the database URL
//! (`DATABASE_URL`, or a SQLite file in the working directory). Not an example itself.

#![allow(dead_code)] // each example uses its own part

/// Logs on stderr, filtered by `RUST_LOG` (for example `RUST_LOG=cloacina=debug`); warnings by
/// default.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// `DATABASE_URL`, or the SQLite file `file` (kept between runs).
pub(crate) fn database_url(file: &str) -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{file}"))
}

/// `DATABASE_URL`, or the SQLite file `file` started afresh (an earlier run's file is removed).
pub(crate) fn fresh_database_url(file: &str) -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let _ = std::fs::remove_file(file);
        format!("sqlite://{file}")
    })
}
