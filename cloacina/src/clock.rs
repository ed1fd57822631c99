//! The clock a runner reads for every time it uses (leases, retry waits, recovery, cron fire
//! times, the times it records): the system clock, or a manual one for tests and simulations.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Where a runner gets "now".
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// For clocks that jump (a [`ManualClock`]): a receiver that changes whenever the time is set,
    /// so the runner's services look again at once instead of sleeping on a stale deadline.
    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to: inject one with
/// [`DefaultRunnerBuilder::clock`](crate::runner::DefaultRunnerBuilder::clock) to test leases,
/// retry waits, recovery and schedules (downtime, daylight-saving changes) without waiting.
/// Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { time: Arc::new(watch::Sender::new(start)) }
    }

    /// Sets the time (and wakes the services of every runner reading this clock).
    pub fn set(&self, t: DateTime<Utc>) {
        self.time.send_replace(t);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        self.time.send_modify(|t| *t += d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.time.subscribe())
    }
}
