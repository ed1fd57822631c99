//! Unit tests for workflow tasks without a database: [`TestRunner`] runs a [`Workflow`]'s tasks
//! in process, one after another in dependency order, and [`TestResult`] has upstream Cloacina's
//! assertion helpers (`assert_all_completed`, `assert_task_failed`, …).
//!
//! The rules are the engine's: a task is decided once its dependencies ended; its trigger rule
//! (default `always`) makes it run or be skipped; its input is the run's input merged with its
//! dependencies' outputs in declared order; the final context is the input merged with the
//! outputs of the run's ends (or, when a task failed, the last completed task's output). What
//! needs the engine does not apply: each task runs once (no retries, no timeout, no hooks).
//!
//! It depends on `cloacina-workflow` only: no database, no async runtime (the tasks' futures run
//! on whatever runtime the test uses).
//!
//! ```
//! use cloacina::workflow::Workflow;
//! use cloacina::Context;
//! use cloacina_testing::TestRunner;
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let wf = Workflow::builder("double")
//!     .simple_task("double", &[], |mut ctx: Context<serde_json::Value>| async move {
//!         let n: i64 = ctx.get_required("n")?;
//!         ctx.insert("doubled", json!(n * 2))?;
//!         Ok(ctx)
//!     })
//!     .build()
//!     .unwrap();
//! let mut input = Context::new();
//! input.insert("n", json!(21)).unwrap();
//! let result = TestRunner::new().workflow(wf).run(input).await.unwrap();
//! result.assert_all_completed();
//! assert_eq!(result.context.get("doubled"), Some(&json!(42)));
//! # });
//! ```

use std::collections::HashMap;

use cloacina_workflow::{Context, TaskError, TaskOutcomes, TaskStatus, Workflow};
use serde_json::Value;

/// Runs one workflow's tasks in process (see the crate documentation for the rules).
#[derive(Debug, Default)]
pub struct TestRunner {
    workflow: Option<Workflow>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestRunnerError {
    /// `run` was called before `workflow`.
    #[error("no workflow to run: call TestRunner::workflow first")]
    NoWorkflow,
    /// A task of the workflow has no code (it cannot happen with `Workflow::builder`).
    #[error("task `{0}` has no code")]
    NoCode(String),
}

/// How one task ended.
#[derive(Debug)]
pub enum TaskOutcome {
    /// It succeeded.
    Completed,
    /// It returned this error.
    Failed(TaskError),
    /// Its trigger rule did not hold.
    Skipped,
}

/// A finished run: the final context and each task's outcome, in the order they were decided.
#[derive(Debug)]
pub struct TestResult {
    /// The final context (the engine's rules).
    pub context: Context<Value>,
    /// Each task and how it ended.
    pub task_outcomes: Vec<(String, TaskOutcome)>,
}

impl TestRunner {
    /// A runner with nothing to run yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The workflow to run.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflow = Some(workflow);
        self
    }

    /// Runs every task once, in dependency order, starting from `input`.
    pub async fn run(&self, input: Context<Value>) -> Result<TestResult, TestRunnerError> {
        let wf = self.workflow.as_ref().ok_or(TestRunnerError::NoWorkflow)?;
        let mut statuses = TaskOutcomes::new();
        let mut outputs: HashMap<String, Context<Value>> = HashMap::new();
        let mut outcomes = Vec::new();
        let mut last_completed: Option<String> = None;
        for task in wf.spec().tasks() {
            let mut task_input = input.clone();
            for dependency in &task.dependencies {
                if let Some(out) = outputs.get(dependency) {
                    task_input.merge(out);
                }
            }
            let outcome = if !task.trigger_rule.evaluate(&task.dependencies, &statuses, &task_input) {
                TaskOutcome::Skipped
            } else {
                let code = wf.task_code(&task.id).ok_or_else(|| TestRunnerError::NoCode(task.id.clone()))?;
                match code.run(task_input).await {
                    Ok(output) => {
                        outputs.insert(task.id.clone(), output);
                        last_completed = Some(task.id.clone());
                        TaskOutcome::Completed
                    }
                    Err(e) => TaskOutcome::Failed(e.for_task(&task.id)),
                }
            };
            let status = match outcome {
                TaskOutcome::Completed => TaskStatus::Completed,
                TaskOutcome::Failed(_) => TaskStatus::Failed,
                TaskOutcome::Skipped => TaskStatus::Skipped,
            };
            statuses.insert(task.id.clone(), status);
            outcomes.push((task.id.clone(), outcome));
        }
        let failed = outcomes.iter().any(|(_, o)| matches!(o, TaskOutcome::Failed(_)));
        let completed = |t: &str| statuses.get(t) == Some(&TaskStatus::Completed);
        let mut context = input;
        for source in wf.spec().final_context_sources(failed, completed, last_completed.as_deref()) {
            if let Some(out) = outputs.get(&source) {
                context.merge(out);
            }
        }
        Ok(TestResult { context, task_outcomes: outcomes })
    }
}

impl TestResult {
    /// How task `id` ended, if the workflow has it.
    pub fn outcome(&self, id: &str) -> Option<&TaskOutcome> {
        self.task_outcomes.iter().find(|(t, _)| t == id).map(|(_, o)| o)
    }

    /// Panics unless every task completed, naming those that did not.
    pub fn assert_all_completed(&self) {
        let not: Vec<String> = self
            .task_outcomes
            .iter()
            .filter(|(_, o)| !matches!(o, TaskOutcome::Completed))
            .map(|(t, o)| format!("{t}: {o:?}"))
            .collect();
        assert!(not.is_empty(), "tasks that did not complete: {}", not.join(", "));
    }

    /// Panics unless task `id` completed.
    pub fn assert_task_completed(&self, id: &str) {
        self.assert_outcome(id, "completed", |o| matches!(o, TaskOutcome::Completed));
    }

    /// Panics unless task `id` failed.
    pub fn assert_task_failed(&self, id: &str) {
        self.assert_outcome(id, "failed", |o| matches!(o, TaskOutcome::Failed(_)));
    }

    /// Panics unless task `id` was skipped.
    pub fn assert_task_skipped(&self, id: &str) {
        self.assert_outcome(id, "skipped", |o| matches!(o, TaskOutcome::Skipped));
    }

    fn assert_outcome(&self, id: &str, expected: &str, test: impl Fn(&TaskOutcome) -> bool) {
        match self.outcome(id) {
            Some(o) => assert!(test(o), "task `{id}` was expected to be {expected}, but: {o:?}"),
            None => panic!("no task `{id}` in this run"),
        }
    }
}
