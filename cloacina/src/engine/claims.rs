//! [`Claims`]: the tasks this runner holds claims on (their leases are renewed by the heartbeat),
//! each marked while its outcome is being recorded, and the claim stamps by which a claim whose
//! answer was lost finds its tasks again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::clock::Clock;
use crate::database::UniversalTimestamp;
use crate::models::{PipelineExecutionId, TaskExecutionId};

/// A claim this runner holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    pipeline: PipelineExecutionId,
    /// The attempt ended and its outcome is being recorded: the lease is still renewed (a slow
    /// or retried write must not lose it), but a renewal that misses it is no loss (it may just
    /// have been recorded).
    recording: bool,
}

/// The claims this runner holds.
pub(crate) struct Claims {
    held: Mutex<HashMap<TaskExecutionId, Held>>,
    /// The last claim stamp handed out (microseconds since the epoch), so stamps never repeat.
    last_stamp: AtomicI64,
    clock: Arc<dyn Clock>,
}

impl Claims {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self { held: Mutex::default(), last_stamp: AtomicI64::new(0), clock }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<TaskExecutionId, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a claim this runner now holds.
    pub(crate) fn hold(&self, task: TaskExecutionId, pipeline: PipelineExecutionId) {
        self.held().insert(task, Held { pipeline, recording: false });
    }

    /// Marks a held task's attempt as ended (its outcome is being recorded).
    pub(crate) fn mark_recording(&self, task: TaskExecutionId) {
        if let Some(h) = self.held().get_mut(&task) {
            h.recording = true;
        }
    }

    /// Forgets a claim: its outcome is recorded, or it was given up (the lease then lapses).
    pub(crate) fn release(&self, task: TaskExecutionId) {
        self.held().remove(&task);
    }

    /// Every claim held, with the pipeline.
    pub(crate) fn held_tasks(&self) -> Vec<(TaskExecutionId, PipelineExecutionId)> {
        self.held().iter().map(|(t, h)| (*t, h.pipeline)).collect()
    }

    /// True while this runner holds a claim on a task of `pipeline` other than `batch`'s: that
    /// task's outcome is still to be recorded (the completer forgets a claim as soon as it has
    /// recorded its outcome), so the pipeline cannot have ended yet, and whoever records that
    /// outcome will look again.
    pub(crate) fn holds_others_of(&self, pipeline: PipelineExecutionId, batch: &HashSet<TaskExecutionId>) -> bool {
        self.held().iter().any(|(t, h)| h.pipeline == pipeline && !batch.contains(t))
    }

    /// True when this runner holds no claim: every outcome is recorded.
    pub(crate) fn holds_nothing(&self) -> bool {
        self.held().is_empty()
    }

    /// True while `task` is held and its attempt still running (not being recorded).
    pub(crate) fn is_running_here(&self, task: TaskExecutionId) -> bool {
        self.held().get(&task).is_some_and(|h| !h.recording)
    }

    /// A claim stamp: the time a claim statement writes as its tasks' `started_at`, by which a
    /// claim whose answer was lost finds its tasks again. Strictly increasing per runner, so two
    /// claims never share one.
    pub(crate) fn claim_stamp(&self) -> UniversalTimestamp {
        let now = self.clock.now().timestamp_micros();
        let prev = self.last_stamp.fetch_max(now, Ordering::SeqCst);
        let micros = if now > prev { now } else { self.last_stamp.fetch_add(1, Ordering::SeqCst) + 1 };
        UniversalTimestamp::from(chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default())
    }
}
