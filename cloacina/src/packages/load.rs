//! Loading a package archive into a [`WorkflowSet`] a runner can offer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloacina_workflow::plugin::{Description, Reply, Request, WorkflowDescription};
use serde_json::Value;

use super::abi::{self, Plugin};
use super::compile::{Compiler, Output};
use super::manifest::{Language, Manifest};
use super::{archive, content_hash, source, Error, Limits, Scratch};
use crate::context::Context;
use crate::runner::WorkflowSet;
use crate::task::TaskError;
use crate::trigger::{Trigger, TriggerError, TriggerResult};
use crate::workflow::{Task, TaskFuture, Workflow};

/// Loads package archives: unpacks them within [`Limits`] under `work_dir`, compiles Rust
/// packages with [`Compiler`], opens them.
#[derive(Debug, Clone)]
pub struct Loader {
    /// How Rust packages are compiled and cached.
    pub compiler: Compiler,
    /// How far an archive may expand.
    pub limits: Limits,
    /// Where archives are unpacked while they are checked and built.
    pub work_dir: PathBuf,
}

/// A loaded package.
#[derive(Debug)]
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// The archive's content hash (lowercase hex SHA-256), the `source` of its workflow versions.
    pub sha256: String,
    /// What the package says it holds.
    pub description: Description,
    /// Its workflows (task code calling into the package), event triggers and cron triggers.
    pub set: WorkflowSet,
}

impl Loader {
    /// A loader configured by the environment ([`Compiler::from_env`]), default limits, unpacking
    /// under the cache directory.
    pub fn from_env() -> Self {
        let compiler = Compiler::from_env();
        let work_dir = compiler.cache_dir.join("unpacked");
        Loader { compiler, limits: Limits::default(), work_dir }
    }

    /// Unpacks the archive `bytes` and checks its manifest and layout (blocking).
    pub fn unpack(&self, bytes: &[u8]) -> Result<Unpacked, Error> {
        let sha256 = content_hash(bytes);
        let scratch = Scratch::new(&self.work_dir)?;
        let (dir, _) = archive::unpack(bytes, scratch.path(), self.limits)?;
        let manifest = source::manifest(&dir)?;
        source::check_layout(&dir, &manifest)?;
        Ok(Unpacked { scratch, dir, manifest, sha256 })
    }

    /// Loads an unpacked package: compiles it unless the cache has it (blocking: run it off the
    /// async runtime), opens it and builds its workflows. Nothing is offered to a runner here: a
    /// package that fails any step leaves nothing behind.
    pub fn load(&self, unpacked: &Unpacked, output: Output) -> Result<Loaded, Error> {
        let Unpacked { dir, manifest, sha256, .. } = unpacked;
        if manifest.language() == Language::Python {
            return Err(Error::Unsupported(
                "a Python package runs in a Python worker (PythonHost::describe), not in this process".to_owned(),
            ));
        }
        let library = self.compiler.library(dir, sha256, output)?;
        let (plugin, description) = abi::open(&library)?;
        let set = workflow_set(Arc::new(plugin), &description, manifest, sha256)?;
        Ok(Loaded { manifest: manifest.clone(), sha256: sha256.clone(), description, set })
    }
}

/// An archive unpacked into a scratch directory (removed when this is dropped), checked.
#[derive(Debug)]
pub struct Unpacked {
    scratch: Scratch,
    /// The package directory (`<name>-<version>/`).
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The archive's content hash.
    pub sha256: String,
}

impl Unpacked {
    /// Where it was unpacked.
    pub fn root(&self) -> &std::path::Path {
        self.scratch.path()
    }

    /// Keeps the package directory at `to` (a Python package's files, which its worker imports
    /// while it runs): moved there, unless an earlier load of the same archive already did.
    pub fn keep(&self, to: &std::path::Path) -> Result<(), Error> {
        if to.is_dir() {
            return Ok(());
        }
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", to.display()));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::rename(&self.dir, to).map_err(io)
    }
}

/// The package's workflows, triggers and cron triggers as the runner takes them.
fn workflow_set(
    plugin: Arc<Plugin>,
    description: &Description,
    manifest: &Manifest,
    sha256: &str,
) -> Result<WorkflowSet, Error> {
    let names: Vec<&str> = description.workflows.iter().map(|w| w.name.as_str()).collect();
    if names.is_empty() {
        return Err(Error::Invalid("the package defines no workflow (a #[workflow] module)".to_owned()));
    }
    if let Some(named) = &manifest.metadata.workflow_name {
        if !names.contains(&named.as_str()) {
            return Err(Error::Invalid(format!(
                "package.toml names workflow `{named}`, but the package defines {}",
                names.join(", ")
            )));
        }
    }
    let workflows =
        description.workflows.iter().map(|w| workflow(&plugin, w, sha256)).collect::<Result<Vec<_>, _>>()?;
    let targets = |what: &str, name: &str, workflow: &str| {
        if names.contains(&workflow) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{what} `{name}` starts workflow `{workflow}`, which the package does not define"
            )))
        }
    };
    let mut triggers = Vec::new();
    for t in &description.triggers {
        targets("trigger", &t.name, &t.workflow)?;
        let (plugin, name) = (plugin.clone(), t.name.clone());
        let poll = move || {
            let (plugin, trigger) = (plugin.clone(), name.clone());
            async move {
                match plugin.call(&Request::Poll { trigger }).await {
                    Reply::Polled { fire: false, .. } => Ok(TriggerResult::Skip),
                    Reply::Polled { fire: true, context } => {
                        let context = context.map(Context::from_value).transpose()?;
                        Ok(TriggerResult::Fire(context))
                    }
                    other => Err(TriggerError::PollError { message: failure(other) }),
                }
            }
        };
        let trigger = Trigger::new(&t.name, &t.workflow, Duration::from_millis(t.poll_interval_ms), poll)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .allow_concurrent(t.allow_concurrent);
        triggers.push(trigger);
    }
    for c in &description.cron_triggers {
        targets("cron trigger", &c.name, &c.workflow)?;
    }
    Ok(WorkflowSet { workflows, triggers, cron_triggers: description.cron_triggers.clone() })
}

/// One workflow of the package, versioned by the archive's hash.
fn workflow(plugin: &Arc<Plugin>, described: &WorkflowDescription, sha256: &str) -> Result<Workflow, Error> {
    let mut builder = Workflow::builder(&described.name).source(sha256);
    if let Some(d) = &described.description {
        builder = builder.description(d);
    }
    if let Some(a) = &described.author {
        builder = builder.author(a);
    }
    for task in &described.tasks {
        let id = task.spec.id.clone();
        let code = PackagedTask { plugin: plugin.clone(), workflow: described.name.clone(), task: id.clone() };
        builder = builder.task(task.spec.clone(), code);
        if task.on_success {
            let (plugin, workflow) = (plugin.clone(), described.name.clone());
            builder =
                builder.on_success(&id, move |task, context: Context<Value>| {
                    let (plugin, workflow) = (plugin.clone(), workflow.clone());
                    async move {
                        hooked(plugin.call(&Request::OnSuccess { workflow, task, context: context.to_value() }).await)
                    }
                });
        }
        if task.on_failure {
            let (plugin, workflow) = (plugin.clone(), described.name.clone());
            builder = builder.on_failure(&id, move |task, error, context: Context<Value>| {
                let (plugin, workflow) = (plugin.clone(), workflow.clone());
                async move {
                    let request = Request::OnFailure { workflow, task, error, context: context.to_value() };
                    hooked(plugin.call(&request).await)
                }
            });
        }
    }
    builder.build().map_err(|e| Error::Invalid(e.to_string()))
}

/// A task whose code is in a package.
struct PackagedTask {
    plugin: Arc<Plugin>,
    workflow: String,
    task: String,
}

impl Task for PackagedTask {
    fn run(&self, context: Context<Value>) -> TaskFuture {
        let plugin = self.plugin.clone();
        let request =
            Request::Task { workflow: self.workflow.clone(), task: self.task.clone(), context: context.to_value() };
        Box::pin(async move {
            match plugin.call(&request).await {
                Reply::Output { context } => Context::from_value(context).map_err(|e| {
                    TaskError::fatal(format!("the package returned an output that is not a context: {e}"))
                }),
                Reply::TaskFailed { error } => Err(error),
                Reply::Panicked { message } => Err(TaskError::fatal(format!("task panicked: {message}"))),
                other => Err(TaskError::fatal(failure(other))),
            }
        })
    }
}

fn hooked(reply: Reply) -> crate::workflow::HookResult {
    match reply {
        Reply::HookDone => Ok(()),
        other => Err(failure(other).into()),
    }
}

/// What an unexpected reply says.
fn failure(reply: Reply) -> String {
    match reply {
        Reply::HookFailed { message } | Reply::PollFailed { message } | Reply::Refused { message } => message,
        Reply::Panicked { message } => format!("panicked: {message}"),
        Reply::Cancelled => "the call was cancelled".to_owned(),
        other => format!("the package replied {other:?} where it should not"),
    }
}
