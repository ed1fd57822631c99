//! [`Signals`], the wake-ups between services, and [`Shutdown`], the three phases of a stop.

use tokio::sync::{watch, Notify};

/// The wake-ups between services.
#[derive(Default)]
pub(crate) struct Signals {
    /// Wakes the claim loop: work was created, a slot freed, a retry came due.
    pub(crate) work_available: Notify,
    /// Wakes the cron service: a schedule was created or changed through this runner.
    pub(crate) schedules_changed: Notify,
    /// Told after each batch the completer wrote (shutdown waits for the last).
    pub(crate) recorded: Notify,
    /// Told when a package was uploaded or deleted somewhere (PostgreSQL's announcements): a
    /// daemon following the stored packages looks at once.
    pub(crate) packages_changed: Notify,
}

/// A stop in three phases.
pub(crate) struct Shutdown {
    /// First: claim nothing more.
    pub(crate) stop_claiming: watch::Sender<bool>,
    /// Second (the deadline passed): cancel attempts still running.
    pub(crate) cancel_attempts: watch::Sender<bool>,
    /// Last: the background services stop.
    pub(crate) stop_services: watch::Sender<bool>,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Self {
            stop_claiming: watch::channel(false).0,
            cancel_attempts: watch::channel(false).0,
            stop_services: watch::channel(false).0,
        }
    }

    /// True once shutdown began: nothing new is claimed or started.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.stop_claiming.borrow()
    }
}
