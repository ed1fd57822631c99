//! Fault injection: named points in the engine where a test makes one database step fail, before
//! it runs or after it committed, to prove that every step's follow-up survives the failure.
//!
//! A runner gets its own [`Faults`] (so tests running side by side never see each other's faults)
//! through `DefaultRunnerBuilder::faults`, which exists only with the `failpoints` Cargo feature.
//! Without it a runner's `Faults` is always empty and every check is one `Option` test.
//!
//! An injected fault is a real Diesel error of the chosen kind, so it takes the same path as a
//! failure the database reports: classification, rollback, retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A database step of the engine that a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultPoint {
    /// The transaction that creates a pipeline and its tasks (`execute`, `execute_async`).
    CreatePipeline,
    /// The statement that claims Ready tasks.
    Claim,
    /// The heartbeat's lease renewal.
    Heartbeat,
    /// The transaction that records a batch of attempt outcomes and everything that follows
    /// from them (dependents, the pipeline's end).
    RecordOutcomes,
    /// Inside [`FaultPoint::RecordOutcomes`]: the statement that marks tasks Completed.
    CompleteTasks,
    /// Inside [`FaultPoint::RecordOutcomes`]: putting a failed task back to Ready for a retry.
    ScheduleRetry,
    /// Inside [`FaultPoint::RecordOutcomes`]: marking a task Failed.
    FailTask,
    /// Inside any follow-up: moving dependents from NotStarted to Ready or Skipped.
    ResolveDependents,
    /// Inside any follow-up: ending the pipeline (Completed with its final context, or Failed).
    FinishPipeline,
    /// The recovery transaction for tasks whose lease expired.
    ExpireLeases,
    /// The recovery pass that settles pipelines nothing else would move on.
    Reconcile,
    /// The statement that claims a cron fire time.
    CronClaim,
    /// The transaction that starts a claimed fire time's pipeline.
    CronStart,
    /// The statement that claims an event trigger's poll slot.
    TriggerClaim,
    /// The transaction that starts the run an event trigger fired.
    TriggerFire,
    /// A daemon recording a package it loaded (or that failed) in `workflow_packages`.
    AdmitPackage,
    /// A runner recording the workflows a package brought (`DefaultRunner::add_workflows`).
    OfferWorkflows,
    /// A daemon recording a package as removed.
    RemovePackage,
}

/// When an injected fault strikes, relative to the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTiming {
    /// The step fails before it touches the database.
    Before,
    /// The step ran and committed, then the caller sees an error (as when a connection drops
    /// before the commit's acknowledgement arrives). For steps inside a larger transaction this
    /// rolls the transaction back.
    AfterCommit,
}

/// What the injected error looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A lost connection: classified as retryable.
    ConnectionLost,
    /// An error the database raised that has no retryable class (as a trigger's `RAISE` or an
    /// unclassified code would be).
    Rejected,
}

#[derive(Debug)]
struct Armed {
    point: FaultPoint,
    timing: FaultTiming,
    kind: FaultKind,
    remaining: u32,
}

#[derive(Debug, Default)]
struct Inner {
    armed: Mutex<Vec<Armed>>,
    fired: Mutex<HashMap<FaultPoint, u32>>,
}

/// The faults armed for one runner. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Faults(Option<Arc<Inner>>);

impl Faults {
    /// An empty set that faults can be armed in.
    pub fn new() -> Self {
        Self(Some(Arc::default()))
    }

    /// Makes the next `times` passes of `point` at `timing` fail with an error of `kind`.
    pub fn fail(&self, point: FaultPoint, timing: FaultTiming, kind: FaultKind, times: u32) {
        if let Some(inner) = &self.0 {
            let mut armed = inner.armed.lock().unwrap_or_else(PoisonError::into_inner);
            armed.push(Armed { point, timing, kind, remaining: times });
        }
    }

    /// Makes the next pass of `point` at `timing` fail once with a lost connection.
    pub fn fail_once(&self, point: FaultPoint, timing: FaultTiming) {
        self.fail(point, timing, FaultKind::ConnectionLost, 1);
    }

    /// How many faults have fired at `point` so far.
    pub fn fired(&self, point: FaultPoint) -> u32 {
        self.0.as_ref().map_or(0, |inner| {
            inner.fired.lock().unwrap_or_else(PoisonError::into_inner).get(&point).copied().unwrap_or(0)
        })
    }

    /// True while some armed fault has not fired yet.
    pub fn pending(&self) -> bool {
        self.0.as_ref().is_some_and(|inner| {
            inner.armed.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|a| a.remaining > 0)
        })
    }

    /// The step at `point` calls this at `timing`: an error when a fault is armed there.
    pub(crate) fn check(&self, point: FaultPoint, timing: FaultTiming) -> Result<(), DieselError> {
        let Some(inner) = &self.0 else { return Ok(()) };
        let kind = {
            let mut armed = inner.armed.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(a) = armed.iter_mut().find(|a| a.point == point && a.timing == timing && a.remaining > 0) else {
                return Ok(());
            };
            a.remaining -= 1;
            a.kind
        };
        *inner.fired.lock().unwrap_or_else(PoisonError::into_inner).entry(point).or_default() += 1;
        let message = format!("injected fault at {point:?} ({timing:?})");
        let kind = match kind {
            FaultKind::ConnectionLost => DatabaseErrorKind::ClosedConnection,
            FaultKind::Rejected => DatabaseErrorKind::Unknown,
        };
        Err(DieselError::DatabaseError(kind, Box::new(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_fires_as_often_as_armed_and_is_counted() {
        let faults = Faults::new();
        faults.fail(FaultPoint::Claim, FaultTiming::Before, FaultKind::Rejected, 2);
        assert!(faults.check(FaultPoint::Claim, FaultTiming::AfterCommit).is_ok(), "other timing");
        assert!(faults.check(FaultPoint::Heartbeat, FaultTiming::Before).is_ok(), "other point");
        for _ in 0..2 {
            let err = faults.check(FaultPoint::Claim, FaultTiming::Before).expect_err("armed");
            assert!(matches!(err, DieselError::DatabaseError(DatabaseErrorKind::Unknown, _)));
        }
        assert!(faults.check(FaultPoint::Claim, FaultTiming::Before).is_ok(), "spent");
        assert_eq!(faults.fired(FaultPoint::Claim), 2);
        assert!(!faults.pending());
    }

    #[test]
    fn an_empty_set_never_fails() {
        let none = Faults::default();
        none.fail_once(FaultPoint::Claim, FaultTiming::Before);
        assert!(none.check(FaultPoint::Claim, FaultTiming::Before).is_ok());
        assert_eq!(none.fired(FaultPoint::Claim), 0);
    }
}
