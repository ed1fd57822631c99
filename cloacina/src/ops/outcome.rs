//! What an operator action answers: done, [`Refused`] (the request cannot apply) or failed; and
//! the one rule for a context given as JSON.

use serde_json::Value;

use crate::models::{PipelineExecutionId, PipelineStatus};
use crate::Context;

/// Why an operator action was refused (as opposed to failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No run has that id.
    #[error("no run {0}")]
    NoRun(PipelineExecutionId),
    /// No runner ever registered the workflow.
    #[error("no workflow named `{0}` is registered")]
    NoWorkflow(String),
    /// The workflow's newest version was withdrawn: its package was replaced by one without it,
    /// removed, or failed to load. Runs in flight finish; no new run starts.
    #[error("workflow `{workflow}` starts no new runs: {reason}")]
    Withdrawn {
        /// The workflow.
        workflow: String,
        /// Why.
        reason: String,
    },
    /// No package has that id.
    #[error("no package {0}")]
    NoPackage(crate::models::WorkflowPackageId),
    /// A package version was already recorded with another archive: a version names one content.
    #[error(
        "package {package} {version} was already recorded with other contents: give the new archive a new version"
    )]
    VersionReused {
        /// The package.
        package: String,
        /// Its version.
        version: String,
    },
    /// Another loaded package already defines the workflow.
    #[error("workflow `{workflow}` is already defined by package {package}: a workflow name belongs to one package")]
    WorkflowClaimed {
        /// The workflow.
        workflow: String,
        /// The package that defines it.
        package: String,
    },
    /// The run is not in a status the action applies to.
    #[error("run {id} is {status}: {action} applies to {applies_to}")]
    WrongStatus {
        /// The run.
        id: PipelineExecutionId,
        /// Its status.
        status: PipelineStatus,
        /// The action.
        action: &'static str,
        /// The statuses it applies to.
        applies_to: &'static str,
    },
}

impl Refused {
    /// Whether the refusal is "no such thing" (a 404, exit code 4); every other refusal is a
    /// conflict with the current state (a 409, exit code 3).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Refused::NoRun(_) | Refused::NoWorkflow(_) | Refused::NoPackage(_))
    }
}

/// What an action did: `Ok(Ok(x))` done, `Ok(Err(refused))` refused, `Err` failed.
pub type Outcome<T> = Result<Result<T, Refused>, crate::Error>;

/// A context given as JSON (a request body, a command-line argument): an object; `null` is the
/// empty context.
pub fn context_of(value: Value) -> Result<Context<Value>, crate::Error> {
    match value {
        Value::Null => Ok(Context::new()),
        v @ Value::Object(_) => Ok(Context::from_value(v)?),
        _ => Err(crate::input::Invalid { field: "context".into(), reason: "must be a JSON object".into() }.into()),
    }
}
