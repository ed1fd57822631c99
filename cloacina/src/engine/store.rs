//! [`Store`]: the database as the services use it, with the one policy for a failed database step
//! ([`Store::persist`]: try again with backoff, without limit while the error is classified
//! retryable, a few times otherwise) and the announcement of work left for other runners.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::database::{AnyConnection, Database};
use crate::faults::Faults;

/// How many times an engine step tries a database call before it gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Persistence {
    /// Tries for errors classified retryable (a lost connection, a serialization failure);
    /// `None`: until the runner's services stop.
    pub(crate) retryable: Option<u32>,
    /// Tries for every other error, deadlocks and SQLite's "database is locked" included (Diesel
    /// gives no code for them, so they cannot be told apart from lasting errors).
    pub(crate) other: u32,
}

impl Persistence {
    /// For writes whose loss would cost a task's result: retry a lost connection for as long as
    /// the runner lives, anything else a few times.
    pub(crate) const STUBBORN: Persistence = Persistence { retryable: None, other: 6 };
    /// For calls made on a caller's behalf: a few tries, then the caller hears the error.
    pub(crate) const BRIEF: Persistence = Persistence { retryable: Some(4), other: 2 };
}

/// The runner's database, the faults a test armed, and its work announcements.
pub(crate) struct Store {
    pub(crate) db: Database,
    /// Faults a test armed for this runner (always empty without the `failpoints` feature).
    pub(crate) faults: Faults,
    /// The services' stop signal: a step stops trying once it is set.
    stopped: watch::Receiver<bool>,
    /// The payload of this runner's work announcements (`<schema>:<runner name>`).
    signal: String,
}

impl Store {
    pub(crate) fn new(db: Database, faults: Faults, stopped: watch::Receiver<bool>, runner_name: &str) -> Self {
        let signal = format!("{}:{runner_name}", db.schema().unwrap_or(""));
        Self { db, faults, stopped, signal }
    }

    /// The payload of this runner's work announcements: `<schema>:<runner name>` (the schema
    /// empty when none is set), so listeners skip other schemas' work and their own.
    pub(crate) fn work_signal(&self) -> &str {
        &self.signal
    }

    /// Announces, inside the caller's transaction, that it leaves Ready work other runners may
    /// take: they are woken when it commits (PostgreSQL; a no-op on SQLite, whose runners poll).
    pub(crate) fn announce_work(&self, conn: &mut AnyConnection) -> Result<(), crate::Error> {
        Ok(crate::database::notify_work(conn, &self.signal)?)
    }

    /// Runs the database step `op` as `policy` says: on failure it tries again after a growing,
    /// jittered pause (20 ms doubling to 1 s). `op` learns which try it is (from 0), so a step
    /// whose earlier try may have committed unseen can check before it writes again.
    pub(crate) async fn persist<T, F>(&self, what: &'static str, policy: Persistence, op: F) -> Result<T, crate::Error>
    where
        T: Send + 'static,
        F: Fn(&mut AnyConnection, u32) -> Result<T, crate::Error> + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let (mut retryable_tries, mut other_tries) = (0u32, 0u32);
        let mut stop = self.stopped.clone();
        loop {
            let this_try = retryable_tries + other_tries;
            let call = op.clone();
            let err = match self.db.run_with(move |c| call(c, this_try)).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            crate::telemetry::database_error(err.kind());
            let retryable = err.kind() == crate::ErrorKind::Unavailable;
            let (tries, limit) = if retryable {
                retryable_tries += 1;
                (retryable_tries, policy.retryable)
            } else {
                other_tries += 1;
                (other_tries, Some(policy.other))
            };
            if limit.is_some_and(|l| tries >= l) || *stop.borrow() {
                return Err(err);
            }
            if tries == 1 {
                tracing::warn!(step = what, error = %err, "database step failed; trying again");
            } else {
                tracing::debug!(step = what, error = %err, tries, "database step failed again");
            }
            // Real time, not the runner's clock: this paces retries against a database, which a
            // manual clock does not move.
            let pause = backoff(tries);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// The pause before try `n + 1` of a failed database step: 20 ms doubling to 1 s, with ±50 %
/// jitter so runners that failed together do not retry together.
fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(20).saturating_mul(1 << tries.min(6)).min(Duration::from_secs(1));
    base.mul_f64(0.5 + fastrand::f64())
}
