//! [`Workflow`]: a validated [`WorkflowSpec`] paired with the code of each task and its hooks, and
//! its builder.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::spec::{Error, TaskSpec, WorkflowSpec};
use crate::{Context, TaskError};

/// The future a task returns: its output context, or why it failed.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Context<Value>, TaskError>> + Send + 'static>>;

/// The code of one task: takes its input context, returns its output context.
pub trait Task: Send + Sync + 'static {
    /// Runs one attempt.
    fn run(&self, context: Context<Value>) -> TaskFuture;
}

impl<F, Fut> Task for F
where
    F: Fn(Context<Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Context<Value>, TaskError>> + Send + 'static,
{
    fn run(&self, context: Context<Value>) -> TaskFuture {
        Box::pin(self(context))
    }
}

/// What a task hook returns (upstream Cloacina's callback result): an error is logged, and never
/// changes the task's outcome.
pub type HookResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
/// The future of a task hook.
pub type HookFuture = Pin<Box<dyn Future<Output = HookResult> + Send + 'static>>;
/// Runs once a task's success is recorded: the task id and its output context.
pub type SuccessHook = Arc<dyn Fn(String, Context<Value>) -> HookFuture + Send + Sync>;
/// Runs once a task's failure is recorded for good (no retry left): the task id, the error and
/// the context the task was given.
pub type FailureHook = Arc<dyn Fn(String, TaskError, Context<Value>) -> HookFuture + Send + Sync>;

/// The hooks of one task (`#[task(on_success = f, on_failure = g)]`).
#[derive(Clone, Default)]
pub struct TaskHooks {
    /// After a recorded success.
    pub on_success: Option<SuccessHook>,
    /// After a recorded final failure.
    pub on_failure: Option<FailureHook>,
}

/// One task on its own: its declaration and its code. `#[workflow]` generates a constructor for
/// each task, `<function>_task()` as upstream Cloacina names it, so a test can run one attempt of
/// one task directly ([`TaskDefinition::execute`]) and a program can assemble its own workflow
/// from tasks ([`WorkflowBuilder::with_task`]). Running it this way skips the engine: no retries,
/// timeouts, hooks or persistence, and a task that takes a `TaskHandle` needs a runner.
#[derive(Clone)]
pub struct TaskDefinition {
    spec: TaskSpec,
    code: Arc<dyn Task>,
}

impl fmt::Debug for TaskDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDefinition").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl TaskDefinition {
    /// Task `spec` running `code`.
    pub fn new(spec: TaskSpec, code: impl Task) -> Self {
        Self { spec, code: Arc::new(code) }
    }

    /// The task id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The ids of the tasks it depends on, in declared order.
    pub fn dependencies(&self) -> &[String] {
        &self.spec.dependencies
    }

    /// The whole declaration: rule, retry policy, timeout.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// Runs one attempt with `context` as its input and returns its output context.
    pub async fn execute(&self, context: Context<Value>) -> Result<Context<Value>, TaskError> {
        self.code.run(context).await
    }
}

/// A runnable workflow: structure plus task code and hooks. Cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    spec: Arc<WorkflowSpec>,
    code: Arc<HashMap<String, Arc<dyn Task>>>,
    hooks: Arc<HashMap<String, TaskHooks>>,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow").field("name", &self.spec.name()).field("version", &self.spec.version()).finish()
    }
}

impl Workflow {
    /// Starts a builder for a workflow called `name`.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            name: name.into(),
            description: None,
            author: None,
            source: None,
            tasks: Vec::new(),
            hooks: HashMap::new(),
        }
    }

    /// A workflow with `spec`'s structure and no task code: what a process that schedules runs
    /// but does not run tasks needs (an operator tool starting a run from the registry's graph).
    /// Its [`task_code`](Self::task_code) is `None` for every task.
    pub fn definition_only(spec: WorkflowSpec) -> Workflow {
        Workflow { spec: Arc::new(spec), code: Arc::default(), hooks: Arc::default() }
    }

    /// The validated structure.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// Workflow name.
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// Structural version.
    pub fn version(&self) -> &str {
        self.spec.version()
    }

    /// The code of task `id`.
    pub fn task_code(&self, id: &str) -> Option<Arc<dyn Task>> {
        self.code.get(id).cloned()
    }

    /// The hooks of task `id`, if it has any.
    pub fn task_hooks(&self, id: &str) -> Option<&TaskHooks> {
        self.hooks.get(id)
    }
}

/// Assembles a [`Workflow`] at run time; [`WorkflowBuilder::build`] validates it.
pub struct WorkflowBuilder {
    name: String,
    description: Option<String>,
    author: Option<String>,
    source: Option<String>,
    tasks: Vec<(TaskSpec, Arc<dyn Task>)>,
    hooks: HashMap<String, TaskHooks>,
}

impl WorkflowBuilder {
    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets the author (upstream's `#[workflow(author = …)]`).
    pub fn author(mut self, text: impl Into<String>) -> Self {
        self.author = Some(text.into());
        self
    }

    /// Names the code's source, a package's content hash: it becomes part of the version, so two
    /// packages with the same structure but different code are different versions, and a run
    /// always finishes on the code it started with.
    pub fn source(mut self, content_hash: impl Into<String>) -> Self {
        self.source = Some(content_hash.into());
        self
    }

    /// Adds a task with its full specification.
    pub fn task(mut self, spec: TaskSpec, code: impl Task) -> Self {
        self.tasks.push((spec, Arc::new(code)));
        self
    }

    /// Adds a task built on its own (the `<function>_task()` constructors `#[workflow]`
    /// generates return one).
    pub fn with_task(mut self, task: TaskDefinition) -> Self {
        self.tasks.push((task.spec, task.code));
        self
    }

    /// Adds a task with default settings (rule `always`, 3 attempts, the runner's timeout).
    pub fn simple_task(self, id: &str, dependencies: &[&str], code: impl Task) -> Self {
        self.task(TaskSpec::new(id, dependencies), code)
    }

    /// Runs `hook` after each recorded success of task `task` (the task id and its output).
    pub fn on_success<F, Fut>(mut self, task: &str, hook: F) -> Self
    where
        F: Fn(String, Context<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        let hook: SuccessHook = Arc::new(move |id, ctx| Box::pin(hook(id, ctx)));
        self.hooks.entry(task.to_owned()).or_default().on_success = Some(hook);
        self
    }

    /// Runs `hook` after task `task` failed for good (the task id, the error, its input).
    pub fn on_failure<F, Fut>(mut self, task: &str, hook: F) -> Self
    where
        F: Fn(String, TaskError, Context<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        let hook: FailureHook = Arc::new(move |id, error, ctx| Box::pin(hook(id, error, ctx)));
        self.hooks.entry(task.to_owned()).or_default().on_failure = Some(hook);
        self
    }

    /// Validates the graph (duplicates, unknown dependencies, cycles; hooks of unknown tasks)
    /// and builds the workflow.
    pub fn build(self) -> Result<Workflow, Error> {
        let (specs, code): (Vec<TaskSpec>, Vec<Arc<dyn Task>>) = self.tasks.into_iter().unzip();
        let ids: Vec<String> = specs.iter().map(|t| t.id.clone()).collect();
        if let Some(unknown) = self.hooks.keys().find(|h| !ids.contains(h)) {
            return Err(Error::UnknownHookTask { workflow: self.name, task: unknown.clone() });
        }
        let spec =
            WorkflowSpec::new(self.name, self.description, specs)?.with_author(self.author).with_source(self.source);
        Ok(Workflow {
            spec: Arc::new(spec),
            code: Arc::new(ids.into_iter().zip(code).collect()),
            hooks: Arc::new(self.hooks),
        })
    }
}

/// A workflow that registers itself when linked: `#[workflow]` submits one per module. Runners
/// include every registered workflow; a package's host loads the ones the package registered.
pub struct Registration(pub fn() -> Workflow);

inventory::collect!(Registration);

/// Every workflow registered in this binary (or package) by `#[workflow]`, sorted by name.
pub fn registered() -> Vec<Workflow> {
    let mut all: Vec<Workflow> = inventory::iter::<Registration>.into_iter().map(|r| (r.0)()).collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_runs_task_code() {
        let wf = Workflow::builder("w")
            .description("demo")
            .simple_task("a", &[], |mut ctx: Context<Value>| async move {
                ctx.insert("a", serde_json::json!(1))?;
                Ok(ctx)
            })
            .simple_task("b", &["a"], |ctx: Context<Value>| async move { Ok(ctx) })
            .build()
            .expect("valid");
        assert_eq!(wf.spec().description(), Some("demo"));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let code = wf.task_code("a").expect("code");
        let out = rt.block_on(code.run(Context::new())).expect("runs");
        assert_eq!(out.get("a"), Some(&serde_json::json!(1)));
        assert!(wf.task_code("zzz").is_none());
    }

    #[test]
    fn invalid_graphs_do_not_build() {
        let err = Workflow::builder("w")
            .simple_task("a", &["b"], |c: Context<Value>| async move { Ok(c) })
            .simple_task("b", &["a"], |c: Context<Value>| async move { Ok(c) })
            .build()
            .expect_err("cycle");
        assert!(matches!(err, Error::Cycle { .. }));
    }
}
