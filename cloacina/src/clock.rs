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

/// Sleeps until `clock` shows `at`: a timer on the system clock; on a clock that jumps (a manual
/// one), until it is set to `at` or later. Every engine timer that measures engine time (leases,
/// retries, recovery, heartbeats, cron, retention, triggers) waits through this or [`Ticker`].
pub(crate) async fn sleep_until(clock: &dyn Clock, at: DateTime<Utc>) {
    let mut changes = clock.changes();
    loop {
        let left = (at - clock.now()).to_std().unwrap_or(std::time::Duration::ZERO);
        if left.is_zero() {
            return;
        }
        match changes.as_mut() {
            Some(jumps) => {
                if jumps.changed().await.is_err() {
                    std::future::pending::<()>().await; // the clock is gone: it never moves
                }
            }
            None => tokio::time::sleep(left).await,
        }
    }
}

/// A periodic timer on a [`Clock`]: each tick comes `period` after the previous one by that
/// clock; ticks missed while the service worked (or the clock jumped) are not made up, the next
/// one is `period` after the late one.
pub(crate) struct Ticker {
    clock: Arc<dyn Clock>,
    period: std::time::Duration,
    next: DateTime<Utc>,
}

impl Ticker {
    /// A ticker whose first tick is at once.
    pub(crate) fn new(clock: Arc<dyn Clock>, period: std::time::Duration) -> Self {
        let next = clock.now();
        Self { clock, period, next }
    }

    /// A ticker whose first tick is `period` from now.
    pub(crate) fn after_one_period(clock: Arc<dyn Clock>, period: std::time::Duration) -> Self {
        let next = clock.now() + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
        Self { clock, period, next }
    }

    /// Waits for the next tick; false (at once) when `stop` is set first.
    pub(crate) async fn tick(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            () = sleep_until(&*self.clock, self.next) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
        let period = chrono::Duration::from_std(self.period).unwrap_or(chrono::Duration::MAX);
        self.next = self.clock.now() + period;
        !*stop.borrow()
    }
}
